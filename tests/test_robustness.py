"""Hard drives never give a silent wrong answer: either a solution that obeys
Kirchhoff's laws and the diode law, or a ConvergenceError."""

import numpy as np
import ohmflow as of
import pytest

K, Q = 1.38064852e-23, 1.6021766208e-19


@pytest.mark.parametrize("volts", [0.3, 5.0, 19.0, 100.0, 1000.0, 1e5])
def test_forward_junction_under_any_drive(volts):
    """Source - 1 kOhm - node - (1 kOhm || diode) - ground (a regression: at 19 V an
    older build returned the start point with an infinite residual, no error)."""
    net = of.Network()
    s, a = net.add_nodes(2)
    net.add_voltage_source(s, volts)
    net.add_resistors([s, a], [a, 0], [1e-3, 1e-3])
    net.add_diode(a, 0, of.ShockleyDiode(i_s=1e-14))
    try:
        sol = net.solve()
    except of.ConvergenceError:
        return
    v = sol.voltages[a]
    assert np.isfinite(v)
    vt = K * 300.15 / Q
    i_d = 1e-14 * np.expm1(v / vt) + 1e-12 * v
    kcl = (volts - v) * 1e-3 - v * 1e-3 - i_d
    assert abs(kcl) <= 1e-9 * (volts * 1e-3)
    assert sol.diode_currents[0] == pytest.approx(i_d, rel=1e-9)


def test_shockley_lattice_with_strong_drive_is_finite():
    rng = np.random.default_rng(1)
    side = 40
    net = of.Network()
    idx = net.add_nodes(side * side).reshape(side, side)
    src = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    dst = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    isd = rng.random(src.size) < 0.3
    net.add_resistors(src[~isd], dst[~isd], rng.uniform(0.5e-3, 2e-3, int((~isd).sum())))
    net.add_diodes(src[isd], dst[isd], of.ShockleyDiode())
    net.add_voltage_source(int(idx[0, 0]), 0.6 * side)  # about 0.6 V per edge
    net.add_voltage_source(int(idx[-1, -1]), 0.0)
    try:
        sol = net.solve()
    except of.ConvergenceError:
        return
    assert np.isfinite(sol.voltages).all()
    assert np.isfinite(sol.kcl_residual)
    # KCL from the element laws, in the test.
    v = sol.voltages
    r = np.zeros(v.size)
    ra, rb = net.resistor_nodes
    i_r = net.conductances * (v[ra] - v[rb])
    np.add.at(r, ra, i_r)
    np.add.at(r, rb, -i_r)
    da, db = net.diode_nodes
    vt = K * 300.15 / Q
    i_d = 1e-14 * np.expm1((v[da] - v[db]) / vt) + 1e-12 * (v[da] - v[db])
    np.add.at(r, da, i_d)
    np.add.at(r, db, -i_d)
    free = np.setdiff1d(np.arange(1, v.size), [idx[0, 0], idx[-1, -1]])
    assert np.max(np.abs(r[free])) <= 1e-9 * max(np.max(np.abs(i_r)), np.max(np.abs(i_d)))
