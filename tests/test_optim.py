"""Analog optimisers: study (a) in a fast form (SGD pulled to the symmetry point,
Tiki-Taka and SHD at the optimum), the trainer with every rule and optimiser,
and checkpoint resume with device state."""

import numpy as np
import ohmflow as of
import pytest
from ohmflow import optim, study
from ohmflow.train import Trainer

# Soft bounds on [−1, 1] with up_down = 2/3: symmetry point w_max β / (2 − β) = +0.5,
# optimum −0.5.
ASYM = {"model": "soft-bounds", "dw_min": 0.01, "up_down": 2 / 3, "w_min": -1.0, "w_max": 1.0,
        "dw_min_dtod": 0.05, "dw_min_std": 0.1, "up_down_dtod": 0.02, "w_min_dtod": 0.02,
        "w_max_dtod": 0.02}


def test_one_parameter_sgd_settles_near_symmetry_point_shd_and_tiki_taka_at_optimum():
    res = {k: study.quadratic(k, ASYM, w_star=-0.5, steps=2000, lr=0.05, lr_final=0.005,
                              noise=1.0, seed=0)
           for k in ("analog-sgd", "tiki-taka", "shd")}
    sp = res["analog-sgd"]["symmetry_point"]
    assert abs(sp - 0.5) < 0.05  # up_down 2/3 on ±1 bounds, small d-to-d spread
    err = {k: abs(r["final"] + 0.5) for k, r in res.items()}
    # SGD's fixed point solves E[x] = E|x| κ (w − w_sp): with gradient noise 1
    # against a signal ≤ 1 it ends more than 30 % of the way from the optimum
    # to the symmetry point (distance 1); SHD and Tiki-Taka end within 0.1 of
    # the optimum, and SGD's error is more than 4 times theirs.
    assert err["analog-sgd"] > 0.3
    assert err["shd"] < 0.1 and err["analog-sgd"] > 4 * err["shd"]
    assert err["tiki-taka"] < 0.1 and err["analog-sgd"] > 4 * err["tiki-taka"]


def test_regression_on_crossbar_shd_beats_sgd():
    res = {k: study.regression(k, ASYM, steps=2000, lr=0.05, lr_final=0.005, noise=1.0,
                               seed=0)
           for k in ("analog-sgd", "tiki-taka", "shd")}
    d = {k: r["final_distance"] for k, r in res.items()}
    # distance (RMS over the 8 weights) to the least-squares solution: SGD's is
    # biased towards the symmetry point; SHD's and Tiki-Taka's less than half of it
    assert d["analog-sgd"] > 0.15
    assert d["shd"] < 0.5 * d["analog-sgd"]
    assert d["tiki-taka"] < 0.5 * d["analog-sgd"]
    for r in res.values():
        assert r["final_loss"] >= r["optimal_loss"] - 1e-12  # least squares is optimal


def test_ideal_device_equals_exact_update():
    opt = optim.AnalogOptimizer("analog-sgd", {"model": "ideal"}).init([0.1, -0.2, 0.95])
    opt.step([0.05, -0.1, 0.2])
    np.testing.assert_allclose(opt.weights, [0.15, -0.3, 1.0], atol=1e-15)


def test_seeded_optimisers_repeat_exactly():
    def run(seed):
        opt = optim.AnalogOptimizer("shd", ASYM, seed=seed, scheme="stochastic").init(
            np.linspace(-0.5, 0.5, 20))
        rng = np.random.default_rng(0)
        for _ in range(50):
            opt.step(rng.normal(0, 0.03, 20))
        return opt.weights

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_bad_optimiser_settings_raise():
    with pytest.raises(of.InvalidNetworkError, match="analog optimiser"):
        optim.AnalogOptimizer("adam", ASYM)
    with pytest.raises(of.InvalidNetworkError, match="unknown options"):
        optim.AnalogOptimizer("shd", ASYM, momentum=0.9)
    with pytest.raises(of.InvalidNetworkError, match="scheme"):
        optim.AnalogOptimizer("analog-sgd", ASYM, scheme="magic")
    model = of.models.build("8-4-2")
    with pytest.raises(of.InvalidNetworkError, match="optimizer must be one of"):
        Trainer(model, optimizer="momentum")
    with pytest.raises(of.InvalidNetworkError, match="analog optimizer"):
        Trainer(model, device=ASYM)


@pytest.fixture(scope="module")
def digits():
    return of.datasets.load("digits").subset(48, 24)


@pytest.mark.parametrize("rule", ["ep", "centered-ep", "exact", "coupled"])
@pytest.mark.parametrize("kind", ["analog-sgd", "tiki-taka", "shd"])
def test_every_rule_trains_with_every_optimiser(digits, rule, kind):
    outputs = "single" if rule == "coupled" else "differential"
    model = of.models.build("128-16-10", outputs=outputs, seed=1)
    g0 = model.network.conductances.copy()
    tr = Trainer(model, epochs=1, batch_size=8, lr=5.0, rule=rule, optimizer=kind,
                 device={**ASYM, "dw_min": 0.002}, eval_train=False)
    loss0 = tr.evaluate(digits.X_train, digits.y_train)[1]
    for _ in range(6):
        tr.step(digits.X_train[:8], digits.y_train[:8])
    g = model.network.conductances
    lo, hi = model.g_min * model.g_ref, model.g_max * model.g_ref
    assert np.all(np.isfinite(g)) and np.all(g >= lo) and np.all(g <= hi)
    trainable = np.concatenate(model.parameter_groups())
    moved = np.abs(g - g0)[trainable] > 0
    assert moved.mean() > 0.05  # pulses reached the devices
    # untrained resistors (none in a DRN besides the trainable ones) keep their value
    others = np.setdiff1d(np.arange(g.size), trainable)
    np.testing.assert_array_equal(g[others], g0[others])
    # the visible conductances are what the devices hold
    np.testing.assert_allclose(g[trainable], tr.optimizer.conductances, rtol=0, atol=0)
    assert np.isfinite(loss0)


@pytest.mark.parametrize("kind", ["analog-sgd", "shd"])
def test_checkpoint_resume_with_analog_optimiser_is_bitwise_equal(digits, tmp_path, kind):
    cfg = dict(epochs=2, batch_size=8, lr=5.0, optimizer=kind, eval_train=False,
               device={**ASYM, "dw_min": 0.002}, optimizer_options={"scheme": "stochastic"})
    full = Trainer(of.models.build("128-16-10", seed=2), **cfg)
    full.fit(digits, progress=False)
    ck = tmp_path / "run.npz"
    first = Trainer(of.models.build("128-16-10", seed=2), **{**cfg, "epochs": 1})
    first.fit(digits, checkpoint=ck, progress=False)
    resumed = Trainer.from_checkpoint(ck, epochs=2)
    resumed.fit(digits, checkpoint=ck, resume=True, progress=False)
    np.testing.assert_array_equal(resumed.model.network.conductances,
                                  full.model.network.conductances)
    _, a_full = full.optimizer.state()
    _, a_res = resumed.optimizer.state()
    assert a_full.keys() == a_res.keys()
    for k in a_full:
        np.testing.assert_array_equal(a_res[k], a_full[k])
    assert resumed.result()["history"][-1]["test_accuracy"] == \
        full.result()["history"][-1]["test_accuracy"]
    assert resumed.result()["devices"]["device"]["model"] == "soft-bounds"


def test_ideal_device_in_trainer_matches_exact_sgd(digits):
    """The analog path with an ideal device (exact Δg, clipped to the same range) is
    the trainer's plain SGD step, up to the rounding of the affine g ↔ w map."""
    runs = []
    for extra in ({}, {"optimizer": "analog-sgd", "device": {"model": "ideal"}}):
        model = of.models.build("128-16-10", seed=3)
        tr = Trainer(model, lr=5.0, batch_size=8, **extra)
        for b in range(4):
            tr.step(digits.X_train[8 * b:8 * b + 8], digits.y_train[8 * b:8 * b + 8])
        runs.append(model.network.conductances)
    assert not np.allclose(runs[0], of.models.build("128-16-10", seed=3).network.conductances)
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-9, atol=1e-15)


def test_study_asymmetry_cli_writes_every_arm(tmp_path):
    import json

    from ohmflow.cli import main

    path = tmp_path / "study.json"
    rc = main(["study", "asymmetry", "--model", "128-8-10", "--epochs", "1",
               "--train-subset", "40", "--test-subset", "20", "--json", str(path), "-q"])
    assert rc == 0
    res = json.loads(path.read_text())
    for arm in ("ideal", "sgd", "tiki-taka", "shd"):
        assert 0.0 <= res[arm] <= 1.0
        assert len(res["histories"][arm]) == 1
    assert res["device"]["model"] == "soft-bounds"
    assert res["settings"]["shd"]["optimizer"] == "shd"
    assert res["settings"]["ideal"]["device"]["model"] == "ideal"
    assert res["settings"]["sgd"]["g_range"] == pytest.approx([1e-6, 2e-3])


def test_checkpoint_of_another_optimiser_is_rejected(digits, tmp_path):
    from ohmflow.train import CheckpointError

    ck = tmp_path / "a.npz"
    cfg = dict(epochs=1, batch_size=8, lr=5.0, eval_train=False, device=ASYM)
    Trainer(of.models.build("128-16-10"), optimizer="shd", **cfg).fit(
        digits, checkpoint=ck, progress=False)
    other = Trainer(of.models.build("128-16-10"), optimizer="analog-sgd", **cfg)
    with pytest.raises(CheckpointError, match="optimizer state"):
        other.load_state(ck)
    plain = tmp_path / "plain.npz"
    Trainer(of.models.build("128-16-10"), epochs=1, batch_size=8, lr=5.0,
            eval_train=False).fit(digits, checkpoint=plain, progress=False)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        Trainer(of.models.build("128-16-10"), optimizer="shd", **cfg).load_state(plain)


def test_hidden_array_reference_is_the_symmetry_point_or_zero():
    quiet = {"dw_min_dtod": 0.0, "dw_min_std": 0.0, "up_down_dtod": 0.0, "w_min_dtod": 0.0,
             "w_max_dtod": 0.0}
    sb = {"model": "soft-bounds", "dw_min": 0.01, "up_down": 0.3, "w_min": -0.6,
          "w_max": 0.6, **quiet}
    opt = optim.AnalogOptimizer("tiki-taka", sb).init(np.zeros(4))
    np.testing.assert_allclose(opt.ref, 0.6 * 0.3 / 1.7, atol=1e-12)  # w_max β/(2−β)
    np.testing.assert_allclose(opt.hidden, 0.0, atol=1e-12)
    # a constant step with up ≠ down has no symmetry point: reference 0, not a bound
    cs = {"model": "constant-step", "dw_min": 0.01, "up_down": 0.1, **quiet}
    opt = optim.AnalogOptimizer("shd", cs).init(np.zeros(4))
    np.testing.assert_array_equal(opt.ref, 0.0)
    assert np.all(opt.A.b_max > 0) and np.all(opt.A.b_min < 0)


def test_outer_update_on_ideal_devices_is_the_outer_product():
    x = np.array([[0.5, -1.0, 0.25], [1.0, 0.0, -0.5]])
    d = np.array([[0.2, -0.4], [-0.1, 0.3]])
    opt = optim.AnalogOptimizer("analog-sgd", {"model": "ideal"}).init(np.zeros(6))
    opt.step_outer(x, d, 0.1)
    want = -0.1 * (np.outer(x[0], d[0]) + np.outer(x[1], d[1]))
    np.testing.assert_allclose(opt.weights.reshape(3, 2), want, atol=1e-15)
    with pytest.raises(of.InvalidNetworkError, match="do not fit"):
        opt.step_outer(x[:, :2], d, 0.1)
