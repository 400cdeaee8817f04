"""Ideal transformers and gyrators (the MNA / sparse-LU path).

Conventions under test (``ohmflow.Network.add_transformer`` / ``add_gyrator``):
v = V(p) − V(n) of each port, i = the current flowing *into* the port's +
terminal from the circuit. Transformer: v2 = a v1, i1 = −a i2. Gyrator:
i1 = g v2, i2 = −g v1. ``Solution.transformer_currents`` is i1.

References, all independent of the code under test:

* a dense modified-nodal-analysis solve assembled here with numpy (linear
  networks with resistors, V and I sources, transformers and gyrators);
* ngspice on random netlists with Shockley diodes, transformers (E + sense V +
  F) and gyrators (two G), written by ``to_spice``;
* brute-force enumeration of the conducting sets of small ideal-diode +
  gyrator networks, each candidate solved densely with numpy;
* central finite differences of the solver for the exact (adjoint) gradients.
"""

from __future__ import annotations

import itertools
import pathlib
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import ohmflow as of  # noqa: E402
from reference.ngspice import run_ngspice  # noqa: E402

SETTINGS = dict(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------
# random networks and a dense numpy reference
# --------------------------------------------------------------------------


def random_network(seed: int, n: int, *, n_tr: int = 2, n_gy: int = 2, n_shockley: int = 0,
                   n_isrc: int = 2, n_vsrc: int = 2, n_ideal: int = 0, n_relu: int = 0,
                   g_scale: float = 1e-3, series: bool = False) -> of.Network:
    """Nodes n1..n{n}: a resistor spanning tree with ground (so nothing floats),
    extra resistors, sources, transformers and gyrators between random nodes
    (ground allowed), optional diodes (``series``: each junction behind a series
    resistor through its own internal node, as a physical diode's RS)."""
    rng = np.random.default_rng(seed)
    net = of.Network()
    net.add_nodes(n, [f"n{i}" for i in range(1, n + 1)])
    for k in range(1, n + 1):
        parent = int(rng.integers(0, k))
        net.add_resistor(k, parent, float(g_scale * rng.uniform(0.2, 5)))
    for _ in range(n // 2):
        a, b = rng.choice(n + 1, 2, replace=False)
        net.add_resistor(int(a), int(b), float(g_scale * rng.uniform(0.2, 5)))
    clamped = rng.choice(np.arange(1, n + 1), min(n_vsrc, n - 1), replace=False)
    for c in clamped:
        net.add_voltage_source(int(c), float(rng.uniform(-2, 2)))
    for _ in range(n_isrc):
        a, b = rng.choice(n + 1, 2, replace=False)
        net.add_current_source(int(a), int(b), float(g_scale * rng.uniform(-1, 1)))

    def port():
        return [int(x) for x in rng.choice(n + 1, 2, replace=False)]

    # Each transformer gets a private free node p2 (in no other transformer): the
    # constraints v2 = a v1 are then independent (no over-determined port).
    used = set(int(c) for c in clamped)
    free = [k for k in range(1, n + 1) if k not in used]
    for _ in range(n_tr):
        if not free:
            break
        p2 = free.pop(int(rng.integers(0, len(free))))
        others = [k for k in range(n + 1) if k != p2]
        n2 = int(rng.choice(others))
        p1, n1 = (int(x) for x in rng.choice(others, 2, replace=False))
        used.update((p1, n1, n2))
        free = [k for k in free if k not in used]
        a = float(rng.choice([-1, 1]) * rng.uniform(0.3, 3))
        net.add_transformer(p1, n1, p2, n2, a)
    for _ in range(n_gy):
        p1, n1 = port()
        p2, n2 = port()
        net.add_gyrator(p1, n1, p2, n2, float(g_scale * rng.uniform(-3, 3)))
    for _ in range(n_shockley):
        a, b = port()
        if series:
            m = net.add_node()
            net.add_resistor(a, m, float(10 * g_scale * rng.uniform(0.5, 2)))
            a = m
        net.add_diode(a, b, of.ShockleyDiode(i_s=float(10 ** rng.uniform(-15, -12)),
                                             n=float(rng.uniform(1, 2))))
    for _ in range(n_ideal):
        a, b = port()
        net.add_diode(a, b, of.IdealDiode(float(rng.uniform(-0.3, 0.3))))
    for _ in range(n_relu):
        a, b = port()
        net.add_diode(a, b, of.ReluDiode(g_on=float(g_scale * rng.uniform(1, 5)),
                                         v_on=float(rng.uniform(-0.3, 0.3))))
    return net


def dense_matrix(net: of.Network) -> np.ndarray:
    """The dense MNA matrix (ground row and column dropped): node voltages, then
    voltage-source currents (leaving the node into the + terminal), then the
    port-2 current j = i2 of each transformer."""
    n = net.n_nodes
    nv, nt = net._core.n_voltage_sources, net.n_transformers
    dim = (n - 1) + nv + nt
    A = np.zeros((dim + 1, dim + 1))
    ra, rb = net.resistor_nodes
    for a, b, g in zip(ra, rb, net.conductances):
        A[a, a] += g
        A[b, b] += g
        A[a, b] -= g
        A[b, a] -= g
    for k, node in enumerate(net.voltage_source_nodes):
        A[node, n + k] += 1
        A[n + k, node] = 1
    for t, ((p1, n1, p2, n2), a) in enumerate(zip(net.transformer_nodes,
                                                 net.transformer_ratios)):
        col = n + nv + t
        # KCL: j leaves p2 and enters n2; i1 = −a j leaves p1. Row: v2 − a v1 = 0.
        for r, c in ((p2, 1), (n2, -1), (p1, -a), (n1, a)):
            A[r, col] += c
            A[col, r] += c
    for (p1, n1, p2, n2), g in zip(net.gyrator_nodes, net.gyrator_conductances):
        for r, s in ((p1, 1), (n1, -1)):  # i1 = g v2 leaves p1
            A[r, p2] += s * g
            A[r, n2] -= s * g
        for r, s in ((p2, 1), (n2, -1)):  # i2 = −g v1 leaves p2
            A[r, p1] -= s * g
            A[r, n1] += s * g
    return A[1:, 1:]


def dense_rhs(net: of.Network) -> np.ndarray:
    n = net.n_nodes
    rhs = np.zeros(n + net._core.n_voltage_sources + net.n_transformers)
    ia, ib, iv = net._core.current_sources()
    for a, b, c in zip(ia, ib, iv):  # c leaves a, enters b
        rhs[a] -= c
        rhs[b] += c
    for k, val in enumerate(net.voltage_source_values):
        rhs[n + k] = val
    return rhs[1:]


def dense_mna(net: of.Network):
    """Linear networks only: voltages, voltage-source currents (into +) and
    transformer currents i1, from the dense system solved with numpy."""
    n, nv = net.n_nodes, net._core.n_voltage_sources
    x = np.linalg.solve(dense_matrix(net), dense_rhs(net))
    v = np.concatenate([[0.0], x[: n - 1]])
    return v, x[n - 1: n - 1 + nv], -net.transformer_ratios * x[n - 1 + nv:]


def port_quantities(net: of.Network, sol):
    """(v1, i1, v2, i2) of every transformer and gyrator, from the solution."""
    v = np.atleast_2d(sol.voltages)
    out = {}
    q, a = net.transformer_nodes, net.transformer_ratios
    if len(a):
        i1 = np.atleast_2d(sol.transformer_currents)
        out["tr"] = (v[:, q[:, 0]] - v[:, q[:, 1]], i1, v[:, q[:, 2]] - v[:, q[:, 3]], -i1 / a)
    q, g = net.gyrator_nodes, net.gyrator_conductances
    if len(g):
        v1 = v[:, q[:, 0]] - v[:, q[:, 1]]
        v2 = v[:, q[:, 2]] - v[:, q[:, 3]]
        out["gy"] = (v1, g * v2, v2, -g * v1)
    return out


def node_balance(net: of.Network, sol):
    """Currents leaving every node into the elements (sources included), and
    the largest current magnitude at each node; one sample."""
    n = net.n_nodes
    v = np.asarray(sol.voltages)
    r = np.zeros(n)
    scale = np.zeros(n)

    def put(a, b, i):
        np.add.at(r, a, i)
        np.add.at(r, b, -i)
        np.maximum.at(scale, a, np.abs(i))
        np.maximum.at(scale, b, np.abs(i))

    ra, rb = net.resistor_nodes
    put(ra, rb, net.conductances * (v[ra] - v[rb]))
    if net.n_diodes:
        da, db = net.diode_nodes
        put(da, db, np.asarray(sol.diode_currents))
    ia, ib, iv = net._core.current_sources()
    put(ia, ib, iv)
    vn = net.voltage_source_nodes
    put(vn, np.zeros_like(vn), np.asarray(sol.source_currents))
    for key, (_v1, i1, _v2, i2) in port_quantities(net, sol).items():
        q = net.transformer_nodes if key == "tr" else net.gyrator_nodes
        put(q[:, 0], q[:, 1], i1[0])
        put(q[:, 2], q[:, 3], i2[0])
    return r, scale


# --------------------------------------------------------------------------
# element laws, KCL, Tellegen, dense reference
# --------------------------------------------------------------------------


def test_transformer_reflects_its_load():
    """A load R on the secondary of a 1:a transformer looks like R / a² from the
    primary (hand calculation)."""
    net = of.Network()
    a, b, c = net.add_node("a"), net.add_node("b"), net.add_node("c")
    net.add_voltage_source(a, 1.0)
    net.add_resistor(a, b, resistance=1000.0)
    net.add_transformer(b, of.GROUND, c, of.GROUND, -2.0, name="T1")
    net.add_resistor(c, of.GROUND, resistance=500.0)
    sol = net.solve()
    vb = 125.0 / 1125.0
    assert sol.voltage("b") == pytest.approx(vb, rel=1e-13)
    assert sol.voltage("c") == pytest.approx(-2 * vb, rel=1e-13)
    assert sol.transformer_currents[0] == pytest.approx((1 - vb) / 1000.0, rel=1e-12)
    assert net.transformer_names == ["T1"] and net.n_transformers == 1


def test_gyrator_inverts_its_load():
    """A gyrator loaded by G_L presents g² / G_L at its input (hand calculation)."""
    net = of.Network()
    a, b, c = net.add_node("a"), net.add_node("b"), net.add_node("c")
    net.add_voltage_source(a, 1.0)
    net.add_resistor(a, b, 1.0)
    net.add_gyrator(b, of.GROUND, c, of.GROUND, 2.0)
    net.add_resistor(c, of.GROUND, 0.5)
    sol = net.solve()
    assert sol.voltage("b") == pytest.approx(1.0 / 9.0, rel=1e-13)
    # i2 = -g v1 into c; the load carries it: v_c = g v1 / G_L.
    assert sol.voltage("c") == pytest.approx(2.0 * (1.0 / 9.0) / 0.5, rel=1e-13)


@settings(max_examples=60, **SETTINGS)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 25), n_tr=st.integers(0, 4),
       n_gy=st.integers(0, 4))
def test_linear_networks_match_dense_mna(seed, n, n_tr, n_gy):
    net = random_network(seed, n, n_tr=n_tr, n_gy=n_gy)
    if net.n_transformers + net.n_gyrators == 0:
        net.add_gyrator(1, 0, n, 0, 1e-3)
    try:
        v_ref, i_ref, t_ref = dense_mna(net)
    except np.linalg.LinAlgError:
        # Two transformers forcing one port pair to two ratios: no solution.
        with pytest.raises(of.OhmflowError):
            net.solve()
        return
    if not np.all(np.isfinite(v_ref)) or np.linalg.cond(dense_matrix(net)) > 1e12:
        return  # ill-posed draw (e.g. parallel transformers): nothing to compare
    sol = net.solve()
    vs = max(1.0, np.max(np.abs(v_ref)))
    np.testing.assert_allclose(sol.voltages, v_ref, rtol=0, atol=1e-9 * vs)
    iscale = max(np.max(np.abs(i_ref), initial=0), np.max(np.abs(t_ref), initial=0), 1e-6)
    np.testing.assert_allclose(sol.source_currents, i_ref, rtol=0, atol=1e-8 * iscale)
    np.testing.assert_allclose(sol.transformer_currents, t_ref, rtol=0, atol=1e-8 * iscale)
    # KCL at every free node, from the reported currents.
    r, scale = node_balance(net, sol)
    free = np.ones(net.n_nodes, bool)
    free[0] = False
    free[net.voltage_source_nodes] = False
    # rtol on the currents at the node plus the rounding floor of a branch current
    # (64 eps × conductance × the largest voltage), as the solver's own criterion.
    gmax = max(np.max(net.conductances), np.max(np.abs(net.gyrator_conductances), initial=0))
    floor = 64 * np.finfo(float).eps * gmax * vs * (1 + np.max(np.abs(net.transformer_ratios),
                                                                initial=0))
    assert np.all(np.abs(r[free]) <= 1e-10 * scale[free] + floor)


@settings(max_examples=40, **SETTINGS)
@given(seed=st.integers(0, 10**6), n=st.integers(3, 20))
def test_laws_kcl_and_tellegen_with_diodes(seed, n):
    """Shockley, ReLU and ideal diodes with transformers and gyrators: KCL at every
    free node, v2 = a v1, lossless ports, and Tellegen's theorem (the power of all
    elements sums to zero) from the reported currents."""
    net = random_network(seed, n, n_tr=2, n_gy=2, n_shockley=2, n_relu=2, n_ideal=1,
                         series=True)
    try:
        sol = net.solve()
    except (of.InfeasibleError, of.ConvergenceError):
        # Only when the sources and transformers force an ideal diode beyond its
        # threshold (checked by a linear program; transformer-made infeasibility is
        # reported as a ConvergenceError, see the MNA module's documentation).
        assert not ideal_constraints_feasible(net)
        return
    v = sol.voltages
    r, scale = node_balance(net, sol)
    free = np.ones(net.n_nodes, bool)
    free[0] = False
    free[net.voltage_source_nodes] = False
    ra, rb = net.resistor_nodes
    floor = 1e-12 * np.max(net.conductances) * max(1.0, np.max(np.abs(v)))
    assert np.all(np.abs(r[free]) <= 1e-9 * scale[free] + floor), np.max(np.abs(r[free]))
    ports = port_quantities(net, sol)
    v1, i1, v2, i2 = ports["tr"]
    np.testing.assert_allclose(v2, net.transformer_ratios * v1, rtol=0,
                               atol=1e-11 * max(1.0, np.max(np.abs(v))))
    for v1, i1, v2, i2 in ports.values():
        assert np.allclose(v1 * i1 + v2 * i2, 0.0, atol=1e-12 * np.max(np.abs(i1)) + 1e-300)
    # Tellegen: Σ V_terminal × I_into_element over every element is zero.
    da, db = net.diode_nodes
    ia, ib, iv = net._core.current_sources()
    terms = [net.conductances * (v[ra] - v[rb]) ** 2,
             (v[da] - v[db]) * sol.diode_currents,
             iv * (v[ia] - v[ib]),
             v[net.voltage_source_nodes] * sol.source_currents]
    for v1, i1, v2, i2 in ports.values():
        terms += [(v1 * i1)[0], (v2 * i2)[0]]
    power = sum(np.sum(t) for t in terms)
    total = sum(np.sum(np.abs(t)) for t in terms)
    assert abs(power) <= 1e-9 * max(total, 1e-12)
    # Diode laws.
    for k, m in enumerate(net.diode_models):
        dv, i = v[da[k]] - v[db[k]], sol.diode_currents[k]
        if isinstance(m, of.IdealDiode):
            assert i >= 0 and dv <= m.v_on + 1e-12
            assert i == 0 or abs(dv - m.v_on) <= 1e-12
        elif isinstance(m, of.ReluDiode):
            assert i == pytest.approx(m.g_on * max(dv - m.v_on, 0.0), abs=1e-12 * (1 + abs(i)))


def test_batch_and_threads_agree_with_single_solves():
    net = random_network(3, 12, n_shockley=2, n_relu=2)
    x = np.random.default_rng(0).uniform(-1, 1, (7, 2))
    inputs = net.copy()
    nodes = [n for n in range(1, 13) if n not in set(net.voltage_source_nodes)][:2]
    for node in nodes:
        inputs.add_input(int(node))
    batch = inputs.solve(x)
    serial = inputs.solve(x, threads=1)
    np.testing.assert_array_equal(batch.voltages, serial.voltages)
    for s in range(len(x)):
        one = inputs.solve(x[s])
        np.testing.assert_allclose(batch.voltages[s], one.voltages, rtol=0, atol=1e-13)
        np.testing.assert_allclose(batch.transformer_currents[s], one.transformer_currents,
                                   rtol=1e-12, atol=1e-18)
    assert batch.transformer_currents.shape == (7, net.n_transformers)


# --------------------------------------------------------------------------
# ideal diodes with gyrators: brute-force reference
# --------------------------------------------------------------------------


def ideal_constraints_feasible(net: of.Network) -> bool:
    """Whether some node voltages meet the clamps, the transformer laws and every
    ideal diode's Δv ≤ v_on (scipy's linprog on a zero objective)."""
    from scipy.optimize import linprog

    n = net.n_nodes
    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    row = np.zeros(n)
    row[0] = 1
    a_eq.append(row)
    b_eq.append(0.0)
    for node, val in zip(net.voltage_source_nodes, net.voltage_source_values):
        row = np.zeros(n)
        row[node] = 1
        a_eq.append(row)
        b_eq.append(val)
    for (p1, n1, p2, n2), a in zip(net.transformer_nodes, net.transformer_ratios):
        row = np.zeros(n)
        row[p2] += 1
        row[n2] -= 1
        row[p1] -= a
        row[n1] += a
        a_eq.append(row)
        b_eq.append(0.0)
    da, db = net.diode_nodes
    for k, m in enumerate(net.diode_models):
        if isinstance(m, of.IdealDiode):
            row = np.zeros(n)
            row[da[k]] += 1
            row[db[k]] -= 1
            a_ub.append(row)
            b_ub.append(m.v_on)
    res = linprog(np.zeros(n), A_ub=np.array(a_ub) if a_ub else None,
                  b_ub=b_ub if b_ub else None, A_eq=np.array(a_eq), b_eq=b_eq,
                  bounds=[(None, None)] * n, method="highs")
    return res.status == 0


def brute_force_ideal(net: of.Network):
    """Enumerates the conducting sets of the ideal diodes; each candidate is a
    dense linear solve (conducting: Δv = v_on with a current unknown, else open);
    returns (v, diode currents) of the candidates meeting every sign condition."""
    n = net.n_nodes
    da, db = net.diode_nodes
    v_on = np.array([m.v_on for m in net.diode_models])
    nd = len(da)
    found = []
    for active in itertools.product([False, True], repeat=nd):
        act = [k for k in range(nd) if active[k]]
        base = dense_matrix(net)
        m0 = base.shape[0]
        A = np.zeros((m0 + len(act), m0 + len(act)))
        A[:m0, :m0] = base
        rhs = np.zeros(m0 + len(act))
        rhs[:m0] = dense_rhs(net)
        for j, k in enumerate(act):
            col = m0 + j
            for node, s in ((da[k], 1.0), (db[k], -1.0)):
                if node:
                    A[node - 1, col] += s
                    A[col, node - 1] += s
            rhs[col] = v_on[k]
        if np.linalg.cond(A) > 1e12:
            continue  # e.g. a conducting diode between two clamped nodes
        x = np.linalg.solve(A, rhs)
        v = np.concatenate([[0.0], x[: n - 1]])
        mu = np.zeros(nd)
        mu[act] = x[m0:]
        dv = v[da] - v[db]
        ok = all(mu[k] >= -1e-12 for k in act) and all(
            dv[k] <= v_on[k] + 1e-12 for k in range(nd) if not active[k])
        if ok:
            found.append((v, mu))
    return found


@settings(max_examples=60, **SETTINGS)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 7), n_ideal=st.integers(1, 4))
def test_ideal_diodes_with_gyrators_match_enumeration(seed, n, n_ideal):
    net = random_network(seed, n, n_tr=0, n_gy=2, n_ideal=n_ideal, n_vsrc=1, n_isrc=2,
                         g_scale=1.0)
    found = brute_force_ideal(net)
    try:
        sol = net.solve()
    except of.InfeasibleError:
        assert not found
        return
    assert found, "the solver found an operating point where enumeration finds none"
    # The voltages are unique (strong monotonicity); every candidate agrees.
    for v, _mu in found:
        np.testing.assert_allclose(sol.voltages, v, rtol=0, atol=1e-10)
    v, mu = found[0]
    if len(found) == 1:
        np.testing.assert_allclose(sol.diode_currents, mu, rtol=0, atol=1e-9)
    # Complementarity is exact: an off diode carries exactly zero current.
    da, db = net.diode_nodes
    dv = sol.voltages[da] - sol.voltages[db]
    v_on = np.array([m.v_on for m in net.diode_models])
    i = sol.diode_currents
    assert np.all(i >= 0)
    assert np.all((i == 0) | (np.abs(dv - v_on) <= 1e-12))
    assert np.all(dv <= v_on + 1e-12)


def test_gyrator_cycle_prone_lcp_converges():
    """A strongly nonsymmetric coupling (gyrators much stronger than the
    resistors) between ideal diodes: the active-set iteration must not cycle."""
    net = of.Network()
    k = 6
    nodes = net.add_nodes(k)
    rng = np.random.default_rng(5)
    net.add_resistors(nodes, np.zeros(k, dtype=np.int64), np.full(k, 0.05))
    for i in range(k):
        for j in range(i + 1, k):
            net.add_gyrator(int(nodes[i]), 0, int(nodes[j]), 0, float(rng.normal()))
        net.add_current_source(0, int(nodes[i]), float(rng.normal()))
        net.add_diode(int(nodes[i]), 0, of.IdealDiode(0.0))
    sol = net.solve()
    found = brute_force_ideal(net)
    assert len(found) >= 1
    np.testing.assert_allclose(sol.voltages, found[0][0], rtol=0, atol=1e-10)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


def test_floating_secondary_is_an_error_naming_its_nodes():
    net = of.Network()
    a, b, c, d = (net.add_node(x) for x in "abcd")
    net.add_voltage_source(a, 1.0)
    net.add_resistor(a, b, 1.0)
    net.add_resistor(b, of.GROUND, 1.0)
    net.add_transformer(b, of.GROUND, c, d, 2.0)
    net.add_resistor(c, d, 1.0)  # the secondary loop: no path to ground
    with pytest.raises(of.FloatingNodeError) as e:
        net.solve()
    assert sorted(e.value.nodes) == [c, d]
    net.add_resistor(d, of.GROUND, 1.0)  # anchoring one side fixes it
    sol = net.solve()
    assert sol.voltage("c") - sol.voltage("d") == pytest.approx(2 * sol.voltage("b"), rel=1e-12)
    # Gyrators do not connect their two sides either.
    g = of.Network()
    x, y, z = g.add_node("x"), g.add_node("y"), g.add_node("z")
    g.add_resistor(x, of.GROUND, 1.0)
    g.add_current_source(of.GROUND, x, 1.0)
    g.add_gyrator(x, of.GROUND, y, z, 1.0)
    g.add_resistor(y, z, 1.0)
    with pytest.raises(of.FloatingNodeError) as e:
        g.solve()
    assert sorted(e.value.nodes) == [y, z]


def test_a_port_with_a_grounded_terminal_anchors_the_other():
    """y touches only port 2 of a gyrator (y, ground): KCL at y forces
    i2 = −g v_x = 0, so v_x = 0 and the 1 A source flows into port 1:
    i1 = g v_y = 1 A (hand calculation). Likewise a transformer secondary with one
    grounded terminal and nothing else: v_w = a v_x, no current."""
    g = of.Network()
    x, y = g.add_node("x"), g.add_node("y")
    g.add_resistor(x, of.GROUND, 1.0)
    g.add_current_source(of.GROUND, x, 1.0)
    g.add_gyrator(x, of.GROUND, y, of.GROUND, 0.5)
    sol = g.solve()
    assert sol.voltage("x") == pytest.approx(0.0, abs=1e-15)
    assert sol.voltage("y") == pytest.approx(1.0 / 0.5, rel=1e-14)
    t = of.Network()
    x, w = t.add_node("x"), t.add_node("w")
    t.add_voltage_source(x, 0.7)
    t.add_transformer(x, of.GROUND, w, of.GROUND, -3.0)
    sol = t.solve()
    assert sol.voltage("w") == pytest.approx(-2.1, rel=1e-14)
    assert sol.transformer_currents[0] == 0.0 and sol.source_currents[0] == 0.0


@pytest.mark.parametrize("ratio", [0.0, np.nan, np.inf, -np.inf])
def test_bad_ratio_is_invalid(ratio):
    net = of.Network()
    a, b = net.add_node(), net.add_node()
    with pytest.raises(of.InvalidNetworkError):
        net.add_transformer(a, 0, b, 0, ratio)
    assert net.n_transformers == 0
    net.add_transformer(a, 0, b, 0, 1.0)
    with pytest.raises(of.InvalidNetworkError):
        net.transformer_ratios = [ratio]


def test_bad_two_port_input_is_invalid():
    net = of.Network()
    a, b = net.add_node(), net.add_node()
    for bad in (lambda: net.add_gyrator(a, a, b, 0, 1.0),
                lambda: net.add_gyrator(a, 0, b, 0, np.nan),
                lambda: net.add_transformer(a, 0, 7, 0, 1.0),
                lambda: net.add_transformers([a, a], [0], [b], [0], [1.0, 2.0])):
        with pytest.raises(of.InvalidNetworkError):
            bad()
    assert net.n_gyrators == 0 and net.n_transformers == 0


def test_conflicting_transformers_raise_a_typed_error():
    """Two transformers fixing one port pair to two ratios have no solution."""
    net = of.Network()
    a, b = net.add_node("a"), net.add_node("b")
    net.add_voltage_source(a, 1.0)
    net.add_resistor(b, of.GROUND, 1.0)
    net.add_transformer(a, of.GROUND, b, of.GROUND, 2.0)
    net.add_transformer(a, of.GROUND, b, of.GROUND, 3.0)
    with pytest.raises(of.OhmflowError):
        net.solve()


def test_layered_method_is_refused():
    net = random_network(1, 5)
    with pytest.raises(of.InvalidNetworkError, match="transformers or gyrators"):
        net.solve(method="layered")


# --------------------------------------------------------------------------
# copy, setters
# --------------------------------------------------------------------------


def test_copy_and_setters():
    net = random_network(2, 8)
    twin = net.copy()
    assert twin.n_transformers == net.n_transformers == 2
    assert twin.n_gyrators == net.n_gyrators == 2
    np.testing.assert_array_equal(twin.solve().voltages, net.solve().voltages)
    twin.gyrator_conductances = 2 * net.gyrator_conductances
    twin.transformer_ratios = -net.transformer_ratios
    assert not np.allclose(twin.solve().voltages, net.solve().voltages)
    np.testing.assert_allclose(twin.solve().voltages, dense_mna(twin)[0], rtol=0, atol=1e-10)
    np.testing.assert_array_equal(net.gyrator_conductances * 2, twin.gyrator_conductances)


# --------------------------------------------------------------------------
# SPICE
# --------------------------------------------------------------------------

RTOL = 1e-6
V_FLOOR = 1e-3


@pytest.mark.parametrize("seed, n", [(0, 6), (1, 10), (2, 20), (3, 30), (4, 15), (5, 40)])
def test_agrees_with_ngspice(seed, n):
    """Random resistors, Shockley diodes, transformers, gyrators, V and I sources:
    to_spice → ngspice against ohmflow's own solve (the tolerances of
    tests/test_ngspice_agreement.py)."""
    net = random_network(seed, n, n_tr=3, n_gy=3, n_shockley=max(2, n // 4))
    text = net.to_spice()
    ng = run_ngspice(text)
    sol = net.solve()
    names = net.node_names[1:]
    v_of = np.array([sol.voltage(k) for k in names])
    v_ng = np.array([ng.voltages[k.lower()] for k in names])
    err = np.abs(v_of - v_ng)
    assert np.all(err <= RTOL * np.maximum(np.abs(v_ng), V_FLOOR)), np.max(err)
    for name, i in zip(net.transformer_names, sol.transformer_currents):
        i2 = ng.currents[f"v{name}#sense".lower()]  # the sense source carries i2
        a = net.transformer_ratios[net.transformer_names.index(name)]
        assert i == pytest.approx(-a * i2, rel=RTOL, abs=1e-15)
    for name, i in zip(net.voltage_source_names, sol.source_currents):
        assert i == pytest.approx(ng.currents[name.lower()], rel=RTOL, abs=1e-15)
    # the diodes see both regimes on the larger draws
    if n >= 20:
        da, db = net.diode_nodes
        dv = sol.voltages[da] - sol.voltages[db]
        assert np.any(dv > 0.3)


def test_spice_round_trip():
    net = random_network(7, 12, n_tr=3, n_gy=3, n_shockley=2)
    text = net.to_spice()
    back = of.read_spice(text)
    assert back.n_transformers == 3 and back.n_gyrators == 3
    assert back.transformer_names == [x.lower() for x in net.transformer_names]
    assert back.gyrator_names == [x.lower() for x in net.gyrator_names]
    assert sorted(back.node_names) == sorted(net.node_names)  # no internal sense node
    np.testing.assert_array_equal(back.transformer_ratios, net.transformer_ratios)
    np.testing.assert_array_equal(back.gyrator_conductances, net.gyrator_conductances)
    s0, s1 = net.solve(), back.solve()
    for k in net.node_names[1:]:
        assert s1.voltage(k) == pytest.approx(s0.voltage(k), rel=1e-12, abs=1e-15)
    # Writing the read network again gives the same netlist up to case.
    assert back.to_spice().lower() == text.lower()


@pytest.mark.parametrize("seed, n", [(11, 10), (12, 25)])
def test_impedance_form_agrees_with_ngspice(seed, n):
    """to_spice(gyrators="ccvs") writes each gyrator as two H elements with 0 V
    sense sources: ngspice's operating point matches ohmflow's solve, the sense
    sources carry i1 = g v2 and i2 = −g v1, and read_spice reads the netlist back
    to the same gyrators."""
    net = random_network(seed, n, n_tr=2, n_gy=3, n_shockley=max(2, n // 4))
    text = net.to_spice(gyrators="ccvs")
    assert "\nG" not in text and text.count("\nH") == 2 * net.n_gyrators
    ng = run_ngspice(text)
    sol = net.solve()
    names = net.node_names[1:]
    v_of = np.array([sol.voltage(k) for k in names])
    v_ng = np.array([ng.voltages[k.lower()] for k in names])
    err = np.abs(v_of - v_ng)
    assert np.all(err <= RTOL * np.maximum(np.abs(v_ng), V_FLOOR)), np.max(err)
    v = sol.voltages
    for name, (p1, n1, p2, n2), g in zip(net.gyrator_names, net.gyrator_nodes,
                                         net.gyrator_conductances):
        i1, i2 = ng.currents[f"v{name}#1".lower()], ng.currents[f"v{name}#2".lower()]
        assert i1 == pytest.approx(g * (v[p2] - v[n2]), rel=RTOL, abs=1e-12)
        assert i2 == pytest.approx(-g * (v[p1] - v[n1]), rel=RTOL, abs=1e-12)
    back = of.read_spice(text)
    assert back.n_gyrators == net.n_gyrators and back.n_transformers == net.n_transformers
    assert back.gyrator_names == [x.lower() for x in net.gyrator_names]
    assert sorted(back.node_names) == sorted(net.node_names)  # no internal sense node
    np.testing.assert_array_equal(back.gyrator_nodes, net.gyrator_nodes)
    # g → 1/g written with 17 digits → 1/(1/g): equal up to rounding.
    np.testing.assert_allclose(back.gyrator_conductances, net.gyrator_conductances,
                               rtol=4e-16, atol=0)
    s1 = back.solve()
    for k in names:
        assert s1.voltage(k) == pytest.approx(sol.voltage(k), rel=1e-12, abs=1e-15)


def test_impedance_form_refuses_a_null_gyrator_and_unknown_forms():
    net = of.Network()
    a, b = net.add_node("a"), net.add_node("b")
    net.add_resistor(a, of.GROUND, resistance=1e3)
    net.add_resistor(b, of.GROUND, resistance=1e3)
    net.add_gyrator(a, of.GROUND, b, of.GROUND, 0.0, name="Y")
    # The default form is unchanged: two G elements, no H.
    text = net.to_spice()
    assert text.count("\nG") == 2 and "\nH" not in text
    with pytest.raises(of.InvalidNetworkError, match="g = 0"):
        net.to_spice(gyrators="ccvs")
    with pytest.raises(of.InvalidNetworkError, match="gyrators="):
        net.to_spice(gyrators="h")


HAND = """* hand-written two-ports
V1 a 0 DC 1
R1 a b 1k
R2 c 0 500
R3 d 0 2k
Vs b x 0
Ex x 0 c 0 0.5
Fx 0 c Vs 0.5
Gp d 0 a 0 2m
Gq 0 a d 0 2m
.end
"""


def test_read_spice_recognises_both_series_orders_and_signs():
    """The sense source may sit above the E element (port 2 = b, 0 here), the F
    may be written with the other orientation (gain −a), and the G pair with its
    own signs: i1 = g v2 into d, i2 = −g v1 into a with g = 2m."""
    net = of.read_spice(HAND)
    assert net.n_transformers == 1 and net.n_gyrators == 1
    q = net.transformer_nodes[0]
    names = net.node_names
    assert [names[i] for i in q] == ["c", "0", "b", "0"]
    assert net.transformer_ratios[0] == 0.5
    qg = net.gyrator_nodes[0]
    assert [names[i] for i in qg] == ["d", "0", "a", "0"]
    assert net.gyrator_conductances[0] == pytest.approx(2e-3)
    ng = run_ngspice(HAND.replace(".end", ".options reltol=1e-9 abstol=1e-18 vntol=1e-12\n"
                                               ".op\n.end"))
    sol = net.solve()
    for k in "abcd":
        assert sol.voltage(k) == pytest.approx(ng.voltages[k], rel=RTOL, abs=1e-9)


@pytest.mark.parametrize("line, text", [
    (3, "E1 b 0 a 0 2"),
    (3, "F1 b 0 V1 2"),
    (3, "G1 b 0 a 0 1m"),
    (3, "H1 b 0 V1 1k"),
])
def test_other_controlled_sources_are_rejected_with_the_line(line, text):
    netlist = f"* t\nV1 a 0 DC 1\n{text}\nR1 a b 1k\nR2 b 0 1k\n.end\n"
    with pytest.raises(of.SpiceParseError) as e:
        of.read_spice(netlist)
    assert e.value.line == line
    assert "transformer" in str(e.value) and "gyrator" in str(e.value)


def test_mismatched_transformer_ratio_is_rejected():
    bad = HAND.replace("Fx 0 c Vs 0.5", "Fx 0 c Vs 0.25")
    with pytest.raises(of.SpiceParseError) as e:
        of.read_spice(bad)
    assert e.value.line == 8


H_PAIR = """* gyrator in impedance form (two H elements) with Shockley diodes
V1 a 0 DC 5
I1 0 d 0.5m
R1 a b 1k
R2 b 0 3k
Vs1 b x1 0
Hy x1 e Vs2 -500
Hz c x2 Vs1 500
Vs2 x2 0 0
R3 c d 2k
R4 d 0 1k
R5 e 0 1.5k
D1 c 0 dm
D2 e d dm
.model dm D(IS=1e-12 N=1.2)
.end
"""


def test_read_spice_recognises_an_h_pair_gyrator():
    """Port 1 (b, e): Vs1 senses i1 into b, Hy forces v1 = −500·I(Vs2) = −i2/g.
    Port 2 (c, 0): Hz sits above its sense source Vs2, v2 = 500·I(Vs1) = i1/g,
    so g = 1/500 S. The read network equals (a) the circuit built by hand with
    add_gyrator and (b) ngspice's own operating point of the netlist."""
    net = of.read_spice(H_PAIR)
    assert net.n_gyrators == 1 and net.n_transformers == 0
    assert net.gyrator_names == ["y"]
    assert sorted(net.node_names) == ["0", "a", "b", "c", "d", "e"]  # x1, x2 merged
    assert net.voltage_source_names == ["v1"]  # the sense sources are consumed
    names = net.node_names
    assert [names[i] for i in net.gyrator_nodes[0]] == ["b", "e", "c", "0"]
    assert net.gyrator_conductances[0] == pytest.approx(2e-3, rel=1e-15)
    sol = net.solve()

    ref = of.Network()
    a, b, c, d, e = (ref.add_node(k) for k in "abcde")
    dm = of.ShockleyDiode(i_s=1e-12, n=1.2)
    ref.add_voltage_source(a, 5.0)
    ref.add_current_source(of.GROUND, d, 0.5e-3)
    ref.add_resistor(a, b, resistance=1e3)
    ref.add_resistor(b, of.GROUND, resistance=3e3)
    ref.add_gyrator(b, e, c, of.GROUND, 1 / 500)
    ref.add_resistor(c, d, resistance=2e3)
    ref.add_resistor(d, of.GROUND, resistance=1e3)
    ref.add_resistor(e, of.GROUND, resistance=1.5e3)
    ref.add_diode(c, of.GROUND, dm)
    ref.add_diode(e, d, dm)
    sref = ref.solve()
    v = {k: sol.voltage(k) for k in "abcde"}
    for k in "abcde":
        assert v[k] == pytest.approx(sref.voltage(k), abs=1e-12), k
    # Both diodes conduct well (the operating point is in the nonlinear regime).
    assert v["c"] > 0.6 and v["e"] - v["d"] > 0.55

    ng = run_ngspice(H_PAIR.replace(".end", ".options reltol=1e-9 abstol=1e-18 vntol=1e-12\n"
                                                 ".op\n.end"))
    for k in "abcde":
        assert v[k] == pytest.approx(ng.voltages[k], rel=RTOL, abs=1e-9), k
    # The sense sources carry the port currents: i1 = g v2, i2 = −g v1.
    g = 1 / 500
    assert ng.currents["vs1"] == pytest.approx(g * v["c"], rel=RTOL, abs=1e-15)
    assert ng.currents["vs2"] == pytest.approx(-g * (v["b"] - v["e"]), rel=RTOL, abs=1e-15)


@pytest.mark.parametrize("line, old, new", [
    # Hy controlled by the 5 V supply rather than a sense source
    (7, "Hy x1 e Vs2 -500", "Hy x1 e V1 -500"),
    # mismatched transresistances
    (7, "Hz c x2 Vs1 500", "Hz c x2 Vs1 400"),
    # the same magnitudes with a reciprocal sign pattern
    (7, "Hy x1 e Vs2 -500", "Hy x1 e Vs2 500"),
    # the sense source in series with Hy is not 0 V
    (7, "Vs1 b x1 0", "Vs1 b x1 1m"),
    # the source controlling Hy (Vs2) is not 0 V
    (7, "Vs2 x2 0 0", "Vs2 x2 0 1"),
])
def test_bad_h_pairs_are_rejected_with_the_line(line, old, new):
    bad = H_PAIR.replace(old, new)
    assert bad != H_PAIR
    with pytest.raises(of.SpiceParseError) as e:
        of.read_spice(bad)
    assert e.value.line == line
    assert "H (CCVS)" in str(e.value) and "gyrator" in str(e.value)


def test_lone_h_is_rejected_with_its_line():
    netlist = "* t\nV1 a 0 DC 1\nR1 a b 1k\nVs b x 0\nH1 x 0 Vs 1k\n.end\n"
    with pytest.raises(of.SpiceParseError) as e:
        of.read_spice(netlist)
    assert e.value.line == 5


# --------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------


def _fd(net, f, get, put, h=1e-6):
    x = get().copy()
    out = np.zeros_like(x)
    for k in range(len(x)):
        step = h * max(abs(x[k]), 1e-3)
        xp, xm = x.copy(), x.copy()
        xp[k] += step
        xm[k] -= step
        put(xp)
        fp = f()
        put(xm)
        fm = f()
        out[k] = (fp - fm) / (2 * step)
    put(x)
    return out


@pytest.mark.parametrize("seed, kinds", [
    (0, dict()),
    (1, dict(n_shockley=3)),
    (2, dict(n_relu=2)),
    (3, dict(n_shockley=2, n_relu=1, n_ideal=1)),
])
def test_exact_gradient_matches_finite_differences(seed, kinds):
    net = random_network(seed, 10, n_tr=2, n_gy=3, **kinds)
    outs = [n for n in range(1, 11) if n not in set(net.voltage_source_nodes)][:2]
    targets = {net.node_names[o]: 0.1 * (i + 1) for i, o in enumerate(outs)}

    def loss():
        sol = net.solve()
        return 0.5 * sum((sol.voltage(k) - t) ** 2 for k, t in targets.items())

    grad, src = net.gradient(targets, method="exact", return_sources=True)

    def put_g(g):
        net.conductances = g

    def put_r(r):
        net.transformer_ratios = r

    def put_y(g):
        net.gyrator_conductances = g

    fd = _fd(net, loss, lambda: net.conductances, put_g)
    scale = np.max(np.abs(fd))
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-5 * scale)
    fd_r = _fd(net, loss, lambda: net.transformer_ratios, put_r)
    np.testing.assert_allclose(src["transformers"], fd_r, rtol=0,
                               atol=1e-5 * np.max(np.abs(fd_r)))
    fd_y = _fd(net, loss, lambda: net.gyrator_conductances, put_y)
    np.testing.assert_allclose(src["gyrators"], fd_y, rtol=0, atol=1e-5 * np.max(np.abs(fd_y)))
    vals = net.voltage_source_values.copy()

    def put_v(x):
        for k, val in enumerate(x):
            net.set_voltage_source(k, float(val))

    fd_v = _fd(net, loss, lambda: vals.copy(), put_v)
    np.testing.assert_allclose(src["voltage_sources"], fd_v, rtol=0,
                               atol=1e-5 * np.max(np.abs(fd_v)))


@pytest.mark.parametrize("seed, conducting", [(4, False), (5, True), (7, True)])
def test_adjoint_network_gives_lambda_and_plain_linearization_does_not(seed, conducting):
    """Injecting ∂C/∂v into net.linearize(adjoint=True) gives the adjoint λ of the
    exact gradient (dC/dg = −Δλ Δv); the plain linearization, with gyrators as
    they are, gives the transposed answer, which differs. A conducting ideal diode
    is a short in the linearized circuit (two antiparallel ideal diodes, a
    degenerate pair the MNA solver must handle)."""
    net = random_network(seed, 8, n_tr=1, n_gy=3, n_ideal=1)
    sol = net.solve()
    assert (sol.diode_currents[0] > 0) == conducting
    out = [n for n in range(1, 9) if n not in set(net.voltage_source_nodes)][0]
    name = net.node_names[out]
    target = 0.3
    dc = sol.voltage(name) - target
    grad = net.gradient({name: target}, method="exact")
    ra, rb = net.resistor_nodes
    dv = sol.voltages[ra] - sol.voltages[rb]
    for adjoint, agrees in ((True, True), (False, False)):
        lin = net.linearize(sol, adjoint=adjoint)
        lam = lin.solve(injections=([out], [[dc]])).voltages
        est = -(lam[ra] - lam[rb]) * dv
        assert np.allclose(est, grad, rtol=1e-8, atol=1e-12 * np.max(np.abs(grad))) == agrees


@settings(max_examples=60, **SETTINGS)
@given(seed=st.integers(0, 10**6), n=st.integers(3, 40), series=st.booleans())
def test_mna_path_agrees_with_the_cholesky_path(seed, n, series):
    """A gyrator of zero conductance changes no current but sends the network down
    the MNA / LU path: resistor-diode networks (ideal, ReLU, Shockley) must give
    the operating point of the independent Cholesky / augmented-Lagrangian solver."""
    net = random_network(seed, n, n_tr=0, n_gy=0, n_shockley=3, n_relu=3, n_ideal=2,
                         series=series)
    try:
        ref = net.solve()
    except of.InfeasibleError:
        with pytest.raises(of.InfeasibleError):
            _with_null_gyrator(net).solve()
        return
    sol = _with_null_gyrator(net).solve()
    vs = max(1.0, np.max(np.abs(ref.voltages)))
    np.testing.assert_allclose(sol.voltages, ref.voltages, rtol=0, atol=1e-10 * vs)
    imax = max(np.max(np.abs(ref.diode_currents)), np.max(np.abs(ref.source_currents)))
    np.testing.assert_allclose(sol.diode_currents, ref.diode_currents, rtol=0,
                               atol=1e-8 * imax)
    np.testing.assert_allclose(sol.source_currents, ref.source_currents, rtol=0,
                               atol=1e-8 * imax)


def _with_null_gyrator(net: of.Network) -> of.Network:
    m = net.copy()
    m.add_gyrator(1, 0, 2, 0, 0.0)
    assert m.n_gyrators == 1
    return m


@settings(max_examples=40, **SETTINGS)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 30))
def test_relu_monotone_network_matches_forward_backward_splitting(seed, n):
    """Nodes z ≥ 0 held by ideal diodes from ground (v_on = 0), conductances to
    ground and between nodes (G, symmetric positive definite), gyrators (S, skew)
    and bias currents b: the equilibrium is the zero of (G + S) z − b + N(z ≥ 0),
    i.e. the fixed point z = relu(z − α ((G + S) z − b)) of a ReLU monotone
    operator network with W = I − α (G + S). Forward-backward splitting in numpy,
    iterated to convergence, is the reference."""
    rng = np.random.default_rng(seed)
    net = of.Network()
    z = net.add_nodes(n)
    g0 = rng.uniform(0.2, 1.0, n)
    net.add_resistors(z, np.zeros(n, dtype=np.int64), g0)
    M = np.diag(g0)
    for _ in range(n):
        i, j = rng.choice(n, 2, replace=False)
        g = rng.uniform(0.05, 0.5)
        net.add_resistor(int(z[i]), int(z[j]), float(g))
        M[i, i] += g
        M[j, j] += g
        M[i, j] -= g
        M[j, i] -= g
    for _ in range(2 * n):
        i, j = rng.choice(n, 2, replace=False)
        g = rng.uniform(-1.0, 1.0)
        # i_i = g v_j into node i, i_j = −g v_i into node j: M gains g at (i, j),
        # −g at (j, i) (currents leaving the nodes).
        net.add_gyrator(int(z[i]), 0, int(z[j]), 0, float(g))
        M[i, j] += g
        M[j, i] -= g
    b = rng.normal(size=n)
    net.add_current_sources(np.zeros(n, dtype=np.int64), z, b)  # b flows into each node
    net.add_diodes(np.zeros(n, dtype=np.int64), z, of.IdealDiode(0.0))
    sol = net.solve()
    # Reference: forward-backward splitting with a step below 2 m / L².
    m = np.min(np.linalg.eigvalsh(0.5 * (M + M.T)))
    L = np.linalg.norm(M, 2)
    alpha = m / L**2
    x = np.zeros(n)
    converged = False
    for _ in range(200000):
        x_new = np.maximum(x - alpha * (M @ x - b), 0.0)
        if np.max(np.abs(x_new - x)) <= 1e-15 * max(1.0, np.max(np.abs(x))):
            x, converged = x_new, True
            break
        x = x_new
    assert converged
    if n >= 10:  # both sides of the ReLU are exercised
        assert np.any(x > 0) and np.any(x == 0)
    # Error bound of the contraction: |x − z*| ≤ step / (1 − q), q = sqrt(1 − m²/L²).
    q = np.sqrt(1 - (m / L) ** 2)
    bound = 1e-15 * max(1.0, np.max(np.abs(x))) / (1 - q) + 1e-12
    np.testing.assert_allclose(sol.voltages[z], x, rtol=0, atol=max(bound, 1e-10))
    # The diode currents close KCL: μ = (G + S) z − b ≥ 0, zero where z > 0.
    mu = M @ sol.voltages[z] - b
    np.testing.assert_allclose(sol.diode_currents, np.maximum(mu, 0.0), rtol=0, atol=1e-10)
