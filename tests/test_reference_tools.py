"""Tests of the independent reference tools in ``tests/reference``.

These pin down the conventions (ngspice's diode model, thermal voltage, GMIN,
source signs) the ohmflow tests rely on, and check that the references are
accurate enough to judge ohmflow by.  Nothing here imports ohmflow.
"""

from __future__ import annotations

import itertools
import pathlib
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from reference.netgen import random_netlist  # noqa: E402
from reference.ngspice import (  # noqa: E402
    ACCURATE_OPTIONS,
    DEFAULT_GMIN,
    NgspiceError,
    ngspice_available,
    ngspice_diode_current,
    run_ngspice,
    shockley_current,
    thermal_voltage,
    with_accurate_options,
)
from reference.qp import (  # noqa: E402
    QPError,
    random_ideal_diode_network,
    solve_ideal_diode_qp,
)

needs_ngspice = pytest.mark.skipif(not ngspice_available(), reason="ngspice not installed")


# ---------------------------------------------------------------------------
# ngspice runner and conventions
# ---------------------------------------------------------------------------


def test_with_accurate_options_inserts_before_end():
    text = with_accurate_options("title\nR1 a 0 1k\n.op\n.end\n")
    lines = text.strip().split("\n")
    assert lines[-1] == ".end"
    assert lines[-2] == ACCURATE_OPTIONS
    assert text.count(ACCURATE_OPTIONS) == 1
    # no .end: options and .end are appended
    assert with_accurate_options("t\n.op").strip().split("\n")[-2:] == [ACCURATE_OPTIONS, ".end"]


def test_thermal_voltage_value():
    # k*T/q at 300.15 K with ngspice's (CODATA 2014) constants
    assert thermal_voltage(27.0) == pytest.approx(0.025864917007157, rel=1e-12, abs=0.0)


def test_rawfile_parser_binary_and_ascii_agree():
    """The parser reads both rawfile flavours (binary is what run_ngspice uses)."""
    from reference.ngspice import _parse_rawfile

    header = (
        "Title: t\nDate: now\nPlotname: Operating Point\nFlags: real\n"
        "No. Variables: 3\nNo. Points: 1\nVariables:\n"
        "\t0\tv(in)\tvoltage\n\t1\tv(a)\tvoltage\n\t2\ti(v1)\tcurrent\n"
    )
    values = [5.0, 1.036109741316620, -3.963890258683380e-03]
    binary = (header + "Binary:\n").encode() + np.array(values, dtype="<f8").tobytes()
    ascii_ = header + "Values:\n0\t\t" + "\n\t".join(f"{x:.15e}" for x in values) + "\n"
    for data in (binary, ascii_.encode()):
        (plot,) = _parse_rawfile(data)
        assert plot["plotname"] == "Operating Point"
        assert plot["names"] == ["v(in)", "v(a)", "i(v1)"]
        assert plot["values"].tolist() == values


@needs_ngspice
@pytest.mark.parametrize(
    "vsrc, ohms, IS, N",
    [
        (5.0, 1e3, 1e-14, 1.0),
        (5.0, 1e3, 1e-14, 1.5),
        (2.5, 4.7e4, 3e-16, 1.8),
        (-3.0, 2.2e3, 1e-12, 1.2),  # reverse biased: cubic tail + GMIN
    ],
)
def test_ngspice_one_diode_matches_brentq(vsrc, ohms, IS, N):
    """V source - resistor - diode to ground, solved by brentq to ~1e-15."""
    net = with_accurate_options(
        f"one diode\nV1 in 0 DC {vsrc!r}\nR1 in a {ohms!r}\nD1 a 0 dm\n"
        f".model dm D(IS={IS!r} N={N!r})\n.op\n.end\n"
    )
    res = run_ngspice(net)

    def f(v):
        return (vsrc - v) / ohms - ngspice_diode_current(v, IS, N)

    lo, hi = sorted((0.0, vsrc))
    v_ref = brentq(f, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
    v_ng = res.v("a")
    # observed: |dv| <= 2.3e-16 V, i.e. agreement to the last bit or two
    assert abs(v_ng - v_ref) <= 1e-14 * max(1.0, abs(v_ref)), (v_ng, v_ref, v_ng - v_ref)
    assert res.v("in") == vsrc
    # vsource sign: current *into* + terminal; the source delivers power
    i_ref = (vsrc - v_ref) / ohms
    # tolerance: 1e-12 relative, floored by the rounding of vsrc - v (the
    # reverse-biased case has |vsrc - v| ~ 1e-8 V: cancellation)
    tol = 1e-12 * abs(i_ref) + 1e-15 * max(abs(vsrc), abs(v_ref)) / ohms
    assert abs(-res.i("V1") - i_ref) <= tol, (res.i("V1"), i_ref)
    assert res.convergence_aids == []


@needs_ngspice
@pytest.mark.parametrize(
    "vd, IS, N",
    [
        (0.6, 1e-14, 1.0),  # forward: pins k/q, T = 300.15 K
        (0.9, 1e-16, 1.7),
        (-0.05, 1e-12, 1.0),  # reverse but above -3 N Vt: still Shockley
        (-1.0, 1e-16, 1.0),  # deep reverse, GMIN dominated: pins GMIN = 1e-12
        (-1.0, 1e-3, 1.0),  # deep reverse, huge IS: exposes the cubic tail
        (-0.5, 1e-4, 2.0),
    ],
)
def test_ngspice_diode_model_direct(vd, IS, N):
    """Voltage source straight across the diode: i(V1) = -I_diode(vd) exactly."""
    res = run_ngspice(
        with_accurate_options(
            f"diode iv\nV1 a 0 DC {vd!r}\nD1 a 0 dm\n.model dm D(IS={IS!r} N={N!r})\n.op\n.end\n"
        )
    )
    i_ng = -res.i("v1")
    i_model = ngspice_diode_current(vd, IS, N)
    assert i_ng == pytest.approx(i_model, rel=1e-12, abs=0.0), (i_ng, i_model)
    vte = N * thermal_voltage()
    if vd < -3 * vte:
        # ngspice is *not* Shockley there; check that the test can tell the two apart
        shockley = float(shockley_current(vd, IS, N)) + DEFAULT_GMIN * vd
        assert abs(i_ng - shockley) > 1e-6 * abs(i_ng) or IS < 1e-10


@needs_ngspice
def test_ngspice_current_source_sign():
    """``I1 a 0 1m`` draws 1 mA out of node a: v(a) = -1 V across 1 kOhm."""
    res = run_ngspice(with_accurate_options("isrc\nI1 a 0 1m\nR1 a 0 1k\n.op\n.end\n"))
    assert res.v("a") < 0
    assert res.v("a") == pytest.approx(-1.0, rel=1e-14, abs=0.0)
    # and pushes it into b
    res = run_ngspice(with_accurate_options("isrc\nI1 a b 1m\nR1 a 0 1k\nR2 b 0 2k\n.op\n.end\n"))
    assert res.v("a") == pytest.approx(-1.0, rel=1e-14, abs=0.0)
    assert res.v("b") == pytest.approx(2.0, rel=1e-14, abs=0.0)


@needs_ngspice
def test_ngspice_errors_are_raised():
    with pytest.raises(NgspiceError, match="singular"):
        run_ngspice("floating\nV1 in 0 5\nR1 in a 1k\nR2 b c 1k\n.op\n.end\n")
    with pytest.raises(NgspiceError):
        run_ngspice("vloop\nV1 a 0 1\nV2 a 0 2\nR1 a 0 1k\n.op\n.end\n")
    with pytest.raises(NgspiceError, match="unknown subckt"):
        run_ngspice("bad\nV1 a 0 1\nX1 a 0 nosuch\n.op\n.end\n")
    with pytest.raises(NgspiceError, match=r"\.op"):
        run_ngspice("no analysis\nV1 a 0 1\nR1 a 0 1k\n.end\n")


@needs_ngspice
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ngspice_kcl_on_random_netlist(seed):
    """KCL from the returned voltages / source currents, ngspice diode model.

    Observed: max |residual| / max |branch current| ~ 1e-15 .. 5e-14 for 100
    nodes (worst over seeds 0..9, and up to 500 nodes, about 5e-14).
    """
    gen = random_netlist(seed, 100)
    assert len(gen.diodes) > 0
    res = run_ngspice(gen.netlist)
    assert set(res.voltages) == set(gen.nodes)
    assert set(res.currents) == {name.lower() for name, _, _ in gen.vsources}
    residual, scale = gen.kcl_residual(res.voltages, res.currents)
    rel = np.max(np.abs(residual)) / scale
    assert scale > 1e-6
    assert rel <= 1e-9, rel
    # The check is sharp: dropping GMIN from the model (a ~1e-12 S effect)
    # must be visible far above the residual.
    residual0, _ = gen.kcl_residual(res.voltages, res.currents, gmin=0.0)
    assert np.max(np.abs(residual0)) / scale > 100 * rel
    # some diodes conduct, some do not
    vd = np.array([res.v(a) - res.v(b) for _, a, b, _ in gen.diodes])
    assert (vd > 0.3).any() and (vd < 0.1).any()


@needs_ngspice
def test_ngspice_large_netlist_is_fast():
    gen = random_netlist(123, 500)
    t0 = time.perf_counter()
    res = run_ngspice(gen.netlist)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10, elapsed
    assert len(res.voltages) == 500
    residual, scale = gen.kcl_residual(res.voltages, res.currents)
    assert np.max(np.abs(residual)) / scale <= 1e-9


# ---------------------------------------------------------------------------
# random netlist generator
# ---------------------------------------------------------------------------


def _connected(n_vertices, edges):
    parent = list(range(n_vertices))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    return len({find(k) for k in range(n_vertices)}) == 1


@pytest.mark.parametrize("seed, n", [(0, 1), (1, 7), (2, 50), (3, 300)])
def test_netgen_structure(seed, n):
    g = random_netlist(seed, n, n_vsources=min(2, n))
    idx = g.node_index
    assert g.nodes == [f"n{k}" for k in range(1, n + 1)]
    # resistors alone connect every node to ground -> unique DC solution
    assert _connected(n + 1, [(idx(a), idx(b)) for _, a, b, _ in g.resistors])
    for _, a, b, *_ in g.resistors + g.diodes + g.isources:
        assert a != b
    fixed = {"0"} | {node for _, node, _ in g.vsources}
    assert len(fixed) == len(g.vsources) + 1  # one source per node, never ground
    for _, a, b, m in g.diodes:
        assert not (a in fixed and b in fixed)
        g.model(m)
    for _, _, _, r in g.resistors:
        assert 100.0 * (1 - 1e-5) <= r <= 1e5 * (1 + 1e-5)
    for _, IS, N in g.models:
        assert 1e-16 * (1 - 1e-5) <= IS <= 1e-12 * (1 + 1e-5) and 1 <= N <= 2
    assert all(-5 <= v <= 5 for *_, v in g.vsources)
    assert all(-1e-3 <= i <= 1e-3 for *_, i in g.isources)
    lines = g.netlist.strip().split("\n")
    assert lines[-1] == ".end" and lines[-2] == ".op" and ACCURATE_OPTIONS in lines
    # structured values are exactly what the text says
    for name, a, b, r in g.resistors:
        assert f"{name} {a} {b} " in g.netlist
        assert any(ln.startswith(f"{name} ") and float(ln.split()[3]) == r for ln in lines)


def test_netgen_deterministic_and_seed_dependent():
    a = random_netlist(42, 60)
    b = random_netlist(42, 60)
    c = random_netlist(43, 60)
    assert a.netlist == b.netlist and a.resistors == b.resistors and a.diodes == b.diodes
    assert a.netlist != c.netlist
    g = random_netlist(5, 40, n_extra_edges=40, diode_fraction=0.25)
    assert len(g.resistors) + len(g.diodes) == 80
    assert len(g.diodes) == 20


# ---------------------------------------------------------------------------
# ideal-diode QP reference
# ---------------------------------------------------------------------------


def _independent_kkt(n_nodes, resistors, diodes, clamps, current_sources, v, i_d):
    """Re-derive the KKT conditions from scratch (no code shared with qp.py)."""
    v = np.asarray(v)
    fixed = dict(clamps)
    fixed[0] = 0.0
    leaving = np.zeros(n_nodes)
    # current scale: the largest term of the KCL sums, floored at max(g) * 1 V
    scale = max(g for _, _, g in resistors) * 1.0
    for a, b, g in resistors:
        leaving[a] += g * (v[a] - v[b])
        leaving[b] -= g * (v[a] - v[b])
        scale = max(scale, abs(g * v[a]), abs(g * v[b]))
    for (a, b, _), i in zip(diodes, i_d):
        leaving[a] += i
        leaving[b] -= i
        scale = max(scale, abs(i))
    for a, b, amps in current_sources:
        leaving[a] += amps  # the source takes amps out of a ...
        leaving[b] -= amps  # ... and puts them into b
        scale = max(scale, abs(amps))
    free = [k for k in range(n_nodes) if k not in fixed]
    drop = np.array([v[a] - v[b] - von for a, b, von in diodes])
    vscale = max(1.0, float(np.max(np.abs(v))))
    return {
        "clamps_exact": all(v[k] == x for k, x in fixed.items()),
        "kcl_rel": float(np.max(np.abs(leaving[free]), initial=0.0)) / scale,
        "primal_rel": float(np.max(drop, initial=-1.0)) / vscale,
        "dual_rel": float(np.min(i_d, initial=0.0)) / scale,
        "compl_rel": float(
            np.max(np.minimum(np.abs(i_d) / scale, np.abs(drop) / vscale), initial=0.0)
        ),
    }


def _assert_kkt(net_kwargs, v, i_d, tol=1e-12):
    rep = _independent_kkt(**net_kwargs, v=v, i_d=i_d)
    assert rep["clamps_exact"], rep
    assert rep["kcl_rel"] <= tol, rep
    assert rep["primal_rel"] <= tol, rep
    assert rep["dual_rel"] >= -tol, rep
    assert rep["compl_rel"] <= tol, rep


def test_qp_series_circuit_hand_formula():
    """V - R1 - ideal diode - R2 - ground: i = (V - v_on)/(R1 + R2) when on."""
    V, R1, R2, von = 5.0, 1e3, 2e3, 0.7
    kw = dict(
        n_nodes=4, resistors=[(1, 2, 1 / R1), (3, 0, 1 / R2)], clamps={1: V}, current_sources=[]
    )
    v, i_d = solve_ideal_diode_qp(diodes=[(2, 3, von)], **kw)
    i = (V - von) / (R1 + R2)
    assert i_d[0] == pytest.approx(i, rel=1e-13, abs=0.0)
    assert v == pytest.approx([0.0, V, V - i * R1, i * R2], rel=1e-13, abs=1e-15)
    # reversed diode: off, no current, full source voltage across it
    v, i_d = solve_ideal_diode_qp(diodes=[(3, 2, von)], **kw)
    assert i_d[0] == 0.0
    assert v == pytest.approx([0.0, V, V, 0.0], abs=1e-14)
    # source below threshold: off as well
    v, i_d = solve_ideal_diode_qp(diodes=[(2, 3, von)], **{**kw, "clamps": {1: 0.5}})
    assert i_d[0] == 0.0
    assert v[2] == pytest.approx(0.5, rel=1e-14, abs=0.0) and v[3] == pytest.approx(0.0, abs=1e-15)


@settings(max_examples=60, deadline=None, database=None)
@given(
    V=st.floats(-10, 10),
    R1=st.floats(10, 1e5),
    R2=st.floats(10, 1e5),
    von=st.floats(0.0, 1.0),
    I=st.floats(-1e-3, 1e-3),
)
def test_qp_series_circuit_with_current_source(V, R1, R2, von, I):  # noqa: E741
    """As above plus ``I1 0 -> node 3`` (draws I out of ground, into node 3)."""
    kw = dict(
        n_nodes=4,
        resistors=[(1, 2, 1 / R1), (3, 0, 1 / R2)],
        diodes=[(2, 3, von)],
        clamps={1: V},
        current_sources=[(0, 3, I)],
    )
    v, i_d = solve_ideal_diode_qp(**kw)
    # diode on: v2 - v3 = von, i through R1 = i_d; KCL at 3: i_d + I = v3 / R2
    i_on = (V - von - I * R2) / (R1 + R2)
    if i_on > 0:
        exp_i, exp_v3 = i_on, (i_on + I) * R2
        exp_v2 = exp_v3 + von
    else:
        exp_i, exp_v3, exp_v2 = 0.0, I * R2, V
    # the solver promises KKT to 1e-12 of max(1 V, |v|) and of max(g) * that
    tol = 1e-12 * max(1.0, abs(V), abs(I * R2), von)
    assert i_d[0] == pytest.approx(exp_i, abs=tol / min(R1, R2))
    assert v[3] == pytest.approx(exp_v3, abs=tol)
    assert v[2] == pytest.approx(exp_v2, abs=tol)
    _assert_kkt(kw, v, i_d)


def test_qp_current_source_sign():
    # SPICE convention: (a, b, amps) draws amps out of a -> v(a) = -1 V here
    v, _ = solve_ideal_diode_qp(2, [(1, 0, 1e-3)], [], {}, [(1, 0, 1e-3)])
    assert v[1] == pytest.approx(-1.0, rel=1e-14, abs=0.0)


@pytest.mark.parametrize("seed, n", [(s, n) for n in (12, 60, 150) for s in range(4)])
def test_qp_random_networks_satisfy_kkt(seed, n):
    net = random_ideal_diode_network(seed, n)
    v, i_d = solve_ideal_diode_qp(**net.kwargs())
    assert v.shape == (n,) and i_d.shape == (len(net.diodes),)
    _assert_kkt(net.kwargs(), v, i_d)


def test_qp_generator_has_both_on_and_off_diodes():
    both = 0
    for seed in range(20):
        net = random_ideal_diode_network(seed, 40)
        _, i_d = solve_ideal_diode_qp(**net.kwargs())
        on = int(np.sum(i_d > 1e-9))
        both += 0 < on < len(i_d)
    # observed: 20 of 20
    assert both >= 15, both


def _brute_force(n_nodes, resistors, diodes, clamps, current_sources):
    """Try every active set on the full nodal KKT system; return the KKT one."""
    fixed = {0: 0.0, **clamps}
    free = [k for k in range(n_nodes) if k not in fixed]
    pos = {k: j for j, k in enumerate(free)}
    nf = len(free)
    G = np.zeros((nf, nf))
    rhs = np.zeros(nf)
    for a, b, g in resistors:
        for p, q in ((a, b), (b, a)):
            if p in pos:
                G[pos[p], pos[p]] += g
                if q in pos:
                    G[pos[p], pos[q]] -= g
                else:
                    rhs[pos[p]] += g * fixed[q]
    for a, b, amps in current_sources:
        if a in pos:
            rhs[pos[a]] -= amps
        if b in pos:
            rhs[pos[b]] += amps
    found = []
    for r in range(len(diodes) + 1):
        for W in itertools.combinations(range(len(diodes)), r):
            m = len(W)
            K = np.zeros((nf + m, nf + m))
            K[:nf, :nf] = G
            b = np.concatenate([rhs, np.zeros(m)])
            for j, k in enumerate(W):
                a, c, von = diodes[k]
                b[nf + j] = (
                    von - fixed.get(a, 0.0) * (a not in pos) + fixed.get(c, 0.0) * (c not in pos)
                )
                for node, sgn in ((a, 1.0), (c, -1.0)):
                    if node in pos:
                        K[pos[node], nf + j] = sgn
                        K[nf + j, pos[node]] = sgn
            try:
                sol = np.linalg.solve(K, b)
            except np.linalg.LinAlgError:
                continue
            v = np.zeros(n_nodes)
            for k, x in fixed.items():
                v[k] = x
            for k, j in pos.items():
                v[k] = sol[j]
            i_d = np.zeros(len(diodes))
            i_d[list(W)] = sol[nf:]
            drop = np.array([v[a] - v[c] - von for a, c, von in diodes])
            if (i_d >= -1e-12).all() and (drop <= 1e-9).all():
                found.append((v, i_d))
    return found


@pytest.mark.parametrize("seed", range(8))
def test_qp_matches_brute_force_active_set_enumeration(seed):
    net = random_ideal_diode_network(seed, 9, n_diodes=5, n_extra_edges=3)
    found = _brute_force(**net.kwargs())
    assert found, "no KKT point among all 2^5 active sets"
    v, i_d = solve_ideal_diode_qp(**net.kwargs())
    for v_bf, i_bf in found:  # unique solution: every KKT point found must agree
        assert v == pytest.approx(v_bf, abs=1e-12 * max(1.0, np.max(np.abs(v_bf))))
        assert i_d == pytest.approx(i_bf, abs=1e-12 * max(1e-3, np.max(np.abs(i_bf))))


def test_qp_minimises_energy():
    """Feasible random perturbations never lower the energy."""
    net = random_ideal_diode_network(7, 30)
    kw = net.kwargs()
    v, i_d = solve_ideal_diode_qp(**kw)
    fixed = {0, *kw["clamps"]}
    free = [k for k in range(kw["n_nodes"]) if k not in fixed]
    inj = np.zeros(kw["n_nodes"])
    for a, b, amps in kw["current_sources"]:
        inj[a] -= amps
        inj[b] += amps

    def energy(u):
        return sum(g * (u[a] - u[b]) ** 2 / 2 for a, b, g in kw["resistors"]) - inj @ u

    e0 = energy(v)
    rng = np.random.default_rng(0)
    tried = 0
    for _ in range(400):
        u = v.copy()
        u[free] += rng.normal(scale=rng.choice([1e-4, 1e-2, 0.3]), size=len(free))
        if all(u[a] - u[b] <= von for a, b, von in kw["diodes"]):
            tried += 1
            assert energy(u) >= e0 - 1e-15 * max(1.0, abs(e0))
    assert tried > 20


def test_qp_rejects_ill_posed_networks():
    # floating node 2 (no resistive path to ground/clamp)
    with pytest.raises(QPError, match="resistive path"):
        solve_ideal_diode_qp(3, [(1, 0, 1e-3)], [], {}, [])
    # ideal diode straight across a 5 V source: infinite current
    with pytest.raises(QPError):
        solve_ideal_diode_qp(2, [(1, 0, 1e-3)], [(1, 0, 0.7)], {1: 5.0}, [])
    # two diodes in series across the source, thresholds too low: infeasible
    with pytest.raises(QPError, match="infeasible"):
        solve_ideal_diode_qp(
            3, [(1, 0, 1e-3), (2, 0, 1e-3)], [(1, 2, 0.7), (2, 0, 0.7)], {1: 5.0}, []
        )


@pytest.mark.parametrize("seed", range(3))
def test_qp_fallback_primal_active_set_agrees(seed):
    """The last-resort primal active-set path (normally unused) gives the same answer."""
    from reference import qp

    net = random_ideal_diode_network(seed, 40, n_diodes=30)
    kw = net.kwargs()
    v, i_d = solve_ideal_diode_qp(**kw)
    P = qp._assemble(**kw)
    x, lam, _ = qp._primal_active_set(P, qp.KKT_RTOL)
    v2, i2 = qp._expand(P, x, lam, len(net.diodes))
    assert v2 == pytest.approx(v, abs=1e-12 * max(1.0, np.max(np.abs(v))))
    assert i2 == pytest.approx(i_d, abs=1e-12 * max(1e-3, np.max(np.abs(i_d))))
    _assert_kkt(kw, v2, np.maximum(i2, 0.0))
