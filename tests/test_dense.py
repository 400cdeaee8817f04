"""The dense fast path of deep resistive networks (ohmflow._dense, rust/core/src/dense.rs)
against the general sparse path: the direct solver's equilibrium and
ohmflow.learn.gradient's estimates, on random DRNs of every diode kind."""

import numpy as np
import ohmflow as of
import pytest
from ohmflow import learn
from ohmflow._dense import DenseDRN

CASES = [
    dict(),
    dict(outputs="differential"),
    dict(diode="shockley"),
    dict(diode="relu", double_diode=True, clip=(-0.2, 0.4)),
    dict(double_diode=True, clip=(0.0, 0.3)),
    dict(bias_voltage=0.0),
    # amplifiers: ideal transformers in the network (solved by the MNA path)
    dict(layer_gain=2.0, outputs="differential"),
    dict(layer_gain=1.7, diode="shockley"),
    # signed hidden-to-hidden weights: an inverting transformer per hidden node
    dict(signed_hidden=True, outputs="differential"),
    dict(signed_hidden=True, layer_gain=1.5, diode="relu"),
]
SIZES = [(16, 12, 4), (16, 12, 8, 4), (10, 9, 7, 6, 3)]


def _model(sizes, kw, seed=1):
    return of.models.DeepResistiveNetwork(sizes, seed=seed, **kw)


@pytest.mark.parametrize("kw", CASES)
@pytest.mark.parametrize("sizes", SIZES)
def test_equilibrium_matches_direct_solver(sizes, kw):
    m = _model(sizes, kw)
    rng = np.random.default_rng(3)
    xin = m.input_voltages(rng.uniform(0, 1, (5, sizes[0] // 2)))
    d = DenseDRN(m)
    v = d.node_voltages(xin, d.solve(xin))
    ref = m.network.solve(xin, method="direct").voltages
    scale = np.abs(ref).max()
    assert np.abs(v - ref).max() <= 1e-9 * scale
    # Kirchhoff's current law at every hidden and output node of the dense answer,
    # summed here from the resistor currents and the ideal-transformer laws.
    net = m.network
    a, b = net.resistor_nodes
    cur = (v[:, a] - v[:, b]) * net.conductances
    leave = np.zeros_like(v)
    np.add.at(leave, (slice(None), a), cur)
    np.add.at(leave, (slice(None), b), -cur)
    for li, gain in enumerate(m.gains[1:], start=1):
        # each primary carries its ratio × its secondary's outgoing current
        n = m.layers[li].size
        sides = [(gain, m.secondaries[li][:n])]
        if m.signed[li]:
            sides.append((-gain, m.secondaries[li][n:]))
        for ratio, sec in sides:
            if not np.array_equal(sec, m.layers[li]):
                leave[:, m.layers[li]] += ratio * leave[:, sec]
    out = m.layers[-1]
    assert np.abs(leave[:, out]).max() <= 1e-9 * np.abs(cur).max()
    if m.diode_model.__class__.__name__ == "IdealDiode":
        hidden = np.concatenate(m.layers[1:-1])
        # hidden nodes: no net current unless clamped by their diode, which then
        # conducts (anode at the clip source) into the node: what leaves through the
        # resistors is the diode's current, >= 0
        # (and with double diodes, at the upper clip the current leaves: <= 0)
        lv = leave[:, hidden]
        tol = 1e-9 * np.abs(cur).max()
        at_lo = np.isclose(v[:, hidden], m.clip[0], atol=1e-12)
        at_hi = m.double_diode & np.isclose(v[:, hidden], m.clip[1], atol=1e-12)
        assert np.abs(np.where(at_lo | at_hi, 0.0, lv)).max() <= tol
        assert np.all(np.where(at_lo, lv, 0.0) >= -tol)
        assert np.all(np.where(at_hi, lv, 0.0) <= tol)


@pytest.mark.parametrize("kw", CASES)
@pytest.mark.parametrize("rule", ["exact", "ep", "centered-ep"])
def test_gradients_match_general_path(rule, kw):
    sizes = (16, 12, 8, 4)
    m = _model(sizes, kw, seed=2)
    rng = np.random.default_rng(4)
    xin = m.input_voltages(rng.uniform(0, 1, (6, 8)))
    t = rng.uniform(0, 1, (6, m.n_classes))
    beta = m.g_ref
    d = DenseDRN(m, tol=1e-14)
    est, c, vout = d.gradient(xin, t, rule, learn.SquaredError(), beta)
    ref, c_ref = learn.gradient(m.network, t, method=rule, outputs=m.output_nodes,
                                inputs=xin, beta=beta, return_loss=True, solver="direct")
    # Both compute the same estimate from two independent solvers. The exact rule
    # agrees to rounding; EP divides differences of two equilibria by beta, so each
    # solver's own error (~1e-12 of the 10 V scale, direct solver) reaches the
    # estimate amplified by ~V/beta: 1e-7 of the gradient scale is ~30x that bound.
    tol = 1e-10 if rule == "exact" else 1e-7
    assert np.abs(est - ref).max() <= tol * np.abs(ref).max()
    assert abs(c - c_ref) <= 1e-9 * abs(c_ref)
    assert np.allclose(vout, m.output_voltages(
        m.network.solve(xin, method="direct").voltages), rtol=0, atol=1e-9)


def test_exact_gradient_matches_finite_differences():
    m = _model((12, 10, 6, 4), dict(diode="shockley"), seed=5)
    rng = np.random.default_rng(6)
    xin = m.input_voltages(rng.uniform(0, 1, (3, 6)))
    t = rng.uniform(0, 1, (3, 4))
    d = DenseDRN(m)
    est, _, _ = d.gradient(xin, t, "exact", learn.SquaredError(), 1.0)
    g0 = m.network.conductances
    h = 1e-6 * m.g_ref
    for k in rng.choice(g0.size, 8, replace=False):
        c = []
        for s in (1, -1):
            g = g0.copy()
            g[k] += s * h
            m.network.conductances = g
            d.sync()
            c.append(d.gradient(xin, t, "exact", learn.SquaredError(), 1.0)[1])
        m.network.conductances = g0
        d.sync()
        fd = (c[0] - c[1]) / (2 * h)
        assert abs(fd - est[k]) <= 1e-5 * np.abs(est).max() + 1e-7 * abs(fd)


def test_fixed_sweeps_stop_early_and_tolerance_converges():
    m = _model((16, 12, 8, 4), {}, seed=7)
    xin = m.input_voltages(np.random.default_rng(8).uniform(0, 1, (4, 8)))
    ref = m.network.solve(xin, method="direct").voltages
    one = DenseDRN(m, sweeps=1)
    conv = DenseDRN(m)
    err1 = np.abs(one.node_voltages(xin, one.solve(xin)) - ref).max()
    errc = np.abs(conv.node_voltages(xin, conv.solve(xin)) - ref).max()
    assert errc < 1e-9 * np.abs(ref).max() < err1


def test_bad_builder_options_are_typed_errors():
    for gain in ([1.0, 2.0, 3.0], 0.0, np.nan):
        with pytest.raises(of.InvalidNetworkError):
            _model((16, 12, 8, 4), dict(layer_gain=gain))


def test_bad_input_is_a_typed_error():
    m = _model((16, 12, 4), {})
    d = DenseDRN(m)
    with pytest.raises(of.InvalidNetworkError):
        d.solve(np.zeros((2, 15)))
    with pytest.raises(of.InvalidNetworkError):
        d.solve(np.full((2, 16), np.nan))
    g = m.network.conductances
    w = [np.ascontiguousarray(g[idx]) for idx in m.weights]
    w[0][0, 0] = -1.0
    with pytest.raises(of.InvalidNetworkError):
        d._core.set_conductances(w, [g[b[0]] for b in m.biases], [g[b[1]] for b in m.biases])
    # the failed update kept the previous conductances
    assert np.allclose(d.node_voltages(np.zeros((1, 16)), d.solve(np.zeros((1, 16)))),
                       m.network.solve(np.zeros((1, 16)), method="direct").voltages)
    m.network.add_resistor(int(m.layers[1][0]), int(m.layers[1][1]), 1e-3)
    with pytest.raises(of.InvalidNetworkError):
        DenseDRN(m)


def test_a_refused_sgd_step_changes_nothing():
    """A step the core refuses (here a non-finite rate) is a typed error that leaves
    the core's conductances and node sums as they were: the next solve and the next
    valid step give what a fresh core gives."""
    m = of.models.build("drn-digits-s", seed=4)
    data = of.datasets.load("digits").subset(16, 4)
    xin, t = m.input_voltages(data.X_train), np.eye(10)[data.y_train]
    def loss(v, y):  # squared error: per-sample cost and its gradient
        return 0.5 * ((v - y) ** 2).sum(1), v - y

    lo, hi = m.g_min * m.g_ref, m.g_max * m.g_ref
    d, fresh = DenseDRN(m), DenseDRN(m)
    with pytest.raises(of.InvalidNetworkError, match="finite"):
        d.sgd_fields(xin, t, "ep", loss, 0.1 * m.g_ref, [np.nan, 1.0], lo, hi)
    assert np.array_equal(d.solve(xin)[0], fresh.solve(xin)[0])
    for core in (d, fresh):
        core.sgd_fields(xin, t, "ep", loss, 0.1 * m.g_ref, [1e-3, 1e-3], lo, hi)
    for a, b in zip(d._core.conductances()[0], fresh._core.conductances()[0]):
        assert np.array_equal(a, b)
    # and the step did move the conductances (by far more than rounding)
    g0 = np.ascontiguousarray(m.network.conductances[m.weights[0]])
    assert np.abs(d._core.conductances()[0][0] - g0).max() > 1e-6 * m.g_ref


@pytest.mark.parametrize("rule", ["ep", "centered-ep", "exact"])
def test_training_steps_match_the_general_path(rule):
    """The trainer's dense path and its general path (direct solver) take the same
    steps: after a few minibatches the conductances agree."""
    data = of.datasets.load("digits").subset(48, 10)
    runs = []
    for solver in ("dense", "direct"):
        m = of.models.build("drn-digits-s", seed=3)
        tr = of.train.Trainer(m, batch_size=8, epochs=1, rule=rule, solver=solver,
                              beta=1.0, eval_train=False)
        tr.fit(data, progress=False)
        runs.append(m.network.conductances)
    # EP's estimates carry each solver's error amplified by V/beta (see above), ~1e-9
    # g_ref per step here; the steps themselves move conductances by >= 1e-2 g_ref.
    g_ref = of.models.build("drn-digits-s").g_ref
    init = of.models.build("drn-digits-s", seed=3).network.conductances
    assert np.abs(runs[0] - init).max() >= 1e-2 * g_ref
    assert np.abs(runs[0] - runs[1]).max() <= 1e-8 * g_ref
