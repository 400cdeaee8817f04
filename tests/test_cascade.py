"""Cascades of networks joined by ideal buffers (ohmflow.cascade).

The reference is a NumPy forward pass and backprop written here from the stages'
element lists alone (resistors, sources, diodes): every free node of a
:func:`relu_layer` stage touches only clamped nodes, so its voltage is the
conductance-weighted mean of its neighbours, clipped at 0 by its diode; the
backward pass is the chain rule through that formula. The circuit side solves the
stages and chains their adjoints; nothing is shared but the networks.
"""

from __future__ import annotations

import numpy as np
import ohmflow as of
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = dict(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _stage_reference(net: of.Network, outputs: list[int], x: np.ndarray):
    """Forward pass of one stage from its element lists; returns the output
    voltages and a backward function."""
    ra, rb = net.resistor_nodes
    g = net.conductances
    nodes, vals, kin = net._core.voltage_sources()
    batch = x.shape[0]
    u = np.zeros((batch, net.n_nodes))  # clamped node voltages
    clamped = np.zeros(net.n_nodes, dtype=bool)
    clamped[0] = True
    for nd, val, k in zip(nodes, vals, kin):
        clamped[nd] = True
        u[:, nd] = x[:, k] if k >= 0 else val
    out = np.asarray(outputs)
    relu = np.zeros(net.n_nodes, dtype=bool)
    da, dc = net.diode_nodes
    assert np.all(da == 0)
    relu[dc] = True
    # each resistor has one free end (an output) and one clamped end
    free_end = np.where(clamped[ra], rb, ra)
    other = np.where(clamped[ra], ra, rb)
    assert np.all(~clamped[free_end]) and np.all(clamped[other])
    T = np.zeros(net.n_nodes)
    np.add.at(T, free_end, g)
    num = np.zeros((batch, net.n_nodes))
    np.add.at(num, (slice(None), free_end), g * u[:, other])
    pre = num / np.where(T > 0, T, 1.0)
    act = np.where(relu[None, :], np.maximum(pre, 0.0), pre)

    def backward(dout: np.ndarray):
        dact = np.zeros((batch, net.n_nodes))
        dact[:, out] = dout
        dpre = dact * np.where(relu[None, :], (pre > 0).astype(float), 1.0)
        Tf = T[free_end]
        dg = np.sum(dpre[:, free_end] * (u[:, other] - pre[:, free_end]) / Tf, axis=0)
        du = np.zeros((batch, net.n_nodes))
        np.add.at(du, (slice(None), other), dpre[:, free_end] * g / Tf)
        dx = np.zeros((batch, net.n_inputs))
        for nd, k in zip(nodes, kin):
            if k >= 0:
                dx[:, k] = du[:, nd]
        return dg, dx

    return act[:, out], backward


def _reference(cascade: of.Cascade, x: np.ndarray, dloss_dout: np.ndarray):
    X = x @ cascade.input_link.T
    backs = []
    for s, net in enumerate(cascade.stages):
        out, back = _stage_reference(net, cascade.ports[s][0].tolist(), X)
        backs.append(back)
        if s + 1 < len(cascade.stages):
            X = out @ cascade.links[s].T
    G = dloss_dout
    grads = [None] * len(backs)
    for s in range(len(backs) - 1, -1, -1):
        grads[s], dx = backs[s](G)
        G = dx @ (cascade.links[s - 1] if s > 0 else cascade.input_link)
    return out, grads, G


@settings(max_examples=25, **SETTINGS)
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
       batch=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_feedforward_cascade_matches_numpy_forward_and_backprop(sizes, batch, seed):
    rng = np.random.default_rng(seed)
    cascade = of.cascade.feedforward(sizes, seed=seed)
    x = rng.normal(size=(batch, sizes[0]))
    dout = rng.normal(size=(batch, sizes[-1]))
    out_ref, grads_ref, dx_ref = _reference(cascade, x, dout)
    out = cascade(x)
    np.testing.assert_allclose(out, out_ref, rtol=0, atol=1e-9)
    grads, dx = cascade.gradient(x, dloss_dout=dout, return_inputs=True)
    for g, gr in zip(grads, grads_ref):
        np.testing.assert_allclose(g, gr, rtol=0, atol=1e-9 * max(1.0, np.max(np.abs(gr))))
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-9 * max(1.0, np.max(np.abs(dx_ref))))


def test_cascade_gradient_with_targets_is_the_batch_mean_and_matches_finite_differences():
    rng = np.random.default_rng(3)
    cascade = of.cascade.feedforward([4, 5, 3], seed=11)
    x = rng.normal(size=(7, 4))
    t = rng.normal(size=(7, 3))
    grads, loss = cascade.gradient(x, t, return_loss=True)
    assert loss == pytest.approx(np.mean(0.5 * np.sum((cascade(x) - t) ** 2, axis=1)))
    # central differences of the mean squared error w.r.t. a few conductances
    for s, net in enumerate(cascade.stages):
        g0 = net.conductances
        for e in rng.choice(net.n_resistors, size=4, replace=False):
            h = 1e-6 * g0[e]
            vals = []
            for sign in (1, -1):
                gg = g0.copy()
                gg[e] += sign * h
                net.conductances = gg
                vals.append(np.mean(0.5 * np.sum((cascade(x) - t) ** 2, axis=1)))
            net.conductances = g0
            fd = (vals[0] - vals[1]) / (2 * h)
            # FD truncation and rounding at h = 1e-6 g: ~1e-9 absolute
            assert grads[s][e] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_cascade_rejects_bad_shapes():
    net, out = of.cascade.relu_layer(2, 3, seed=0)
    net2, out2 = of.cascade.relu_layer(3, 1, seed=1)
    with pytest.raises(of.InvalidNetworkError):
        of.Cascade([net, net2], [out, out2])  # 3 outputs, 6 inputs: links needed
    c = of.Cascade([net, net2], [out, out2], links=[np.vstack([np.eye(3), -np.eye(3)])])
    with pytest.raises(of.InvalidNetworkError):
        c(np.zeros((2, 3)))  # stage 0 has 4 inputs
    with pytest.raises(of.InvalidNetworkError):
        c.gradient(np.zeros((2, 4)), dloss_dout=np.zeros((2, 2)))
    with pytest.raises(of.InvalidNetworkError):
        c.gradient(np.zeros((2, 4)))


def test_source_gradients_through_gyrators_and_transformers_match_finite_differences():
    """dC/dV of input sources that drive transformer primaries and gyrator ports
    (what chaining cascades of MON circuits needs), against central differences."""
    net = of.Network()
    x, s, y, w = (net.add_node(nm) for nm in ("x", "s", "y", "w"))
    net.add_input(x)
    net.add_input(w)
    net.add_transformer(x, 0, s, 0, 1.7)
    net.add_resistor(s, y, 1.0)
    net.add_resistor(y, 0, 0.5)
    net.add_resistor(x, 0, 0.3)
    net.add_gyrator(w, 0, y, 0, 0.7)
    net.add_gyrator(y, 0, w, 0, -0.4)
    X = np.array([[0.8, -0.3], [-0.2, 0.5]])
    _, src = of.learn.gradient(net, np.array([[0.1], [0.2]]), outputs=["y"], inputs=X,
                               return_sources=True)

    def loss(X_):
        v = np.atleast_2d(net.solve(X_).voltages)[:, net.node("y")]
        return np.mean(0.5 * (v - np.array([0.1, 0.2])) ** 2)

    h = 1e-6
    for i in range(2):
        E = np.zeros_like(X)
        E[:, i] = h
        fd = (loss(X + E) - loss(X - E)) / (2 * h)
        assert src["voltage_sources"][i] == pytest.approx(fd, rel=1e-7, abs=1e-12)


def test_cascade_of_mon_circuits_matches_composed_mons():
    """Two MON circuits in series (z1 drives the second one's inputs through buffers):
    forward = mon.solve composed, ∂L/∂x = U1ᵀ λ1 with λ's from mon's NumPy formula."""
    from ohmflow import mon

    rng = np.random.default_rng(4)
    n0, n1, n2 = 3, 5, 4
    W1 = mon.parametrize(rng.normal(size=(n1, n1)) / 2, rng.normal(size=(n1, n1)) / 2, 0.4)
    W2 = mon.parametrize(rng.normal(size=(n2, n2)) / 2, rng.normal(size=(n2, n2)) / 2, 0.4)
    U1, b1 = rng.normal(size=(n1, n0)), rng.normal(size=n1)
    U2, b2 = rng.normal(size=(n2, n1)), rng.normal(size=n2)
    m1 = mon.realize(W1, U1, b1)
    m2 = mon.realize(W2, U2, b2, coupling="transformer")
    c = of.Cascade([m1.network, m2.network], [m1.hidden.tolist(), m2.hidden.tolist()])
    X = rng.normal(size=(6, n0))
    G = rng.normal(size=(6, n2))
    z1 = mon.solve(W1, U1, b1, X)
    z2 = mon.solve(W2, U2, b2, z1)
    np.testing.assert_allclose(c(X), z2, rtol=0, atol=1e-10)
    _, dx = c.gradient(X, dloss_dout=G, return_inputs=True)
    lam2 = mon._lambda(W2, z2, z1 @ U2.T + b2, G)
    lam1 = mon._lambda(W1, z1, X @ U1.T + b1, lam2 @ U2)
    np.testing.assert_allclose(dx, lam1 @ U1, rtol=0, atol=1e-9 * max(1, np.abs(lam1).max()))
