"""Monotone operator equilibrium networks and their circuits (ohmflow.mon).

References, independent of the code under test:

* the fixed point by brute force: for n ≤ 7 every active set S is tried, z_S
  solved from (I − W)_SS z_S = c_S with NumPy, and the one satisfying z ≥ 0,
  (I − W) z − c ≥ 0 kept (the LCP of the module docstring has exactly one);
* gradients by central finite differences of that fixed point;
* circuits: the circuit's equilibrium against the software MON solver, and
  from_network's (W, U, b) against the circuit it came from.
"""

from __future__ import annotations

import itertools

import numpy as np
import ohmflow as of
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ohmflow import mon

SETTINGS = dict(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def brute_force(W, U, b, X):
    """Fixed points by enumerating active sets (small n only)."""
    n = W.shape[0]
    M = np.eye(n) - W
    out = np.empty((X.shape[0], n))
    for s, x in enumerate(X):
        c = U @ x + b
        found = 0
        for mask in itertools.product([False, True], repeat=n):
            S = np.array(mask, dtype=bool)
            z = np.zeros(n)
            if S.any():
                z[S] = np.linalg.solve(M[np.ix_(S, S)], c[S])
            d = M @ z - c
            tol = 1e-10 * (1 + np.abs(c).max())
            if np.all(z[S] > -tol) and np.all(d[~S] > -tol):
                out[s] = z
                found += 1
        assert found >= 1
    return out


def random_mon(rng, n, n_in, *, rank=None, scale=1.0, m=None):
    r = n if rank is None else rank
    A = scale * rng.normal(size=(r, n)) / np.sqrt(n)
    B = scale * rng.normal(size=(n, n)) / np.sqrt(n)
    m = rng.uniform(0.05, 1.0) if m is None else m
    W = mon.parametrize(A, B, m)
    U = rng.normal(size=(n, n_in))
    b = rng.normal(size=n)
    return W, U, b


mon_cases = st.tuples(st.integers(1, 7), st.integers(1, 4), st.integers(1, 5),
                      st.integers(0, 2**31 - 1), st.sampled_from([0.3, 1.0, 2.0]))


# ------------------------------------------------------------------ maths
@settings(max_examples=40, **SETTINGS)
@given(case=mon_cases, method=st.sampled_from(["fb", "pr"]))
def test_splitting_solvers_find_the_fixed_point(case, method):
    n, n_in, batch, seed, scale = case
    rng = np.random.default_rng(seed)
    W, U, b = random_mon(rng, n, n_in, scale=scale)
    X = rng.normal(size=(batch, n_in))
    z = mon.solve(W, U, b, X, method=method)
    np.testing.assert_allclose(z, brute_force(W, U, b, X), rtol=0, atol=1e-9)
    # the unpolished iterate meets the tolerance it was asked for
    z_raw = mon.solve(W, U, b, X, method=method, polish=False, tol=1e-8)
    assert np.max(np.abs(z_raw - np.maximum(z_raw @ W.T + X @ U.T + b, 0))) <= \
        1e-8 * (1 + np.abs(X @ U.T + b).max())


def test_solve_single_sample_and_errors():
    rng = np.random.default_rng(0)
    W, U, b = random_mon(rng, 4, 2)
    x = rng.normal(size=2)
    assert mon.solve(W, U, b, x).shape == (4,)
    with pytest.raises(of.ConvergenceError):
        mon.solve(W, U, b, x, method="fb", max_iter=3, tol=1e-15, polish=False)
    with pytest.raises(of.InvalidNetworkError):
        mon.solve(2 * np.eye(4), U, b, x)  # I − W = −I: not monotone
    with pytest.raises(of.InvalidNetworkError):
        mon.solve(W, U, b, rng.normal(size=3))
    with pytest.raises(of.InvalidNetworkError):
        mon.solve(W, U, b, x, method="newton")


@settings(max_examples=30, **SETTINGS)
@given(n=st.integers(1, 9), r=st.integers(1, 9), seed=st.integers(0, 2**31 - 1))
def test_split_reproduces_w_and_respects_the_parametrisation(n, r, seed):
    rng = np.random.default_rng(seed)
    W, _, _ = random_mon(rng, n, 1, rank=r)
    sp = mon.split(W)
    np.testing.assert_allclose(sp.W, W, rtol=0, atol=1e-12 * max(1, np.abs(W).max()))
    assert sp.m > 0
    assert np.allclose(np.triu(sp.A.T @ sp.A), np.triu(sp.A.T @ sp.A))  # shape sanity
    assert np.all(np.tril(sp.B) == 0)
    # λ_min(sym(I − W)) = m + λ_min(AᵀA) ≥ m
    assert mon.monotonicity(W) >= sp.m - 1e-12
    with pytest.raises(of.InvalidNetworkError):
        mon.split(W, m=mon.monotonicity(W) * 1.01)


@settings(max_examples=25, **SETTINGS)
@given(case=mon_cases)
def test_implicit_gradient_matches_finite_differences(case):
    n, n_in, batch, seed, scale = case
    rng = np.random.default_rng(seed)
    W, U, b = random_mon(rng, n, n_in, scale=scale)
    X = rng.normal(size=(batch, n_in))
    G = rng.normal(size=(batch, n))  # L = Σ G ⊙ z*
    z = brute_force(W, U, b, X)
    pre = z @ W.T + X @ U.T + b
    if np.min(np.abs(pre)) < 1e-4:  # a degenerate unit: L is not differentiable there
        return
    dW, dU, db = mon.gradient(W, U, b, X, G)
    h = 1e-6

    def loss(W_, U_, b_):
        return float(np.sum(G * mon.solve(W_, U_, b_, X)))

    for (i, j) in [(0, 0), (n - 1, 0), (0, n - 1)]:
        E = np.zeros_like(W)
        E[i, j] = h
        fd = (loss(W + E, U, b) - loss(W - E, U, b)) / (2 * h)
        assert dW[i, j] == pytest.approx(fd, rel=1e-5, abs=1e-7)
    E = np.zeros_like(U)
    E[n - 1, n_in - 1] = h
    assert dU[n - 1, n_in - 1] == pytest.approx(
        (loss(W, U + E, b) - loss(W, U - E, b)) / (2 * h), rel=1e-5, abs=1e-7)
    e = np.zeros(n)
    e[0] = h
    assert db[0] == pytest.approx((loss(W, U, b + e) - loss(W, U, b - e)) / (2 * h),
                                  rel=1e-5, abs=1e-7)


# -------------------------------------------------------- from_network
def _random_resistor_diode_network(rng, n_hidden, n_internal, n_in):
    net = of.Network()
    hid = net.add_nodes(n_hidden)
    internal = net.add_nodes(n_internal)
    xin = net.add_nodes(n_in)
    for x in xin:
        net.add_input(int(x))
    bias = net.add_node()
    net.add_voltage_source(bias, rng.uniform(-2, 2))
    net.add_diodes(np.zeros(n_hidden, dtype=np.int64), hid)
    free = np.concatenate([hid, internal])
    allnodes = np.concatenate([free, xin, [bias, 0]])
    # every free node gets a path to ground, plus random edges
    to = rng.choice(allnodes, size=free.size)
    to = np.where(to == free, 0, to)
    net.add_resistors(free, to, rng.uniform(0.1, 2, free.size))
    ne = 3 * free.size
    a = rng.choice(free, size=ne)
    bb = rng.choice(allnodes, size=ne)
    keep = a != bb
    net.add_resistors(a[keep], bb[keep], rng.uniform(0.1, 2, int(keep.sum())))
    net.add_resistors(free, np.zeros(free.size, dtype=np.int64), rng.uniform(0.01, 0.5, free.size))
    net.add_current_source(0, int(rng.choice(free)), rng.normal())
    net.add_current_source(int(rng.choice(free)), 0, rng.normal())
    return net, hid


@settings(max_examples=25, **SETTINGS)
@given(nh=st.integers(1, 6), ni=st.integers(0, 6), nx=st.integers(1, 3),
       seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1.0, 1e-3]))
def test_from_network_gives_the_mon_the_circuit_computes(nh, ni, nx, seed, scale):
    rng = np.random.default_rng(seed)
    net, hid = _random_resistor_diode_network(rng, nh, ni, nx)
    W, U, b = mon.from_network(net, scale=scale)
    assert mon.monotonicity(W) > 0
    X = rng.normal(size=(5, nx)) * 2
    z_circuit = np.atleast_2d(net.solve(X).voltages)[:, hid]
    np.testing.assert_allclose(mon.solve(W, U, b, X), z_circuit, rtol=0, atol=1e-9)
    np.testing.assert_allclose(brute_force(W, U, b, X), z_circuit, rtol=0, atol=1e-9)


def test_from_network_inputs_select_and_order_the_columns():
    rng = np.random.default_rng(8)
    net, hid = _random_resistor_diode_network(rng, 3, 2, 2)
    W, U, b = mon.from_network(net)
    x0, x1 = net.input_nodes
    bias = [nd for nd in net.voltage_source_nodes if nd not in (x0, x1)][0]
    vb = net.voltage_source_values[list(net.voltage_source_nodes).index(bias)]
    W2, U2, b2 = mon.from_network(net, inputs=[x1, bias, x0])
    np.testing.assert_allclose(W2, W, atol=1e-12)
    np.testing.assert_allclose(U2[:, [2, 0]], U, atol=1e-12)
    # the bias source's column times its value is what b held beyond the rest
    X = rng.normal(size=(4, 2))
    Xb = np.column_stack([X[:, 1], np.full(4, vb), X[:, 0]])
    np.testing.assert_allclose(mon.solve(W2, U2, b2, Xb), mon.solve(W, U, b, X), atol=1e-9)
    with pytest.raises(of.InvalidNetworkError):
        mon.from_network(net, inputs=[x0])  # x1 has no value to fold into b
    with pytest.raises(of.InvalidNetworkError):
        mon.from_network(net, inputs=[x0, x1, int(hid[0])])  # not clamped


def test_from_network_rejects_other_diodes():
    net = of.Network()
    a = net.add_node()
    net.add_resistor(a, 0, 1.0)
    net.add_diode(a, 0)  # wrong orientation
    with pytest.raises(of.InvalidNetworkError):
        mon.from_network(net)
    net = of.Network()
    a = net.add_node()
    net.add_resistor(a, 0, 1.0)
    net.add_diode(0, a, of.ShockleyDiode())
    with pytest.raises(of.InvalidNetworkError):
        mon.from_network(net)


# --------------------------------------------------------- circuits (engine)
@settings(max_examples=30, **SETTINGS)
@given(case=mon_cases, g_unit=st.sampled_from([1.0, 1e-3]),
       bias=st.sampled_from(["source", "current"]),
       coupling=st.sampled_from(["gyrator", "transformer"]))
def test_circuit_equilibrium_is_the_mon_fixed_point(case, g_unit, bias, coupling):
    n, n_in, batch, seed, scale = case
    rng = np.random.default_rng(seed)
    W, U, b = random_mon(rng, n, n_in, scale=scale)
    X = rng.normal(size=(batch, n_in))
    circ = mon.realize(W, U, b, g_unit=g_unit, bias=bias, coupling=coupling)
    z_ref = brute_force(W, U, b, X)
    np.testing.assert_allclose(circ(X), z_ref, rtol=0, atol=1e-8)
    np.testing.assert_allclose(circ(X[0]), z_ref[0], rtol=0, atol=1e-8)
    # round trip: the circuit's linear part gives back (W, U, b)
    W2, U2, b2 = mon.from_network(circ.network, scale=g_unit)
    for got, want in ((W2, W), (U2, U), (b2, b)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1, np.abs(want).max()))


def test_realize_with_a_given_splitting_and_wide_sizes():
    rng = np.random.default_rng(5)
    n, n_in = 12, 5
    A = rng.normal(size=(3, n))  # low rank, signed
    B = rng.normal(size=(n, n))
    sp = mon.Splitting(0.2, A, B)
    U, b = rng.normal(size=(n, n_in)), rng.normal(size=n)
    circ = mon.realize(sp.W, U, b, splitting=sp)
    X = rng.normal(size=(8, n_in))
    np.testing.assert_allclose(circ(X), mon.solve(sp.W, U, b, X), rtol=0, atol=1e-8)
    with pytest.raises(of.InvalidNetworkError):
        mon.realize(sp.W + 0.1, U, b, splitting=sp)


@settings(max_examples=25, **SETTINGS)
@given(case=mon_cases, g_unit=st.sampled_from([1.0, 1e-2]),
       coupling=st.sampled_from(["gyrator", "transformer"]))
def test_hardware_linearization_gradient_equals_implicit_differentiation(case, g_unit,
                                                                          coupling):
    n, n_in, batch, seed, scale = case
    rng = np.random.default_rng(seed)
    W, U, b = random_mon(rng, n, n_in, scale=scale)
    X = rng.normal(size=(batch, n_in))
    G = rng.normal(size=(batch, n))
    z = brute_force(W, U, b, X)
    if np.min(np.abs(z @ W.T + X @ U.T + b)) < 1e-6:
        return  # degenerate unit: not differentiable
    circ = mon.realize(W, U, b, g_unit=g_unit, coupling=coupling)
    hw = circ.gradient(X, G)
    ref = mon.gradient(W, U, b, X, G, z=z)
    for got, want in zip(hw, ref):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * max(1, np.abs(want).max()))


def test_explicit_adjoint_circuit_gives_lambda():
    """The transposed linearized circuit, built and solved as a circuit, gives
    λ = (I − D Wᵀ)⁻¹ D ∂L/∂z (assembled here with NumPy from the active set)."""
    rng = np.random.default_rng(21)
    W, U, b = random_mon(rng, 6, 3, scale=2.0)
    X = rng.normal(size=(3, 3))
    G = rng.normal(size=(3, 6))
    circ = mon.realize(W, U, b, g_unit=0.25)
    sol = circ.network.solve(X)
    z = brute_force(W, U, b, X)
    M = np.eye(6) - W
    for s in range(3):
        act = z[s] > 0
        lam = np.zeros(6)
        lam[act] = np.linalg.solve(M[np.ix_(act, act)].T, G[s, act])
        lin = circ.adjoint_circuit(sol, sample=s)
        v = lin.solve(injections=(circ.hidden, G[s][None])).voltages[circ.hidden]
        np.testing.assert_allclose(0.25 * v, lam, rtol=0, atol=1e-9 * max(1, np.abs(lam).max()))


def test_hardware_gradient_matches_finite_differences():
    rng = np.random.default_rng(7)
    W, U, b = random_mon(rng, 5, 3)
    X = rng.normal(size=(4, 3))
    G = rng.normal(size=(4, 5))
    dW, dU, db = mon.realize(W, U, b).gradient(X, G)
    h = 1e-6

    def loss(W_, U_, b_):
        return float(np.sum(G * mon.realize(W_, U_, b_)(X)))

    for i, j in [(0, 1), (2, 2), (4, 0)]:
        E = np.zeros_like(W)
        E[i, j] = h
        assert dW[i, j] == pytest.approx((loss(W + E, U, b) - loss(W - E, U, b)) / (2 * h),
                                         rel=1e-5, abs=1e-7)
    E = np.zeros_like(U)
    E[1, 2] = h
    assert dU[1, 2] == pytest.approx((loss(W, U + E, b) - loss(W, U - E, b)) / (2 * h),
                                     rel=1e-5, abs=1e-7)
    e = np.zeros(5)
    e[3] = h
    assert db[3] == pytest.approx((loss(W, U, b + e) - loss(W, U, b - e)) / (2 * h),
                                  rel=1e-5, abs=1e-7)


def test_transformer_coupling_realizes_w():
    """The transformer loops of the module docstring (with their leak compensation):
    the Schur complement of the circuit, from the engine's stated transformer law,
    gives back (W, U, b)."""
    rng = np.random.default_rng(11)
    W, U, b = random_mon(rng, 6, 3)
    circ = mon.realize(W, U, b, coupling="transformer", g_unit=0.5)
    assert circ.network.n_transformers == 6 * 7 // 2
    W2, U2, b2 = mon.from_network(circ.network, scale=0.5)
    for got, want in ((W2, W), (U2, U), (b2, b)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1, np.abs(want).max()))


def test_transformer_coupling_solves():
    rng = np.random.default_rng(12)
    W, U, b = random_mon(rng, 4, 2)
    X = rng.normal(size=(3, 2))
    circ = mon.realize(W, U, b, coupling="transformer")
    np.testing.assert_allclose(circ(X), brute_force(W, U, b, X), rtol=0, atol=1e-8)


@pytest.mark.parametrize("coupling", ["gyrator", "transformer"])
def test_shockley_diode_circuit_is_the_diode_relu_mon(coupling):
    """With Shockley diodes the circuit's equilibrium is z = σ(W z + c), σ the diode
    ReLU computed by its own one-unit circuit; the adjoint gradient equals
    λ = (I − Σ' Wᵀ)⁻¹ Σ' g with Σ' from diode_relu_grad, and finite differences."""
    from ohmflow.activations import diode_relu, diode_relu_grad

    rng = np.random.default_rng(31)
    W, U, b = random_mon(rng, 5, 3)
    X = rng.normal(size=(4, 3))
    G = rng.normal(size=(4, 5))
    model = of.ShockleyDiode(i_s=1e-6, n=2.0)
    circ = mon.realize(W, U, b, g_unit=0.5, coupling=coupling, diode=model)
    z = circ(X)
    pre = z @ W.T + X @ U.T + b
    np.testing.assert_allclose(z, diode_relu(pre, model=model, conductance=0.5),
                               rtol=0, atol=1e-9)
    dW, dU, db = circ.gradient(X, G)
    S = diode_relu_grad(pre, model=model, conductance=0.5)
    lam = np.stack([np.linalg.solve(np.eye(5) - S[s][:, None] * W.T, S[s] * G[s])
                    for s in range(4)])
    np.testing.assert_allclose(db, lam.sum(0), rtol=0, atol=1e-8)
    np.testing.assert_allclose(dU, lam.T @ X, rtol=0, atol=1e-8)
    np.testing.assert_allclose(dW, lam.T @ z, rtol=0, atol=1e-8)
    h = 1e-6

    def loss(b_):
        return float(np.sum(G * mon.realize(W, U, b_, g_unit=0.5, coupling=coupling,
                                            diode=model)(X)))

    e = np.zeros(5)
    e[2] = h
    assert db[2] == pytest.approx((loss(b + e) - loss(b - e)) / (2 * h), rel=1e-5, abs=1e-8)


def test_realize_rejects_non_monotone_w():
    with pytest.raises(of.InvalidNetworkError):
        mon.realize(np.array([[1.5]]), np.ones((1, 1)), np.zeros(1))
    with pytest.raises(of.InvalidNetworkError):
        mon.realize(np.eye(2) * 0.5, np.ones((3, 1)), np.zeros(2))
