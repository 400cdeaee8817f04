"""Diode models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ._core import BOLTZMANN, CHARGE, DEFAULT_GMIN, DEFAULT_TEMPERATURE
from ._validation import check_finite, check_positive

__all__ = ["IdealDiode", "ReluDiode", "ShockleyDiode", "DiodeModel"]


@dataclass(frozen=True)
class IdealDiode:
    """Ideal diode: i >= 0, v_a - v_b <= v_on, and i (v_on - (v_a - v_b)) = 0."""

    v_on: float = 0.0

    def __post_init__(self) -> None:
        check_finite(self.v_on, "IdealDiode.v_on")

    def _row(self) -> tuple[int, list[float]]:
        return 0, [self.v_on, 0.0, 0.0, 0.0]


@dataclass(frozen=True)
class ReluDiode:
    """Ideal diode with an on-conductance: i = g_on * max(v_a - v_b - v_on, 0)."""

    g_on: float
    v_on: float = 0.0

    def __post_init__(self) -> None:
        check_positive(self.g_on, "ReluDiode.g_on")
        check_finite(self.v_on, "ReluDiode.v_on")

    def _row(self) -> tuple[int, list[float]]:
        return 1, [self.v_on, self.g_on, 0.0, 0.0]


@dataclass(frozen=True)
class ShockleyDiode:
    """Junction diode: i = i_s (exp(v / (n V_T)) - 1) + gmin v, V_T = k T / q.

    The constants k and q are ngspice's (CODATA 2014), the default temperature is
    SPICE's 27 °C, and ``gmin`` is SPICE's conductance in parallel with every
    junction (1e-12 S), so that a netlist from SPICE gives SPICE's operating point.
    """

    i_s: float = 1e-14
    n: float = 1.0
    temperature: float = DEFAULT_TEMPERATURE
    gmin: float = DEFAULT_GMIN

    def __post_init__(self) -> None:
        check_positive(self.i_s, "ShockleyDiode.i_s")
        check_positive(self.n, "ShockleyDiode.n")
        check_positive(self.temperature, "ShockleyDiode.temperature")
        g = check_finite(self.gmin, "ShockleyDiode.gmin")
        if g < 0:
            check_positive(g, "ShockleyDiode.gmin")

    @property
    def thermal_voltage(self) -> float:
        """k T / q in volts."""
        return BOLTZMANN * self.temperature / CHARGE

    def _row(self) -> tuple[int, list[float]]:
        return 2, [self.i_s, self.n, self.temperature, self.gmin]


DiodeModel = Union[IdealDiode, ReluDiode, ShockleyDiode]
"""Any diode model."""


def _from_row(kind: int, p) -> IdealDiode | ReluDiode | ShockleyDiode:
    if kind == 0:
        return IdealDiode(v_on=float(p[0]))
    if kind == 1:
        return ReluDiode(g_on=float(p[1]), v_on=float(p[0]))
    return ShockleyDiode(i_s=float(p[0]), n=float(p[1]), temperature=float(p[2]), gmin=float(p[3]))
