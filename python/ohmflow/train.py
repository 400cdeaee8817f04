"""Training deep resistive networks on classification data.

:class:`Trainer` runs minibatch training of a
:class:`~ohmflow.models.DeepResistiveNetwork` with the learning rules of
:func:`ohmflow.learn.gradient` (Equilibrium Propagation by default), evaluates on
the test split every epoch, keeps a metrics history, and writes atomic
checkpoints that a later run resumes from, bit for bit.

Units
-----
The learning rate and the nudging strength are expressed in the model's
conductance unit ``g_ref`` (default 1 mS), so that the same numbers work whatever
the physical scale: a step is ``Δg = −lr · g_ref² · ∂C/∂g`` (∂C/∂g scales as
1/g) and EP injects ``−beta · g_ref · ∂C/∂v`` amperes at the outputs.

Targets
-------
Squared error (``loss="mse"``) compares the output voltages with
``target_on`` volts for the right class and ``target_off`` volts for the others
(one-hot scaled to voltages the network can reach: an output node's voltage is
a weighted mean of the hidden voltages and the biases). Cross-entropy
(``loss="cross-entropy"``) takes the softmax of ``ce_scale × v_out`` (1/V).

Defaults (tuned on the 8x8 digits)
----------------------------------
``ohmflow train`` with no options trains ``drn-digits`` (128-256-10: 64 pixels as
± input pairs at gain 30 V, 256 ideal-diode ReLU units, 10 differential outputs)
with EP (β = 0.1 g_ref), squared error against 1 V / 0 V targets, batch 4,
lr 20 g_ref² decaying ×0.9 per epoch, 12 epochs. Measured on the fixed split
(359 test digits): 97.8 % test accuracy with the default seeds, 97.5-98.1 % over
three seeds, about 90 s on 2 cores. Compared with Scellier's DRN-1H settings
(gain 480, centered EP with β = 1, lr 0.006, batch 4, decay 0.99, 50 epochs):
plain EP suffices here (β = 0.1 g_ref nudges the outputs by a few mV, where the
EP estimate is within 1 % of the exact gradient), the gain is scaled to 64
inputs (√n rule, see :mod:`ohmflow.models`), and the faster decay and fewer
epochs fit the small data set. What mattered: differential outputs (+0.5-1 %
over single output nodes, whose scores are convex combinations of non-negative
hidden voltages), the rate scaled with the width (gradients shrink as 1/width),
and a hidden layer of 256 (64 units: about 96 %). Double diodes, a larger gain
or cross-entropy did not help.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import learn, optim
from ._core import InvalidNetworkError, OhmflowError
from .models import DeepResistiveNetwork, build

__all__ = ["TrainConfig", "Trainer", "CheckpointError", "train", "load_checkpoint",
           "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1


class CheckpointError(OhmflowError, ValueError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (all JSON-serialisable).

    Attributes
    ----------
    epochs : int
        Passes over the training set.
    batch_size : int
        Samples per update (the gradient estimate is their mean).
    lr : float or list of float
        Learning rate in units of ``g_ref²`` per unit of ∂C/∂g; a list gives one
        rate per weight layer (its weights and the biases of the layer it feeds).
        The default (20) is tuned for a 256-unit hidden layer on the digits; the
        gradients scale as 1/width, so scale the rate with the width. For
        ``rule="coupled"`` the estimate (≈ S ∂C/∂g, S the conductance seen at the
        outputs) is divided by the mean conductance at the output nodes (in units
        of ``g_ref``) so that the same rates apply.
    lr_decay : float
        The rates are multiplied by ``lr_decay ** epoch``.
    rule : {"ep", "centered-ep", "exact", "coupled"}
        Gradient estimate (see :mod:`ohmflow.learn`).
    loss : {"mse", "cross-entropy"}
    beta : float
        EP nudging, in units of ``g_ref`` (amperes per volt of ∂C/∂v).
    eta : float
        Coupled learning's clamping factor.
    target_on, target_off : float
        Squared-error targets (V) for the right and the other classes.
    ce_scale : float
        Cross-entropy logits are ``ce_scale × v_out``.
    clip : bool
        Keep conductances in the model's ``[g_min, g_max]``.
    seed : int
        Seed of the minibatch order (the model has its own seed for the weights).
    threads : int or None
        Solver threads (None: all cores).
    solver : str
        "auto" (default): the dense fast path of :meth:`DeepResistiveNetwork.dense`
        (matrix products in the Rust core) for rules "ep", "centered-ep" and
        "exact", else :meth:`Network.solve`'s own choice; "dense" forces the fast
        path; "direct" or "layered" force that method of :meth:`Network.solve`.
    sweeps : int or None
        Block coordinate descent sweeps per phase on the dense or layered path
        (as in Scellier's code); None sweeps until the voltages settle.
    eval_train : bool
        Evaluate the whole training set after each epoch (clean accuracy, weights
        fixed); otherwise report the running accuracy seen during the epoch.
    optimizer : {"sgd", "analog-sgd", "tiki-taka", "shd"}
        ``"sgd"`` applies the requested ``Δg`` exactly; the others program it into
        pulsed devices (:mod:`ohmflow.optim`, :mod:`ohmflow.devices`).
    device : dict, optional
        The device model of an analog optimiser, e.g. ``{"model": "soft-bounds",
        "dw_min": 0.002, "up_down": 0.3}`` (aihwkit parameter names); its
        ``[w_min, w_max]`` maps onto the model's ``[g_min, g_max] × g_ref``.
    optimizer_options : dict, optional
        Options of :class:`ohmflow.optim.AnalogOptimizer` (``scheme``, ``gamma``,
        ``transfer_lr``, ``fast_device``, ``g_range`` in siemens, ...).
    """

    epochs: int = 12
    batch_size: int = 4
    lr: Any = 20.0
    lr_decay: float = 0.9
    rule: str = "ep"
    loss: str = "mse"
    beta: float = 0.1
    eta: float = 0.1
    target_on: float = 1.0
    target_off: float = 0.0
    ce_scale: float = 4.0
    clip: bool = True
    seed: int = 0
    threads: int | None = None
    solver: str = "auto"
    sweeps: int | None = None
    eval_train: bool = True
    optimizer: str = "sgd"
    device: Any = None
    optimizer_options: Any = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if isinstance(d["lr"], np.ndarray):
            d["lr"] = d["lr"].tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def validate(self) -> None:
        if self.rule not in learn.METHODS:
            raise InvalidNetworkError(f"rule must be one of {learn.METHODS}, got {self.rule!r}")
        if self.loss not in ("mse", "cross-entropy"):
            raise InvalidNetworkError(f"loss must be 'mse' or 'cross-entropy', got {self.loss!r}")
        if self.solver not in ("auto", "dense", "direct", "layered"):
            raise InvalidNetworkError(f"solver must be 'auto', 'dense', 'direct' or 'layered', "
                                      f"got {self.solver!r}")
        if self.sweeps is not None and int(self.sweeps) < 1:
            raise InvalidNetworkError(f"sweeps must be None or >= 1, got {self.sweeps!r}")
        if int(self.epochs) < 0 or int(self.batch_size) < 1:
            raise InvalidNetworkError("epochs must be >= 0 and batch_size >= 1")
        if self.optimizer not in optim.OPTIMIZERS:
            raise InvalidNetworkError(f"optimizer must be one of {optim.OPTIMIZERS}, "
                                      f"got {self.optimizer!r}")
        for name in ("beta", "eta", "lr_decay"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise InvalidNetworkError(f"{name} must be finite and > 0, got {v}")


@dataclass
class _State:
    epoch: int = 0
    history: list = field(default_factory=list)
    rng_state: dict | None = None


class _RecordingLoss:
    """Wraps a loss to keep the free-phase output voltages (for running accuracy)."""

    def __init__(self, base: Callable) -> None:
        self.base = base
        self.last: np.ndarray | None = None

    def __call__(self, v: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.last = np.array(v, copy=True)
        return self.base(v, t)


def _solver_kwarg() -> str | None:
    """The name under which :func:`learn.gradient` takes the solve method, if any."""
    params = inspect.signature(learn.gradient).parameters
    for name in ("solver", "solve_method"):
        if name in params:
            return name
    return None


class Trainer:
    """Trains a :class:`DeepResistiveNetwork` on (X, y) data.

    Parameters
    ----------
    model : DeepResistiveNetwork
    config : TrainConfig, optional
        Overridden by keyword arguments of the same names.

    Examples
    --------
    >>> import ohmflow as of
    >>> data = of.datasets.load("digits")
    >>> model = of.models.build("drn-digits-s")
    >>> result = of.train.Trainer(model, epochs=1).fit(data, progress=False)  # doctest: +SKIP
    """

    def __init__(self, model: DeepResistiveNetwork, config: TrainConfig | None = None,
                 **overrides: Any) -> None:
        cfg = dataclasses.replace(config) if config is not None else TrainConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown training option {k!r}")
            setattr(cfg, k, v)
        cfg.validate()
        self.model = model
        self.config = cfg
        self.state = _State()
        self.rng = np.random.default_rng(cfg.seed)
        groups = model.parameter_groups()
        lr = cfg.lr
        rates = list(lr) if isinstance(lr, (list, tuple, np.ndarray)) else [float(lr)] * len(groups)
        if len(rates) != len(groups):
            raise InvalidNetworkError(f"lr: {len(groups)} weight layers but {len(rates)} rates")
        self._rates = [float(r) for r in rates]
        # The dense path's conductances when they are ahead of the network's (plain SGD
        # steps inside an epoch update the core's copy only; see _flush).
        self._dirty: Any = None
        self._lr = np.zeros(model.network.n_resistors)
        for g, r in zip(groups, rates):
            self._lr[g] = float(r)
        self._trainable = np.concatenate(groups)
        base = learn.SquaredError() if cfg.loss == "mse" else learn.CrossEntropy(cfg.ce_scale)
        self._loss = _RecordingLoss(base)
        self._solver_kw = _solver_kwarg()
        ra, rb = model.network.resistor_nodes
        outs = np.asarray(model.layers[-1])
        self._out_resistors = np.flatnonzero(np.isin(ra, outs) | np.isin(rb, outs))
        # None for plain SGD; else the pulsed devices of the trainable resistors
        self.optimizer = optim.for_model(
            cfg.optimizer, cfg.device, cfg.optimizer_options, model.g_min * model.g_ref,
            model.g_max * model.g_ref, model.network.conductances[self._trainable], cfg.seed)

    # -------------------------------------------------------------- pieces
    def targets(self, y: np.ndarray) -> np.ndarray:
        """Targets for labels y: voltages (MSE) or one-hot (cross-entropy)."""
        n = self.model.n_classes
        if self.config.loss == "mse":
            t = np.full((len(y), n), float(self.config.target_off))
            t[np.arange(len(y)), y] = float(self.config.target_on)
            return t
        t = np.zeros((len(y), n))
        t[np.arange(len(y)), y] = 1.0
        return t

    def _dense(self) -> Any:
        """The model's dense fast path, synced, when the configuration allows it."""
        from ._dense import RULES

        cfg = self.config
        if cfg.solver not in ("auto", "dense"):
            return None
        dense = self.model.dense() if cfg.rule in RULES else None
        if dense is None and cfg.solver == "dense":
            raise InvalidNetworkError(f"solver='dense' needs a DeepResistiveNetwork as built "
                                      f"and a rule in {RULES}, got rule={cfg.rule!r}")
        if dense is not None:
            dense.sweeps = cfg.sweeps
        return dense

    def _solve_kwargs(self) -> dict:
        kw: dict = {"threads": self.config.threads}
        if self.config.solver != "auto":
            kw["method"] = self.config.solver
        return kw

    def step(self, X: np.ndarray, y: np.ndarray, lr_scale: float = 1.0) -> tuple[float, float]:
        """One update on a minibatch; returns (loss, accuracy) at the free equilibrium."""
        out = self._step(X, y, lr_scale)
        self._flush()
        return out

    def _flush(self) -> None:
        """Writes the dense path's conductances into the network if they are ahead."""
        if self._dirty is not None:
            self._dirty.write_back()
            self._dirty = None

    def _step(self, X: np.ndarray, y: np.ndarray, lr_scale: float) -> tuple[float, float]:
        cfg, model = self.config, self.model
        net = model.network
        g_ref = model.g_ref
        kwargs: dict = {}
        if self._solver_kw is not None and cfg.solver != "auto":
            kwargs[self._solver_kw] = cfg.solver
        dense = self._dirty if self._dirty is not None else self._dense()
        if dense is not None and self.optimizer is None:
            # Plain SGD on the dense path: the step is applied to the core's copy of the
            # conductances (one pass, clipped), the network catches up at _flush.
            c = lr_scale * g_ref * g_ref
            lo, hi = ((model.g_min * g_ref, model.g_max * g_ref) if cfg.clip
                      else (-np.inf, np.inf))
            loss, vout = dense.sgd_fields(
                model.input_voltages(X), self.targets(y), cfg.rule, self._loss,
                cfg.beta * g_ref, [c * r for r in self._rates], lo, hi, threads=cfg.threads)
            self._dirty = dense
            return float(loss), float(np.mean(np.argmax(vout, axis=1) == y))
        self._flush()
        if dense is not None:
            est, loss, _ = dense.gradient(model.input_voltages(X), self.targets(y), cfg.rule,
                                          self._loss, cfg.beta * g_ref, threads=cfg.threads)
        else:
            if cfg.sweeps is not None:
                kwargs["sweeps"] = cfg.sweeps
            est, loss = learn.gradient(
                net, self.targets(y), method=cfg.rule, outputs=model.output_nodes,
                inputs=model.input_voltages(X), loss=self._loss, beta=cfg.beta * g_ref,
                eta=cfg.eta, threads=cfg.threads, return_loss=True, **kwargs)
        g = net.conductances
        if cfg.rule == "coupled":
            # Coupled learning estimates ≈ S dC/dg (S: conductance seen at the outputs);
            # divide by the mean conductance at an output node, in units of g_ref.
            est = est * (len(model.layers[-1]) * g_ref / np.sum(g[self._out_resistors]))
        if self.optimizer is None:
            # self._lr is 0 outside the trainable resistors: one pass over the vector.
            est *= self._lr
            est *= lr_scale * g_ref * g_ref
            g -= est
        else:
            g[self._trainable] = self.optimizer.step(
                -(lr_scale * g_ref * g_ref) * self._lr[self._trainable] * est[self._trainable],
                transfer_scale=lr_scale)
        if cfg.clip:
            np.clip(g, model.g_min * g_ref, model.g_max * g_ref, out=g)
        net.conductances = g
        vout = self._loss.last
        acc = float(np.mean(np.argmax(vout, axis=1) == y)) if vout is not None else float("nan")
        return float(loss), acc

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(accuracy, mean loss) of the current conductances on (X, y)."""
        self._flush()
        if len(y) == 0:
            return float("nan"), float("nan")
        scores = self.model.predict(X, **self._solve_kwargs())
        c, _ = self._loss.base(scores, self.targets(np.asarray(y)))
        return float(np.mean(np.argmax(scores, axis=1) == y)), float(np.mean(c))

    # ------------------------------------------------------------ training
    def fit(self, data: Any, y_train: Any = None, X_test: Any = None, y_test: Any = None, *,
            checkpoint: str | os.PathLike | None = None, resume: bool = False,
            progress: bool = True, callback: Callable[[dict], None] | None = None,
            log: Callable[[str], None] | None = None) -> dict:
        """Trains for ``config.epochs`` epochs (counting epochs already done).

        Parameters
        ----------
        data : Dataset or array
            A :class:`ohmflow.datasets.Dataset`, or ``X_train`` with the next three
            arguments.
        checkpoint : path, optional
            Written atomically after every epoch.
        resume : bool
            Start from ``checkpoint`` if it exists (conductances, epoch, minibatch
            generator, history).
        progress : bool
            Show a tqdm progress bar (loss and running accuracy).
        callback : callable, optional
            Called with each epoch's history entry.
        log : callable, optional
            Called with a one-line summary of each epoch.

        Returns
        -------
        dict
            The result (see :meth:`result`).
        """
        if y_train is None:
            Xtr, ytr, Xte, yte = data.X_train, data.y_train, data.X_test, data.y_test
        else:
            Xtr, ytr, Xte, yte = data, y_train, X_test, y_test
        Xtr = np.asarray(Xtr, dtype=float)
        ytr = np.asarray(ytr, dtype=np.int64).reshape(-1)
        Xte = np.zeros((0, Xtr.shape[1])) if Xte is None else np.asarray(Xte, dtype=float)
        yte = np.zeros(0, np.int64) if yte is None else np.asarray(yte, np.int64).reshape(-1)
        if len(ytr) == 0:
            raise InvalidNetworkError("no training samples")
        if ytr.max() >= self.model.n_classes or ytr.min() < 0:
            raise InvalidNetworkError(f"labels must lie in [0, {self.model.n_classes})")
        if resume and checkpoint is not None and Path(checkpoint).exists():
            self.load_state(checkpoint)
        cfg = self.config
        t_run = time.perf_counter()
        while self.state.epoch < cfg.epochs:
            entry = self._epoch(Xtr, ytr, Xte, yte, progress)
            if checkpoint is not None:
                self.save(checkpoint)
            if log is not None:
                log(_summary(entry, cfg.epochs))
            if callback is not None:
                callback(entry)
        self._run_seconds = time.perf_counter() - t_run
        return self.result()

    def _epoch(self, Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, yte: np.ndarray,
               progress: bool) -> dict:
        cfg, st = self.config, self.state
        if st.rng_state is not None:
            self.rng.bit_generator.state = st.rng_state
        order = self.rng.permutation(len(ytr))
        st.rng_state = self.rng.bit_generator.state
        lr_scale = float(cfg.lr_decay) ** st.epoch
        bs = int(cfg.batch_size)
        n_batches = (len(order) + bs - 1) // bs
        bar = _progress(n_batches, f"epoch {st.epoch + 1}/{cfg.epochs}", progress)
        losses = np.zeros(n_batches)
        correct = 0.0
        t0 = time.perf_counter()
        try:
            for b in range(n_batches):
                idx = order[b * bs:(b + 1) * bs]
                loss, acc = self._step(Xtr[idx], ytr[idx], lr_scale)
                losses[b] = loss * len(idx)
                correct += acc * len(idx)
                if bar is not None:
                    seen = min((b + 1) * bs, len(order))
                    bar.set_postfix(loss=f"{losses[:b + 1].sum() / seen:.4f}",
                                    acc=f"{correct / seen:.3f}", refresh=False)
                    bar.update(1)
        finally:
            # an interrupted epoch leaves the network with the steps taken so far
            self._flush()
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        t1 = time.perf_counter()
        test_acc, test_loss = self.evaluate(Xte, yte)
        if cfg.eval_train:
            train_acc, train_loss = self.evaluate(Xtr, ytr)
        else:
            train_acc, train_loss = correct / len(order), float(losses.sum() / len(order))
        entry = {
            "epoch": st.epoch + 1,
            "seconds": seconds,
            "eval_seconds": time.perf_counter() - t1,
            "loss": float(losses.sum() / len(order)),
            "train_accuracy": train_acc,
            "train_loss": train_loss,
            "running_accuracy": correct / len(order),
            "test_accuracy": test_acc,
            "test_loss": test_loss,
            "lr_scale": lr_scale,
        }
        st.history.append(entry)
        st.epoch += 1
        return entry

    # --------------------------------------------------------- results & IO
    def result(self) -> dict:
        """Final metrics, the config and the history (what ``ohmflow train --json`` writes)."""
        h = self.state.history
        last = h[-1] if h else {}
        return {
            "test_accuracy": last.get("test_accuracy", float("nan")),
            "train_accuracy": last.get("train_accuracy", float("nan")),
            "best_test_accuracy": max((e["test_accuracy"] for e in h), default=float("nan")),
            "epochs": self.state.epoch,
            "train_seconds": float(sum(e["seconds"] for e in h)),
            "seconds_per_epoch": float(np.mean([e["seconds"] for e in h])) if h else 0.0,
            "seconds": float(sum(e["seconds"] + e["eval_seconds"] for e in h)),
            "config": self.config.to_dict(),
            "model": {"name": getattr(self.model, "name", ""),
                      "layer_sizes": list(self.model.layer_sizes),
                      "resistors": self.model.network.n_resistors,
                      **self.model.options},
            "history": list(h),
            **({} if self.optimizer is None else {"devices": self.optimizer.settings()}),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Writes a checkpoint atomically (a temporary file in the same directory,
        flushed, then renamed over ``path``)."""
        self._flush()
        p = Path(path)
        meta = {
            "version": CHECKPOINT_VERSION,
            "epoch": self.state.epoch,
            "history": self.state.history,
            "rng_state": self.state.rng_state,
            "config": self.config.to_dict(),
            "model": {"name": getattr(self.model, "name", ""),
                      "layer_sizes": list(self.model.layer_sizes),
                      "options": self.model.options},
        }
        arrays: dict = {}
        if self.optimizer is not None:
            meta["optimizer_state"], opt_arrays = self.optimizer.state()
            arrays = {"opt_" + k: v for k, v in opt_arrays.items()}
        buf = io.BytesIO()
        np.savez(buf, conductances=self.model.network.conductances,
                 meta=np.array(json.dumps(meta)), **arrays)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.getvalue())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load_state(self, path: str | os.PathLike) -> None:
        """Restores conductances, epoch, minibatch generator and history from a checkpoint."""
        g, meta = load_checkpoint(path)
        if g.shape != (self.model.network.n_resistors,):
            raise CheckpointError(f"{path}: checkpoint has {g.shape[0]} conductances, the model "
                                  f"{self.model.network.n_resistors}")
        if list(meta["model"]["layer_sizes"]) != list(self.model.layer_sizes):
            raise CheckpointError(f"{path}: checkpoint is of a {meta['model']['layer_sizes']} "
                                  f"network, the model is {list(self.model.layer_sizes)}")
        self._dirty = None  # the checkpoint's conductances replace any pending step
        self.model.network.conductances = g
        if self.optimizer is not None:
            if "optimizer_state" not in meta:
                raise CheckpointError(f"{path}: checkpoint has no optimizer state")
            try:
                self.optimizer.load_state(meta["optimizer_state"], _optimizer_arrays(path))
            except (InvalidNetworkError, KeyError, ValueError) as e:
                raise CheckpointError(f"{path}: optimizer state does not fit ({e})") from None
        self.state = _State(epoch=int(meta["epoch"]), history=list(meta["history"]),
                            rng_state=meta["rng_state"])

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **overrides: Any) -> Trainer:
        """A trainer with the model and config of a checkpoint, its state restored."""
        _, meta = load_checkpoint(path)
        m = meta["model"]
        opts = dict(m["options"])
        if isinstance(opts.get("diode"), str) and opts["diode"] not in ("ideal", "relu",
                                                                         "shockley"):
            raise CheckpointError(f"{path}: custom diode model {opts['diode']} cannot be rebuilt")
        model = DeepResistiveNetwork(m["layer_sizes"], **opts)
        model.name = m.get("name", model.name)
        cfg = TrainConfig.from_dict(meta["config"])
        trainer = cls(model, cfg, **overrides)
        trainer.load_state(path)
        return trainer


def load_checkpoint(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """(conductances, metadata) of a checkpoint file."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        with np.load(p, allow_pickle=False) as z:
            g = np.array(z["conductances"], dtype=np.float64)
            meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{p}: not a readable ohmflow checkpoint ({e})") from None
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{p}: checkpoint version {meta.get('version')} "
                              f"(expected {CHECKPOINT_VERSION})")
    return g, meta


def _optimizer_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The optimiser arrays (``opt_*``) of a checkpoint, without the prefix."""
    with np.load(Path(path), allow_pickle=False) as z:
        return {k[4:]: np.array(z[k]) for k in z.files if k.startswith("opt_")}


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=False, file=sys.stderr,
                dynamic_ncols=True)


def _summary(e: dict, epochs: int) -> str:
    return (f"epoch {e['epoch']:>3}/{epochs}  loss {e['loss']:.4f}  "
            f"train {100 * e['train_accuracy']:.2f}%  test {100 * e['test_accuracy']:.2f}%  "
            f"({e['seconds']:.1f} s train, {e['eval_seconds']:.1f} s eval)")


def train(model: str | DeepResistiveNetwork = "drn-digits", dataset: Any = "digits", *,
          checkpoint: str | os.PathLike | None = None, resume: bool = False,
          progress: bool = True, model_options: dict | None = None,
          log: Callable[[str], None] | None = None, **config: Any) -> dict:
    """Builds (if named), trains and evaluates a DRN; returns :meth:`Trainer.result`."""
    from .datasets import Dataset, load

    data = dataset if isinstance(dataset, Dataset) else load(dataset)
    if isinstance(model, str):
        model = build(model, n_features=data.n_features, n_classes=data.n_classes,
                      **(model_options or {}))
    trainer = Trainer(model, **config)
    out = trainer.fit(data, checkpoint=checkpoint, resume=resume, progress=progress, log=log)
    out["dataset"] = data.name
    return out

