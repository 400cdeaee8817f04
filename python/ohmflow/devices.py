"""Pulsed device models: how a programmable resistor responds to update pulses.

Real programmable resistors (ReRAM, ECRAM, PCM) cannot be set to an arbitrary
conductance change Δg: they move by *pulses*, each changing the conductance by a
step that depends on the present state, differs up and down, saturates at bounds,
varies from device to device and is noisy from pulse to pulse. This module models
that, vectorised over all devices, in the parameterisation of IBM's aihwkit
(``aihwkit.simulator.configs.devices``) wherever the concept is the same, so that
settings carry over.

Normalised weights
------------------
Every model works on a normalised weight ``w`` whose nominal range is
``[w_min, w_max]`` (aihwkit's convention); :class:`ConductanceMap` maps it
affinely onto a conductance range ``[g_lo, g_hi]`` (by default the bounds of a
network, e.g. ``[g_min, g_max] × g_ref`` of a
:class:`~ohmflow.models.DeepResistiveNetwork`)::

    g = g_lo + (w − w_min) (g_hi − g_lo) / (w_max − w_min).

Device-to-device variation (aihwkit ``PulsedDevice``)
-----------------------------------------------------
When an array of ``n`` devices is realised (:meth:`PulsedDevice.realise`), each
device ``i`` draws, with standard normal ξ's,

- its step scale ``s_i = 1 + dw_min_dtod ξ``, its up/down bias
  ``β_i = up_down + up_down_dtod ξ'``, and the steps
  ``Δw⁺_i = dw_min s_i (1 + min(β_i, 0))``, ``Δw⁻_i = dw_min s_i (1 − max(β_i, 0))``:
  the stronger direction keeps ``dw_min``, the weaker one is shrunk by ``|β_i|``, as
  aihwkit 1.2 implements it (its documentation writes ``Δw_min (1 + d β)``; the
  implementation, measured by ``benches/aihwkit_compare.py``, is this one); we keep
  the d-to-d factor multiplicative so that a step never changes sign;
- its bounds ``b_max_i = w_max (1 + w_max_dtod ξ'')``,
  ``b_min_i = w_min (1 + w_min_dtod ξ''')`` (relative units, as in aihwkit);
  a device whose drawn bounds cross is given the nominal ones.

Pulse response ("update once")
------------------------------
A pulse in direction ``d = ±1`` on device ``i`` at weight ``w`` changes it by
``d · Δw^d_i · q^d(w) · (1 + dw_min_std ξ)`` (cycle-to-cycle noise, a new ξ per
pulse), then clips ``w`` to ``[b_min_i, b_max_i]``. The models differ in the
state dependence ``q^d(w)``:

:class:`ConstantStepDevice`
    ``q^± = 1`` (aihwkit ``ConstantStepDevice``: ``w ← w − Δw^d (1 + σ ξ)``).
:class:`LinearStepDevice`
    ``q^+ = max(1 + γ⁺_i w, 0)``, ``q^− = max(1 + γ⁻_i w, 0)`` with
    ``γ⁺_i = −|gamma_up + gamma_up_dtod ξ| / w_max`` and
    ``γ⁻_i = −|gamma_down + gamma_down_dtod ξ| / w_min`` (aihwkit
    ``LinearStepDevice`` with ``mean_bound_reference=True``, ``mult_noise=True``).
:class:`SoftBoundsDevice`
    Linear step with γ = 1: ``q^+ = 1 − w / w_max``, ``q^− = 1 − w / w_min``: the
    up step vanishes at ``w_max``, the down step at ``w_min`` (aihwkit
    ``SoftBoundsDevice``).
:class:`ExpStepDevice`
    ``z = 2 a w / (b_max_i − b_min_i) + b``, ``q^d = max(1 − A^d e^{d γ^d z}, 0)``
    (aihwkit ``ExpStepDevice``; ``A_up, A_down, gamma_up, gamma_down, a, b``).
:class:`IdealDevice`
    No pulses: the requested Δw is applied exactly (then clipped to the bounds).

The **symmetry point** of a device is the weight where an up and a down pulse
cancel on average, ``Δw⁺ q⁺(w) = Δw⁻ q⁻(w)``; for soft bounds with
``w_min = −w_max`` it is ``w_max β / (2 − |β|)`` (``up_down = β``), in general
``w* = (Δw⁻ − Δw⁺) / (Δw⁺ γ⁺ − Δw⁻ γ⁻)`` for a linear step. Under updates of
random sign a device drifts there, which is why SGD fails on asymmetric devices
(see :mod:`ohmflow.optim`).

Update schemes (requested Δw → pulses)
--------------------------------------
:func:`pulses_deterministic`
    "sign × number of pulses": ``n = |Δw| / dw_min`` rounded (stochastically by
    default, aihwkit's ``sto_round``, so the mean is unbiased), at most
    ``max_pulses``.
:func:`pulses_stochastic`
    A stochastic pulse train of ``BL`` slots per device with probability
    ``p = |Δw| / (BL dw_min)`` per slot: ``n ~ Binomial(BL, p)``, ``E n dw_min = |Δw|``.
    With ``update_bl_management`` ``BL = min(ceil(max|Δw| / dw_min), desired_bl)``.
:func:`pulses_outer`
    The crossbar update: row ``i`` fires a train of ``BL`` stochastic pulses with
    probability ``A |x_i|``, column ``j`` with ``B |d_j|``; a device is pulsed when
    both fire (coincidence), in direction ``sign(x_i d_j)``, so
    ``E n_ij = BL A B |x_i d_j|`` with ``A = B = sqrt(lr / (dw_min BL))`` gives
    ``E Δw_ij = lr x_i d_j`` (aihwkit ``UpdateParameters``: ``desired_bl``,
    ``update_bl_management``, ``update_management`` rescaling A by
    ``γ = sqrt(max|d| / max|x|)`` and B by 1/γ so both probabilities peak alike).
    This is for dense layers (an outer product of row and column signals); in
    a general resistive network the rule gives one value per edge, and the
    per-edge schemes above apply.

All randomness comes from a :class:`numpy.random.Generator` passed in, so a seeded
run repeats exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._core import InvalidNetworkError

__all__ = [
    "PulsedDevice", "IdealDevice", "ConstantStepDevice", "LinearStepDevice",
    "SoftBoundsDevice", "ExpStepDevice", "DeviceArray", "ConductanceMap", "DEVICES",
    "device_from_dict", "pulses_deterministic", "pulses_stochastic", "pulses_outer",
]


@dataclass
class DeviceArray:
    """The realised parameters and state of ``n`` devices (all arrays of shape (n,)).

    Attributes
    ----------
    w : numpy.ndarray
        Present weights.
    dw_up, dw_down : numpy.ndarray
        Step sizes ``Δw⁺_i``, ``Δw⁻_i`` (positive).
    b_min, b_max : numpy.ndarray
        Hard bounds of each device.
    gamma_up, gamma_down : numpy.ndarray
        Slopes ``γ⁺_i, γ⁻_i`` of a linear-step device (zeros otherwise).
    """

    w: np.ndarray
    dw_up: np.ndarray
    dw_down: np.ndarray
    b_min: np.ndarray
    b_max: np.ndarray
    gamma_up: np.ndarray
    gamma_down: np.ndarray

    FIELDS: ClassVar[tuple[str, ...]] = ("w", "dw_up", "dw_down", "b_min", "b_max",
                                         "gamma_up", "gamma_down")

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The arrays by name (for checkpoints)."""
        return {prefix + f: np.array(getattr(self, f), copy=True) for f in self.FIELDS}

    @classmethod
    def from_arrays(cls, d: dict, prefix: str = "") -> DeviceArray:
        return cls(**{f: np.array(d[prefix + f], dtype=np.float64) for f in cls.FIELDS})

    def copy(self) -> DeviceArray:
        return DeviceArray.from_arrays(self.arrays())


@dataclass
class PulsedDevice:
    """Common parameters of the pulsed devices (aihwkit ``PulsedDevice`` names and
    defaults; see the module docstring for the formulas).

    Attributes
    ----------
    dw_min : float
        Mean step size of a pulse (normalised units).
    dw_min_dtod : float
        Device-to-device spread of the step size, relative to ``dw_min``.
    dw_min_std : float
        Cycle-to-cycle (pulse-to-pulse) spread of a step, relative.
    up_down : float
        Systematic up/down bias β: ``Δw^± = dw_min (1 ± β)``.
    up_down_dtod : float
        Device-to-device spread of β.
    w_min, w_max : float
        Mean hard bounds.
    w_min_dtod, w_max_dtod : float
        Device-to-device spread of the bounds, relative.
    """

    name: ClassVar[str] = "pulsed"
    dw_min: float = 0.001
    dw_min_dtod: float = 0.3
    dw_min_std: float = 0.3
    up_down: float = 0.0
    up_down_dtod: float = 0.01
    w_max: float = 0.6
    w_max_dtod: float = 0.3
    w_min: float = -0.6
    w_min_dtod: float = 0.3

    pulsed: ClassVar[bool] = True

    # ------------------------------------------------------------ set-up
    def validate(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidNetworkError(f"{self.name} device: {f.name} must be a finite "
                                          f"number, got {v!r}")
        if not self.w_min < self.w_max:
            raise InvalidNetworkError(f"{self.name} device: need w_min < w_max, got "
                                      f"{self.w_min}, {self.w_max}")
        if self.pulsed and not self.dw_min > 0:
            raise InvalidNetworkError(f"{self.name} device: dw_min must be > 0, got "
                                      f"{self.dw_min}")
        for f in ("dw_min_dtod", "dw_min_std", "up_down_dtod", "w_min_dtod", "w_max_dtod"):
            if getattr(self, f) < 0:
                raise InvalidNetworkError(f"{self.name} device: {f} must be >= 0")
        if not -1 < self.up_down < 1:
            raise InvalidNetworkError(f"{self.name} device: up_down must lie in (-1, 1)")

    def to_dict(self) -> dict:
        """JSON-serialisable settings, with the model name under ``"model"``."""
        return {"model": self.name, **dataclasses.asdict(self)}

    def realise(self, n: int, rng: np.random.Generator, w0: Any = None) -> DeviceArray:
        """Draws the device-to-device parameters of ``n`` devices; weights start at
        ``w0`` (default: 0 clipped to the bounds), clipped to each device's bounds."""
        self.validate()
        n = int(n)
        s = 1.0 + self.dw_min_dtod * rng.standard_normal(n)
        s = np.maximum(s, 0.0)
        beta = self.up_down + self.up_down_dtod * rng.standard_normal(n)
        beta = np.clip(beta, -1.0, 1.0)
        # aihwkit's implementation (rpu_pulsed_device): the stronger direction keeps
        # dw_min, the weaker one is shrunk by |β| (measured against aihwkit 1.2:
        # benches/aihwkit_compare.py)
        dw_up = self.dw_min * s * (1.0 + np.minimum(beta, 0.0))
        dw_down = self.dw_min * s * (1.0 - np.maximum(beta, 0.0))
        b_max = self.w_max * (1.0 + self.w_max_dtod * rng.standard_normal(n))
        b_min = self.w_min * (1.0 + self.w_min_dtod * rng.standard_normal(n))
        bad = b_min >= b_max
        b_max[bad], b_min[bad] = self.w_max, self.w_min
        gu, gd = self._slopes(n, rng)
        w = np.zeros(n) if w0 is None else np.array(np.broadcast_to(w0, (n,)), dtype=float)
        w = np.clip(w, b_min, b_max)
        return DeviceArray(w=w, dw_up=dw_up, dw_down=dw_down, b_min=b_min, b_max=b_max,
                           gamma_up=gu, gamma_down=gd)

    def _slopes(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(n), np.zeros(n)

    # ---------------------------------------------------------- response
    def step_factor(self, arr: DeviceArray, w: np.ndarray, up: np.ndarray,
                    idx: Any = slice(None)) -> np.ndarray:
        """``q^d(w) ≥ 0`` for the devices ``idx`` (``up``: boolean direction)."""
        return np.ones_like(w)

    def _factor(self, arr: DeviceArray, up: np.ndarray,
                idx: np.ndarray) -> Callable[[np.ndarray, int], np.ndarray] | None:
        """``q(w, m)`` for the first ``m`` of the devices ``idx`` with their
        per-device parameters gathered once (None: q = 1)."""
        return None

    def mean_step(self, arr: DeviceArray, w: Any = None, up: Any = True) -> np.ndarray:
        """Expected signed change of one pulse: ``±Δw^± q^±(w)`` (no noise, no clip)."""
        w = arr.w if w is None else np.asarray(w, dtype=float)
        upb = np.broadcast_to(np.asarray(up, dtype=bool), w.shape)
        size = np.where(upb, arr.dw_up, arr.dw_down)
        return np.where(upb, 1.0, -1.0) * size * self.step_factor(arr, w, upb)

    def apply_pulses(self, arr: DeviceArray, n: np.ndarray, up: np.ndarray,
                     rng: np.random.Generator, idx: np.ndarray | None = None) -> None:
        """Applies ``n[k]`` pulses in direction ``up[k]`` to device ``idx[k]``, one
        pulse at a time (the step depends on the state), in place.

        The loop runs over the pulse index (at most ``max(n)`` passes), vectorised
        over the devices still receiving pulses.
        """
        idx = np.arange(arr.w.size) if idx is None else np.asarray(idx)
        n = np.asarray(n, dtype=np.int64)
        up = np.asarray(up, dtype=bool)
        keep = n > 0
        idx, n, up = idx[keep], n[keep], up[keep]
        order = np.argsort(-n, kind="stable")  # devices with most pulses first
        idx, n, up = idx[order], n[order], up[order]
        step = np.where(up, 1.0, -1.0) * np.where(up, arr.dw_up[idx], arr.dw_down[idx])
        lo, hi = arr.b_min[idx], arr.b_max[idx]
        w = arr.w[idx].copy()
        factor = self._factor(arr, up, idx)
        kmax = int(n[0]) if n.size else 0
        neg = -n
        for k in range(kmax):
            # devices with more than k pulses: a prefix, since n is sorted
            m = int(np.searchsorted(neg, -(k + 1), side="right"))
            if m == 0:
                break
            wk = w[:m]
            dw = step[:m] if factor is None else step[:m] * factor(wk, m)
            if self.dw_min_std > 0:
                dw = dw * (1.0 + self.dw_min_std * rng.standard_normal(m))
            np.minimum(np.maximum(wk + dw, lo[:m]), hi[:m], out=wk)
        arr.w[idx] = w

    def update(self, arr: DeviceArray, dw: np.ndarray, rng: np.random.Generator, *,
               scheme: str = "deterministic", max_pulses: int = 31,
               idx: np.ndarray | None = None, **kw: Any) -> np.ndarray:
        """Requests the change ``dw`` on devices ``idx`` (all by default): maps it to
        pulses with ``scheme`` and applies them. Returns the pulse counts."""
        dw = np.asarray(dw, dtype=float)
        if scheme == "deterministic":
            n = pulses_deterministic(dw, self.dw_min, rng, max_pulses=max_pulses, **kw)
        elif scheme == "stochastic":
            n = pulses_stochastic(dw, self.dw_min, rng, desired_bl=max_pulses, **kw)
        else:
            raise InvalidNetworkError(f"scheme must be 'deterministic' or 'stochastic', "
                                      f"got {scheme!r}")
        self.apply_pulses(arr, n, dw > 0, rng, idx)
        return n

    def symmetry_point(self, arr: DeviceArray, iterations: int = 60) -> np.ndarray:
        """Weight where an up and a down pulse cancel on average, per device (by
        bisection on ``Δw⁺q⁺(w) − Δw⁻q⁻(w)``, decreasing in w for these models); a
        device whose up step always wins sits at ``b_max`` (and conversely)."""
        lo, hi = arr.b_min.copy(), arr.b_max.copy()
        f_lo = self._imbalance(arr, lo)
        f_hi = self._imbalance(arr, hi)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            f = self._imbalance(arr, mid)
            pos = f > 0
            lo = np.where(pos, mid, lo)
            hi = np.where(pos, hi, mid)
        sp = 0.5 * (lo + hi)
        sp = np.where(f_lo <= 0, arr.b_min, sp)
        return np.where(f_hi >= 0, arr.b_max, sp)

    def _imbalance(self, arr: DeviceArray, w: np.ndarray) -> np.ndarray:
        up = self.mean_step(arr, w, True)
        down = -self.mean_step(arr, w, False)
        return up - down


@dataclass
class IdealDevice(PulsedDevice):
    """Exact updates: ``w ← clip(w + Δw, w_min, w_max)``, no pulses, no variation
    (aihwkit ``IdealDevice``). ``dw_min`` only sets the nominal resolution used by
    the optimisers' bookkeeping."""

    name: ClassVar[str] = "ideal"
    pulsed: ClassVar[bool] = False
    dw_min_dtod: float = 0.0
    dw_min_std: float = 0.0
    up_down_dtod: float = 0.0
    w_max: float = 1.0
    w_max_dtod: float = 0.0
    w_min: float = -1.0
    w_min_dtod: float = 0.0

    def update(self, arr: DeviceArray, dw: np.ndarray, rng: np.random.Generator, *,
               scheme: str = "deterministic", max_pulses: int = 31,
               idx: np.ndarray | None = None, **kw: Any) -> np.ndarray:
        idx = np.arange(arr.w.size) if idx is None else np.asarray(idx)
        arr.w[idx] = np.clip(arr.w[idx] + dw, arr.b_min[idx], arr.b_max[idx])
        return np.zeros(np.shape(dw), dtype=np.int64)

    def symmetry_point(self, arr: DeviceArray, iterations: int = 60) -> np.ndarray:
        return np.full_like(arr.w, np.nan)


@dataclass
class ConstantStepDevice(PulsedDevice):
    """Constant step up to hard bounds (aihwkit ``ConstantStepDevice``):
    ``w ← clip(w ± Δw^± (1 + dw_min_std ξ), b_min, b_max)``."""

    name: ClassVar[str] = "constant-step"


@dataclass
class LinearStepDevice(PulsedDevice):
    """Step linear in the weight (aihwkit ``LinearStepDevice``, multiplicative
    cycle-to-cycle noise, ``mean_bound_reference=True``)::

        up:   w ← w + Δw⁺ max(1 + γ⁺ w, 0) (1 + σ ξ)
        down: w ← w − Δw⁻ max(1 + γ⁻ w, 0) (1 + σ ξ)
        γ⁺ = −|gamma_up + gamma_up_dtod ξ| / w_max,  γ⁻ = −|gamma_down + gamma_down_dtod ξ| / w_min

    then clipped to the device bounds. ``gamma = 1`` gives soft bounds, ``gamma = 0``
    a constant step.
    """

    name: ClassVar[str] = "linear-step"
    gamma_up: float = 0.0
    gamma_down: float = 0.0
    gamma_up_dtod: float = 0.05
    gamma_down_dtod: float = 0.05

    def _slopes(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        gu = -np.abs(self.gamma_up + self.gamma_up_dtod * rng.standard_normal(n)) / self.w_max
        gd = -np.abs(self.gamma_down + self.gamma_down_dtod * rng.standard_normal(n)) \
            / self.w_min
        return gu, gd

    def step_factor(self, arr: DeviceArray, w: np.ndarray, up: np.ndarray,
                    idx: Any = slice(None)) -> np.ndarray:
        gamma = np.where(up, arr.gamma_up[idx], arr.gamma_down[idx])
        return np.maximum(1.0 + gamma * w, 0.0)

    def _factor(self, arr: DeviceArray, up: np.ndarray,
                idx: np.ndarray) -> Callable[[np.ndarray, int], np.ndarray] | None:
        gamma = np.where(up, arr.gamma_up[idx], arr.gamma_down[idx])
        return lambda w, m: np.maximum(1.0 + gamma[:m] * w, 0.0)

    def symmetry_point(self, arr: DeviceArray, iterations: int = 60) -> np.ndarray:
        # Δw⁺ (1 + γ⁺ w) = Δw⁻ (1 + γ⁻ w)  ⇒  w = (Δw⁻ − Δw⁺) / (Δw⁺ γ⁺ − Δw⁻ γ⁻)
        den = arr.dw_up * arr.gamma_up - arr.dw_down * arr.gamma_down
        with np.errstate(divide="ignore", invalid="ignore"):
            sp = (arr.dw_down - arr.dw_up) / den
        general = super().symmetry_point(arr, iterations)
        ok = np.isfinite(sp) & (den != 0)
        return np.where(ok, np.clip(sp, arr.b_min, arr.b_max), general)


@dataclass
class SoftBoundsDevice(LinearStepDevice):
    """Soft bounds (aihwkit ``SoftBoundsDevice``): a linear step with γ = 1, so
    the up step ``Δw⁺ (1 − w / w_max)`` vanishes at ``w_max`` and the down step
    ``Δw⁻ (1 − w / w_min)`` at ``w_min``. After ``n`` noise-free up pulses from
    ``w₀``: ``w_n = w_max − (w_max − w₀)(1 − Δw⁺/w_max)^n``."""

    name: ClassVar[str] = "soft-bounds"
    gamma_up: float = 1.0
    gamma_down: float = 1.0
    gamma_up_dtod: float = 0.0
    gamma_down_dtod: float = 0.0


@dataclass
class ExpStepDevice(PulsedDevice):
    """Exponential step (aihwkit ``ExpStepDevice``, default fit parameters)::

        z = 2 a w / (b_max − b_min) + b,   q^d = max(1 − A^d exp(d γ^d z), 0)

    with ``d = +1`` up and ``−1`` down."""

    name: ClassVar[str] = "exp-step"
    A_up: float = 0.00081
    A_down: float = 0.36833
    gamma_up: float = 12.44625
    gamma_down: float = 12.78785
    a: float = 0.244
    b: float = 0.2425

    def step_factor(self, arr: DeviceArray, w: np.ndarray, up: np.ndarray,
                    idx: Any = slice(None)) -> np.ndarray:
        z = 2.0 * self.a * w / (arr.b_max[idx] - arr.b_min[idx]) + self.b
        y = np.where(up, 1.0 - self.A_up * np.exp(self.gamma_up * z),
                     1.0 - self.A_down * np.exp(-self.gamma_down * z))
        return np.maximum(y, 0.0)

    def _factor(self, arr: DeviceArray, up: np.ndarray,
                idx: np.ndarray) -> Callable[[np.ndarray, int], np.ndarray] | None:
        span = arr.b_max[idx] - arr.b_min[idx]
        coef = np.where(up, self.A_up, self.A_down)
        expo = np.where(up, self.gamma_up, -self.gamma_down)

        def q(w: np.ndarray, m: int) -> np.ndarray:
            z = 2.0 * self.a * w / span[:m] + self.b
            return np.maximum(1.0 - coef[:m] * np.exp(expo[:m] * z), 0.0)

        return q


DEVICES: dict[str, type[PulsedDevice]] = {
    c.name: c for c in (IdealDevice, ConstantStepDevice, LinearStepDevice, SoftBoundsDevice,
                        ExpStepDevice)
}
"""Device models by name (the ``"model"`` key of a device dict)."""
_ALIASES = {"IdealDevice": "ideal", "ConstantStepDevice": "constant-step",
            "LinearStepDevice": "linear-step", "SoftBoundsDevice": "soft-bounds",
            "ExpStepDevice": "exp-step", "softbounds": "soft-bounds"}


def device_from_dict(d: Any) -> PulsedDevice:
    """A device from a dict ``{"model": name, **parameters}`` (aihwkit class names
    such as ``"SoftBoundsDevice"`` are accepted), a device instance, or a name."""
    if isinstance(d, PulsedDevice):
        d.validate()
        return d
    if isinstance(d, str):
        d = {"model": d}
    if not isinstance(d, dict):
        raise InvalidNetworkError(f"device must be a dict, a name or a device, got {d!r}")
    d = dict(d)
    name = str(d.pop("model", "soft-bounds"))
    name = _ALIASES.get(name, name)
    if name not in DEVICES:
        raise InvalidNetworkError(f"unknown device model {name!r}: choose one of "
                                  f"{sorted(DEVICES)}")
    cls = DEVICES[name]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise InvalidNetworkError(f"{name} device: unknown parameters {sorted(unknown)}")
    dev = cls(**{k: float(v) for k, v in d.items()})
    dev.validate()
    return dev


@dataclass(frozen=True)
class ConductanceMap:
    """The affine map between normalised weights ``[w_min, w_max]`` and conductances
    ``[g_lo, g_hi]`` (siemens)."""

    w_min: float
    w_max: float
    g_lo: float
    g_hi: float

    @property
    def scale(self) -> float:
        """Siemens per unit of w."""
        return (self.g_hi - self.g_lo) / (self.w_max - self.w_min)

    def to_g(self, w: np.ndarray) -> np.ndarray:
        return self.g_lo + (np.asarray(w) - self.w_min) * self.scale

    def to_w(self, g: np.ndarray) -> np.ndarray:
        return self.w_min + (np.asarray(g) - self.g_lo) / self.scale


# ------------------------------------------------------------- update schemes
def _round(x: np.ndarray, rng: np.random.Generator, stochastic: bool) -> np.ndarray:
    if not stochastic:
        return np.rint(x).astype(np.int64)
    f = np.floor(x)
    return (f + (rng.random(x.shape) < (x - f))).astype(np.int64)


def pulses_deterministic(dw: np.ndarray, dw_min: float, rng: np.random.Generator, *,
                         max_pulses: int = 31, sto_round: bool = True) -> np.ndarray:
    """"Sign × number of pulses": ``n = min(round(|Δw| / dw_min), max_pulses)``,
    rounded stochastically (unbiased) unless ``sto_round=False``. The direction is
    ``sign(Δw)``; returns ``n`` (non-negative)."""
    x = np.abs(np.asarray(dw, dtype=float)) / float(dw_min)
    return np.minimum(_round(x, rng, sto_round), int(max_pulses))


def pulses_stochastic(dw: np.ndarray, dw_min: float, rng: np.random.Generator, *,
                      desired_bl: int = 31, update_bl_management: bool = True) -> np.ndarray:
    """Per-device stochastic pulse trains: ``BL`` slots with firing probability
    ``p = min(|Δw| / (BL dw_min), 1)``, so ``n ~ Binomial(BL, p)`` and
    ``E[n] dw_min = |Δw|`` unless clipped. With ``update_bl_management``,
    ``BL = min(ceil(max|Δw| / dw_min), desired_bl)`` (at least 1)."""
    a = np.abs(np.asarray(dw, dtype=float))
    bl = int(desired_bl)
    if update_bl_management and a.size:
        bl = max(1, min(int(math.ceil(float(a.max()) / dw_min)), bl))
    p = np.minimum(a / (bl * dw_min), 1.0)
    return rng.binomial(bl, p).astype(np.int64)


def pulses_outer(x: np.ndarray, d: np.ndarray, lr: float, dw_min: float,
                 rng: np.random.Generator, *, desired_bl: int = 31,
                 update_bl_management: bool = True,
                 update_management: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Coincidences of stochastic row and column pulse trains (the crossbar update).

    Requests ``ΔW = lr · x dᵀ`` on an (n_rows, n_cols) array (the caller passes
    ``d = −δ`` for a descent step). Returns ``(n, up)``: the number of coincident
    pulses at each crosspoint and their direction ``sign(x_i d_j) > 0``.

    ``BL``, ``A``, ``B`` follow aihwkit's ``UpdateParameters``: with
    ``update_bl_management`` ``BL = min(ceil(lr max|x| max|d| / dw_min), desired_bl)``;
    ``A = B = sqrt(lr / (dw_min BL))``; with ``update_management`` A is scaled by
    ``sqrt(max|d| / max|x|)`` and B by its inverse. Probabilities are clipped to 1.
    """
    x = np.asarray(x, dtype=float).reshape(-1)
    d = np.asarray(d, dtype=float).reshape(-1)
    xm, dm = float(np.max(np.abs(x), initial=0.0)), float(np.max(np.abs(d), initial=0.0))
    n = np.zeros((x.size, d.size), dtype=np.int64)
    if xm == 0 or dm == 0 or lr == 0:
        return n, np.ones_like(n, dtype=bool)
    bl = int(desired_bl)
    if update_bl_management:
        bl = max(1, min(int(math.ceil(lr * xm * dm / dw_min)), bl))
    a = b = math.sqrt(lr / (dw_min * bl))
    if update_management or update_bl_management:
        gam = math.sqrt(dm / xm)
        a, b = a * gam, b / gam
    px = np.minimum(a * np.abs(x), 1.0)
    pd = np.minimum(b * np.abs(d), 1.0)
    rows = rng.random((bl, x.size)) < px  # (BL, n_rows) pulse trains
    cols = rng.random((bl, d.size)) < pd
    n = rows.T.astype(np.int64) @ cols.astype(np.int64)
    up = np.outer(np.sign(x), np.sign(d)) > 0
    return n, up
