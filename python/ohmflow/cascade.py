"""Cascades of networks joined by ideal unidirectional buffers.

A :class:`Cascade` is a chain of :class:`~ohmflow.Network` stages. The output
voltages of stage ``s`` drive, through ideal voltage-controlled voltage sources
(buffers: infinite input impedance, zero output impedance, gain set by a link
matrix ``L_s``), the input voltage sources of stage ``s + 1``:

    x_{s+1} = L_s out_s.

A buffer draws no current from the stage it reads, so each stage is solved on
its own, in order (the cascade is not reciprocal, but every stage is). Gradients
chain backwards: the adjoint of stage ``s`` driven by ``∂L/∂out_s`` gives the
gradient of its conductances ``−Σ Δλ Δv`` and ``∂L/∂x_s``, the sensitivity to its
input sources (as :func:`ohmflow.learn.gradient` computes with
``return_sources=True``, per sample here), and ``∂L/∂out_{s−1} = L_{s−1}ᵀ ∂L/∂x_s``.

:func:`relu_layer` builds a stage that computes a ReLU of an affine map, so that
:func:`feedforward` is a feedforward ReLU network in circuit form (Chaffey,
arXiv 2509.13793, cascades of resistor-diode networks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._core import InvalidNetworkError
from .diodes import IdealDiode
from .learn import _loss, _ports, _source_gradients_per_sample, readout
from .network import GROUND, Network

__all__ = ["Cascade", "relu_layer", "feedforward"]


class Cascade:
    """Networks in series, each stage's outputs buffered into the next one's inputs.

    Parameters
    ----------
    stages : sequence of Network
    outputs : sequence of sequences
        Output nodes of each stage (names or indices, or ``(plus, minus)`` pairs read
        as ``v⁺ − v⁻``). The last stage's outputs are the cascade's.
    links : sequence of array_like, optional
        ``L_s`` of shape ``(n_inputs of stage s+1, n_outputs of stage s)``:
        ``x_{s+1} = L_s out_s``. A row with one nonzero entry is a buffer of that
        gain; default the identity (input ``j`` follows output ``j``).
    input_link : array_like, optional
        ``L_in`` of shape ``(n_inputs of stage 0, n_features)``: the first stage's
        inputs are ``L_in x`` (e.g. ``[I; −I]`` for differential inputs). Default
        the identity.

    Examples
    --------
    >>> import numpy as np, ohmflow as of
    >>> c = of.cascade.feedforward([2, 3, 1], seed=0)
    >>> c(np.array([0.5, -0.2])).shape
    (1,)
    """

    def __init__(self, stages: Sequence[Network], outputs: Sequence[Sequence[Any]], *,
                 links: Sequence[Any] | None = None, input_link: Any = None) -> None:
        self.stages = list(stages)
        if not self.stages:
            raise InvalidNetworkError("a cascade needs at least one stage")
        if len(outputs) != len(self.stages):
            raise InvalidNetworkError(f"outputs: one list per stage ({len(self.stages)}), "
                                      f"got {len(outputs)}")
        for s, net in enumerate(self.stages):
            if not isinstance(net, Network):
                raise InvalidNetworkError(f"stage {s} is not a Network")
        self.ports = [_ports(net, list(out)) for net, out in zip(self.stages, outputs)]
        if links is None:
            links = [np.eye(self.stages[s + 1].n_inputs, self.ports[s][0].size)
                     for s in range(len(self.stages) - 1)]
            for s, L in enumerate(links):
                if L.shape[0] != L.shape[1]:
                    raise InvalidNetworkError(
                        f"stage {s} has {L.shape[1]} outputs but stage {s + 1} has "
                        f"{L.shape[0]} inputs: give links=")
        if len(links) != len(self.stages) - 1:
            raise InvalidNetworkError(f"links: one matrix per junction "
                                      f"({len(self.stages) - 1}), got {len(links)}")
        self.links = []
        for s, L in enumerate(links):
            L = np.asarray(L, dtype=float)
            want = (self.stages[s + 1].n_inputs, self.ports[s][0].size)
            if L.shape != want or not np.all(np.isfinite(L)):
                raise InvalidNetworkError(f"links[{s}]: expected finite shape {want}, "
                                          f"got {L.shape}")
            self.links.append(L)
        n0 = self.stages[0].n_inputs
        L_in = np.eye(n0) if input_link is None else np.asarray(input_link, dtype=float)
        if L_in.ndim != 2 or L_in.shape[0] != n0 or not np.all(np.isfinite(L_in)):
            raise InvalidNetworkError(f"input_link: expected finite shape ({n0}, n_features), "
                                      f"got {L_in.shape}")
        self.input_link = L_in

    @property
    def n_inputs(self) -> int:
        """Number of features ``x`` (columns of ``input_link``)."""
        return int(self.input_link.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.ports[-1][0].size)

    def forward(self, x: Any, **options: Any) -> tuple[list, list]:
        """Solves every stage; returns (solutions, stage inputs), both per stage."""
        X = np.atleast_2d(np.asarray(x, dtype=float))
        if X.ndim != 2 or X.shape[1] != self.n_inputs or not np.all(np.isfinite(X)):
            raise InvalidNetworkError(f"x: expected finite shape (batch, {self.n_inputs}), "
                                      f"got {np.shape(x)}")
        X = X @ self.input_link.T
        sols, xs = [], []
        for s, net in enumerate(self.stages):
            xs.append(X)
            sol = net.solve(X, **options)
            sols.append(sol)
            if s + 1 < len(self.stages):
                out = readout(np.atleast_2d(sol.voltages), *self.ports[s])
                X = out @ self.links[s].T
        return sols, xs

    def __call__(self, x: Any, **options: Any) -> np.ndarray:
        """The outputs of the last stage, (n_outputs,) or (batch, n_outputs) like ``x``."""
        single = np.ndim(x) == 1
        sols, _ = self.forward(x, **options)
        out = readout(np.atleast_2d(sols[-1].voltages), *self.ports[-1])
        return out[0] if single else out

    def gradient(self, x: Any, targets: Any = None, *, dloss_dout: Any = None,
                 loss: Any = "mse", return_loss: bool = False,
                 return_inputs: bool = False, threads: int | None = None) -> Any:
        """Gradients of a loss on the outputs w.r.t. every stage's conductances.

        Give ``targets`` (the loss ``loss`` averaged over the batch, as in
        :func:`ohmflow.learn.gradient`), or ``dloss_dout`` = ∂L/∂out of a total loss
        ``L`` (then the gradients are sums over the batch).

        Returns
        -------
        list of numpy.ndarray
            dL/dg per stage, aligned with each stage's ``resistor_names``; followed
            by the loss (``return_loss``, with ``targets`` only) and ∂L/∂x of the
            cascade's features per sample (``return_inputs``).
        """
        sols, xs = self.forward(x, threads=threads)
        v_last = np.atleast_2d(sols[-1].voltages)
        out = readout(v_last, *self.ports[-1])
        batch = out.shape[0]
        if (targets is None) == (dloss_dout is None):
            raise InvalidNetworkError("give exactly one of targets or dloss_dout=")
        c = None
        if targets is not None:
            t = np.asarray(targets, dtype=float)
            if t.ndim == 1 and out.shape[1] > 1 and t.shape[0] == out.shape[1] and batch == 1:
                t = t[None]
            c, dc = _loss(loss)(out, t)
            G = np.asarray(dc, dtype=float).reshape(out.shape) / batch
        else:
            G = np.atleast_2d(np.asarray(dloss_dout, dtype=float))
            if G.shape != out.shape or not np.all(np.isfinite(G)):
                raise InvalidNetworkError(f"dloss_dout: expected finite shape {out.shape}, "
                                          f"got {G.shape}")
        grads: list[np.ndarray] = [np.empty(0)] * len(self.stages)
        for s in range(len(self.stages) - 1, -1, -1):
            net, sol = self.stages[s], sols[s]
            plus, minus = self.ports[s]
            v = np.ascontiguousarray(np.atleast_2d(sol.voltages))
            rhs = np.zeros_like(v)
            np.add.at(rhs, (slice(None), plus), G)
            np.add.at(rhs, (slice(None), minus), -G)
            direct = rhs.copy()
            rhs[:, GROUND] = 0.0
            mu = np.ascontiguousarray(np.atleast_2d(sol.diode_currents))
            adj = net._core.adjoint(v, mu, rhs, threads=threads)
            lam = adj["lambda"]
            ra, rb = net.resistor_nodes
            grads[s] = -np.sum((lam[:, ra] - lam[:, rb]) * (v[:, ra] - v[:, rb]), axis=0)
            dv, _, _ = _source_gradients_per_sample(net, v, direct, adj)
            _, _, k = net._core.voltage_sources()
            dx = np.zeros((batch, net.n_inputs))
            dx[:, k[k >= 0]] = dv[:, k >= 0]
            G = dx @ (self.links[s - 1] if s > 0 else self.input_link)
        res: list[Any] = [grads]
        if return_loss:
            if c is None:
                raise InvalidNetworkError("return_loss needs targets")
            res.append(float(np.mean(c)))
        if return_inputs:
            res.append(G)
        return res[0] if len(res) == 1 else tuple(res)

    def __repr__(self) -> str:
        return f"Cascade(stages={len(self.stages)}, inputs={self.n_inputs}, " \
               f"outputs={self.n_outputs})"


def relu_layer(n_in: int, n_out: int, *, conductances: Any = None, seed: int | None = None,
               g_range: tuple[float, float] = (0.1, 1.0), bias_voltage: float = 1.0,
               relu: bool = True) -> tuple[Network, list[int]]:
    """A stage computing ``out = relu(w x + b)`` with positive conductances.

    Each feature ``x_i`` arrives on two inputs, ``+x_i`` (input ``i``) and ``−x_i``
    (input ``n_in + i``); two fixed sources are at ``±bias_voltage``. Output node
    ``k`` has a conductance ``G⁺_ki`` to ``+x_i``, ``G⁻_ki`` to ``−x_i``, ``Gb⁺_k``
    and ``Gb⁻_k`` to the bias sources, and (``relu=True``) an ideal diode from
    ground, so that

        out_k = relu(Σ_i (G⁺_ki − G⁻_ki) x_i / T_k + (Gb⁺_k − Gb⁻_k) V_b / T_k),

    ``T_k`` the total conductance at node ``k``: a node's voltage is the
    conductance-weighted mean of its neighbours' unless the diode holds it at 0.

    Parameters
    ----------
    conductances : (G⁺, G⁻, Gb⁺, Gb⁻), optional
        Shapes (n_out, n_in), (n_out, n_in), (n_out,), (n_out,). Default uniform in
        ``g_range`` (S) from ``seed``.

    Returns
    -------
    (Network, output nodes)
        Resistors are in the order G⁺ (row-major), G⁻, Gb⁺, Gb⁻.
    """
    n_in, n_out = int(n_in), int(n_out)
    if n_in < 1 or n_out < 1:
        raise InvalidNetworkError("relu_layer needs n_in >= 1 and n_out >= 1")
    if conductances is None:
        rng = np.random.default_rng(seed)
        lo, hi = g_range
        gp, gn = rng.uniform(lo, hi, (n_out, n_in)), rng.uniform(lo, hi, (n_out, n_in))
        gbp, gbn = rng.uniform(lo, hi, n_out), rng.uniform(lo, hi, n_out)
    else:
        gp, gn, gbp, gbn = (np.asarray(a, dtype=float) for a in conductances)
        if gp.shape != (n_out, n_in) or gn.shape != (n_out, n_in) or \
                gbp.shape != (n_out,) or gbn.shape != (n_out,):
            raise InvalidNetworkError("conductances: expected shapes (n_out, n_in) x2, "
                                      "(n_out,) x2")
    net = Network()
    xp = net.add_nodes(n_in, [f"x{i}+" for i in range(n_in)])
    xn = net.add_nodes(n_in, [f"x{i}-" for i in range(n_in)])
    for i in range(n_in):
        net.add_input(int(xp[i]))
    for i in range(n_in):
        net.add_input(int(xn[i]))
    bp, bn = net.add_node("b+"), net.add_node("b-")
    net.add_voltage_source(bp, bias_voltage, name="Vb+")
    net.add_voltage_source(bn, -bias_voltage, name="Vb-")
    out = net.add_nodes(n_out, [f"y{k}" for k in range(n_out)])
    rows = np.repeat(out, n_in)
    net.add_resistors(rows, np.tile(xp, n_out), gp.reshape(-1))
    net.add_resistors(rows, np.tile(xn, n_out), gn.reshape(-1))
    net.add_resistors(out, np.full(n_out, bp), gbp)
    net.add_resistors(out, np.full(n_out, bn), gbn)
    if relu:
        net.add_diodes(np.zeros(n_out, dtype=np.int64), out, IdealDiode(0.0))
    return net, [int(o) for o in out]


def feedforward(sizes: Sequence[int], *, seed: int | None = None,
                g_range: tuple[float, float] = (0.1, 1.0), bias_voltage: float = 1.0,
                relu_output: bool = False) -> Cascade:
    """A feedforward ReLU network ``sizes[0] → … → sizes[-1]`` as a cascade of
    :func:`relu_layer` stages (the last one linear unless ``relu_output``); each
    junction buffers output ``k`` into the next stage's ``+x_k`` (gain 1) and
    ``−x_k`` (gain −1); the cascade's inputs are the ``sizes[0]`` features."""
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2:
        raise InvalidNetworkError("feedforward needs at least two layer sizes")
    rng = np.random.default_rng(seed)
    stages, outs, links = [], [], []
    for s in range(len(sizes) - 1):
        last = s == len(sizes) - 2
        net, out = relu_layer(sizes[s], sizes[s + 1], seed=int(rng.integers(2**31)),
                              g_range=g_range, bias_voltage=bias_voltage,
                              relu=relu_output or not last)
        stages.append(net)
        outs.append(out)
        if not last:
            eye = np.eye(sizes[s + 1])
            links.append(np.vstack([eye, -eye]))
    eye = np.eye(sizes[0])
    return Cascade(stages, outs, links=links, input_link=np.vstack([eye, -eye]))

