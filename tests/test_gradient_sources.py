"""Source gradients (dC/dV, dC/dI) against finite differences, the linearized
circuit against the adjoint, and reuse of the cached factor."""

import numpy as np
import ohmflow as of
import pytest


def _network(seed, kinds=("ideal", "relu", "shockley")):
    rng = np.random.default_rng(seed)
    net = of.Network()
    n = 14
    nodes = net.add_nodes(n)
    src, dst = [], []
    for i in range(1, n):  # a random spanning tree over ground and the nodes
        src.append(int(nodes[i]))
        dst.append(int(nodes[rng.integers(0, i)]) if i > 1 else 0)
    src.append(int(nodes[0]))
    dst.append(0)
    for _ in range(10):
        a, b = rng.choice(n, 2, replace=False)
        src.append(int(nodes[a]))
        dst.append(int(nodes[b]))
    net.add_resistors(src, dst, rng.uniform(0.2e-3, 2e-3, len(src)))
    net.add_input(int(nodes[0]))
    net.add_voltage_source(int(nodes[1]), 0.4)
    net.add_current_source(int(nodes[2]), int(nodes[3]), 2e-4)
    models = {"ideal": of.IdealDiode(0.1), "relu": of.ReluDiode(1e-3, 0.05),
              "shockley": of.ShockleyDiode(1e-12, 1.5)}
    for k, kind in enumerate(kinds):
        net.add_diode(int(nodes[4 + 2 * k]), int(nodes[5 + 2 * k]), models[kind])
    return net, [int(nodes[10]), (int(nodes[11]), int(nodes[12]))]


def _loss(net, outs, x, t):
    v = np.atleast_2d(net.solve(x, rtol=1e-15).voltages)
    vo = np.stack([v[:, outs[0]], v[:, outs[1][0]] - v[:, outs[1][1]]], axis=1)
    return np.mean(0.5 * np.sum((vo - t) ** 2, axis=1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_source_gradients_match_finite_differences(seed):
    net, outs = _network(seed)
    x = np.array([[1.2], [-0.7]])
    t = np.array([[0.1, 0.0], [0.05, -0.02]])
    _, src = net.gradient(t, "exact", outputs=outs, inputs=x, return_sources=True)
    # Fixed source (index 1): central differences of the value.
    h = 1e-6
    v0 = net.voltage_source_values[1]
    net.set_voltage_source(1, v0 + h)
    cp = _loss(net, outs, x, t)
    net.set_voltage_source(1, v0 - h)
    cm = _loss(net, outs, x, t)
    net.set_voltage_source(1, v0)
    fd = (cp - cm) / (2 * h)
    # 1e-6 relative: central differences with h = 1 µV on a smooth (piecewise
    # smooth, same active set) loss have truncation ~h² and rounding ~eps/h.
    assert src["voltage_sources"][1] == pytest.approx(fd, rel=1e-6, abs=1e-12)
    # The input (source 0): perturb the input column.
    xp, xm = x.copy(), x.copy()
    xp[:, 0] += h
    xm[:, 0] -= h
    fd_in = (_loss(net, outs, xp, t) - _loss(net, outs, xm, t)) / (2 * h)
    assert src["voltage_sources"][0] == pytest.approx(fd_in, rel=1e-6, abs=1e-12)
    # Current source.
    i0 = net.current_source_values[0]
    hi = 1e-9
    net.set_current_source(0, i0 + hi)
    cp = _loss(net, outs, x, t)
    net.set_current_source(0, i0 - hi)
    cm = _loss(net, outs, x, t)
    net.set_current_source(0, i0)
    assert src["current_sources"][0] == pytest.approx((cp - cm) / (2 * hi), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 3])
def test_linearized_circuit_gives_the_adjoint(seed):
    """Hardware linearization: injecting ∂C/∂v into the incremental circuit yields
    node voltages λ, and −Δλ Δv is the exact gradient."""
    net, outs = _network(seed)
    x = np.array([0.9])
    sol = net.solve(x)
    v = sol.voltages
    t = np.array([0.0, 0.0])
    vo = np.array([v[outs[0]], v[outs[1][0]] - v[outs[1][1]]])
    dc = vo - t
    lin = net.linearize(sol)
    nodes = [outs[0], outs[1][0], outs[1][1]]
    inj = np.array([[dc[0], dc[1], -dc[1]]])
    lam = lin.solve(injections=(nodes, inj)).voltages
    a, b = net.resistor_nodes
    g_lin = -(lam[a] - lam[b]) * (v[a] - v[b])
    g_exact = net.gradient(t.reshape(1, -1), "exact", outputs=outs, inputs=x.reshape(1, -1))
    scale = np.max(np.abs(g_exact))
    np.testing.assert_allclose(g_lin, g_exact, rtol=0, atol=1e-9 * scale)


def test_linear_gradient_reuses_the_cached_factor():
    rng = np.random.default_rng(5)
    net = of.Network()
    idx = net.add_nodes(30 * 30).reshape(30, 30)
    src = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    dst = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    net.add_resistors(src, dst, rng.uniform(0.5, 2.0, src.size))
    net.add_voltage_source(int(idx[0, 0]), 1.0)
    net.add_voltage_source(int(idx[-1, -1]), 0.0)
    assert not net._core.has_cached_factor
    sol = net.solve()
    assert sol.factorizations == 1
    assert net._core.has_cached_factor
    again = net.solve()
    assert again.factorizations == 0  # the cached factor was reused
    np.testing.assert_array_equal(again.voltages, sol.voltages)
    net.conductances = net.conductances * 1.5  # new values: the cache is stale
    assert not net._core.has_cached_factor
    # Uniform scaling of every conductance leaves the voltages unchanged.
    np.testing.assert_allclose(net.solve().voltages, sol.voltages, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1])
def test_diode_parameter_gradients_match_finite_differences(seed):
    net, outs = _network(seed)
    # A junction that carries a real share of the current, so that finite
    # differences in its parameters rise above the solver's rounding.
    net.set_diode_model(2, of.ShockleyDiode(1e-8, 1.3))
    x = np.array([[1.2], [-0.7]])
    t = np.array([[0.1, 0.0], [0.05, -0.02]])
    _, src = net.gradient(t, "exact", outputs=outs, inputs=x, return_sources=True)
    dg = src["diodes"]
    checked = 0
    for k, m in enumerate(net.diode_models):
        fields = {"IdealDiode": ["v_on"], "ReluDiode": ["v_on", "g_on"],
                  "ShockleyDiode": ["i_s", "n"]}[type(m).__name__]
        for f in fields:
            p0 = getattr(m, f)
            # Richardson extrapolation of two central differences removes the O(h²)
            # truncation; what remains (O(h⁴) and rounding ~eps/h) is far below 1e-4.
            h = 1e-3 * abs(p0) if p0 else 1e-6

            def central(step, f=f, p0=p0, k=k, m=m):
                vals = []
                for p in (p0 + step, p0 - step):
                    net.set_diode_model(k, type(m)(**{**m.__dict__, f: p}))
                    vals.append(_loss(net, outs, x, t))
                net.set_diode_model(k, m)
                return (vals[0] - vals[1]) / (2 * step)

            fd = (4 * central(h / 2) - central(h)) / 3
            assert dg[f][k] == pytest.approx(fd, rel=1e-4, abs=1e-10), (type(m).__name__, f)
            checked += 1
    assert checked == 5
