"""Deep resistive networks: structure, Kirchhoff's laws, inference helpers.

KCL is checked from the voltages and the element laws, not from the solver's
own residual: resistor currents are g Δv; ReLU-diode currents are
g_on max(Δv − v_on, 0); ideal-diode currents are the solver's multipliers,
checked against the ideal diode's law (i ≥ 0, Δv ≤ v_on, complementarity).
"""

from __future__ import annotations

import numpy as np
import ohmflow as of
import pytest
from ohmflow import models


def node_currents(net: of.Network, v: np.ndarray, diode_i: np.ndarray) -> np.ndarray:
    """Net current leaving every node (batch, n_nodes) through resistors and diodes."""
    out = np.zeros_like(v)
    a, b = net.resistor_nodes
    i = net.conductances * (v[:, a] - v[:, b])
    np.add.at(out, (slice(None), a), i)
    np.add.at(out, (slice(None), b), -i)
    da, db = net.diode_nodes
    np.add.at(out, (slice(None), da), diode_i)
    np.add.at(out, (slice(None), db), -diode_i)
    return out


def free_nodes(net: of.Network) -> np.ndarray:
    clamped = set(net.voltage_source_nodes.tolist()) | {of.GROUND}
    return np.array([n for n in range(net.n_nodes) if n not in clamped])


def features(model: models.DeepResistiveNetwork, n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, model.n_features))


@pytest.mark.parametrize("double", [False, True])
def test_relu_diode_drn_obeys_kcl_from_element_laws(double):
    m = models.DeepResistiveNetwork([16, 12, 9, 3], input_gain=5.0, diode="relu",
                                    diode_g_on=50.0, double_diode=double, clip=(0.0, 1.5),
                                    seed=1)
    net = m.network
    sol = net.solve(m.input_voltages(features(m, 20)))
    v = sol.voltages
    model = net.diode_models[0]
    assert isinstance(model, of.ReluDiode)
    da, db = net.diode_nodes
    dv = v[:, da] - v[:, db]
    i_law = model.g_on * np.maximum(dv - model.v_on, 0.0)
    kcl = node_currents(net, v, i_law)[:, free_nodes(net)]
    scale = np.max(net.conductances) * np.max(np.abs(v))
    assert np.max(np.abs(kcl)) < 1e-9 * scale
    # Some diodes conduct and some do not: the nonlinearity is exercised.
    assert 0 < np.mean(dv > model.v_on) < 1


@pytest.mark.parametrize("double", [False, True])
def test_ideal_diode_drn_obeys_kcl_and_the_diode_law(double):
    lo, hi = 0.0, 1.0
    m = models.DeepResistiveNetwork([20, 16, 4], input_gain=8.0, double_diode=double,
                                    clip=(lo, hi), seed=2)
    net = m.network
    sol = net.solve(m.input_voltages(features(m, 25)))
    v, i = sol.voltages, sol.diode_currents
    vscale = max(1.0, np.max(np.abs(v)))
    iscale = np.max(net.conductances) * vscale
    kcl = node_currents(net, v, i)[:, free_nodes(net)]
    assert np.max(np.abs(kcl)) < 1e-9 * iscale
    da, db = net.diode_nodes
    dv = v[:, da] - v[:, db]
    assert np.all(i >= -1e-12 * iscale)
    assert np.all(dv <= 1e-9 * vscale)
    assert np.max(np.abs(i * dv)) < 1e-9 * iscale * vscale
    hidden = v[:, m.layers[1]]
    assert hidden.min() >= lo - 1e-9
    if double:
        assert hidden.max() <= hi + 1e-9
        assert np.any(np.isclose(hidden, hi, atol=1e-9))  # the upper bound is active
    assert np.any(np.isclose(hidden, lo, atol=1e-9)) and np.any(hidden > lo + 1e-3)


def test_structure_inputs_weights_biases():
    m = models.DeepResistiveNetwork([10, 7, 6, 3], input_gain=2.5, g_init=(0.2, 0.8),
                                    g_ref=1e-4, bias_voltage=0.5, seed=4)
    net = m.network
    assert [len(layer) for layer in m.layers] == [10, 7, 6, 3]
    assert m.input_nodes.shape == (5, 2)
    assert [w.shape for w in m.weights] == [(10, 7), (7, 6), (6, 3)]
    assert [b.shape for b in m.biases] == [(2, 7), (2, 6), (2, 3)]
    assert net.n_inputs == 10
    assert net.n_diodes == 7 + 6
    g = net.conductances
    assert np.all((g >= 0.2e-4) & (g <= 0.8e-4))
    # Every resistor is a weight or a bias, once.
    allr = np.concatenate([a.ravel() for a in m.weights + m.biases])
    assert np.array_equal(np.sort(allr), np.arange(net.n_resistors))
    # A weight connects layer l (rows) to layer l+1 (columns).
    ra, rb = net.resistor_nodes
    w = m.weights[1]
    assert np.array_equal(ra[w], np.repeat(m.layers[1], 6).reshape(7, 6))
    assert np.array_equal(rb[w], np.tile(m.layers[2], 7).reshape(7, 6))
    # Inputs: +gain x and -gain x on each feature's pair.
    x = np.array([[0.1, 0.2, 0.3, 0.4, 1.0]])
    vin = m.input_voltages(x)
    v0 = net.solve(vin).voltages[0]
    assert np.allclose(v0[m.input_nodes[:, 0]], 2.5 * x[0])
    assert np.allclose(v0[m.input_nodes[:, 1]], -2.5 * x[0])
    # Bias sources at ±0.5 V.
    rb_nodes = rb[m.biases[0][0]]
    assert np.allclose(v0[ra[m.biases[0][0]]], 0.5)
    assert np.allclose(v0[ra[m.biases[0][1]]], -0.5)
    assert np.array_equal(rb_nodes, m.layers[1])
    # The output layer has no diodes.
    assert not set(net.diode_nodes[1].tolist()) & set(m.layers[-1].tolist())


def test_predict_accuracy_and_differential_outputs():
    m = models.DeepResistiveNetwork([12, 8, 3], input_gain=4.0, outputs="differential", seed=5)
    assert len(m.output_nodes) == 3 and all(isinstance(o, tuple) for o in m.output_nodes)
    X = features(m, 7)
    scores = m.predict(X, batch_size=3)
    v = m.network.solve(m.input_voltages(X)).voltages
    plus = [p for p, _ in m.output_nodes]
    minus = [q for _, q in m.output_nodes]
    assert np.allclose(scores, v[:, plus] - v[:, minus], atol=1e-12)
    y = np.argmax(scores, axis=1)
    assert m.accuracy(X, y) == 1.0
    assert m.accuracy(X, (y + 1) % 3) == 0.0
    single = models.DeepResistiveNetwork([12, 8, 3], seed=5)
    assert single.output_nodes == [int(n) for n in single.layers[-1]]


def test_gradient_runs_on_the_drn_outputs():
    m = models.DeepResistiveNetwork([12, 8, 3], input_gain=6.0, seed=6)
    X = features(m, 4)
    t = np.eye(3)[[0, 1, 2, 0]]
    exact = m.network.gradient(t, "exact", outputs=m.output_nodes, inputs=m.input_voltages(X))
    ep = m.network.gradient(t, "centered-ep", outputs=m.output_nodes,
                            inputs=m.input_voltages(X), beta=1e-6 * m.g_ref)
    assert np.max(np.abs(ep - exact)) <= 1e-4 * np.max(np.abs(exact))


def test_presets_and_build():
    expect = {"drn-xs": (1568, 100, 10), "drn-1h": (1568, 1024, 10),
              "drn-xl": (1568, 32768, 10)}
    for name, sizes in expect.items():
        assert models.PRESETS[name].layer_sizes == sizes
    assert len(models.PRESETS["drn-2h"].layer_sizes) == 4
    assert len(models.PRESETS["drn-3h"].layer_sizes) == 5
    assert models.PRESETS["drn-digits"].layer_sizes[0] == 128
    m = models.build("drn-xs", n_features=6, n_classes=4)
    assert m.layer_sizes == (12, 100, 4)
    m = models.build("20-5-2")
    assert m.layer_sizes == (20, 5, 2)
    assert models.training_defaults("20-5-2") == {}


def test_same_seed_same_network_and_spice_export():
    a = models.build("drn-digits-s", seed=7)
    b = models.build("drn-digits-s", seed=7)
    c = models.build("drn-digits-s", seed=8)
    assert np.array_equal(a.network.conductances, b.network.conductances)
    assert not np.array_equal(a.network.conductances, c.network.conductances)
    small = models.DeepResistiveNetwork([4, 3, 2], diode="shockley", seed=0)
    assert "D" in small.network.to_spice(inputs=small.input_voltages([[0.5, 0.25]])[0])


@pytest.mark.parametrize("bad", [
    dict(layer_sizes=[7, 4, 2]),
    dict(layer_sizes=[8]),
    dict(layer_sizes=[8, 0, 2]),
    dict(layer_sizes=[8, 4, 2], g_init=(0.0, 1.0)),
    dict(layer_sizes=[8, 4, 2], g_init=(0.5, 20.0)),
    dict(layer_sizes=[8, 4, 2], diode="tunnel"),
    dict(layer_sizes=[8, 4, 2], outputs="both"),
    dict(layer_sizes=[8, 4, 2], double_diode=True, clip=(1.0, 0.0)),
])
def test_bad_options_are_value_errors(bad):
    sizes = bad.pop("layer_sizes")
    with pytest.raises(of.InvalidNetworkError):
        models.DeepResistiveNetwork(sizes, **bad)
    assert issubclass(of.InvalidNetworkError, ValueError)


def test_unknown_preset_and_bad_features():
    with pytest.raises(of.InvalidNetworkError, match="unknown model"):
        models.build("drn-huge")
    m = models.DeepResistiveNetwork([8, 4, 2])
    with pytest.raises(of.InvalidNetworkError, match="features"):
        m.input_voltages(np.zeros((3, 5)))
