"""Exact gradients of linear networks against the graph-theoretic (cycle-space
projector) form of Kirchhoff's laws used by Lin, Desai, Barrows & Caravelli.

Every element is a branch a -> b with a resistance R_e and a series source: its
drop is v_a - v_b = R_e i_e + e_e (a voltage source clamping node c is a branch
c -> ground with R = 0 and e = V_c). With B a basis of the cycle space (B A^T = 0
for the incidence matrix A), KCL makes the currents i = B^T j and KVL makes
B (R i + e) = 0, so with s = -e

    i = B^T (B R B^T)^{-1} B s,          di/dR_k = -B^T (B R B^T)^{-1} B e_k i_k,

which involves no node voltages and no Laplacian at all: an independent reference
for the nodal adjoint of ``method="exact"``.
"""

import numpy as np
import ohmflow as of
import pytest
from scipy.linalg import null_space


def _random_linear(seed, n=9, extra=10):
    rng = np.random.default_rng(seed)
    edges = [(i, int(rng.integers(0, i))) for i in range(1, n + 1)]  # tree over 0..n
    while len(edges) < n + extra:
        a, b = rng.choice(np.arange(1, n + 1), 2, replace=False)
        edges.append((int(a), int(b)))
    r = rng.uniform(200.0, 5000.0, len(edges))
    clamps = {1: 1.3, 2: -0.4}
    return edges, r, clamps


@pytest.mark.parametrize("seed", range(6))
def test_exact_gradient_equals_projector_formula(seed):
    edges, r, clamps = _random_linear(seed)
    n = 1 + max(max(e) for e in edges)
    out = n - 1  # the output: the drop across the last resistor, a resistor o
    o = len(edges) - 1
    target = 0.05
    # Branch list for the projector: resistors, then source branches 0 -> c.
    branches = list(edges) + [(c, 0) for c in clamps]
    rr = np.concatenate([r, np.zeros(len(clamps))])
    s = -np.concatenate([np.zeros(len(edges)), list(clamps.values())])
    inc = np.zeros((n, len(branches)))
    for k, (a, b) in enumerate(branches):
        inc[a, k] += 1.0
        inc[b, k] -= 1.0
    basis = null_space(inc[1:]).T  # cycle space: B A^T = 0
    m = basis @ np.diag(rr) @ basis.T
    proj = basis.T @ np.linalg.solve(m, basis)  # B^T (B R B^T)^{-1} B
    i = proj @ s
    # Output: the voltage drop across resistor o, in its a -> b direction.
    v_o = rr[o] * i[o]
    dC_dR = np.empty(len(edges))
    for k in range(len(edges)):
        di = -proj[:, k] * i[k]
        dv_o = (1.0 if k == o else 0.0) * i[o] + rr[o] * di[o]
        dC_dR[k] = (v_o - target) * dv_o
    dC_dg = -(r**2) * dC_dR
    # The same network in ohmflow, loss on the differential output (a_o, b_o).
    net = of.Network()
    net.add_nodes(n - 1)
    net.add_resistors([a for a, _ in edges], [b for _, b in edges], 1.0 / r)
    for c, val in clamps.items():
        net.add_voltage_source(c, val)
    sol = net.solve()
    # Sanity: the projector currents are Kirchhoff's currents.
    np.testing.assert_allclose(sol.currents, i[: len(edges)], rtol=0,
                               atol=1e-12 * np.max(np.abs(i)))
    a_o, b_o = edges[o]
    g = net.gradient([[target]], "exact", outputs=[(a_o, b_o)])
    assert out >= 1
    np.testing.assert_allclose(g, dC_dg, rtol=0, atol=1e-10 * np.max(np.abs(dC_dg)))
