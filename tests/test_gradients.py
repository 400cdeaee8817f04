"""Gradients of a loss on output voltages with respect to the conductances.

The references are independent of the code under test:

* central finite differences of the *solver* (``method="exact"`` on random
  networks with every element kind, batches, differential outputs, squared
  error, cross-entropy, a user loss, ``trainable=`` and ``wrt="resistance"``);
* central finite differences of *ngspice* on generated netlists with Shockley
  diodes, the netlist text itself perturbed;
* closed forms of linear networks from a dense Laplacian assembled and inverted
  here with numpy (the adjoint formula, and the Schur complement that coupled
  learning is weighted by);
* fitted convergence rates: Equilibrium Propagation's error is O(β), centered
  EP's O(β²), coupled learning's O(η).

Sign convention (ohmflow.learn): every method estimates dC/dg, C the batch mean.
"""

from __future__ import annotations

import math
import pathlib
import re
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import ohmflow as of  # noqa: E402
from reference.netgen import random_netlist  # noqa: E402
from reference.ngspice import ngspice_available, run_ngspice  # noqa: E402

SETTINGS = dict(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
EPS = np.finfo(float).eps
needs_ngspice = pytest.mark.skipif(not ngspice_available(), reason="ngspice not installed")


# --------------------------------------------------------------------------
# random networks (described independently of ohmflow; node 0 is ground)
# --------------------------------------------------------------------------


@dataclass
class Spec:
    n_nodes: int  # ground included
    resistors: list = field(default_factory=list)  # (a, b, g)
    diodes: list = field(default_factory=list)  # (anode, cathode, ("ideal", v_on) | ...)
    vsources: list = field(default_factory=list)  # (node, volts)
    inputs: list = field(default_factory=list)  # node of each input column
    isources: list = field(default_factory=list)  # (a, b, amps): out of a, into b
    x: np.ndarray = field(default_factory=lambda: np.zeros((1, 0)))  # (batch, n_inputs)

    @property
    def clamped(self) -> set:
        return {0} | {k for k, _ in self.vsources} | set(self.inputs)

    @property
    def free(self) -> list:
        return [k for k in range(self.n_nodes) if k not in self.clamped]

    @property
    def g(self) -> np.ndarray:
        return np.array([g for _, _, g in self.resistors])

    def clamp_values(self, row) -> dict:
        vals = {0: 0.0}
        vals.update(dict(self.vsources))
        vals.update({k: float(row[j]) for j, k in enumerate(self.inputs)})
        return vals


def build(spec: Spec) -> of.Network:
    net = of.Network()
    net.add_nodes(spec.n_nodes - 1)
    a, b, g = (np.array(c) for c in zip(*spec.resistors))
    net.add_resistors(a.astype(np.int64), b.astype(np.int64), g.astype(float))
    for a, b, (kind, *p) in spec.diodes:
        if kind == "ideal":
            model = of.IdealDiode(v_on=p[0])
        elif kind == "relu":
            model = of.ReluDiode(g_on=p[0], v_on=p[1])
        else:
            model = of.ShockleyDiode(i_s=p[0], n=p[1])
        net.add_diode(a, b, model=model)
    for node, volts in spec.vsources:
        net.add_voltage_source(node, volts)
    for node in spec.inputs:
        net.add_input(node)
    for a, b, amps in spec.isources:
        net.add_current_source(a, b, amps)
    return net


def solve_batched(net: of.Network, spec: Spec, **tol):
    """(voltages, diode currents), both (batch, ...)."""
    sol = net.solve(spec.x, **tol) if spec.inputs else net.solve(**tol)
    return np.atleast_2d(sol.voltages), np.atleast_2d(sol.diode_currents)


def _ideal_feasible(spec: Spec, diodes: list, margin: float = 1e-2) -> bool:
    """Bellman-Ford on v_a - v_b <= v_on - margin for the ideal diodes, with the
    clamps: False if some sample would make the network infeasible."""
    for row in spec.x:
        edges = [(b, a, p[0] - margin) for a, b, (kind, *p) in diodes if kind == "ideal"]
        for k, v in spec.clamp_values(row).items():
            if k:
                edges += [(0, k, v), (k, 0, -v)]
        dist = [0.0] * spec.n_nodes
        for _ in range(spec.n_nodes + 1):
            changed = False
            for u, w, wt in edges:
                if dist[u] + wt < dist[w] - 1e-12:
                    dist[w], changed = dist[u] + wt, True
            if not changed:
                break
        else:
            return False
    return True


@st.composite
def networks(draw, *, max_nodes=8, linear=False, max_batch=3, min_free=1, min_inputs=0,
             x_min=0.0):
    """A resistor spanning tree over every node (so each free node has a resistive
    path to ground), extra resistors, diodes of every kind, fixed sources,
    per-sample inputs and current sources."""
    n = draw(st.integers(2 + min_free, max_nodes))
    logg = st.floats(math.log(1e-4), math.log(1e-1))
    spec = Spec(n)
    for k in range(1, n):
        parent = draw(st.integers(0, k - 1))
        a, b = (k, parent) if draw(st.booleans()) else (parent, k)
        spec.resistors.append((a, b, math.exp(draw(logg))))
    others = draw(st.permutations(list(range(1, n))))
    n_clamp = draw(st.integers(min(min_inputs, n - 1 - min_free), min(3, n - 1 - min_free)))
    n_in = draw(st.integers(min(min_inputs, n_clamp), n_clamp))
    spec.inputs = list(others[:n_in])
    spec.vsources = [(k, draw(st.floats(-3, 3))) for k in others[n_in:n_clamp]]
    batch = draw(st.integers(1, max_batch)) if n_in else 1
    volts = st.floats(-3, 3) if not x_min else st.builds(
        lambda m, s: m * s, st.floats(x_min, 3), st.sampled_from([-1.0, 1.0]))
    spec.x = np.array([[draw(volts) for _ in range(n_in)]
                       for _ in range(batch)]).reshape(batch, n_in)
    fixed = spec.clamped
    pair = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1])
    kinds = ["resistor"] if linear else ["resistor", "ideal", "relu", "shockley"]
    for _ in range(draw(st.integers(0, 2 * n))):
        kind = draw(st.sampled_from(kinds))
        a, b = draw(pair)
        if kind == "resistor":
            spec.resistors.append((a, b, math.exp(draw(logg))))
            continue
        if a in fixed and b in fixed:  # a junction across two clamps: tested elsewhere
            continue
        # Nor a Shockley diode at a node an ideal diode may clamp (forward biased
        # across an ideal-diode clamp and a source, it carries ~1e10 A).
        ideal_nodes = {n for d in spec.diodes if d[2][0] == "ideal" for n in d[:2]} - {0}
        shock_nodes = {n for d in spec.diodes if d[2][0] == "shockley" for n in d[:2]} - {0}
        if {a, b} & (ideal_nodes if kind == "shockley" else shock_nodes if kind == "ideal"
                     else set()):
            continue
        if kind == "ideal":
            model = ("ideal", draw(st.floats(0.05, 1.0)))
        elif kind == "relu":
            model = ("relu", math.exp(draw(logg)), draw(st.floats(0.0, 1.0)))
        else:
            model = ("shockley", math.exp(draw(st.floats(math.log(1e-16), math.log(1e-12)))),
                     draw(st.floats(1.0, 2.0)))
        if kind == "ideal" and not _ideal_feasible(spec, spec.diodes + [(a, b, model)]):
            continue
        spec.diodes.append((a, b, model))
    for _ in range(draw(st.integers(0, 3))):
        a, b = draw(pair)
        spec.isources.append((a, b, draw(st.floats(-1e-2, 1e-2))))
    return spec


def diode_states(spec: Spec, V: np.ndarray, ID: np.ndarray) -> np.ndarray:
    """State of every ideal and ReLU diode per sample: +1 on, -1 off, 0 too close
    to the kink to tell (a finite difference across it is meaningless).

    Tolerances: 1e-9 of the voltage / current scale, far above the solver's
    residuals (~1e-15 relative) and far below any drop change a step of
    1e-6 g causes unless the diode sits at its kink."""
    vscale = max(1.0, float(np.max(np.abs(V))))
    iscale = max(float(np.max(np.abs(ID), initial=0.0)),
                 max(g * np.max(np.abs(V[:, a] - V[:, b])) for a, b, g in spec.resistors))
    out = []
    for k, (a, b, (kind, *p)) in enumerate(spec.diodes):
        dv = V[:, a] - V[:, b]
        if kind == "ideal":
            on = ID[:, k] > 1e-9 * iscale
            off = dv < p[0] - 1e-9 * vscale
        elif kind == "relu":
            on = dv > p[1] + 1e-9 * vscale
            off = dv < p[1] - 1e-9 * vscale
        else:
            continue
        out.append(np.where(on & ~off, 1, np.where(off & ~on, -1, 0)))
    return np.array(out, dtype=int).reshape(-1, V.shape[0])


# --------------------------------------------------------------------------
# losses written here (the test's own; the API gets the same function)
# --------------------------------------------------------------------------


def readout(V, outputs):
    cols = []
    for o in outputs:
        cols.append(V[:, o[0]] - V[:, o[1]] if isinstance(o, tuple) else V[:, o])
    return np.stack(cols, axis=1)


def mse(y, t):
    return 0.5 * np.sum((y - t) ** 2, axis=1), y - t


def cross_entropy(y, labels):
    """-log softmax(y)[label], accurate to ~eps relative even when tiny (log1p)."""
    labels = np.asarray(labels, dtype=int)
    rows = np.arange(len(y))
    top = np.argmax(y, axis=1)
    z = y - y[rows, top][:, None]
    e = np.exp(z)
    rest = np.sum(np.where(np.arange(y.shape[1]) == top[:, None], 0.0, e), axis=1)  # j != argmax
    c = np.log1p(rest) - z[rows, labels]
    p = e / (1.0 + rest)[:, None]
    p[rows, labels] -= 1.0
    return c, p


def log_cosh(y, t):
    """A user loss for ``loss=``: (C per sample, dC/dy per sample).
    log cosh d = log1p(2 sinh²(d/2)): no cancellation near d = 0."""
    d = y - t
    return np.sum(np.log1p(2 * np.sinh(d / 2) ** 2), axis=1), np.tanh(d)


LOSSES = {"mse": mse, "cross-entropy": cross_entropy, "callable": log_cosh}


# Finite differences solve to tighter tolerances than the defaults (rtol 1e-12
# of the largest branch current, vtol 1e-13): with ideal diodes the default
# leaves voltage errors up to ~rtol max|V| (the augmented-Lagrangian iterations
# stop at the tolerance), which a step of 1e-6 amplifies to 1e-6 of the
# gradient. Not every network reaches rtol 1e-15 in floating point, so the
# tightest that converges is used, and the noise estimate follows it.
TOLERANCES = [dict(rtol=1e-15, vtol=1e-16), dict(rtol=1e-14, vtol=1e-15),
              dict(rtol=1e-13, vtol=1e-14)]


def solve_tight(net, spec):
    """(V, diode currents, rtol reached) with the tightest tolerance that converges
    (the default ones last: a ConvergenceError there is ohmflow's)."""
    for tol in TOLERANCES:
        try:
            return (*solve_batched(net, spec, **tol), tol["rtol"])
        except of.ConvergenceError:
            pass
    return (*solve_batched(net, spec), 1e-12)


def batch_loss(net, spec, outputs, targets, lossfn):
    """(mean loss, diode states, rtol reached)."""
    V, ID, rtol = solve_tight(net, spec)
    c = float(np.mean(lossfn(readout(V, outputs), targets)[0]))
    return c, diode_states(spec, V, ID), rtol


def fd_noise(net, spec, outputs, targets, lossfn, rtol, rel_step) -> float:
    """Bound on the error of a central difference of the loss on the scaled
    component p dC/dp (p the parameter), and on the adjoint's own rounding:

    * voltages are exact to 10 max(rtol, 100 eps) max|V| (the solver's
      tolerance; ~1e-12 V measured at the default rtol 1e-12, 1 V networks),
      moving C by that times sum|dC/dy|;
    * C itself is evaluated to ~1e3 eps (|C| + n_outputs) (terms of size ~1);
    * a difference over a relative step divides both by rel_step;
    * the adjoint's dC/dy is exact to ~1e3 eps per output (e.g. softmax minus
      one-hot), times a voltage sensitivity |g dy/dg| <= 2 max|V| (a unit
      injection drives at most a unit current through any branch)."""
    V, _, _ = solve_tight(net, spec)
    vmax = max(float(np.max(np.abs(V))), 1.0)
    c, dcdy = lossfn(readout(V, outputs), targets)
    dv = 10 * max(rtol, 100 * EPS) * vmax
    dc = dv * float(np.mean(np.sum(np.abs(dcdy), axis=1)))
    dc += 1e3 * EPS * (float(np.mean(np.abs(c))) + len(outputs))
    return dc / rel_step + 1e3 * EPS * len(outputs) * 2 * vmax


def finite_differences(net, spec, outputs, targets, lossfn, *, rel_step=1e-6,
                       wrt="conductance", which=None):
    """Central differences of the batch-mean loss, one resistor at a time.

    Returns (fd, ok, noise): ok[e] is False where an ideal / ReLU diode is at
    its kink or changes state between g - h, g and g + h (the loss is not
    differentiable there, or the difference straddles a kink): those
    coordinates are skipped. noise: see fd_noise.

    Step: h = 1e-6 of the parameter: truncation h^2 C'''/6 is ~1e-12
    relative for the rational dependence of a linear network on g (poles at
    -g_others), and measured ~1e-12 with conducting Shockley diodes.
    """
    g0 = net.conductances
    p0 = g0 if wrt == "conductance" else 1.0 / g0
    _, s0, worst = batch_loss(net, spec, outputs, targets, lossfn)
    fd = np.zeros(len(g0))
    ok = np.zeros(len(g0), dtype=bool)
    which = range(len(g0)) if which is None else which
    try:
        for e in which:
            h = rel_step * p0[e]
            vals = []
            states = []
            for sign in (1, -1):
                p = p0.copy()
                p[e] += sign * h
                net.conductances = p if wrt == "conductance" else 1.0 / p
                c, st_, rtol = batch_loss(net, spec, outputs, targets, lossfn)
                worst = max(worst, rtol)
                vals.append(c)
                states.append(st_)
            fd[e] = (vals[0] - vals[1]) / (2 * h)
            ok[e] = (np.all(s0 != 0) and np.array_equal(states[0], s0)
                     and np.array_equal(states[1], s0))
    finally:
        net.conductances = g0
    return fd, ok, fd_noise(net, spec, outputs, targets, lossfn, worst, rel_step)


def assert_close_scaled(est, ref, p, ok, *, rtol, floor, what=""):
    """Compare p * est with p * ref (p the parameter: the sensitivity to a
    relative change, so components of different units are comparable):
    |p (est - ref)| <= rtol |p ref| + floor on the coordinates in ok."""
    a, b = p * est, p * ref
    err = np.abs(a - b)
    bound = rtol * np.abs(b) + floor
    bad = ok & (err > bound)
    assert not np.any(bad), (
        f"{what}: coordinates {np.flatnonzero(bad).tolist()} differ: "
        f"est={a[bad].tolist()} ref={b[bad].tolist()} rel={(err / np.abs(b))[bad].tolist()}")


# --------------------------------------------------------------------------
# exact vs finite differences of the solver
# --------------------------------------------------------------------------


@st.composite
def gradient_cases(draw, loss):
    spec = draw(networks(min_inputs=1))
    nodes = list(range(1, spec.n_nodes))
    n_out = draw(st.integers(2 if loss == "cross-entropy" else 1, 3))
    outputs = []
    for _ in range(n_out):
        if draw(st.booleans()):
            outputs.append(draw(st.sampled_from(spec.free)))
        else:
            p = draw(st.sampled_from(nodes))
            m = draw(st.sampled_from([0] + [k for k in nodes if k != p]))
            outputs.append((p, m))
    batch = spec.x.shape[0]
    if loss == "cross-entropy":
        targets = np.array([draw(st.integers(0, n_out - 1)) for _ in range(batch)])
    else:
        targets = np.array([[draw(st.floats(-2, 2)) for _ in range(n_out)]
                            for _ in range(batch)])
    n_res = len(spec.resistors)
    mask_kind = draw(st.sampled_from(["none", "bool", "index"]))
    if mask_kind == "none":
        trainable = None
    else:
        mask = np.array([draw(st.booleans()) for _ in range(n_res)])
        trainable = mask if mask_kind == "bool" else np.flatnonzero(mask)
    wrt = draw(st.sampled_from(["conductance", "resistance"]))
    return spec, outputs, targets, trainable, wrt


@pytest.mark.parametrize("loss", ["mse", "cross-entropy", "callable"])
@settings(max_examples=200, **SETTINGS)
@given(data=st.data())
def test_exact_gradient_matches_finite_differences(loss, data):
    spec, outputs, targets, trainable, wrt = data.draw(gradient_cases(loss))
    net = build(spec)
    api_loss = log_cosh if loss == "callable" else loss
    kw = dict(outputs=outputs, loss=api_loss, trainable=trainable, wrt=wrt)
    if spec.inputs:
        kw["inputs"] = spec.x
    est = net.gradient(targets, method="exact", **kw)
    assert est.shape == (len(spec.resistors),)
    mask = np.ones(len(spec.resistors), dtype=bool)
    if trainable is not None:
        mask = np.zeros(len(spec.resistors), dtype=bool)
        mask[np.asarray(trainable, dtype=int) if np.asarray(trainable).dtype != bool
             else np.flatnonzero(trainable)] = True
        # untrainable resistors get exactly 0
        assert np.all(est[~mask] == 0.0), est[~mask]
    fd, ok, noise = finite_differences(net, spec, outputs, targets, LOSSES[loss], wrt=wrt,
                                       which=np.flatnonzero(mask))
    p = spec.g if wrt == "conductance" else 1.0 / spec.g
    # rtol 1e-6: the finite differences are good to ~1e-8 (see finite_differences);
    # floor: their noise (see fd_noise) plus 1e-9 of the largest scaled component.
    floor = noise + 1e-9 * np.max(np.abs(p * fd), initial=0.0) + 1e-300
    assert_close_scaled(est, fd, p, ok & mask, rtol=1e-6, floor=floor, what=f"{loss}/{wrt}")


@settings(max_examples=100, **SETTINGS)
@given(networks(max_batch=1))
def test_exact_gradient_dict_targets(spec):
    """The one-sample form ``targets={node: t}`` (squared error)."""
    net = build(spec)
    outputs = spec.free[:2]
    targets = {node: 0.1 * (i + 1) for i, node in enumerate(outputs)}
    kw = {"inputs": spec.x[0]} if spec.inputs else {}
    est = net.gradient(targets, **kw)
    t = np.array([list(targets.values())])
    fd, ok, noise = finite_differences(net, spec, outputs, t, mse)
    floor = noise + 1e-9 * np.max(np.abs(spec.g * fd)) + 1e-300
    assert_close_scaled(est, fd, spec.g, ok, rtol=1e-6, floor=floor)


def test_exact_gradient_checks_some_coordinates():
    """Guard for the skipping above: on a fixed network with a conducting ReLU
    diode, an ideal diode on in one sample and off in the other, a conducting
    Shockley diode and an off ReLU diode, no coordinate is skipped."""
    spec = Spec(5, resistors=[(1, 2, 1e-3), (2, 0, 2e-3), (2, 3, 1e-3), (3, 0, 1e-3),
                              (3, 4, 5e-4), (4, 0, 3e-3)],
                diodes=[(2, 3, ("relu", 1e-3, 0.05)), (3, 0, ("shockley", 1e-9, 1.0)),
                        (2, 0, ("ideal", 0.5)), (4, 3, ("relu", 2e-3, 0.0))],
                inputs=[1], isources=[(0, 4, 1e-4)], x=np.array([[1.2], [3.0]]))
    net = build(spec)
    V, ID = solve_batched(net, spec)
    # rows: ReLU D0, ideal D2, ReLU D3; columns: samples
    assert diode_states(spec, V, ID).tolist() == [[1, 1], [-1, 1], [-1, -1]]
    assert np.all(ID[:, 1] > 5e-7)  # the Shockley diode conducts
    outputs = [3, (2, 4)]
    t = np.array([[0.3, 0.1], [0.2, 0.4]])
    fd, ok, noise = finite_differences(net, spec, outputs, t, mse)
    assert ok.all()
    est = net.gradient(t, outputs=outputs, inputs=spec.x)
    # same tolerance as above: finite differences good to ~1e-8 relative
    np.testing.assert_allclose(spec.g * est, spec.g * fd, rtol=1e-6, atol=noise)


# --------------------------------------------------------------------------
# exact vs ngspice finite differences (Shockley diodes)
# --------------------------------------------------------------------------


def _with_resistance(netlist: str, name: str, ohms: float) -> str:
    pat = re.compile(rf"^({re.escape(name)}\s+\S+\s+\S+\s+)\S+$", re.MULTILINE)
    text, count = pat.subn(lambda m: f"{m.group(1)}{ohms:.17e}", netlist)
    assert count == 1
    return text


@needs_ngspice
@pytest.mark.parametrize("seed", [9, 12, 17, 20])  # seeds with >= 2 conducting diodes
def test_exact_gradient_matches_ngspice_finite_differences(seed):
    gen = random_netlist(seed, 8, diode_fraction=0.3)
    base = run_ngspice(gen.netlist)
    _, i_diodes = gen.branch_currents(base.voltages)  # ngspice's diode law, in the reference
    assert np.sum(i_diodes > 1e-6) >= 2  # the Shockley nonlinearity is in play
    net = of.read_spice(gen.netlist)
    # loss on three free nodes; targets 0.3 V off their operating point
    fixed = {node for _, node, _ in gen.vsources}
    outs = [n for n in gen.nodes if n not in fixed][:3]
    targets = {n: base.v(n) + 0.3 * (-1) ** k for k, n in enumerate(outs)}

    def loss(res) -> float:
        return 0.5 * sum((res.v(n) - t) ** 2 for n, t in targets.items())

    est = net.gradient(targets, wrt="resistance")
    names = [n.lower() for n in net.resistor_names]
    fd = np.zeros(len(gen.resistors))
    R = np.zeros(len(gen.resistors))
    for name, _, _, ohms in gen.resistors:
        k = names.index(name.lower())
        # h = 1e-4 R: ngspice converges to ~1e-14 relative here, so rounding is
        # ~1e-14 / 1e-4 = 1e-10 of the scale; truncation ~h^2 (V/nV_T)^2 < 1e-5.
        h = 1e-4 * ohms
        up = loss(run_ngspice(_with_resistance(gen.netlist, name, ohms + h)))
        dn = loss(run_ngspice(_with_resistance(gen.netlist, name, ohms - h)))
        fd[k], R[k] = (up - dn) / (2 * h), ohms
    s_est, s_fd = R * est, R * fd  # sensitivities to a relative change
    big = np.abs(s_fd) >= 1e-2 * np.max(np.abs(s_fd))
    assert big.sum() >= 3
    # 1e-4 on the largest components (they carry the gradient); the small ones
    # within 1e-4 of the largest (model differences: ngspice's reverse-bias
    # cubic tail vs Shockley differ by < I_s ~ 1e-12 A against mA currents).
    np.testing.assert_allclose(s_est[big], s_fd[big], rtol=1e-4, atol=0)
    np.testing.assert_allclose(s_est, s_fd, rtol=0, atol=1e-4 * np.max(np.abs(s_fd)))


# --------------------------------------------------------------------------
# linear networks: the closed form from the dense Laplacian
# --------------------------------------------------------------------------


def laplacian(spec: Spec) -> np.ndarray:
    """Full (n_nodes x n_nodes) weighted Laplacian of the resistors."""
    L = np.zeros((spec.n_nodes, spec.n_nodes))
    for a, b, g in spec.resistors:
        L[a, a] += g
        L[b, b] += g
        L[a, b] -= g
        L[b, a] -= g
    return L


def linear_solve(spec: Spec) -> np.ndarray:
    """Node voltages (batch, n_nodes) of a linear network: K v_f = inj - K_fc v_c."""
    L = laplacian(spec)
    f = spec.free
    c = sorted(spec.clamped)
    inj = np.zeros(spec.n_nodes)
    for a, b, amps in spec.isources:
        inj[a] -= amps
        inj[b] += amps
    V = np.zeros((spec.x.shape[0], spec.n_nodes))
    for s, row in enumerate(spec.x):
        vals = spec.clamp_values(row)
        vc = np.array([vals[k] for k in c])
        V[s, c] = vc
        V[s, f] = np.linalg.solve(L[np.ix_(f, f)], inj[f] - L[np.ix_(f, c)] @ vc)
    return V


def adjoint_closed_form(spec: Spec, V: np.ndarray, dCdv: np.ndarray) -> np.ndarray:
    """dC/dg_e = -mean_s (Δ_e λ)(Δ_e v), λ_f = K⁻¹ (∂C/∂v)_f, λ = 0 on clamps."""
    L = laplacian(spec)
    f = spec.free
    lam = np.zeros_like(V)
    lam[:, f] = np.linalg.solve(L[np.ix_(f, f)], dCdv[:, f].T).T
    a = np.array([r[0] for r in spec.resistors])
    b = np.array([r[1] for r in spec.resistors])
    return -np.mean((lam[:, a] - lam[:, b]) * (V[:, a] - V[:, b]), axis=0)


def output_cotangent(n_nodes, outputs, dCdy):
    """∂C/∂v over all nodes from ∂C/∂y for outputs y = v_p - v_m (or v_p)."""
    g = np.zeros((dCdy.shape[0], n_nodes))
    for j, o in enumerate(outputs):
        p, m = o if isinstance(o, tuple) else (o, 0)
        g[:, p] += dCdy[:, j]
        g[:, m] -= dCdy[:, j]
    g[:, 0] = 0.0
    return g


@settings(max_examples=150, **SETTINGS)
@given(networks(linear=True, max_nodes=10, max_batch=4), st.data())
def test_exact_gradient_linear_closed_form(spec, data):
    nodes = list(range(1, spec.n_nodes))
    outputs = [data.draw(st.sampled_from(spec.free))]
    if data.draw(st.booleans()):
        p = data.draw(st.sampled_from(nodes))
        outputs.append((p, data.draw(st.sampled_from([k for k in range(spec.n_nodes) if k != p]))))
    batch = spec.x.shape[0]
    t = np.array([[data.draw(st.floats(-2, 2)) for _ in outputs] for _ in range(batch)])
    V = linear_solve(spec)
    y = readout(V, outputs)
    ref = adjoint_closed_form(spec, V, output_cotangent(spec.n_nodes, outputs, y - t))
    net = build(spec)
    est = net.gradient(t, outputs=outputs, **({"inputs": spec.x} if spec.inputs else {}))
    # Both sides are backward-stable solves with K: relative error ~ cond(K) eps
    # on each component's scale; cond(K) <= ~1e5 here (conductances spanning 3
    # decades, <= 10 nodes), so 1e-8 of the largest scaled component.
    # The absolute floor is on the scale of the products: max|Δv| max|g Δλ|.
    K = laplacian(spec)[np.ix_(spec.free, spec.free)]
    assert np.linalg.cond(K) * EPS < 1e-9
    s_ref, s_est = spec.g * ref, spec.g * est
    dv_max = np.max(np.abs(V), initial=0.0) * 2
    dl_max = np.max(np.abs(np.linalg.solve(K, output_cotangent(
        spec.n_nodes, outputs, y - t)[:, spec.free].T)), initial=0.0) * 2 * np.max(spec.g)
    np.testing.assert_allclose(s_est, s_ref, rtol=1e-8,
                               atol=1e-8 * max(np.max(np.abs(s_ref)), dv_max * dl_max) + 1e-300)


def test_exact_gradient_linear_closed_form_by_hand():
    """A divider a—b—ground with a load b—c—ground: v_b and λ by hand.

    Input 1 V at a; g1 (a-b), g2 (b-0), g3 (b-c), g4 (c-0); output c, target t.
    Series g3,g4: g34 = g3 g4/(g3+g4); v_b = g1/(g1+g2+g34); v_c = v_b g3/(g3+g4).
    λ solves K λ = e_c (v_c - t): by reciprocity λ_b = (v_c - t) r_bc, λ_c = (v_c - t) r_cc,
    r the free-node resistance matrix K⁻¹."""
    g1, g2, g3, g4, t = 1e-3, 2e-3, 5e-4, 1.5e-3, 0.05
    K = np.array([[g1 + g2 + g3, -g3], [-g3, g3 + g4]])
    r = np.linalg.inv(K)
    g34 = g3 * g4 / (g3 + g4)
    vb = g1 / (g1 + g2 + g34)
    vc = vb * g3 / (g3 + g4)
    lb, lc = (vc - t) * r[0, 1], (vc - t) * r[1, 1]
    ref = -np.array([(0 - lb) * (1 - vb), lb * vb, (lb - lc) * (vb - vc), lc * vc])
    net = of.Network()
    a, b, c = net.add_node("a"), net.add_node("b"), net.add_node("c")
    net.add_input(a)
    for (p, q), g in zip([(a, b), (b, 0), (b, c), (c, 0)], [g1, g2, g3, g4]):
        net.add_resistor(p, q, g)
    est = net.gradient({"c": t}, inputs=[1.0])
    np.testing.assert_allclose(est, ref, rtol=1e-12)


# --------------------------------------------------------------------------
# EP converges at rate β, centered EP at rate β²
# --------------------------------------------------------------------------


def nonlinear_net():
    """Two inputs, three hidden nodes, one output. Two Shockley diodes conduct
    ~0.1 mA and ~30 uA (differential conductances ~4e-3 and ~8e-4 S, comparable
    to the ~1e-4 S resistors: strongly curved, so centered EP has a visible β²
    term); a ReLU diode conducts and another is off, both > 0.25 V from their
    kinks (checked in the test)."""
    net = of.Network()
    x1, x2, h1, h2, h3, o = (net.add_node(n) for n in ("x1", "x2", "h1", "h2", "h3", "o"))
    net.add_input(x1)
    net.add_input(x2)
    for p, q, g in [(x1, h1, 2e-4), (x2, h1, 1e-4), (x1, h2, 1.5e-4), (x2, h2, 2.5e-4),
                    (x1, h3, 1e-4), (h1, o, 1e-4), (h2, o, 2e-4), (h3, o, 1.2e-4),
                    (h1, 0, 5e-5), (h2, 0, 8e-5), (o, 0, 1e-4), (h3, 0, 6e-5)]:
        net.add_resistor(p, q, g)
    net.add_diode(o, 0, of.ShockleyDiode(i_s=1e-14, n=1.0))
    net.add_diode(h2, 0, of.ShockleyDiode(i_s=1e-15, n=1.5))
    net.add_diode(h3, h1, of.ReluDiode(g_on=1e-4, v_on=0.1))  # off
    net.add_diode(h1, o, of.ReluDiode(g_on=1e-4, v_on=0.2))  # on
    return net, np.array([[2.0, 1.0]]), {"o": 0.2}


def _slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# β sweeps (A per volt of ∂C/∂v; the conductances are 5e-5..2.5e-4 S):
# EP: β/g ~ 1e-4..1e-2; centered: β/g ~ 3e-3..1e-1, large enough that the
# O(β²) term (relative error >= ~1e-7) dominates the solver's tolerance
# (rtol 1e-12 on the nudged solve: relative error ~1e-12 g/β <= 1e-8; below
# β ~ 3e-8 the measured errors of centered EP are that noise, ~1e-8).
SWEEPS = {"ep": (1, np.logspace(-8, -6, 9)), "centered-ep": (2, np.logspace(-6.5, -5, 7))}


@pytest.mark.parametrize("method", list(SWEEPS))
def test_ep_converges_at_its_order(method):
    order, betas = SWEEPS[method]
    net, x, targets = nonlinear_net()
    ref = net.gradient(targets, inputs=x)  # pinned against finite differences above
    v = np.atleast_2d(net.solve(x).voltages)[0]
    nd = dict(zip(net.node_names, range(net.n_nodes)))
    dio = np.atleast_2d(net.solve(x).diode_currents)[0]
    assert dio[0] > 1e-5 and dio[1] > 1e-5  # both Shockley diodes conduct
    margins = [v[nd["h1"]] - v[nd["h3"]] + 0.1, v[nd["h1"]] - v[nd["o"]] - 0.2]
    assert min(margins) > 0.25, margins  # ReLU D3 off, D4 on, far from their kinks
    # The largest nudge moves no node by more than a tenth of those margins, so
    # the ReLU states are those of the free phase in every nudged phase.
    dc = v[nd["o"]] - targets["o"]
    for b in (betas[-1], -betas[-1]):
        moved = np.atleast_2d(net.solve(x, injections=([nd["o"]], [[-b * dc]])).voltages)[0]
        assert 1e-5 < np.max(np.abs(moved - v)) < 0.025
    errs = np.array([np.linalg.norm(net.gradient(targets, method=method, inputs=x, beta=b) - ref)
                     for b in betas]) / np.linalg.norm(ref)
    slope = _slope(betas, errs)
    print(f"{method}: relative errors {errs[0]:.3e} .. {errs[-1]:.3e}, slope {slope:.5f}")
    # The fit sees the truncation series c_p β^p (1 + O(β)): measured local
    # slopes drift by < 0.01 over each sweep (1.0000 -> 1.003, 2.0000 -> 2.003),
    # and the noise floor (relative 1e-12 g_max / β) is >= 100x below every
    # error (next assertion), so 0.05 bounds the deviation with margin; a method
    # of the other order would be off by 1.
    assert np.all(errs > 100 * 1e-12 * np.max(net.conductances) / betas)
    assert abs(slope - order) < 0.05, (slope, errs)
    # and the estimate converges: the smallest β is within 1e-3 (EP) / 1e-5
    # (centered) of the gradient, consistent with the fitted constants
    assert errs[0] < (1e-3 if order == 1 else 1e-5)


# --------------------------------------------------------------------------
# coupled learning converges to the Schur-weighted gradient at rate η
# --------------------------------------------------------------------------


def schur_onto(spec: Spec, nodes: list) -> np.ndarray:
    """Conductance matrix seen at ``nodes`` (free), every clamp grounded: the
    Schur complement of the free-node Laplacian onto them."""
    L = laplacian(spec)
    f = spec.free
    rest = [k for k in f if k not in nodes]
    A = L[np.ix_(nodes, nodes)]
    if not rest:
        return A
    B = L[np.ix_(nodes, rest)]
    return A - B @ np.linalg.solve(L[np.ix_(rest, rest)], B.T)


@pytest.mark.parametrize("n_out", [1, 2])
@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_coupled_learning_converges_to_schur_weighted_gradient(n_out, data):
    spec = data.draw(networks(linear=True, max_nodes=9, max_batch=3, min_free=n_out + 1,
                              min_inputs=1, x_min=0.1))
    batch = spec.x.shape[0]
    V = linear_solve(spec)
    live = [k for k in spec.free if np.max(np.abs(V[:, k])) > 1e-3]  # reached by a source
    assume(len(live) >= n_out)
    outputs = data.draw(st.permutations(live))[:n_out]
    y = readout(V, outputs)
    t = y + np.array([[data.draw(st.floats(0.1, 1.0)) * data.draw(st.sampled_from([-1, 1]))
                       for _ in outputs] for _ in range(batch)])
    S = schur_onto(spec, outputs)
    # Gradient of ½ (y - t)ᵀ S (y - t) with S held fixed: the adjoint closed form
    # with ∂C/∂y = S (y - t). One output: S · dC/dg of the squared error.
    ref = adjoint_closed_form(spec, V, output_cotangent(spec.n_nodes, outputs, (y - t) @ S))
    if n_out == 1:
        plain = adjoint_closed_form(spec, V, output_cotangent(spec.n_nodes, outputs, y - t))
        np.testing.assert_allclose(ref, S[0, 0] * plain, rtol=1e-10,
                                   atol=1e-12 * np.max(np.abs(plain)))
    assume(np.max(np.abs(spec.g * ref)) > 1e-6)  # no sources: v = 0, nothing to learn
    net = build(spec)
    kw = {"inputs": spec.x} if spec.inputs else {}

    def coupled(eta):
        return net.gradient(t, method="coupled", outputs=outputs, eta=eta, **kw)

    def rel(est):
        return np.linalg.norm(spec.g * (est - ref)) / np.linalg.norm(spec.g * ref)

    etas = np.logspace(-5, -2, 7)
    errs = np.array([rel(coupled(e)) for e in etas])
    # A linear network's clamped state is affine in η, so the estimate is
    # ref + η c + rounding (relative ~eps V²/η, < 1e-10 here): the fitted slope
    # is 1 (measured 1.0000 to 4 digits; 0.02 leaves room for the rounding at
    # the smallest η), and the linear extrapolation 2 E(η) - E(2η) cancels the
    # η term: it must hit the Schur-weighted gradient to rounding (1e-8).
    assert abs(_slope(etas, errs) - 1) < 0.02, errs
    assert rel(2 * coupled(1e-3) - coupled(2e-3)) < 1e-8
    assert errs[0] < 1e-2  # and the plain estimate converges: |c| < 1e3 relative


def test_coupled_learning_by_hand():
    """Input 1 V —g1— o —g2— ground, output o, target t: v = g1/(g1+g2),
    S = g1 + g2 (both conductances seen from o with the input grounded), and
    C = ½ (v - t)²: dv/dg1 = g2/(g1+g2)², dv/dg2 = -g1/(g1+g2)²."""
    g1, g2, t = 2e-3, 1e-3, 0.2
    v = g1 / (g1 + g2)
    grad = (v - t) * np.array([g2, -g1]) / (g1 + g2) ** 2
    net = of.Network()
    x, o = net.add_node("x"), net.add_node("o")
    net.add_input(x)
    net.add_resistor(x, o, g1)
    net.add_resistor(o, 0, g2)
    for eta in (1e-4, 1e-6):
        est = net.gradient({"o": t}, method="coupled", inputs=[1.0], eta=eta)
        # error η (g1+g2) ((Δu)² terms)/2 ~ η (v - t)² S ~ 1e-4 relative at η = 1e-4
        np.testing.assert_allclose(est, (g1 + g2) * grad, rtol=10 * eta)


# --------------------------------------------------------------------------
# minimal reproductions of failures found by the tests above
# --------------------------------------------------------------------------


def test_exact_gradient_node_clamped_by_conducting_ideal_diode():
    """n2 is held at 1 V by a conducting ideal diode (a current source pushes
    7.8 mA into 6.7 mS); n1 is an unrelated node with 50 mS to ground. The
    loss on n2 cannot change with any conductance: the gradient is 0.

    Found by test_exact_gradient_matches_finite_differences: the solve raised
    ConvergenceError (KCL residual ~1e-14 A stalled just above rtol x largest
    branch current = 7.8e-15 A; without n1's 50 mS resistor it converged)."""
    net = of.Network()
    n1, n2 = net.add_node("n1"), net.add_node("n2")
    net.add_resistor(n1, 0, 0.05)
    net.add_resistor(n2, 0, 0.006737946999085467)
    net.add_diode(n2, 0, of.IdealDiode(v_on=1.0))
    net.add_current_source(0, n2, 0.0078125)
    est = net.gradient({"n2": 0.2})
    np.testing.assert_allclose(est, 0.0, atol=1e-12)


def test_exact_gradient_both_ends_pinned_by_ideal_diodes():
    """a = 1 V; an ideal diode a→b (v_on 0.25) holds b at 0.75 V and an ideal
    diode c→0 (v_on 0.5) holds c at 0.5 V; resistors b—0 and b—c. Both output
    voltages are pinned, so dC/dg = 0 for every resistor.

    Found by test_exact_gradient_matches_finite_differences: the adjoint raises
    ConvergenceError('did not converge after 100 iterations (residual 0.000e0):
    sample 0: adjoint constraints of conducting ideal diodes')."""
    net = of.Network()
    a, b, c = net.add_node("a"), net.add_node("b"), net.add_node("c")
    net.add_voltage_source(a, 1.0)
    net.add_resistor(b, 0, 1e-3)
    net.add_resistor(b, c, 1e-3)
    net.add_diode(a, b, of.IdealDiode(v_on=0.25))
    net.add_diode(c, 0, of.IdealDiode(v_on=0.5))
    np.testing.assert_allclose(net.solve().voltages, [0.0, 1.0, 0.75, 0.5], atol=1e-12)
    for out in ("b", "c"):
        np.testing.assert_allclose(net.gradient({out: 0.0}), 0.0, atol=1e-12)


def test_exact_gradient_two_conducting_ideal_diodes_by_hand():
    """c = 2.4 V, d = x = -0.65 V (input); a—c 1e-4 S, c—f 1.3e-2 S, b—d 5e-4 S;
    ideal diodes a→d (v_on 0.2) and f→b (v_on 0.33), both conducting (c pulls
    a and f up). Then v_a = x + 0.2 and, KCL on the supernode {f, b},
    v_b = (g_cf (V - 0.33) + g_bd x) / (g_cf + g_bd). Loss ½ (v_b - t)².

    (tests/reference/qp.py's solve_ideal_diode_qp gives the same operating
    point: v_a = -0.45, v_b = 1.969259 V, diode currents 2.85e-4, 1.31e-3 A.)

    Found by test_exact_gradient_matches_finite_differences (a larger network,
    shrunk): the solve raises ConvergenceError (KCL residual stalls at 8.4e-13 A
    against a tolerance 1e-12 x 1.31e-3 A; with rtol 1e-9 or 1e-8 the
    augmented-Lagrangian multipliers stall instead)."""
    g_ac, g_cf, g_bd, V, x, t = 1e-4, 1.3e-2, 5e-4, 2.4, -0.65, 0.5
    net = of.Network()
    a, b, c, d, f = (net.add_node(n) for n in "abcdf")
    net.add_resistor(a, c, g_ac)
    net.add_resistor(c, f, g_cf)
    net.add_resistor(b, d, g_bd)
    net.add_diode(a, d, of.IdealDiode(v_on=0.2))
    net.add_diode(f, b, of.IdealDiode(v_on=0.33))
    net.add_voltage_source(c, V)
    net.add_input(d)
    s = g_cf + g_bd
    vb = (g_cf * (V - 0.33) + g_bd * x) / s
    k = (V - 0.33 - x) / s**2
    ref = (vb - t) * np.array([0.0, g_bd * k, -g_cf * k])
    est = net.gradient({"b": t}, inputs=[x])
    np.testing.assert_allclose(est, ref, rtol=1e-9, atol=1e-12 * np.max(np.abs(ref)))


def test_exact_gradient_two_nodes_joined_by_conducting_ideal_diode():
    """n1 —g1— ground, n3 —g3— ground, a current source pushing I into n3 and
    an ideal diode n3→n1 (v_on 1 V) that conducts: v3 = v1 + 1 and KCL on
    {n1, n3} gives v1 = (I - g3) / (g1 + g3). Loss ½ (v1 - t)²:
    dv1/dg1 = -v1 / (g1 + g3), dv1/dg3 = -(1 + v1) / (g1 + g3).

    Found by test_exact_gradient_matches_finite_differences (shrunk): the solve
    raises ConvergenceError (KCL residual stalls at 1.8e-13 A against a
    tolerance 1e-12 x 7.8e-3 A); g1 = 1e-3, g3 = 2e-4, I = 8 mA converge."""
    g1, g3, current, t = 6.8e-4, 2.3e-4, 0.0078125, 1.0
    net = of.Network()
    n1, n3 = net.add_node("n1"), net.add_node("n3")
    net.add_resistor(n1, 0, g1)
    net.add_resistor(n3, 0, g3)
    net.add_diode(n3, n1, of.IdealDiode(v_on=1.0))
    net.add_current_source(0, n3, current)
    v1 = (current - g3) / (g1 + g3)
    ref = (v1 - t) * np.array([-v1, -(1 + v1)]) / (g1 + g3)
    np.testing.assert_allclose(net.gradient({"n1": t}), ref, rtol=1e-9)
