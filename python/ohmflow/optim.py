"""Optimisers for pulsed devices: analog SGD, Tiki-Taka and Stochastic Hamiltonian Descent.

Each optimiser holds one or two arrays of devices (:mod:`ohmflow.devices`) in
normalised weight units and turns a requested update ``Δw = −lr ∇f`` into pulses.
:class:`AnalogOptimizer` works on any parameter vector (the studies of
:mod:`ohmflow.study` drive it directly); :class:`ConductanceOptimizer` puts it on
the resistors of a network (the :class:`~ohmflow.train.Trainer` calls it with the
requested Δg of the trainable resistors, whatever the learning rule: EP, centered
EP, exact or coupled learning all give one gradient estimate per resistor).

Why SGD fails on asymmetric devices
-----------------------------------
Write one pulse as ``Δw⁺(w)`` up and ``−Δw⁻(w)`` down. A requested update ``x``
(``|x|/dw_min`` pulses of sign ``sign x``) changes the weight on average by::

    Δw ≈ x · S(w) − |x| · D(w),   S = (Δw⁺ + Δw⁻) / (2 dw_min),   D = (Δw⁻ − Δw⁺) / (2 dw_min)

For soft bounds ``D(w) ≈ κ (w − w*)`` vanishes only at the symmetry point ``w*``
(``κ = 1/w_max`` for ``w_min = −w_max``). Stochastic gradients have
``E|x| > |E x|``: at the minimum of ``f`` the mean gradient is zero but its
magnitude is not, so SGD's fixed point solves ``E[x] S = E|x| κ (w − w*)``: a
compromise pulled towards ``w*`` by as much as the gradient noise is large
against the signal (Onen et al. 2022; Gokmen & Haensch 2020). That is the
``"analog-sgd"`` optimiser below.

Tiki-Taka (Gokmen & Haensch 2020, *Algorithm for training neural networks on
resistive device arrays*, Front. Neurosci. 14:103)
-------------------------------------------------------------------------------
Two arrays: a fast array ``A`` receives the pulsed gradient updates; every
``transfer_every`` updates its content is transferred to the slow array ``C``
(``C ← C + transfer_lr · (A − A_ref)``, itself pulsed); the network sees
``W = gamma · (A − A_ref) + C``. ``A_ref`` is a reference set to each ``A``
device's symmetry point ("zero shifting", Kim et al. 2020), so that ``A = A_ref``
reads as zero. Why it works: ``A`` integrates the gradient with a leak
``|x| κ (A − A_ref)`` towards its reference (its asymmetry), i.e. it is a low-pass
filtered gradient; ``C`` integrates ``A`` and stops only when ``A`` reads zero on
average, which needs ``E[∇f] = 0`` — the true stationary point — because at
``A = A_ref`` the leak vanishes. The transfer updates of ``C`` are a filtered,
low-noise signal, so ``C``'s own asymmetry costs little. Settings here:
``gamma`` (default 0.5), ``transfer_every`` (2 updates), ``transfer_lr`` (0.2),
``fast_lr`` (the factor on the requested update for ``A``, 1), and the device
of ``A`` (``fast_device``, default the same as ``C``). In aihwkit's crossbar
implementation (``TransferCompound``) the transfer reads ``n_reads_per_transfer``
columns of ``A`` per event; a resistive network has no columns in general, so
here every transfer moves all of ``A`` at once.

Stochastic Hamiltonian Descent (Onen, Gokmen, Todorov, Nowicki, del Alamo, Rozen,
Haensch, Kim 2022, arXiv 2201.13377)
-----------------------------------------------------------------------------
The paper's full text was not available to us (only its abstract: SHD "programs
the network parameters to minimize the total energy (Hamiltonian) of the system
that incorporates the effects of device asymmetry", using a second, hidden array
whose device dynamics supply the dissipation). What follows is our derivation
from that description; it is not a transcription of the paper's algorithm.

Take visible weights ``W`` (the network's conductances) and hidden weights ``P``
on a second array of asymmetric devices, read against a reference at their
symmetry point (``p = P − P_ref``), and the energy::

    H(W, p) = f(W) + (η_W / (2 η_P)) ‖p‖²

Hamilton's equations with ``p`` as momentum, ``Ẇ = η_W p`` and
``ṗ = −η_P ∇f(W)``, conserve ``H``. On hardware both are parallel pulsed updates
(no read-out of W, no digital computation): every step, ``P`` receives the
gradient update ``−η_P ∇f(W)`` and ``W`` the update ``η_W p``. The asymmetry of
``P``'s devices adds the term ``−η_P |∇f| κ p`` to ``ṗ`` (the formula above with
``w* = P_ref``), so::

    dH/dt = η_W ∇f·p + (η_W/η_P) p·(−η_P ∇f − η_P |∇f| κ p) = −η_W κ |∇f| ‖p‖² ≤ 0

(per component, with ``|∇f|`` the magnitude of the stochastic gradient): the device
asymmetry is the friction that makes the Hamiltonian decrease, and ``H`` stops
decreasing only at ``p = 0`` with ``E ∇f(W) = 0``: the true minimum of ``f``, not
a point biased towards the symmetry points (``W``'s own asymmetry acts through
``|η_W p|``, which vanishes there too). That is heavy-ball momentum whose friction
comes from the devices. In this form SHD is Tiki-Taka's two-array structure with
``gamma = 0`` (the network reads ``W`` only, so the gradient is taken at ``W`` as
Hamilton's equations require) and a transfer at every step; the settings are
``transfer_lr`` (η_W per step, default 0.1), ``fast_lr`` (η_P relative to the
requested update, 1) and ``fast_device``. A strongly asymmetric ``P`` (few
states, soft bounds) gives strong friction.

State and reproducibility
-------------------------
All randomness (device-to-device draws, cycle-to-cycle noise, stochastic rounding
and pulse trains) comes from one :class:`numpy.random.Generator` per optimiser;
:meth:`AnalogOptimizer.state` returns its bit-generator state, the step counter and
every device array, and :meth:`AnalogOptimizer.load_state` restores them, so a
resumed run repeats the uninterrupted one bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._core import InvalidNetworkError
from .devices import ConductanceMap, DeviceArray, PulsedDevice, device_from_dict, pulses_outer

__all__ = ["OPTIMIZERS", "AnalogOptimizer", "ConductanceOptimizer", "DEFAULTS",
           "for_model"]

OPTIMIZERS = ("sgd", "analog-sgd", "tiki-taka", "shd")
"""``"sgd"`` is the trainer's exact update (no device model)."""

DEFAULTS: dict[str, dict[str, Any]] = {
    "analog-sgd": {},
    "tiki-taka": {"gamma": 0.5, "transfer_every": 2, "transfer_lr": 0.2, "fast_lr": 1.0},
    "shd": {"gamma": 0.0, "transfer_every": 1, "transfer_lr": 0.1, "fast_lr": 1.0},
}
_COMMON = {"scheme": "deterministic", "max_pulses": 31, "zero_shift": True, "seed": 0,
           "fast_device": None}


class AnalogOptimizer:
    """Pulsed-device optimiser on a vector of ``n`` weights (normalised units).

    Parameters
    ----------
    kind : {"analog-sgd", "tiki-taka", "shd"}
    device : dict, str or PulsedDevice
        The devices of the visible array (``C`` of Tiki-Taka, ``W`` of SHD).
    fast_device : dict, str or PulsedDevice, optional
        The devices of ``A`` (Tiki-Taka) or ``P`` (SHD); default ``device``.
    scheme : {"deterministic", "stochastic"}
        Requested update → pulses (see :mod:`ohmflow.devices`).
    max_pulses : int
        Cap on pulses per update and device (aihwkit's ``desired_bl``).
    gamma, transfer_every, transfer_lr, fast_lr : float, int, float, float
        See the module docstring (defaults depend on ``kind``: :data:`DEFAULTS`).
    zero_shift : bool
        Read ``A``/``P`` against a reference at each device's symmetry point
        (otherwise against 0; also for devices without one, e.g. a constant step
        whose up and down steps differ: zero-shifting to a bound would make the
        read-out one-sided).
    seed : int
        Seed of the optimiser's generator.
    """

    def __init__(self, kind: str, device: Any = "soft-bounds", **options: Any) -> None:
        if kind not in OPTIMIZERS or kind == "sgd":
            raise InvalidNetworkError(f"analog optimiser must be one of {OPTIMIZERS[1:]}, "
                                      f"got {kind!r}")
        opts = {**_COMMON, **DEFAULTS[kind]}
        unknown = set(options) - set(opts) - {"gamma", "transfer_every", "transfer_lr",
                                              "fast_lr"}
        if unknown:
            raise InvalidNetworkError(f"{kind}: unknown options {sorted(unknown)}")
        opts.update({k: v for k, v in options.items() if v is not None})
        self.kind = kind
        self.device: PulsedDevice = device_from_dict(device)
        fast = opts.pop("fast_device")
        self.fast_device: PulsedDevice = self.device if fast is None else device_from_dict(fast)
        if opts["scheme"] not in ("deterministic", "stochastic"):
            raise InvalidNetworkError(f"scheme must be 'deterministic' or 'stochastic', "
                                      f"got {opts['scheme']!r}")
        if int(opts["max_pulses"]) < 1:
            raise InvalidNetworkError("max_pulses must be >= 1")
        if kind != "analog-sgd":
            if int(opts["transfer_every"]) < 1:
                raise InvalidNetworkError("transfer_every must be >= 1")
            for k in ("transfer_lr", "fast_lr"):
                if not (np.isfinite(float(opts[k])) and float(opts[k]) > 0):
                    raise InvalidNetworkError(f"{k} must be finite and > 0")
        self.options = opts
        self.rng = np.random.default_rng(int(opts["seed"]))
        self.count = 0
        self.W: DeviceArray | None = None  # visible (analog-sgd, shd) / slow C (tiki-taka)
        self.A: DeviceArray | None = None  # fast A (tiki-taka) / hidden P (shd)
        self.ref: np.ndarray | None = None

    # ------------------------------------------------------------- set-up
    def init(self, w0: Any) -> AnalogOptimizer:
        """Realises the devices and programs the visible weights to ``w0`` (clipped to
        each device's bounds); ``A``/``P`` start at their reference."""
        w0 = np.asarray(w0, dtype=float).reshape(-1)
        self.W = self.device.realise(w0.size, self.rng, w0)
        if self.kind != "analog-sgd":
            self.A = self.fast_device.realise(w0.size, self.rng, 0.0)
            self.ref = np.zeros(w0.size)
            if self.options["zero_shift"] and self.fast_device.pulsed:
                sp = self.fast_device.symmetry_point(self.A)
                # a device whose up (down) step always wins has no symmetry point
                # (bisection returns a bound): it keeps the reference at 0
                span = self.A.b_max - self.A.b_min
                inside = np.isfinite(sp) & (sp > self.A.b_min + 1e-9 * span) \
                    & (sp < self.A.b_max - 1e-9 * span)
                self.ref = np.where(inside, sp, 0.0)
            self.A.w[:] = np.clip(self.ref, self.A.b_min, self.A.b_max)
        self.count = 0
        return self

    def _need(self) -> DeviceArray:
        if self.W is None:
            raise InvalidNetworkError("optimiser used before init()")
        return self.W

    @property
    def weights(self) -> np.ndarray:
        """The weights the network sees."""
        W = self._need()
        if self.kind == "tiki-taka" and self.options["gamma"] != 0:
            return W.w + float(self.options["gamma"]) * (self.A.w - self.ref)
        return W.w.copy()

    @property
    def hidden(self) -> np.ndarray | None:
        """``A − A_ref`` (Tiki-Taka) or ``p = P − P_ref`` (SHD); None for analog SGD."""
        return None if self.A is None else self.A.w - self.ref

    # ------------------------------------------------------------- update
    def _pulse(self, dev: PulsedDevice, arr: DeviceArray, dw: np.ndarray) -> None:
        dev.update(arr, dw, self.rng, scheme=self.options["scheme"],
                   max_pulses=int(self.options["max_pulses"]))

    def step(self, dw: Any, *, transfer_scale: float = 1.0) -> None:
        """Applies the requested update ``dw = −lr ∇f`` (one value per weight).

        ``transfer_scale`` multiplies ``transfer_lr`` for this step: decay it with
        the learning rate. (With the leak of ``A``/``P`` proportional to the update
        size, the effective rate on the visible weights is about
        ``transfer_lr · w_max / |∇f|``, independent of ``lr``, so annealing ``lr``
        alone does not anneal Tiki-Taka or SHD.)
        """
        W = self._need()
        dw = np.asarray(dw, dtype=float).reshape(-1)
        if dw.shape != W.w.shape:
            raise InvalidNetworkError(f"update of shape {dw.shape} for {W.w.size} weights")
        if self.kind == "analog-sgd":
            self._pulse(self.device, W, dw)
        else:
            self._pulse(self.fast_device, self.A, float(self.options["fast_lr"]) * dw)
            self._after_fast_update(transfer_scale)

    def step_outer(self, x: Any, d: Any, lr: float, *, transfer_scale: float = 1.0) -> None:
        """Crossbar update of an (n_rows, n_cols) array stored row-major: requests
        ``ΔW = −lr Σ_b x_b d_bᵀ`` by stochastic pulse coincidences, one cycle per
        sample ``b`` (see :func:`ohmflow.devices.pulses_outer`); ``transfer_scale``
        as in :meth:`step`."""
        W = self._need()
        X = np.atleast_2d(np.asarray(x, dtype=float))
        D = np.atleast_2d(np.asarray(d, dtype=float))
        if X.shape[0] != D.shape[0] or X.shape[1] * D.shape[1] != W.w.size:
            raise InvalidNetworkError(f"outer update: x {X.shape} and d {D.shape} do not "
                                      f"fit {W.w.size} weights")
        dev, arr, rate = self.device, W, float(lr)
        if self.kind != "analog-sgd":
            dev, arr, rate = self.fast_device, self.A, rate * float(self.options["fast_lr"])
        for xb, db in zip(X, D):
            if dev.pulsed:
                n, up = pulses_outer(xb, -db, rate, dev.dw_min, self.rng,
                                     desired_bl=int(self.options["max_pulses"]))
                dev.apply_pulses(arr, n.reshape(-1), up.reshape(-1), self.rng)
            else:
                dev.update(arr, -rate * np.outer(xb, db).reshape(-1), self.rng)
        if self.kind != "analog-sgd":
            self._after_fast_update(transfer_scale)

    def _after_fast_update(self, transfer_scale: float) -> None:
        self.count += 1
        if self.count % int(self.options["transfer_every"]) == 0:
            rate = float(self.options["transfer_lr"]) * float(transfer_scale)
            self._pulse(self.device, self.W, rate * (self.A.w - self.ref))

    # -------------------------------------------------------------- state
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-serialisable metadata, arrays) of the whole optimiser state."""
        W = self._need()
        arrays = W.arrays("W_")
        if self.A is not None:
            arrays.update(self.A.arrays("A_"))
            arrays["ref"] = np.array(self.ref, copy=True)
        meta = {"kind": self.kind, "count": self.count,
                "rng_state": self.rng.bit_generator.state,
                "device": self.device.to_dict(), "fast_device": self.fast_device.to_dict(),
                "options": {k: v for k, v in self.options.items()}}
        return meta, arrays

    def load_state(self, meta: dict, arrays: dict) -> None:
        """Restores what :meth:`state` returned."""
        if meta.get("kind") != self.kind:
            raise InvalidNetworkError(f"optimiser state is of {meta.get('kind')!r}, "
                                      f"not {self.kind!r}")
        self.W = DeviceArray.from_arrays(arrays, "W_")
        if self.kind != "analog-sgd":
            self.A = DeviceArray.from_arrays(arrays, "A_")
            self.ref = np.array(arrays["ref"], dtype=float)
        self.count = int(meta["count"])
        self.rng.bit_generator.state = meta["rng_state"]

    def settings(self) -> dict:
        """The optimiser's settings and device parameters (JSON-serialisable)."""
        return {"optimizer": self.kind, **self.options, "device": self.device.to_dict(),
                "fast_device": self.fast_device.to_dict()}


class ConductanceOptimizer:
    """An :class:`AnalogOptimizer` on the conductances of selected resistors.

    Conductances map affinely onto the devices' nominal ``[w_min, w_max]``
    (:class:`~ohmflow.devices.ConductanceMap`); the trainer passes the requested
    ``Δg`` and gets back the conductances the devices now hold (the visible
    weights, clipped to the conductance range).
    """

    def __init__(self, opt: AnalogOptimizer, cmap: ConductanceMap) -> None:
        self.opt = opt
        self.map = cmap

    def init(self, g0: np.ndarray) -> None:
        self.opt.init(self.map.to_w(g0))

    @property
    def conductances(self) -> np.ndarray:
        return np.clip(self.map.to_g(self.opt.weights), self.map.g_lo, self.map.g_hi)

    def step(self, dg: np.ndarray, transfer_scale: float = 1.0) -> np.ndarray:
        """Requests ``Δg`` (siemens); returns the new conductances."""
        self.opt.step(np.asarray(dg, dtype=float) / self.map.scale,
                      transfer_scale=transfer_scale)
        return self.conductances

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = self.opt.state()
        meta["map"] = [self.map.w_min, self.map.w_max, self.map.g_lo, self.map.g_hi]
        return meta, arrays

    def load_state(self, meta: dict, arrays: dict) -> None:
        self.opt.load_state(meta, arrays)

    def settings(self) -> dict:
        return {**self.opt.settings(), "g_range": [self.map.g_lo, self.map.g_hi]}


def for_model(optimizer: str, device: Any, options: dict | None, g_lo: float, g_hi: float,
              g0: np.ndarray, seed: int = 0) -> ConductanceOptimizer | None:
    """The trainer's optimiser: None for ``"sgd"``, else a :class:`ConductanceOptimizer`
    on conductances ``[g_lo, g_hi]`` (siemens) started at ``g0``.

    ``options`` may hold ``g_range = (lo, hi)`` in siemens to override the range,
    and any :class:`AnalogOptimizer` option; its ``seed`` defaults to ``seed``.
    """
    if optimizer not in OPTIMIZERS:
        raise InvalidNetworkError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if optimizer == "sgd":
        if device is not None:
            raise InvalidNetworkError("a device model needs an analog optimizer "
                                      "('analog-sgd', 'tiki-taka' or 'shd'), not 'sgd'")
        return None
    opts = dict(options or {})
    g_range = opts.pop("g_range", None)
    if g_range is not None:
        g_lo, g_hi = (float(v) for v in g_range)
    if not (0 < g_lo < g_hi and np.isfinite(g_hi)):
        raise InvalidNetworkError(f"conductance range must satisfy 0 < lo < hi, got "
                                  f"{(g_lo, g_hi)}")
    opts.setdefault("seed", seed)
    opt = AnalogOptimizer(optimizer, "soft-bounds" if device is None else device, **opts)
    cmap = ConductanceMap(opt.device.w_min, opt.device.w_max, g_lo, g_hi)
    co = ConductanceOptimizer(opt, cmap)
    co.init(np.asarray(g0, dtype=float))
    return co
