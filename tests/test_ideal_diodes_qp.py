"""Ideal (and ReLU) diode networks against an independent convex-QP reference.

``reference.qp.solve_ideal_diode_qp`` (SciPy SLSQP + exact KKT polish, verified
to 1e-12) solves the same resistor / ideal-diode networks that ohmflow builds
here through its public API.  Measured agreement (CASES below, 12-300 nodes):
voltages to <= 7.5e-14 of the voltage scale, diode currents to <= 1.8e-11 of
the largest diode current.  The contract asserted is
1e-6 (relative to the voltage scale, resp. the largest diode current).
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import ohmflow as of  # noqa: E402
from reference.qp import (  # noqa: E402
    IdealDiodeNetwork,
    random_ideal_diode_network,
    solve_ideal_diode_qp,
)

RTOL = 1e-6


def build(d: IdealDiodeNetwork, *, inputs: bool = False) -> of.Network:
    """The reference network in ohmflow: same node numbers, same element order.

    With ``inputs``, the clamps are per-sample inputs (in ``sorted(d.clamps)``
    order) instead of fixed sources."""
    net = of.Network()
    net.add_nodes(d.n_nodes - 1)
    a, b, g = (np.array(c) for c in zip(*d.resistors))
    net.add_resistors(a.astype(np.int64), b.astype(np.int64), g)
    for an, ca, von in d.diodes:
        net.add_diode(an, ca, model=of.IdealDiode(v_on=von))
    for k in sorted(d.clamps):
        if inputs:
            net.add_input(k)
        else:
            net.add_voltage_source(k, d.clamps[k])
    for an, ca, amps in d.current_sources:
        net.add_current_source(an, ca, amps)
    return net


def assert_agrees(v, i_d, v_ref, i_ref):
    vscale = max(1.0, float(np.max(np.abs(v_ref))))
    iscale = max(1e-12, float(np.max(np.abs(i_ref), initial=0.0)))
    assert np.max(np.abs(v - v_ref)) <= RTOL * vscale
    assert np.max(np.abs(i_d - i_ref), initial=0.0) <= RTOL * iscale


CASES = [(seed, n) for seed, n in zip(range(16), [12, 40, 120, 300] * 4)]


@pytest.mark.parametrize("seed, n", CASES)
def test_random_networks_match_qp(seed, n):
    d = random_ideal_diode_network(seed, n)
    v_ref, i_ref = solve_ideal_diode_qp(**d.kwargs())
    sol = build(d).solve()
    assert_agrees(sol.voltages, sol.diode_currents, v_ref, i_ref)


def test_cases_cover_conducting_and_blocking_diodes():
    """The seeds above are a meaningful sample: most networks mix on and off diodes."""
    mixed = 0
    for seed, n in CASES:
        _, i_ref = solve_ideal_diode_qp(**random_ideal_diode_network(seed, n).kwargs())
        on = int(np.sum(i_ref > 0))
        mixed += 0 < on < i_ref.size
    assert mixed >= 10, mixed


def test_cases_cover_low_rank_steps():
    """Most of the networks above solve some Newton steps by a low-rank correction
    of an earlier factor (diodes that switched since it): the agreement asserted by
    ``test_random_networks_match_qp`` covers that path, not only refactorizations."""
    used = 0
    for seed, n in CASES:
        sol = build(random_ideal_diode_network(seed, n)).solve()
        assert sol.low_rank_solves + sol.factorizations <= sol.iterations
        used += sol.low_rank_solves > 0
    assert used >= 8, used


@pytest.mark.parametrize("seed", range(4))
def test_many_diodes_match_qp(seed):
    """Dense in diodes (one per node): many active-set changes."""
    d = random_ideal_diode_network(100 + seed, 60, n_diodes=60, n_current_sources=6)
    v_ref, i_ref = solve_ideal_diode_qp(**d.kwargs())
    sol = build(d).solve()
    assert_agrees(sol.voltages, sol.diode_currents, v_ref, i_ref)


@pytest.mark.parametrize("seed", range(4))
def test_relu_diodes_match_qp_with_series_resistor(seed):
    """ReLU(g_on, v_on) from a to b is an ideal diode (v_on) a -> m in series with
    a resistor g_on from m to b (m an internal node): i = g_on max(dv - v_on, 0)."""
    d = random_ideal_diode_network(200 + seed, 40)
    rng = np.random.default_rng(seed)
    g_on = np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), size=len(d.diodes)))
    # reference: one internal node per diode
    ref = IdealDiodeNetwork(d.n_nodes + len(d.diodes), list(d.resistors), [], dict(d.clamps),
                            list(d.current_sources))
    for k, ((an, ca, von), g) in enumerate(zip(d.diodes, g_on)):
        m = d.n_nodes + k
        ref.diodes.append((an, m, von))
        ref.resistors.append((m, ca, float(g)))
    v_ref, i_ref = solve_ideal_diode_qp(**ref.kwargs())
    net = build(IdealDiodeNetwork(d.n_nodes, d.resistors, [], d.clamps, d.current_sources))
    for (an, ca, von), g in zip(d.diodes, g_on):
        net.add_diode(an, ca, model=of.ReluDiode(g_on=float(g), v_on=von))
    sol = net.solve()
    assert_agrees(sol.voltages, sol.diode_currents, v_ref[: d.n_nodes], i_ref)
    assert np.any(i_ref > 0) or seed > 0


@pytest.mark.parametrize("seed", [3, 5, 8, 13])
def test_batched_inputs_match_qp(seed):
    """Clamps as per-sample inputs: every row of a batch is its own QP."""
    d = random_ideal_diode_network(seed, 40, n_clamps=3)
    rng = np.random.default_rng(seed)
    keys = sorted(d.clamps)
    X = rng.uniform(-5, 5, size=(5, len(keys)))
    sols = build(d, inputs=True).solve(inputs=X)
    assert sols.voltages.shape == (5, d.n_nodes)
    for k, row in enumerate(X):
        kw = d.kwargs()
        kw["clamps"] = dict(zip(keys, row.tolist()))
        v_ref, i_ref = solve_ideal_diode_qp(**kw)
        assert_agrees(sols.voltages[k], sols.diode_currents[k], v_ref, i_ref)


@pytest.mark.parametrize("seed, n", [(1, 40), (2, 120), (4, 40), (13, 300)])
def test_warm_start_after_perturbing_sources(seed, n):
    """Solve, change a clamp and a current source, re-solve warm-started from the
    old solution: the answer is the QP of the new network (and the cold solve's)."""
    d = random_ideal_diode_network(seed, n)
    net = build(d)
    sol0 = net.solve()
    keys = sorted(d.clamps)
    for step, (dv, scale_i) in enumerate([(0.3, 1.5), (-2.0, -1.0), (4.0, 0.0)]):
        clamps = dict(d.clamps)
        clamps[keys[0]] = d.clamps[keys[0]] + dv
        sources = list(d.current_sources)
        a, b, amps = sources[0]
        sources[0] = (a, b, amps * scale_i)
        net.set_voltage_source(0, clamps[keys[0]])
        net.set_current_source(0, amps * scale_i)
        warm = net.solve(warm_start=sol0)
        cold = net.copy().solve()
        kw = d.kwargs()
        kw["clamps"], kw["current_sources"] = clamps, sources
        v_ref, i_ref = solve_ideal_diode_qp(**kw)
        assert_agrees(warm.voltages, warm.diode_currents, v_ref, i_ref)
        assert_agrees(cold.voltages, cold.diode_currents, v_ref, i_ref)
        sol0 = warm if step % 2 else sol0  # warm starts from near and from far


def test_warm_start_from_a_different_network_state():
    """A warm start far from the answer (every source sign flipped) still converges
    to the right operating point."""
    d = random_ideal_diode_network(7, 60, n_diodes=30)
    net = build(d)
    flipped = d.kwargs()
    flipped["clamps"] = {k: -v for k, v in d.clamps.items()}
    for k, v in sorted(flipped["clamps"].items()):
        net.set_voltage_source(sorted(d.clamps).index(k), v)
    far = net.solve()
    for k, v in sorted(d.clamps.items()):
        net.set_voltage_source(sorted(d.clamps).index(k), v)
    warm = net.solve(warm_start=far)
    v_ref, i_ref = solve_ideal_diode_qp(**d.kwargs())
    assert_agrees(warm.voltages, warm.diode_currents, v_ref, i_ref)


def test_rounding_floor_does_not_raise_convergence_error():
    """Regression (found by test_properties): a source at -3 V, a free node c with a
    resistor to ground and an ideal diode c -> source (v_on = 1 V), and a dangling
    free node b: c = -2 V, the diode carries 2 V * g.  ohmflow raised
    ConvergenceError with a KCL residual of 2.06e-14 A against a bound of
    1e-12 * 2.02e-2 A: the floating-point floor, not a divergence."""
    g1 = 0.006737946999085467
    net = of.Network()
    net.add_nodes(3)
    net.add_voltage_source(1, -3.0)
    net.add_resistor(0, 1, g1)
    net.add_resistor(0, 3, g1)
    net.add_resistor(1, 2, 0.0820849986238988)
    net.add_resistor(0, 1, g1)
    net.add_resistor(0, 1, 0.0009118819655545162)
    net.add_diode(3, 1, of.IdealDiode(v_on=1.0))
    sol = net.solve()
    v_ref, i_ref = solve_ideal_diode_qp(
        4,
        [(0, 1, g1), (0, 3, g1), (1, 2, 0.0820849986238988), (0, 1, g1),
         (0, 1, 0.0009118819655545162)],
        [(3, 1, 1.0)], {1: -3.0}, [])
    assert sol.voltages == pytest.approx([0.0, -3.0, -3.0, -2.0], rel=0.0, abs=1e-12)
    assert sol.diode_currents[0] == pytest.approx(2.0 * g1, rel=1e-12, abs=0.0)
    assert_agrees(sol.voltages, sol.diode_currents, v_ref, i_ref)
