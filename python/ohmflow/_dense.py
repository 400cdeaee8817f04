"""The dense fast path of deep resistive networks (private).

A :class:`~ohmflow.models.DeepResistiveNetwork` is an ordinary :class:`Network`;
because its layers are joined by *dense* resistor matrices, its equilibrium and
its training quantities can also be computed as matrix products in the Rust core
(``ohmflow._core.CoreDense``; the algorithm is described in ``rust/core/src/dense.rs``):
the same exact block coordinate descent as ``Network.solve(method="layered")``, but
with the input drive ``X W_0`` computed once per minibatch and shared by every phase,
and each learning rule's per-resistor sums as one product per layer. The results are
the same as the general path's (tests/test_dense.py checks them against the direct
sparse solver and :func:`ohmflow.learn.gradient`); only the cost differs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._core import CoreDense, InvalidNetworkError

RULES = ("ep", "centered-ep", "exact")
"""Learning rules the dense path computes (coupled learning and GEP use the general path)."""


class DenseDRN:
    """Matrix view of a :class:`~ohmflow.models.DeepResistiveNetwork`.

    Built from the model's current conductances; :meth:`sync` copies them again after
    they change. ``tol`` is the block coordinate descent's stopping tolerance in volts
    (default ``1e-12 ×`` the network's voltage scale); ``sweeps`` fixes the number of
    sweeps per phase instead (as in Scellier's code).
    """

    def __init__(self, model: Any, *, tol: float | None = None,
                 sweeps: int | None = None) -> None:
        self.model = model
        net = model.network
        n_bias = 2 * sum(layer.size for layer in model.layers[1:]) if model.bias_voltage else 0
        n_res = sum(w.size for w in model.weights) + n_bias
        n_hidden = sum(layer.size for layer in model.layers[1:-1])
        n_dio = n_hidden * (2 if model.double_diode else 1)
        n_tr = sum(layer.size * ((a != 1.0) + signed) for layer, a, signed
                   in zip(model.layers[1:-1], model.gains[1:], model.signed[1:]))
        if (net.n_resistors != n_res or net.n_diodes != n_dio or net.n_transformers != n_tr
                or net.n_gyrators != 0 or len(net.current_source_names) != 0):
            raise InvalidNetworkError("the network was changed after it was built: the dense "
                                      "path needs the DeepResistiveNetwork as built")
        self.sizes = [int(layer.size) for layer in model.layers]
        # Resistor index sets as slices where contiguous (the builder's layout): the
        # weight matrices are then views of the conductance vector, not copies.
        self._w_idx = [_as_slice(w.ravel()) for w in model.weights]
        self._b_idx = [(_as_slice(b[0]), _as_slice(b[1])) if b.size else None
                       for b in model.biases]
        self.nout = model.n_classes
        scale = max(abs(model.input_gain), abs(model.bias_voltage), *map(abs, model.clip), 1.0)
        self.tol = 1e-12 * scale if tol is None else float(tol)
        self.sweeps = sweeps
        row = model.diode_model._row()
        lower = upper = None
        if n_hidden:
            lower = (model.clip[0], row[0], list(row[1]))
            if model.double_diode:
                upper = (model.clip[1], row[0], list(row[1]))
        self._core = CoreDense(self.sizes, *self._conductances(), float(model.bias_voltage),
                               lower, upper, [float(a) for a in model.gains],
                               [bool(x) for x in model.signed])

    def _conductances(self, g: np.ndarray | None = None) -> tuple[list, list, list]:
        if g is None:
            g = self.model.network.conductances
        w = [np.ascontiguousarray(g[idx]).reshape(self.model.weights[i].shape)
             for i, idx in enumerate(self._w_idx)]
        empty = np.zeros(0)
        bp = [g[b[0]] if b is not None else empty for b in self._b_idx]
        bn = [g[b[1]] if b is not None else empty for b in self._b_idx]
        return w, bp, bn

    def sync(self, conductances: np.ndarray | None = None) -> None:
        """Copies the model's present conductances (or ``conductances``, the same
        vector the caller is about to give the network) into the core."""
        self._core.set_conductances(*self._conductances(conductances))

    # ------------------------------------------------------------ phases
    def _relax_kw(self, threads: int | None) -> dict:
        if self.sweeps is not None:
            return {"max_sweeps": int(self.sweeps), "fixed": True, "threads": threads}
        return {"tol": self.tol, "threads": threads}

    def zeros(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((batch, n)) for n in self.sizes[1:]]

    def relax(self, d1: np.ndarray, states: list, injections: np.ndarray | None = None, *,
              threads: int | None = None) -> list[np.ndarray]:
        out, _ = self._core.relax(d1, states, injections, **self._relax_kw(threads))
        return out

    def readout(self, states: list) -> np.ndarray:
        v = states[-1]
        n = self.nout
        return v[:, :n] - v[:, n:] if self.model.differential else v

    def _injections(self, cur: np.ndarray) -> np.ndarray:
        return np.concatenate([cur, -cur], axis=1) if self.model.differential else cur

    def solve(self, inputs: np.ndarray, *, threads: int | None = None) -> list[np.ndarray]:
        """Free-layer voltages (one array per free layer) for input voltages."""
        x = np.ascontiguousarray(inputs, dtype=float)
        d1 = self._core.drive(x, threads=threads)
        return self.relax(d1, self.zeros(x.shape[0]), threads=threads)

    def node_voltages(self, inputs: np.ndarray, states: list) -> np.ndarray:
        """The full (batch, n_nodes) voltage array of the general path, from states."""
        net = self.model.network
        v = np.zeros((inputs.shape[0], net.n_nodes))
        v[:, net.voltage_source_nodes] = net.voltage_source_values
        v[:, net.input_nodes] = inputs
        for layer, s in zip(self.model.layers[1:], states):
            v[:, layer] = s
        for li, a in enumerate(self.model.gains[1:], start=1):
            s = a * states[li - 1]
            v[:, self.model.secondaries[li]] = (np.concatenate([s, -s], axis=1)
                                                 if self.model.signed[li] else s)
        return v

    # ------------------------------------------------------------ gradients
    def fields(self, inputs: np.ndarray, targets: np.ndarray, rule: str, loss: Any,
               beta: float, *, threads: int | None = None) -> tuple:
        """The two node fields whose branch products give ``rule``'s estimate:
        ``(p, q_inputs, q, q_bias, scale, loss, vout)``: dC/dg of each resistor is
        ``scale × Σ_s (p_i − p_j)(q_i − q_j)`` with P zero on the inputs and sources
        (EP: the difference of the two phases; exact: the adjoint λ) and Q given there
        by ``q_inputs`` and ``q_bias`` (EP: the sum of the phases; exact: the
        equilibrium); ``loss`` the mean loss and ``vout`` the scores at the free
        equilibrium."""
        if rule not in RULES:
            raise InvalidNetworkError(f"the dense path computes rules {RULES}, not {rule!r}")
        x = np.ascontiguousarray(inputs, dtype=float)
        batch = x.shape[0]
        core = self._core
        d1 = core.drive(x, threads=threads)
        free = self.relax(d1, self.zeros(batch), threads=threads)
        vout = self.readout(free)
        c, dc = loss(vout, np.asarray(targets, dtype=float))
        dc = np.asarray(dc, dtype=float).reshape(batch, self.nout)
        vb = float(self.model.bias_voltage)
        if rule == "exact":
            lam, _ = core.adjoint(free, np.ascontiguousarray(self._injections(dc)),
                                  **self._relax_kw(threads))
            return lam, x, free, (vb, -vb), -1.0 / batch, float(np.mean(c)), vout
        if rule == "ep":
            a, b = self.relax(d1, free, self._injections(-beta * dc), threads=threads), free
            scale = 1.0 / (2 * beta * batch)
        else:
            a = self.relax(d1, free, self._injections(-beta * dc), threads=threads)
            b = self.relax(d1, free, self._injections(beta * dc), threads=threads)
            scale = 1.0 / (4 * beta * batch)
        diff = [p - q for p, q in zip(a, b)]
        total = [p + q for p, q in zip(a, b)]
        return diff, 2.0 * x, total, (2 * vb, -2 * vb), scale, float(np.mean(c)), vout

    def layer_sums(self, inputs: np.ndarray, targets: np.ndarray, rule: str, loss: Any,
                   beta: float, *, threads: int | None = None) -> tuple:
        """The per-resistor sums of ``rule`` by layer, unscaled: ``(w, b, scale, loss,
        vout)`` with ``scale × w[l]`` the estimate of dC/dg for weight layer ``l``
        (shaped like ``model.weights[l]``) and ``scale × b[l]`` for the biases of layer
        ``l + 1`` (``(b⁺, b⁻)``); ``loss`` the mean loss and ``vout`` the output scores
        at the free equilibrium."""
        p, qin, q, qb, scale, c, vout = self.fields(inputs, targets, rule, loss, beta,
                                                    threads=threads)
        w, b = self._core.branch_products(None, p, (0.0, 0.0), qin, q, qb, threads=threads)
        return w, b, scale, c, vout

    def sgd_fields(self, inputs: np.ndarray, targets: np.ndarray, rule: str, loss: Any,
                   beta: float, rates: list, lo: float, hi: float, *,
                   threads: int | None = None) -> tuple[float, np.ndarray]:
        """One SGD step ``g ← clip(g − rates[l] · dC/dg, lo, hi)`` on the core's own
        conductances (the network is not touched until :meth:`write_back`); returns
        (mean loss, output scores) at the free equilibrium."""
        p, qin, q, qb, scale, c, vout = self.fields(inputs, targets, rule, loss, beta,
                                                    threads=threads)
        self._core.sgd_fields(p, qin, q, qb, [float(r) * scale for r in rates], float(lo),
                              float(hi), threads=threads)
        return c, vout

    def gradient(self, inputs: np.ndarray, targets: np.ndarray, rule: str, loss: Any,
                 beta: float, *, threads: int | None = None) -> tuple[np.ndarray, float,
                                                                        np.ndarray]:
        """(dC/dg for every resistor, mean loss, output scores) at the free equilibrium,
        computed as :func:`ohmflow.learn.gradient` does for ``rule``."""
        w, b, scale, c, vout = self.layer_sums(inputs, targets, rule, loss, beta,
                                               threads=threads)
        est = np.zeros(self.model.network.n_resistors)
        for idx, gl in zip(self._w_idx, w):
            est[idx] = gl.ravel()
        for idx, (bp, bn) in zip(self._b_idx, b):
            if idx is not None:
                est[idx[0]] = bp
                est[idx[1]] = bn
        est *= scale
        return est, c, vout

    def write_back(self) -> None:
        """Copies the core's conductances into the network."""
        net = self.model.network
        g = net.conductances
        w, bp, bn = self._core.conductances()
        for idx, gl in zip(self._w_idx, w):
            g[idx] = gl.ravel()
        for idx, p, n in zip(self._b_idx, bp, bn):
            if idx is not None:
                g[idx[0]] = p
                g[idx[1]] = n
        net.conductances = g


def _as_slice(idx: np.ndarray) -> Any:
    """``idx`` as a slice if it is a contiguous increasing range, else itself."""
    idx = np.asarray(idx).ravel()
    if idx.size and idx[-1] - idx[0] == idx.size - 1 and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx
