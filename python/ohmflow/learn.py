"""Losses, gradients and learning rules.

Every method of :func:`gradient` estimates the same quantity, dC/dg for each
resistor, with the same sign, so they can be compared directly:

``"exact"``
    The adjoint (hardware linearization): λ solves H λ = ∂C/∂v with H the
    conductance matrix of the network linearized at its operating point
    (conducting ideal diodes are constraints, off ones open; ReLU and Shockley
    diodes contribute their differential conductance); dC/dg_e = −(Δ_e λ)(Δ_e v).
``"ep"``
    Equilibrium Propagation: a free phase, then a nudged phase in which current
    sources inject −β ∂C/∂v (evaluated at the free state) into the outputs;
    estimate [(Δv^β)² − (Δv^0)²] / (2β), first-order accurate in β.
``"centered-ep"``
    Phases at +β and −β: [(Δv^β)² − (Δv^−β)²] / (4β), second-order accurate.
``"coupled"``
    Coupled learning (Stern et al. 2021): outputs clamped to v + η (t − v);
    estimate [(Δv^C)² − (Δv^F)²] / (2η). As η → 0 this converges to the gradient
    of the *Schur-weighted* loss ½ (v − t)ᵀ S (v − t), S the conductance matrix
    seen at the output ports (held fixed); for a single output that is S · dC/dg.
    It equals dC/dg exactly only when S is the identity, so ohmflow reports it
    as it is rather than rescaling by a matrix that hardware cannot know.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._core import InvalidNetworkError
from .network import GROUND, Network

__all__ = ["SquaredError", "CrossEntropy", "gradient", "step", "readout", "METHODS"]

METHODS = ("exact", "ep", "centered-ep", "coupled", "gep")
NUDGES = ("current", "clamp")
"""Built-in nudges of ``method="gep"``; a callable ``nudge(beta, v_out, targets)``
returning the currents injected at the outputs is also accepted."""


@dataclass(frozen=True)
class SquaredError:
    """C = ½ Σ_o (v_o − t_o)², averaged over the batch."""

    def __call__(self, v: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = v - t
        return 0.5 * np.sum(d * d, axis=1), d


@dataclass(frozen=True)
class CrossEntropy:
    """Softmax cross-entropy of ``scale * v`` against class labels or one-hot targets."""

    scale: float = 1.0

    def __call__(self, v: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = self.scale * v
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        if t.ndim == 1 or t.shape[1] == 1:
            onehot = np.zeros_like(p)
            onehot[np.arange(len(p)), np.asarray(t, dtype=int).reshape(-1)] = 1.0
            t = onehot
        c = -np.sum(t * np.log(np.clip(p, 1e-300, None)), axis=1)
        return c, self.scale * (p - t)


LossFn = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray]"]


def _loss(loss: Any) -> LossFn:
    if loss in (None, "mse", "squared"):
        return SquaredError()
    if loss in ("cross-entropy", "ce"):
        return CrossEntropy()
    if callable(loss):
        return loss
    raise InvalidNetworkError(f"unknown loss {loss!r}")


def _ports(net: Network, outputs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(plus, minus) node arrays; a single node reads against ground."""
    plus, minus = [], []
    for o in outputs:
        if isinstance(o, tuple):
            plus.append(net.node(o[0]))
            minus.append(net.node(o[1]))
        else:
            plus.append(net.node(o))
            minus.append(GROUND)
    return np.asarray(plus, dtype=np.int64), np.asarray(minus, dtype=np.int64)


def readout(voltages: np.ndarray, plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
    """Output voltages v⁺ − v⁻ for (batch, n_nodes) voltages."""
    return voltages[:, plus] - voltages[:, minus]


def _targets(net: Network, targets: Any, outputs: Any) -> tuple[list, np.ndarray]:
    if isinstance(targets, dict):
        if outputs is not None:
            raise InvalidNetworkError("give targets as a dict or outputs= with an array, not both")
        return list(targets.keys()), np.asarray([list(targets.values())], dtype=float)
    if outputs is None:
        raise InvalidNetworkError("targets as an array need outputs=")
    t = np.asarray(targets, dtype=float)
    return list(outputs), t


def _resistor_mask(net: Network, which: Any, what: str) -> np.ndarray:
    """A boolean mask over the resistors from a mask, indices or names (None: all)."""
    n = net.n_resistors
    if which is None:
        return np.ones(n, dtype=bool)
    if isinstance(which, (str, int, np.integer)):
        which = [which]
    arr = np.asarray(which)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise InvalidNetworkError(f"{what}: a boolean mask needs shape ({n},), "
                                      f"got {arr.shape}")
        return arr.copy()
    mask = np.zeros(n, dtype=bool)
    if arr.size == 0:
        return mask
    if arr.dtype.kind in "iu":
        idx = arr.reshape(-1).astype(np.int64)
        if idx.min() < -n or idx.max() >= n:
            raise InvalidNetworkError(f"{what}: resistor index out of range "
                                      f"(the network has {n} resistors)")
        mask[idx] = True
        return mask
    mask[[net.resistor(k) for k in arr.reshape(-1).tolist()]] = True
    return mask


def _check_order(nudge: Any, order: Any) -> float:
    if isinstance(order, bool) or not isinstance(order, (int, float, np.integer, np.floating)):
        raise InvalidNetworkError(f"order must be a positive number, got {order!r}")
    k = float(order)
    if not (np.isfinite(k) and k > 0):
        raise InvalidNetworkError(f"order must be finite and > 0, got {order!r}")
    if isinstance(nudge, str):
        if nudge not in NUDGES:
            raise InvalidNetworkError(f"nudge must be one of {NUDGES} or a callable, "
                                      f"got {nudge!r}")
        if k != 1:
            raise InvalidNetworkError(
                f"nudge={nudge!r} moves the state at first order in beta, so its two-phase "
                f"difference is O(beta): order must be 1, got {order!r} (see ohmflow.gep)")
    elif not callable(nudge):
        raise InvalidNetworkError(f"nudge must be one of {NUDGES} or a callable, "
                                  f"got {nudge!r}")
    return k


def _branch_drops(net: Network, x: np.ndarray) -> np.ndarray:
    a, b = net.resistor_nodes
    return x[:, a] - x[:, b]


def gradient(net: Network, targets: Any, method: str = "exact", *, outputs: Any = None,
             inputs: Any = None, loss: Any = "mse", beta: float | None = None,
             eta: float | None = None, trainable: Any = None, wrt: str = "conductance",
             threads: int | None = None, return_loss: bool = False,
             return_sources: bool = False, solver: str = "auto",
             sweeps: int | None = None, nudge: Any = "current", order: float = 1,
             readout_mask: Any = None) -> Any:
    """Estimate dC/dg for every resistor (aligned with ``net.resistor_names``).

    Parameters
    ----------
    targets : dict or array_like
        ``{node: target}`` for one sample, or an array (batch, n_outputs) with
        ``outputs=``. For cross-entropy, class labels (batch,) are accepted.
    method : {"exact", "ep", "centered-ep", "coupled"}
        See the module docstring.
    outputs : sequence, optional
        Output nodes, or ``(plus, minus)`` pairs for differential outputs.
    inputs : array_like, optional
        Input voltages (batch, n_inputs); the loss is the mean over the batch.
    loss : "mse", "cross-entropy", or callable
        A callable takes (v_out, targets), both (batch, n_outputs), and returns
        (C per sample, ∂C/∂v_out per sample).
    beta, eta : float
        Nudging strength (EP; default 1e-3 × the largest conductance... in amperes
        per unit of ∂C/∂v) and clamping factor (coupled learning; default 1e-3).
    trainable : mask, indices or names, optional
        Resistors to compute gradients for (training a subset); the others get 0.
    readout_mask : mask, indices or names, optional
        Resistors whose voltages the rule may measure; the others get 0 (for
        ``"exact"`` too: the gradient is then known only where it is read).
    nudge, order : ``method="gep"`` only
        Generalized EP (Lin, Desai, Barrows, Caravelli 2026): ``nudge`` is
        ``"current"`` (inject −β ∂C/∂v: EP), ``"clamp"`` (outputs to v + β (t − v):
        coupled learning) or a callable ``nudge(beta, v_out, targets)`` returning the
        currents injected at the outputs; the estimate is
        [(Δv^β)² − (Δv⁰)²] / (2 β^order). See :mod:`ohmflow.gep`.
    wrt : {"conductance", "resistance"}
        dC/dR = −g² dC/dg.
    return_loss : bool
        Also return the loss at the free equilibrium.
    solver, sweeps : str, int
        Passed to :meth:`Network.solve` as ``method`` and ``sweeps`` for every phase
        (e.g. ``solver="layered", sweeps=4`` as in Scellier's training).
    return_sources : bool
        ``method="exact"`` only: also return a dict with ``"voltage_sources"``
        (dC/dV for each voltage source, inputs included, aligned with
        ``net.voltage_source_names``), ``"current_sources"`` (dC/dI, aligned
        with ``net.current_source_names``) and ``"diodes"`` (a dict of arrays
        aligned with ``net.diode_names``: dC/dv_on, dC/dg_on, dC/di_s, dC/dn, NaN
        where a diode has no such parameter), from the same adjoint solve; with
        transformers / gyrators also ``"transformers"`` (dC/d ratio, aligned with
        ``net.transformer_names``) and ``"gyrators"`` (dC/dg, aligned with
        ``net.gyrator_names``).

    Returns
    -------
    numpy.ndarray, or a tuple with the loss and / or the source gradients
        ``(dC/dg[, loss][, sources])``.
    """
    if method not in METHODS:
        raise InvalidNetworkError(f"method must be one of {METHODS}, got {method!r}")
    if method != "exact" and net.n_gyrators:
        raise InvalidNetworkError(
            f"method={method!r} estimates the gradient from an energy, which a network "
            "with gyrators (not reciprocal) does not have: use method='exact' (the adjoint "
            "solves the transposed system)")
    if wrt not in ("conductance", "resistance"):
        raise InvalidNetworkError("wrt must be 'conductance' or 'resistance'")
    outs, t = _targets(net, targets, outputs)
    plus, minus = _ports(net, outs)
    lossfn = _loss(loss)
    x = None if inputs is None else np.atleast_2d(np.asarray(inputs, dtype=float))
    free = net.solve(x, threads=threads, method=solver, sweeps=sweeps)
    v0 = np.atleast_2d(free.voltages)
    batch = v0.shape[0]
    if t.shape[0] != batch:
        t = np.broadcast_to(t, (batch,) + t.shape[1:]) if t.shape[0] == 1 else t
    vout = readout(v0, plus, minus)
    c, dc = lossfn(vout, t)
    dc = np.asarray(dc, dtype=float).reshape(batch, len(outs))
    drop0 = _branch_drops(net, v0)
    gscale = float(np.max(net.conductances)) if net.n_resistors else 1.0

    def phase(nudge: Any, b: float) -> np.ndarray:
        """Voltages of the nudged phase (the free phase warm-starts it)."""
        if isinstance(nudge, str) and nudge == "clamp":
            if np.any(minus != GROUND):
                raise InvalidNetworkError("clamping nudges (coupled learning) clamp single "
                                          "output nodes, not differential pairs")
            if t.shape != vout.shape:
                raise InvalidNetworkError(f"clamping needs target voltages of shape "
                                          f"{vout.shape}, got {t.shape}")
            clamped = _clamped_copy(net, tuple(plus.tolist()))
            xin = np.zeros((batch, 0)) if x is None else x
            xc = np.concatenate([xin, vout + b * (t - vout)], axis=1)
            return np.atleast_2d(clamped.solve(xc, threads=threads, method=solver,
                                               sweeps=sweeps).voltages)
        if isinstance(nudge, str):  # "current": inject −β ∂C/∂v (EP)
            cur = -b * dc
        else:
            cur = np.asarray(nudge(b, vout.copy(), np.array(t, dtype=float)), dtype=float)
            try:
                cur = np.broadcast_to(cur, vout.shape)
            except ValueError:
                raise InvalidNetworkError(
                    f"nudge returned currents of shape {cur.shape}; expected "
                    f"{vout.shape} (batch, n_outputs)") from None
            if not np.all(np.isfinite(cur)):
                raise InvalidNetworkError("nudge returned non-finite currents")
        sol = net.solve(x, threads=threads, warm_start=free, method=solver, sweeps=sweeps,
                        injections=(np.concatenate([plus, minus]),
                                    np.concatenate([cur, -cur], axis=1)))
        return np.atleast_2d(sol.voltages)

    def step_size(value: Any, default: float, what: str) -> float:
        b = default if value is None else float(value)
        if not (np.isfinite(b) and b > 0):
            raise InvalidNetworkError(f"{what} must be finite and > 0, got {value!r}")
        return b

    measured = _resistor_mask(net, readout_mask, "readout") & _resistor_mask(
        net, trainable, "trainable")
    sources = None
    if method == "exact":
        rhs = np.zeros_like(v0)
        np.add.at(rhs, (slice(None), plus), dc)
        np.add.at(rhs, (slice(None), minus), -dc)
        direct = rhs.copy()  # ∂C/∂v at every node, clamped ones included
        rhs[:, GROUND] = 0.0
        adj = net._core.adjoint(v0, np.ascontiguousarray(np.atleast_2d(free.diode_currents)),
                                rhs, threads=threads)
        lam = adj["lambda"]
        est = -np.mean(_branch_drops(net, lam) * drop0, axis=0)
        if return_sources:
            if net.n_transformers:
                # i1 = −a j: the port-2 current j of each transformer.
                tc = np.atleast_2d(free.transformer_currents)
                adj["transformer_j"] = -tc / net.transformer_ratios
            sources = _source_gradients(net, v0, direct, adj)
    elif method == "centered-ep":
        b = step_size(beta, 1e-3 * gscale, "beta")
        dp = _branch_drops(net, phase("current", b))
        dm = _branch_drops(net, phase("current", -b))
        est = np.mean(dp**2 - dm**2, axis=0) / (4 * b)
    else:
        if method == "ep":
            nudge_, k, b = "current", 1.0, step_size(beta, 1e-3 * gscale, "beta")
        elif method == "coupled":
            nudge_, k, b = "clamp", 1.0, step_size(eta, 1e-3, "eta")
        else:
            k = _check_order(nudge, order)
            nudge_ = nudge
            default = 1e-3 * gscale if nudge == "current" else 1e-3
            b = step_size(beta, default, "beta")
        est = np.mean(_branch_drops(net, phase(nudge_, b)) ** 2 - drop0**2,
                      axis=0) / (2 * b**k)
    est = np.where(measured, est, 0.0)
    if wrt == "resistance":
        est = -(net.conductances**2) * est
    if return_sources and method != "exact":
        raise InvalidNetworkError("return_sources needs method='exact'")
    out: tuple = (est,)
    if return_loss:
        out += (float(np.mean(c)),)
    if return_sources:
        out += (sources,)
    return out[0] if len(out) == 1 else out


def _source_gradients(net: Network, v: np.ndarray, direct: np.ndarray,
                      adj: dict) -> dict:
    """Batch means of :func:`_source_gradients_per_sample`, with the diode and
    two-port gradients."""
    dv, di, two = _source_gradients_per_sample(net, v, direct, adj)
    return {"voltage_sources": np.mean(dv, axis=0), "current_sources": np.mean(di, axis=0),
            "diodes": _diode_gradients(net, v, adj), **two}


def _source_gradients_per_sample(net: Network, v: np.ndarray, direct: np.ndarray,
                                 adj: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """dC/dV of voltage sources and dC/dI of current sources from the adjoint, per
    sample: arrays (batch, n_voltage_sources) and (batch, n_current_sources), and
    the batch-mean two-port gradients (:func:`_two_port_gradients`).

    Differentiating the KKT conditions H v + D_Aᵀ μ = b(V, I), D_A v = c(V) gives
    dC/dp = ∂C/∂p − λᵀ ∂r/∂p − νᵀ ∂h/∂p. A clamp value V_c enters r through every
    branch at node c (∂r_f/∂V_c = −g_fc, so −λᵀ∂r/∂V_c = Σ g λ_f over c's branches)
    and h through the conducting ideal diodes at c (coefficient +1 at the anode,
    −1 at the cathode). A current source drawing I out of a into b enters r as
    +I at a and −I at b: dC/dI = −(λ_a − λ_b).
    """
    lam, nu, gd = adj["lambda"], adj["nu"], adj["g_diff"]
    batch, n = lam.shape
    # Σ over branches at each node of g × λ at the other end (λ = 0 at clamped nodes).
    acc = np.zeros((batch, n))
    ra, rb = net.resistor_nodes
    g = net.conductances
    np.add.at(acc, (slice(None), ra), g * lam[:, rb])
    np.add.at(acc, (slice(None), rb), g * lam[:, ra])
    if net.n_diodes:
        da, db = net.diode_nodes
        np.add.at(acc, (slice(None), da), gd * lam[:, db] - nu)
        np.add.at(acc, (slice(None), db), gd * lam[:, da] + nu)
    two = _two_port_gradients(net, v, adj, acc)
    nodes = net.voltage_source_nodes
    dv = (direct[:, nodes] + acc[:, nodes]) * np.asarray(net._vsign)
    ia, ib, _ = net._core.current_sources()
    di = -(lam[:, ia] - lam[:, ib])
    return dv, di, two


def _two_port_gradients(net: Network, v: np.ndarray, adj: dict, acc: np.ndarray) -> dict:
    """dC/d(ratio) of each transformer and dC/dg of each gyrator; adds their terms
    −λᵀ ∂F/∂V_c at every node to ``acc`` (used for the clamped nodes).

    Transformer (p1, n1, p2, n2; ratio a; current j into p2, i1 = −a j; multiplier
    λ_t of the constraint v2 − a v1 = 0): its KCL rows are j (e_p2 − e_n2) −
    a j (e_p1 − e_n1), so dC/da = (λ_p1 − λ_n1) j + λ_t v1. Gyrator (i1 = g v2,
    i2 = −g v1): dC/dg = −[(λ_p1 − λ_n1) v2 − (λ_p2 − λ_n2) v1].
    """
    out: dict = {}
    lam = adj["lambda"]
    if net.n_transformers:
        q = net.transformer_nodes
        a = net.transformer_ratios
        lt = adj["transformer_lambda"]
        v1 = v[:, q[:, 0]] - v[:, q[:, 1]]
        l1 = lam[:, q[:, 0]] - lam[:, q[:, 1]]
        # j from the law at the operating point: not stored in the adjoint; recover
        # it as i1 = −a j from the KCL of the solve (passed in by the caller).
        j = adj.get("transformer_j")
        if j is None:
            j = np.zeros_like(v1)
        out["transformers"] = np.mean(l1 * j + lt * v1, axis=0)
        for col, coef in ((2, -1.0), (3, 1.0)):
            np.add.at(acc, (slice(None), q[:, col]), coef * lt)
        np.add.at(acc, (slice(None), q[:, 0]), a * lt)
        np.add.at(acc, (slice(None), q[:, 1]), -a * lt)
    if net.n_gyrators:
        q = net.gyrator_nodes
        g = net.gyrator_conductances
        v1 = v[:, q[:, 0]] - v[:, q[:, 1]]
        v2 = v[:, q[:, 2]] - v[:, q[:, 3]]
        l1 = lam[:, q[:, 0]] - lam[:, q[:, 1]]
        l2 = lam[:, q[:, 2]] - lam[:, q[:, 3]]
        out["gyrators"] = -np.mean(l1 * v2 - l2 * v1, axis=0)
        np.add.at(acc, (slice(None), q[:, 2]), -g * l1)
        np.add.at(acc, (slice(None), q[:, 3]), g * l1)
        np.add.at(acc, (slice(None), q[:, 0]), g * l2)
        np.add.at(acc, (slice(None), q[:, 1]), -g * l2)
    return out


def _diode_gradients(net: Network, v: np.ndarray, adj: dict) -> dict:
    """dC/d(diode parameters): ``v_on`` (ideal, ReLU), ``g_on`` (ReLU), ``i_s`` and
    ``n`` (Shockley); NaN where a diode has no such parameter.

    A diode current i(Δv; p) enters the KCL residual as (e_a − e_b) i, so
    dC/dp = −(λ_a − λ_b) ∂i/∂p; an ideal diode's threshold enters only its
    constraint h = Δv − v_on, so dC/dv_on = ν (its multiplier).
    """
    from .diodes import IdealDiode, ReluDiode

    nd = net.n_diodes
    out = {k: np.full(nd, np.nan) for k in ("v_on", "g_on", "i_s", "n")}
    if nd == 0:
        return out
    lam, nu = adj["lambda"], adj["nu"]
    da, db = net.diode_nodes
    dv = v[:, da] - v[:, db]
    dl = lam[:, da] - lam[:, db]
    for k, m in enumerate(net.diode_models):
        if isinstance(m, IdealDiode):
            out["v_on"][k] = np.mean(nu[:, k])
        elif isinstance(m, ReluDiode):
            on = dv[:, k] > m.v_on
            out["g_on"][k] = -np.mean(dl[:, k] * np.where(on, dv[:, k] - m.v_on, 0.0))
            out["v_on"][k] = -np.mean(dl[:, k] * np.where(on, -m.g_on, 0.0))
        else:
            nvt = m.n * m.thermal_voltage
            x = dv[:, k] / nvt
            out["i_s"][k] = -np.mean(dl[:, k] * np.expm1(x))
            out["n"][k] = -np.mean(dl[:, k] * (-m.i_s * np.exp(x) * x / m.n))
    return out


_CLAMPED_CACHE_ATTR = "_clamped_copies"


def _clamped_copy(net: Network, outputs: tuple[int, ...]) -> Network:
    """The network with ``outputs`` turned into extra inputs (cached per topology)."""
    cache = net.__dict__.setdefault(_CLAMPED_CACHE_ATTR, {})
    key = (outputs, net.n_nodes, net.n_resistors, net.n_diodes, net._core.n_voltage_sources)
    c = cache.get(key)
    if c is None:
        c = net.copy()
        for o in outputs:
            c.add_input(o)
        cache.clear()
        cache[key] = c
    # Values change without a new analysis.
    c.conductances = net.conductances
    return c


def step(net: Network, inputs: Any, targets: Any, *, rule: str = "ep", lr: float = 0.01,
         outputs: Any = None, loss: Any = "mse", beta: float | None = None,
         eta: float | None = None, g_min: float = 1e-9, g_max: float = np.inf,
         trainable: Any = None, threads: int | None = None, solver: str = "auto",
         sweeps: int | None = None, **kwargs: Any) -> float:
    """One learning step Δg = −lr · estimate, clipped to [g_min, g_max]; returns the loss.

    ``rule`` is any method of :func:`gradient`; further keywords (``nudge``,
    ``order``, ``readout_mask``) are passed to it.
    """
    est, c = gradient(net, targets, method=rule, outputs=outputs, inputs=inputs, loss=loss,
                      beta=beta, eta=eta, trainable=trainable, threads=threads,
                      return_loss=True, solver=solver, sweeps=sweeps, **kwargs)
    net.conductances = np.clip(net.conductances - lr * est, g_min, g_max)
    return c
