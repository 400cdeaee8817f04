"""Activation functions that circuit elements induce.

In a MON circuit (:mod:`ohmflow.mon`) hidden unit ``k`` is a node with a diode
from ground; the ideal diode makes the unit a ReLU. Seen from the unit, the rest
of the circuit is (at the scale of one unit) a current drive through a
conductance, and the activation is the map from that drive to the node voltage.
Chaffey (arXiv 2509.13793) calls the map a non-ideal diode induces the *diode
ReLU*; ohmflow defines it as follows (our definition, written from the circuit):

    a voltage source ``x`` drives node ``z`` through a conductance ``g``
    (equivalently a current ``g x`` is injected into ``z``, which has ``g`` to
    ground), and a diode branch runs from ground (anode) to ``z`` (cathode),
    optionally through a series resistance ``R_s``. Then

        diode_relu(x) = z   where   g (x − z) = Y(z),                       (1)

``Y(z)`` the current the diode branch draws out of node ``z`` (for a Shockley
diode with ``R_s = 0``, ``Y(z) = I_s (1 − exp(−z / (n V_T))) + gmin z``). ``Y`` is
monotone (the branch is passive), so ``diode_relu = (1 + Y/g)⁻¹`` is the resolvent
of a monotone operator — the form of a MON activation (a proximal operator,
Winston & Kolter 2020) — and is monotone and 1-Lipschitz. With an ideal diode
``Y`` is the normal cone of ``z ≥ 0`` and (1) is exactly ``relu(x)``; with a
:class:`~ohmflow.ReluDiode` it is a leaky ReLU of slope ``g / (g + g_on)`` for
``x < 0``; with a Shockley diode the knee is rounded over a few ``n V_T`` and the
output saturates slowly (logarithmically) below zero, approaching the ReLU as
``n V_T → 0``.

The derivative is the small-signal gain of the circuit linearized at its
operating point: ``dz/dx = g / (g + Y'(z))``, read from the adjoint solve (the
sensitivity of ``z`` to the source ``x``), not from this formula.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._core import InvalidNetworkError
from .diodes import IdealDiode, ReluDiode, ShockleyDiode
from .learn import _source_gradients_per_sample
from .network import GROUND, Network

__all__ = ["diode_relu", "diode_relu_grad", "diode_relu_circuit"]


def diode_relu_circuit(*, model: Any = None, series_resistance: float = 0.0,
                       conductance: float = 1.0) -> tuple[Network, int]:
    """The one-unit circuit of :func:`diode_relu`: (network, node ``z``).

    Its single input is the drive voltage ``x``.
    """
    model = ShockleyDiode() if model is None else model
    if not isinstance(model, (IdealDiode, ReluDiode, ShockleyDiode)):
        raise InvalidNetworkError(f"unknown diode model {model!r}")
    rs = float(series_resistance)
    if not (np.isfinite(rs) and rs >= 0):
        raise InvalidNetworkError(f"series_resistance must be finite and >= 0, got {rs}")
    g = float(conductance)
    if not (np.isfinite(g) and g > 0):
        raise InvalidNetworkError(f"conductance must be finite and > 0, got {g}")
    net = Network()
    x, z = net.add_node("x"), net.add_node("z")
    net.add_input(x, name="Vx")
    net.add_resistor(x, z, g, name="Rg")
    if rs > 0:
        mid = net.add_node("d")
        net.add_diode(GROUND, mid, model, name="D")
        net.add_resistor(mid, z, resistance=rs, name="Rs")
    else:
        net.add_diode(GROUND, z, model, name="D")
    return net, z


def _solve(x: Any, kwargs: dict, threads: int | None):
    X = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(X)):
        raise InvalidNetworkError("x has non-finite entries")
    net, z = diode_relu_circuit(**kwargs)
    sol = net.solve(X.reshape(-1, 1), threads=threads, method="direct")
    return X, net, z, sol


def diode_relu(x: Any, *, model: Any = None, series_resistance: float = 0.0,
               conductance: float = 1.0, threads: int | None = None) -> np.ndarray:
    """The diode ReLU (see the module docstring), computed by the circuit.

    Parameters
    ----------
    x : array_like
        Drive voltages (any shape; one batched solve).
    model : diode model
        Default ``ShockleyDiode()`` (SPICE's default junction).
    series_resistance : float
        Ω in series with the diode (0: none).
    conductance : float
        ``g`` (S) between the drive and the node.

    Returns
    -------
    numpy.ndarray
        ``z``, same shape as ``x``.
    """
    X, net, z, sol = _solve(x, dict(model=model, series_resistance=series_resistance,
                                    conductance=conductance), threads)
    return np.atleast_2d(sol.voltages)[:, z].reshape(X.shape)


def diode_relu_grad(x: Any, *, model: Any = None, series_resistance: float = 0.0,
                    conductance: float = 1.0, threads: int | None = None,
                    return_value: bool = False) -> Any:
    """``d diode_relu / dx`` from the circuit's linearization (its adjoint solve).

    With ``return_value`` also returns :func:`diode_relu` (from the same solve) first.
    """
    X, net, z, sol = _solve(x, dict(model=model, series_resistance=series_resistance,
                                    conductance=conductance), threads)
    v = np.ascontiguousarray(np.atleast_2d(sol.voltages))
    rhs = np.zeros_like(v)
    rhs[:, z] = 1.0  # C = z
    direct = rhs.copy()
    adj = net._core.adjoint(v, np.ascontiguousarray(np.atleast_2d(sol.diode_currents)), rhs,
                            threads=threads)
    dv, _, _ = _source_gradients_per_sample(net, v, direct, adj)
    grad = dv[:, 0].reshape(X.shape)
    if return_value:
        return v[:, z].reshape(X.shape), grad
    return grad
