"""Pulsed device models: pulse responses against their closed forms, symmetry
points, number of states, noise statistics against their parameters, update
schemes against their expectations, seeding."""

import math

import numpy as np
import ohmflow as of
import pytest
from ohmflow import devices as D

QUIET = {"dw_min_dtod": 0.0, "dw_min_std": 0.0, "up_down_dtod": 0.0, "w_min_dtod": 0.0,
         "w_max_dtod": 0.0}


def _pulse(dev, arr, n, up, seed=0):
    dev.apply_pulses(arr, np.asarray(n), np.asarray(up, dtype=bool),
                     np.random.default_rng(seed))


def test_soft_bounds_up_and_down_curves_match_geometric_closed_form():
    dw, beta, wmax, wmin = 0.01, 0.3, 0.8, -0.6
    dev = D.SoftBoundsDevice(dw_min=dw, up_down=beta, w_max=wmax, w_min=wmin, **QUIET)
    n = np.array([0, 1, 5, 50, 400, 3000])
    rng = np.random.default_rng(1)
    arr = dev.realise(n.size, rng, -0.5)
    _pulse(dev, arr, n, np.ones(n.size))
    up = dw  # β > 0: the up direction keeps dw_min (aihwkit's convention)
    # u = w_max − w shrinks by (1 − Δw⁺ / w_max) per pulse
    expect = wmax - (wmax + 0.5) * (1 - up / wmax) ** n
    np.testing.assert_allclose(arr.w, expect, rtol=0, atol=1e-12)
    assert np.all(arr.w <= wmax)
    arr = dev.realise(n.size, rng, 0.7)
    _pulse(dev, arr, n, np.zeros(n.size))
    down = dw * (1 - beta)  # ... and the down direction is shrunk by β
    # u = w − w_min shrinks by (1 − Δw⁻ / |w_min|) per pulse
    expect = wmin + (0.7 - wmin) * (1 - down / abs(wmin)) ** n
    np.testing.assert_allclose(arr.w, expect, rtol=0, atol=1e-12)
    assert np.all(arr.w >= wmin)


def test_linear_step_curve_and_hard_bound():
    dw, g = 0.02, 0.5
    dev = D.LinearStepDevice(dw_min=dw, gamma_up=g, gamma_down=g, gamma_up_dtod=0,
                             gamma_down_dtod=0, w_max=1.0, w_min=-1.0, up_down=0.0, **QUIET)
    n = np.array([1, 10, 40])
    arr = dev.realise(3, np.random.default_rng(0), 0.0)
    _pulse(dev, arr, n, np.ones(3))
    # w ← w + Δw (1 − g w / w_max): fixed point w_f = w_max / g, w_n = w_f − w_f (1 − g Δw)^n
    wf = 1.0 / g
    expect = np.minimum(wf - wf * (1 - g * dw) ** n, 1.0)
    np.testing.assert_allclose(arr.w, expect, atol=1e-12)
    # 100 more pulses: the hard bound w_max = 1 (reached since w_f = 2 > 1)
    _pulse(dev, arr, [100, 100, 100], np.ones(3))
    np.testing.assert_array_equal(arr.w, 1.0)


def test_constant_step_number_of_states_and_bounds():
    dw = 0.013
    dev = D.ConstantStepDevice(dw_min=dw, w_max=0.6, w_min=-0.6, up_down=0.0, **QUIET)
    arr = dev.realise(1, np.random.default_rng(0), -0.6)
    values = [arr.w[0]]
    for _ in range(200):
        _pulse(dev, arr, [1], [True])
        values.append(arr.w[0])
    states = np.unique(np.round(values, 12))
    assert len(states) == math.ceil(1.2 / dw) + 1  # ⌈range/dw_min⌉ steps, both ends
    assert states.max() == 0.6 and states.min() == -0.6
    np.testing.assert_allclose(np.diff(states)[:-1], dw, atol=1e-12)


def test_exp_step_matches_documented_formula_pulse_by_pulse():
    dev = D.ExpStepDevice(dw_min=0.005, up_down=0.1, **QUIET)
    arr = dev.realise(2, np.random.default_rng(0), 0.0)
    seq = [True] * 30 + [False] * 70 + [True] * 10
    w_ref = [0.0, 0.0]
    for up in seq:
        _pulse(dev, arr, [1, 1], [up, up])
        for i in range(2):  # the aihwkit ExpStepDevice formula, scalar
            w = w_ref[i]
            z = 2 * 0.244 * w / (0.6 - -0.6) + 0.2425
            if up:
                y = 1 - 0.00081 * math.exp(12.44625 * z)
                w += max(y, 0.0) * 0.005  # up_down 0.1 > 0: up keeps dw_min
            else:
                y = 1 - 0.36833 * math.exp(-12.78785 * z)
                w -= max(y, 0.0) * 0.005 * 0.9
            w_ref[i] = min(max(w, -0.6), 0.6)
    np.testing.assert_allclose(arr.w, w_ref, atol=1e-13)


@pytest.mark.parametrize("beta", [-0.4, 0.0, 0.25])
def test_soft_bounds_symmetry_point_and_drift_under_random_pulses(beta):
    wmax = 0.8
    dev = D.SoftBoundsDevice(dw_min=0.01, up_down=beta, w_max=wmax, w_min=-wmax, **QUIET)
    rng = np.random.default_rng(3)
    arr = dev.realise(400, rng, rng.uniform(-wmax, wmax, 400))
    sp = dev.symmetry_point(arr)
    # Δw⁺ (1 − w/wm) = Δw⁻ (1 + w/wm) with Δw± = dw (1 + min(β,0)), dw (1 − max(β,0))
    expect = beta * wmax / (2 - abs(beta))
    np.testing.assert_allclose(sp, expect, atol=1e-12)
    # zero-mean random pulses drive every device to its symmetry point
    for _ in range(1500):
        _pulse(dev, arr, np.ones(400, int), rng.random(400) < 0.5, seed=int(rng.integers(1 << 30)))
    # stationary spread of a ±1-pulse walk with restoring rate dw/w_max: about
    # sqrt(dw w_max / 2) ≈ 0.06; the mean of 400 devices is within 0.02 (≈ 6 SE)
    assert abs(np.mean(arr.w) - expect) < 0.02


def test_general_symmetry_point_balances_up_and_down_steps():
    dev = D.ExpStepDevice(dw_min=0.01, up_down=0.05, **QUIET)
    arr = dev.realise(3, np.random.default_rng(0))
    sp = dev.symmetry_point(arr)
    up = dev.mean_step(arr, sp, True)
    down = dev.mean_step(arr, sp, False)
    assert np.all(up > 0) and np.all(down < 0)
    np.testing.assert_allclose(up + down, 0, atol=1e-12)


def test_device_to_device_statistics_match_parameters():
    dev = D.SoftBoundsDevice(dw_min=0.01, dw_min_dtod=0.2, up_down=0.1, up_down_dtod=0.05,
                             w_max=0.6, w_min=-0.5, w_max_dtod=0.1, w_min_dtod=0.15,
                             dw_min_std=0.0)
    n = 40000
    arr = dev.realise(n, np.random.default_rng(11))
    # the stronger direction is dw_min s, the weaker dw_min s (1 − |β|)
    strong = np.maximum(arr.dw_up, arr.dw_down)
    s = strong / dev.dw_min  # = 1 + dw_min_dtod ξ
    weak = np.minimum(arr.dw_up, arr.dw_down) / strong
    beta = np.where(arr.dw_up >= arr.dw_down, 1 - weak, weak - 1)  # = up_down + up_down_dtod ξ'
    se = 1 / math.sqrt(2 * n)  # relative standard error of a sample std
    assert abs(np.std(s) / 0.2 - 1) < 5 * se
    assert abs(np.mean(s) - 1) < 5 * 0.2 / math.sqrt(n)
    assert abs(np.std(beta) / 0.05 - 1) < 5 * se
    assert abs(np.mean(beta) - 0.1) < 5 * 0.05 / math.sqrt(n)
    assert abs(np.std(arr.b_max) / (0.1 * 0.6) - 1) < 5 * se
    assert abs(np.std(arr.b_min) / (0.15 * 0.5) - 1) < 5 * se


def test_cycle_to_cycle_noise_statistics():
    dev = D.ConstantStepDevice(dw_min=0.01, dw_min_std=0.3, up_down=0.2, dw_min_dtod=0.0,
                               up_down_dtod=0.0, w_min_dtod=0.0, w_max_dtod=0.0)
    n = 40000
    arr = dev.realise(n, np.random.default_rng(5), 0.0)
    _pulse(dev, arr, np.ones(n, int), np.ones(n), seed=9)
    steps = arr.w / 0.01  # = 1 + dw_min_std ξ (up_down > 0: the up step keeps dw_min)
    assert abs(np.mean(steps) - 1) < 5 * 0.3 / math.sqrt(n)
    assert abs(np.std(steps) / 0.3 - 1) < 5 / math.sqrt(2 * n)


def test_schemes_are_unbiased():
    rng = np.random.default_rng(0)
    dw = np.array([0.0, 0.0003, 0.0025, -0.0071, 0.02])
    reps = 20000
    n_det = np.mean([D.pulses_deterministic(dw, 0.001, rng) for _ in range(reps)], axis=0)
    n_sto = np.mean([D.pulses_stochastic(dw, 0.001, rng, desired_bl=31) for _ in range(reps)],
                    axis=0)
    want = np.abs(dw) / 0.001
    # per-entry SE ≤ sqrt(n)/sqrt(reps) with n ≤ 20 pulses: 5 SE ≈ 0.16
    np.testing.assert_allclose(n_det, want, atol=0.16)
    np.testing.assert_allclose(n_sto, want, atol=0.16)
    assert np.all(D.pulses_deterministic(np.full(3, 1.0), 0.001, rng, max_pulses=7) == 7)
    assert np.array_equal(D.pulses_deterministic(dw, 0.001, rng, sto_round=False),
                          np.rint(want).astype(int))


def test_outer_product_coincidences_give_requested_update_on_average():
    rng = np.random.default_rng(2)
    x = np.array([0.5, -1.0, 0.2])
    d = np.array([-0.3, 0.8])
    lr, dw = 0.01, 0.001
    reps = 20000
    tot = np.zeros((3, 2))
    for _ in range(reps):
        n, up = D.pulses_outer(x, d, lr, dw, rng, desired_bl=31)
        tot += np.where(up, n, -n)
    want = lr * np.outer(x, d) / dw  # expected signed pulses
    # each count is a sum of ≤ BL Bernoulli coincidences; var ≤ mean ≤ 8: 5 SE < 0.11
    np.testing.assert_allclose(tot / reps, want, atol=0.11)
    n, up = D.pulses_outer(np.zeros(3), d, lr, dw, rng)
    assert not n.any()


def test_ideal_device_is_exact_and_clips():
    dev = D.IdealDevice()
    arr = dev.realise(3, np.random.default_rng(0), [0.0, 0.5, -0.9])
    dev.update(arr, np.array([0.123, 0.7, -0.3]), np.random.default_rng(0))
    np.testing.assert_array_equal(arr.w, [0.123, 1.0, -1.0])


def test_seeded_realisation_and_pulses_repeat_exactly():
    dev = D.SoftBoundsDevice(dw_min=0.01)
    out = []
    for seed in (4, 4, 5):
        rng = np.random.default_rng(seed)
        arr = dev.realise(50, rng, 0.1)
        dev.update(arr, rng.normal(0, 0.05, 50), rng, scheme="stochastic")
        out.append(arr.w.copy())
    assert np.array_equal(out[0], out[1])
    assert not np.array_equal(out[0], out[2])


def test_device_dicts_round_trip_and_bad_settings_raise():
    dev = D.device_from_dict({"model": "SoftBoundsDevice", "dw_min": 0.02, "up_down": 0.3})
    assert isinstance(dev, D.SoftBoundsDevice) and dev.dw_min == 0.02
    assert D.device_from_dict(dev.to_dict()) == dev
    with pytest.raises(of.InvalidNetworkError, match="unknown device model"):
        D.device_from_dict({"model": "memristor"})
    with pytest.raises(of.InvalidNetworkError, match="unknown parameters"):
        D.device_from_dict({"model": "soft-bounds", "dw": 0.1})
    with pytest.raises(of.InvalidNetworkError, match="w_min < w_max"):
        D.device_from_dict({"model": "constant-step", "w_min": 1.0, "w_max": 0.0})
    with pytest.raises(of.InvalidNetworkError, match="dw_min"):
        D.device_from_dict({"model": "constant-step", "dw_min": 0.0})
    with pytest.raises(of.InvalidNetworkError, match="finite"):
        D.device_from_dict({"model": "constant-step", "dw_min": float("nan")})
