"""Training: learning on digits, determinism, checkpoints and resume, the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import ohmflow as of
import pytest
from ohmflow import cli, datasets, models
from ohmflow.train import CheckpointError, TrainConfig, Trainer, load_checkpoint


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits")


def small_model(seed: int = 0, hidden: int = 16) -> models.DeepResistiveNetwork:
    return models.build(f"128-{hidden}-10", **{**models.PRESETS["drn-digits"].options,
                                               "seed": seed})


def tiny(digits, n_train=96, n_test=40):
    return digits.subset(n_train, n_test)


def test_short_training_beats_chance_by_far(digits):
    """One epoch of EP on the 1438 training digits, a 64-unit network, fixed seeds.

    Chance is 10 %. With 359 test samples a classifier at chance has a binomial
    score of 10 % ± 1.6 % (one standard deviation); 60 % is 30 standard deviations
    away, so passing means the network learned, not luck. The run is deterministic
    (fixed seeds, deterministic solver), and reaches 86 % here.
    """
    model = models.build("drn-digits-s", seed=0)
    cfg = TrainConfig(**models.training_defaults("drn-digits-s"))
    before = model.accuracy(digits.X_test, digits.y_test)
    trainer = Trainer(model, cfg, epochs=1, seed=0)
    result = trainer.fit(digits, progress=False)
    assert before < 0.3
    assert result["test_accuracy"] >= 0.60, result["history"]
    h = result["history"][0]
    assert h["epoch"] == 1 and h["seconds"] > 0 and h["test_accuracy"] == result["test_accuracy"]
    assert h["train_accuracy"] >= 0.60
    # The conductances stay in their bounds.
    g = model.network.conductances / model.g_ref
    assert g.min() >= model.g_min and g.max() <= model.g_max


def test_same_seed_same_result(digits):
    data = tiny(digits)
    runs = []
    for _ in range(2):
        model = small_model(seed=3)
        res = Trainer(model, epochs=2, batch_size=8, lr=5.0, seed=11).fit(data, progress=False)
        runs.append((model.network.conductances, res))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert [e["loss"] for e in runs[0][1]["history"]] == [e["loss"] for e in runs[1][1]["history"]]
    other = small_model(seed=3)
    Trainer(other, epochs=2, batch_size=8, lr=5.0, seed=12).fit(data, progress=False)
    assert not np.array_equal(other.network.conductances, runs[0][0])


def test_checkpoint_resume_equals_uninterrupted_run(digits, tmp_path):
    data = tiny(digits)
    opts = dict(epochs=3, batch_size=8, lr=[6.0, 3.0], lr_decay=0.8, seed=5)
    full_model = small_model(seed=1)
    full = Trainer(full_model, **opts).fit(data, progress=False)

    ck = tmp_path / "ck" / "run.ckpt"
    first = Trainer(small_model(seed=1), **{**opts, "epochs": 1})
    first.fit(data, checkpoint=ck, progress=False)
    assert ck.exists()
    assert [p.name for p in ck.parent.iterdir()] == ["run.ckpt"]  # no temporary left over
    g, meta = load_checkpoint(ck)
    assert meta["epoch"] == 1 and np.array_equal(g, first.model.network.conductances)

    # A fresh process would rebuild everything from the checkpoint alone.
    resumed = Trainer.from_checkpoint(ck, epochs=3)
    assert resumed.state.epoch == 1
    out = resumed.fit(data, checkpoint=ck, resume=True, progress=False)
    assert np.array_equal(resumed.model.network.conductances, full_model.network.conductances)
    keys = ("epoch", "loss", "train_accuracy", "test_accuracy", "test_loss")
    assert [[e[k] for k in keys] for e in out["history"]] == \
        [[e[k] for k in keys] for e in full["history"]]
    # Resuming with the same model object through fit(resume=True) too.
    again = Trainer(small_model(seed=1), **opts)
    again.load_state(ck)
    assert again.state.epoch == 3
    assert again.fit(data, progress=False)["epochs"] == 3  # nothing left to do


def test_checkpoint_errors(digits, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=str(bad)):
        load_checkpoint(bad)
    ck = tmp_path / "a.ckpt"
    Trainer(small_model(hidden=8), epochs=1, batch_size=32).fit(tiny(digits, 32, 8),
                                                                checkpoint=ck, progress=False)
    with pytest.raises(CheckpointError, match="conductances"):
        Trainer(small_model(hidden=9)).load_state(ck)
    assert issubclass(CheckpointError, of.OhmflowError)


@pytest.mark.parametrize("rule,loss", [("exact", "mse"), ("centered-ep", "cross-entropy"),
                                       ("coupled", "mse"), ("ep", "cross-entropy")])
def test_every_rule_and_loss_lowers_the_loss(digits, rule, loss):
    data = tiny(digits, 64, 10)
    model = small_model(seed=2)
    if rule == "coupled":  # coupled learning clamps single output nodes
        model = models.build("128-16-10", outputs="single", seed=2)
    tr = Trainer(model, epochs=1, batch_size=64, rule=rule, loss=loss, lr=5.0)
    t = tr.targets(data.y_train)
    before = tr._loss.base(model.predict(data.X_train), t)[0].mean()
    tr.step(data.X_train, data.y_train)
    after = tr._loss.base(model.predict(data.X_train), t)[0].mean()
    assert after < before


def test_coupled_needs_single_outputs(digits):
    model = models.build("128-8-10", outputs="differential")
    with pytest.raises(of.InvalidNetworkError, match="coupled"):
        Trainer(model, rule="coupled").step(digits.X_train[:4], digits.y_train[:4])


def test_bad_config():
    m = small_model(hidden=4)
    with pytest.raises(of.InvalidNetworkError):
        Trainer(m, rule="backprop")
    with pytest.raises(of.InvalidNetworkError):
        Trainer(m, lr=[1.0, 2.0, 3.0])
    with pytest.raises(TypeError):
        Trainer(m, learning_rate=1.0)


def test_cli_train_writes_json_and_plot(tmp_path, capsys):
    js, png, ck = tmp_path / "r.json", tmp_path / "c.png", tmp_path / "c.ckpt"
    args = ["train", "--model", "128-12-10", "--epochs", "2", "--train-subset", "80",
            "--test-subset", "30", "--batch-size", "16", "--json", str(js),
            "--checkpoint", str(ck), "--no-progress", "--seed", "4"]
    try:
        import matplotlib  # noqa: F401

        args += ["--plot", str(png)]
        has_mpl = True
    except ImportError:  # the plot is an optional extra; its absence is tested below
        has_mpl = False
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "test accuracy:" in out
    r = json.loads(js.read_text())
    for key in ("test_accuracy", "train_accuracy", "epochs", "seconds", "config", "history"):
        assert key in r
    assert r["epochs"] == 2 and r["config"]["rule"] == "ep" and r["config"]["seed"] == 4
    assert len(r["history"]) == 2
    for i, e in enumerate(r["history"], start=1):
        assert e["epoch"] == i
        for key in ("seconds", "train_accuracy", "test_accuracy", "loss"):
            assert isinstance(e[key], float)
    if has_mpl:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Resume from the checkpoint for one more epoch.
    assert cli.main(["train", "--checkpoint", str(ck), "--resume", "--epochs", "3",
                     "--train-subset", "80", "--test-subset", "30", "--json", str(js),
                     "--no-progress", "-q"]) == 0
    r3 = json.loads(js.read_text())
    assert r3["epochs"] == 3 and r3["history"][:2] == r["history"]


def test_cli_errors_and_default_command(tmp_path, monkeypatch, capsys):
    assert cli.main(["train", "--dataset", str(tmp_path / "none"), "--no-progress"]) == 1
    assert str(tmp_path / "none") in capsys.readouterr().err
    seen = {}
    monkeypatch.setattr(cli, "_train", lambda args: seen.setdefault("args", args) and 0)
    cli.main([])
    assert seen["args"].command == "train" and seen["args"].model == "drn-digits"
    assert seen["args"].dataset == "digits"
    cli.main(["--epochs", "3"])
    assert seen["args"].epochs is None or seen["args"].command == "train"


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(SystemExit, match="matplotlib"):
        cli._plot({"history": []}, os.fspath(tmp_path / "x.png"))
