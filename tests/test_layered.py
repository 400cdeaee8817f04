"""The layered solver (exact block coordinate descent) agrees with the direct
sparse solver on random deep resistive networks, and refuses what it cannot do."""

import numpy as np
import ohmflow as of
import pytest


def random_drn(seed, sizes=(6, 12, 9, 3), diode="ideal", double=True):
    """Inputs as ± source pairs, dense resistor layers, diodes from hidden nodes to
    bias sources (two-sided bounds when ``double``), bias resistors, outputs with a
    resistor to ground."""
    rng = np.random.default_rng(seed)
    net = of.Network()
    n_in = sizes[0]
    plus = net.add_nodes(n_in)
    minus = net.add_nodes(n_in)
    for p, m in zip(plus, minus):
        net.add_input(int(p))
        net.add_input(int(m))
    hi_bias = net.add_node("vhi")
    lo_bias = net.add_node("vlo")
    net.add_voltage_source(hi_bias, 0.8)
    net.add_voltage_source(lo_bias, -0.6)
    bias = net.add_node("vb")
    net.add_voltage_source(bias, 0.1)
    prev = np.concatenate([plus, minus])
    models = {"ideal": of.IdealDiode(0.0), "relu": of.ReluDiode(2e-3, 0.05),
              "shockley": of.ShockleyDiode(1e-12, 1.3)}
    layers = []
    for size in sizes[1:]:
        layer = net.add_nodes(size)
        a = np.repeat(prev, size)
        b = np.tile(layer, prev.size)
        net.add_resistors(a, b, rng.uniform(1e-4, 1e-3, a.size))
        net.add_resistors(layer, np.full(size, bias), rng.uniform(1e-4, 5e-4, size))
        if size != sizes[-1]:
            net.add_diodes(layer, np.full(size, hi_bias), models[diode])
            if double:
                net.add_diodes(np.full(size, lo_bias), layer, models[diode])
        layers.append(layer)
        prev = layer
    net.add_resistors(prev, np.zeros(prev.size, dtype=np.int64), np.full(prev.size, 5e-4))
    x = rng.uniform(-1, 1, (24, n_in))
    inputs = np.empty((24, 2 * n_in))
    inputs[:, 0::2] = 2.0 * x
    inputs[:, 1::2] = -2.0 * x
    return net, inputs, layers


@pytest.mark.parametrize("diode", ["ideal", "relu", "shockley"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layered_equals_direct(seed, diode):
    net, x, _ = random_drn(seed, diode=diode)
    d = net.solve(x, method="direct")
    lay = net.solve(x, method="layered")
    scale = np.max(np.abs(d.voltages))
    # The bar: agreement to 1e-9 (the coordinate descent stops when a sweep
    # moves no voltage by more than vtol x scale; its error is that over one minus
    # the contraction rate, far below 1e-9 here).
    np.testing.assert_allclose(lay.voltages, d.voltages, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(lay.diode_currents, d.diode_currents, rtol=0,
                               atol=1e-9 * max(np.max(np.abs(d.diode_currents)), 1e-12))
    np.testing.assert_allclose(lay.source_currents, d.source_currents, rtol=0,
                               atol=1e-9 * np.max(np.abs(d.source_currents)))
    assert np.all(lay.kcl_residual <= 1e-9 * np.max(np.abs(lay.currents)))
    assert np.all(lay.factorizations == 0)


def test_layered_with_nudging_currents_equals_direct():
    net, x, layers = random_drn(3, diode="relu")
    out = layers[-1]
    rng = np.random.default_rng(0)
    inj = rng.normal(0, 1e-4, (x.shape[0], out.size))
    d = net.solve(x, method="direct", injections=(out, inj))
    lay = net.solve(x, method="layered", injections=(out, inj))
    np.testing.assert_allclose(lay.voltages, d.voltages, rtol=0,
                               atol=1e-9 * np.max(np.abs(d.voltages)))


def test_fixed_sweeps_stop_early_and_approach_the_solution():
    net, x, _ = random_drn(4, sizes=(6, 20, 20, 20, 3), diode="ideal")
    exact = net.solve(x, method="direct").voltages
    errs = [np.max(np.abs(net.solve(x, method="layered", sweeps=k).voltages - exact))
            for k in (1, 4, 16)]
    assert errs[0] > errs[1] > errs[2]  # monotone progress towards the equilibrium


def test_layered_refuses_networks_it_cannot_solve():
    net = of.Network()
    a, b, c, d = net.add_nodes(4)
    net.add_voltage_source(a, 1.0)
    # b, c, d free and joined in a triangle: an odd cycle, no two layers
    net.add_resistors([a, b, c, d, b], [b, c, d, b, 0], [1e-3] * 5)
    with pytest.raises(of.InvalidNetworkError, match="layered"):
        net.solve(method="layered")
    # auto falls back to the direct solver
    assert net.solve(method="auto").kcl_residual < 1e-15
    # an ideal diode between two free nodes couples the 1-D problems
    net2 = of.Network()
    p, q = net2.add_nodes(2)
    net2.add_voltage_source(p, 1.0)
    r = net2.add_node()
    net2.add_resistors([p, q, r], [q, 0, 0], [1e-3, 1e-3, 1e-3])
    net2.add_diode(q, r, of.IdealDiode(0.1))
    with pytest.raises(of.InvalidNetworkError, match="ideal diode"):
        net2.solve(method="layered")
