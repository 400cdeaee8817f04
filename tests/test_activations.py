"""The diode ReLU (ohmflow.activations).

References: a NumPy bisection of the defining equation g (x − z) = Y(z) written
here from the Shockley law (with a nested bisection for the series resistance),
central finite differences of the circuit for the derivative, and the limits
(ideal diode: ReLU; ReLU diode: leaky ReLU).
"""

from __future__ import annotations

import numpy as np
import ohmflow as of
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ohmflow.activations import diode_relu, diode_relu_grad

SETTINGS = dict(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
K_B, Q = 1.38064852e-23, 1.6021766208e-19  # ngspice's constants (DESIGN.md)


def _bisect(f, lo, hi, iters=90):
    """Root of an increasing f between lo and hi (arrays), elementwise."""
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        pos = f(mid) > 0
        hi = np.where(pos, mid, hi)
        lo = np.where(pos, lo, mid)
    return 0.5 * (lo + hi)


def _reference(x, i_s, n, rs, g, gmin=1e-12, temperature=300.15):
    nvt = n * K_B * temperature / Q

    def branch_current(z):
        """Current drawn from node z by ground → diode → R_s → z (positive out of z)."""
        if rs == 0:
            vd = -z
            return -(i_s * np.expm1(vd / nvt) + gmin * vd)
        # the diode's cathode m: diode current (ground → m) = (m − z)/R_s out of ... into z
        # i_d(−m) flows ground → m, then m → z through R_s: i_d(−m) = (m − z)/R_s
        def h(m):
            return (m - z) / rs - (i_s * np.expm1(-m / nvt) + gmin * (-m))
        m = _bisect(h, np.minimum(z, -5.0) - 10, np.maximum(z, 0.0) + 10)
        return -(m - z) / rs

    return _bisect(lambda z: branch_current(z) - g * (x - z), np.minimum(x, 0) - 10,
                   np.maximum(x, 0) + 10)


@settings(max_examples=20, **SETTINGS)
@given(i_s=st.floats(1e-16, 1e-9), n=st.floats(0.5, 2.0), rs=st.sampled_from([0.0, 0.3, 5.0]),
       g=st.floats(0.1, 10.0))
def test_diode_relu_solves_its_defining_equation(i_s, n, rs, g):
    x = np.linspace(-3, 3, 25)
    model = of.ShockleyDiode(i_s=i_s, n=n)
    z = diode_relu(x, model=model, series_resistance=rs, conductance=g)
    ref = _reference(x, i_s, n, rs, g)
    np.testing.assert_allclose(z, ref, rtol=0, atol=1e-9)


def test_diode_relu_is_monotone_and_one_lipschitz():
    x = np.linspace(-5, 5, 401)
    for rs in (0.0, 1.0):
        z = diode_relu(x, series_resistance=rs)
        dz = np.diff(z)
        assert np.all(dz > 0)
        assert np.all(dz <= np.diff(x) * (1 + 1e-9))


def test_diode_relu_tends_to_relu_as_the_diode_becomes_ideal():
    x = np.linspace(-2, 2, 41)
    errs = [np.max(np.abs(diode_relu(x, model=of.ShockleyDiode(n=n)) - np.maximum(x, 0)))
            for n in (1.0, 0.1, 0.01)]
    # the error is a few n V_T (the knee) times log(|x| / i_s): proportional to n
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.01
    np.testing.assert_allclose(errs[1] / errs[0], 0.1, rtol=0.05)
    np.testing.assert_allclose(diode_relu(x, model=of.IdealDiode()), np.maximum(x, 0),
                               rtol=0, atol=1e-12)


def test_relu_diode_gives_a_leaky_relu():
    x = np.linspace(-2, 2, 41)
    g, g_on = 2.0, 3.0
    z = diode_relu(x, model=of.ReluDiode(g_on), conductance=g)
    ref = np.where(x > 0, x, g / (g + g_on) * x)
    np.testing.assert_allclose(z, ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(diode_relu_grad(x[x != 0], model=of.ReluDiode(g_on),
                                               conductance=g),
                               np.where(x[x != 0] > 0, 1.0, g / (g + g_on)), rtol=1e-12)


@pytest.mark.parametrize("rs", [0.0, 0.7])
def test_diode_relu_grad_matches_finite_differences(rs):
    x = np.linspace(-3, 3, 31) + 0.013
    for model in (of.ShockleyDiode(), of.ShockleyDiode(i_s=1e-9, n=1.5)):
        v, d = diode_relu_grad(x, model=model, series_resistance=rs, return_value=True)
        np.testing.assert_allclose(v, diode_relu(x, model=model, series_resistance=rs))
        h = 1e-5
        fd = (diode_relu(x + h, model=model, series_resistance=rs)
              - diode_relu(x - h, model=model, series_resistance=rs)) / (2 * h)
        # central differences: O(h²) truncation (curvature up to ~1/(n V_T) ≈ 40 V⁻¹)
        np.testing.assert_allclose(d, fd, rtol=1e-6, atol=1e-8)


def test_diode_relu_rejects_bad_arguments():
    with pytest.raises(of.InvalidNetworkError):
        diode_relu([0.0], series_resistance=-1.0)
    with pytest.raises(of.InvalidNetworkError):
        diode_relu([0.0], conductance=0.0)
    with pytest.raises(of.InvalidNetworkError):
        diode_relu([np.nan])
    with pytest.raises(of.InvalidNetworkError):
        diode_relu([0.0], model="shockley")
