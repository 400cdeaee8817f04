"""Studies of training with imperfect devices.

:func:`quadratic` and :func:`regression`
    Study (a): a one-parameter problem ``f(w) = ½ (w − w*)²`` with noisy gradients
    and a linear regression ``y = W x`` on a small crossbar (outer-product pulse
    updates), trained with analog SGD, Tiki-Taka and SHD on devices whose symmetry
    point is away from the optimum. SGD settles between the optimum and the
    symmetry point; Tiki-Taka and SHD reach the optimum. Runnable with plots in
    ``examples/devices/study_regression.py``.
:func:`asymmetry`
    Study (b): the same deep resistive network, data, epochs and seed trained with
    ideal devices, analog SGD, Tiki-Taka and SHD on asymmetric soft-bounds
    devices; ``ohmflow study asymmetry`` runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._core import InvalidNetworkError
from .optim import AnalogOptimizer

__all__ = ["quadratic", "regression", "asymmetry", "ASYMMETRIC_DEVICE", "ARMS"]

ASYMMETRIC_DEVICE: dict[str, Any] = {
    "model": "soft-bounds", "dw_min": 0.002, "up_down": 0.0, "w_min": -1.0, "w_max": 1.0,
    "dw_min_dtod": 0.1, "dw_min_std": 0.1, "up_down_dtod": 0.05, "w_min_dtod": 0.05,
    "w_max_dtod": 0.05,
}
"""Default device of study (b): soft bounds over the network's whole conductance
range (``[w_min, w_max] = [−1, 1]`` ↔ ``[g_min, g_max]``), so that every device's
symmetry point sits near the middle of the range (≈ 1 g_ref with
:data:`MODEL_OPTIONS`), above most trained conductances; 1000 steps across the
range (``dw_min = 0.002``), 10 % device-to-device and cycle-to-cycle spread of
the step, 5 % spread of the bounds and of the up/down balance."""

ARMS = ("ideal", "sgd", "tiki-taka", "shd")

MODEL_OPTIONS: dict[str, Any] = {"g_max": 2.0}
"""Default builder options of the study's network: conductances (and so the
devices' range) in ``[g_min, g_max] = [0.001, 2] g_ref`` instead of the presets'
``[0.001, 10]``. The device range is matched to where trained weights live (with
ideal updates 95 % of the conductances end below 1.1 g_ref), as one would map
weights onto devices; every device's symmetry point (the middle, ≈ 1 g_ref) is
still away from most weights. Over ``[0.001, 10]`` the weights sit at the bottom
of the soft-bounds range, where a down step is 10-50 times smaller than an up
step, and SHD loses about 3 points (see examples/devices/README.md)."""


def _opt(kind: str, device: Any, seed: int, options: dict | None) -> AnalogOptimizer:
    return AnalogOptimizer(kind, device, seed=seed, **(options or {}))


def _schedule(lr: float, lr_final: float | None, steps: int) -> np.ndarray:
    if lr_final is None:
        return np.full(steps, float(lr))
    return float(lr) * (float(lr_final) / float(lr)) ** (np.arange(steps) / max(steps - 1, 1))


def quadratic(kind: str, device: Any, *, w_star: float = -0.5, w0: float = 0.0,
              steps: int = 3000, lr: float = 0.05, lr_final: float | None = None,
              noise: float = 1.0, seed: int = 0, options: dict | None = None) -> dict:
    """Minimises ``f(w) = ½ (w − w*)²`` from stochastic gradients
    ``(w − w*) + noise · ξ`` on one pulsed device; the rate decays geometrically
    from ``lr`` to ``lr_final`` (default: constant).

    Returns
    -------
    dict
        ``"w"`` (visible weight after each step), ``"hidden"`` (A or P, NaN for
        SGD), ``"w_star"``, ``"symmetry_point"`` (of the visible device), and
        ``"final"``: the mean of ``w`` over the last 20 % of the steps.
    """
    opt = _opt(kind, device, seed, options).init([w0])
    rng = np.random.default_rng(seed + 1)
    trace = np.empty(steps)
    hidden = np.full(steps, np.nan)
    rates = _schedule(lr, lr_final, steps)
    for k in range(steps):
        w = opt.weights
        grad = (w - w_star) + noise * rng.standard_normal(1)
        opt.step(-rates[k] * grad, transfer_scale=rates[k] / lr)
        trace[k] = opt.weights[0]
        if opt.hidden is not None:
            hidden[k] = opt.hidden[0]
    sp = float(opt.device.symmetry_point(opt.W)[0]) if opt.device.pulsed else float("nan")
    tail = trace[int(0.8 * steps):]
    return {"w": trace, "hidden": hidden, "w_star": w_star, "symmetry_point": sp,
            "final": float(np.mean(tail))}


def regression(kind: str, device: Any, *, n_in: int = 4, n_out: int = 2, samples: int = 256,
               steps: int = 4000, lr: float = 0.05, lr_final: float | None = None,
               batch: int = 1, noise: float = 0.05, seed: int = 0,
               w_true: np.ndarray | None = None, options: dict | None = None) -> dict:
    """Linear regression ``y = W x + ε`` on an (n_in × n_out) crossbar trained by
    stochastic outer-product pulse updates (``ΔW = −lr x δᵀ``, δ = Wᵀx − y); the
    rate decays geometrically from ``lr`` to ``lr_final`` (default: constant).

    Returns
    -------
    dict
        ``"loss"`` (mean squared error on the whole data set every 10 steps),
        ``"distance"`` (RMS distance of the visible weights to the least-squares
        solution, same steps), ``"W"`` (final visible weights),
        ``"W_opt"`` (least-squares solution) and ``"final_distance"``.
    """
    rng = np.random.default_rng(seed + 7)
    if w_true is None:
        w_true = rng.uniform(-0.5, 0.5, (n_in, n_out))
    X = rng.standard_normal((samples, n_in))
    Y = X @ w_true + noise * rng.standard_normal((samples, n_out))
    w_opt, *_ = np.linalg.lstsq(X, Y, rcond=None)
    opt = _opt(kind, device, seed, options).init(np.zeros(n_in * n_out))
    every = 10
    loss, dist = [], []
    rates = _schedule(lr, lr_final, steps)
    for k in range(steps):
        idx = rng.integers(0, samples, batch)
        W = opt.weights.reshape(n_in, n_out)
        delta = X[idx] @ W - Y[idx]
        opt.step_outer(X[idx], delta / batch, rates[k], transfer_scale=rates[k] / lr)
        if k % every == 0 or k == steps - 1:
            W = opt.weights.reshape(n_in, n_out)
            loss.append(float(np.mean((X @ W - Y) ** 2)))
            dist.append(float(np.sqrt(np.mean((W - w_opt) ** 2))))
    W = opt.weights.reshape(n_in, n_out)
    return {"loss": np.array(loss), "distance": np.array(dist), "every": every, "W": W,
            "W_opt": w_opt, "final_distance": float(np.sqrt(np.mean((W - w_opt) ** 2))),
            "final_loss": float(np.mean((X @ W - Y) ** 2)),
            "optimal_loss": float(np.mean((X @ w_opt - Y) ** 2))}


def asymmetry(dataset: Any = "digits", *, model: str = "drn-digits-s", epochs: int = 12,
              seed: int = 0, model_seed: int = 0, device: dict | None = None,
              arms: tuple[str, ...] = ARMS, options: dict | None = None,
              model_options: dict | None = None, train_subset: int | None = None,
              test_subset: int | None = None,
              log: Callable[[str], None] | None = None, **train: Any) -> dict:
    """Study (b): one network, data, epochs and seed; ideal devices against analog
    SGD, Tiki-Taka and SHD on an asymmetric device.

    Parameters
    ----------
    dataset : str or Dataset
    model : str
        Preset or layer sizes (:func:`ohmflow.models.build`); its tuned training
        options are the defaults, ``train`` overrides them.
    epochs, seed, model_seed : int
        Epochs, minibatch seed (also seeds the devices), initial-weight seed.
    device : dict, optional
        Device settings (default :data:`ASYMMETRIC_DEVICE`).
    arms : tuple of str
        Any of ``"ideal"`` (an :class:`~ohmflow.devices.IdealDevice`: exact Δg,
        clipped to the same conductance range), ``"sgd"`` (analog SGD),
        ``"tiki-taka"``, ``"shd"``.
    options : dict, optional
        Per-arm optimiser options, e.g. ``{"shd": {"transfer_lr": 0.05}}``.
    model_options : dict, optional
        Builder options of the network (default :data:`MODEL_OPTIONS`); its
        ``[g_min, g_max] × g_ref`` is the conductance range of the devices.

    Returns
    -------
    dict
        The test accuracy of each arm under its name, ``"device"``, ``"settings"``
        (each arm's optimiser settings), ``"histories"``, ``"seconds"`` and the
        common training configuration.
    """
    from . import models
    from .datasets import Dataset, load
    from .train import TrainConfig, Trainer

    data = dataset if isinstance(dataset, Dataset) else load(dataset)
    if train_subset is not None or test_subset is not None:
        data = data.subset(train_subset, test_subset)
    dev = dict(ASYMMETRIC_DEVICE if device is None else device)
    base = {**models.training_defaults(model), "epochs": int(epochs), "seed": int(seed),
            **train}
    out: dict = {"dataset": data.name, "model": model, "device": dev,
                 "model_options": MODEL_OPTIONS if model_options is None else model_options,
                 "settings": {},
                 "histories": {}, "seconds": {}}
    for arm in arms:
        if arm not in ARMS:
            raise InvalidNetworkError(f"unknown arm {arm!r}: choose from {ARMS}")
        kind = "analog-sgd" if arm in ("ideal", "sgd") else arm
        arm_dev = {"model": "ideal", "w_min": dev.get("w_min", -1.0),
                   "w_max": dev.get("w_max", 1.0)} if arm == "ideal" else dev
        opts = {**(MODEL_OPTIONS if model_options is None else model_options),
                "seed": model_seed}
        if base.get("rule") == "coupled":
            opts.setdefault("outputs", "single")  # coupled learning clamps single nodes
        net = models.build(model, n_features=data.n_features, n_classes=data.n_classes,
                           **opts)
        cfg = TrainConfig(**{**base, "optimizer": kind, "device": arm_dev,
                             "optimizer_options": (options or {}).get(arm)})
        t0 = time.perf_counter()
        trainer = Trainer(net, cfg)
        res = trainer.fit(data, progress=False)
        out[arm] = res["test_accuracy"]
        out["settings"][arm] = res.get("devices")
        out["histories"][arm] = [e["test_accuracy"] for e in res["history"]]
        out["seconds"][arm] = time.perf_counter() - t0
        out["config"] = {k: v for k, v in res["config"].items()
                         if k not in ("optimizer", "device", "optimizer_options")}
        if log is not None:
            log(f"{arm:>10}: test accuracy {100 * res['test_accuracy']:.2f}% "
                f"({out['seconds'][arm]:.0f} s)")
    return out
