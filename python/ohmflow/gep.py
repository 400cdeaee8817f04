"""Generalized Equilibrium Propagation (GEP).

GEP (Lin, Desai, Barrows & Caravelli 2026, *How to Train Your Resistive
Network*, arXiv:2602.03546) puts two-phase ("free" then "nudged") learning rules
into one family, indexed by the perturbative order of the nudge at the free
equilibrium. Equilibrium Propagation is the first-order member; coupled
learning's clamping is a nudge of higher order. This module implements the
family for ohmflow's networks and returns, like every method of
:func:`ohmflow.learn.gradient`, an estimate of dC/dg with the sign of dC/dg.

Derivation
----------
Let E_g(v) be the co-content of the network (``DESIGN.md``): the free
equilibrium v⁰ minimises it. A nudge adds a term n(β, v) to the energy; the
nudged equilibrium v^β minimises F(β, v) = E_g(v) + n(β, v), and n(0, ·) = 0.
Write Φ(β, g) = F(β, v^β) for the energy at equilibrium.

1. *Envelope theorem.* v^β is a minimiser, so ∂Φ/∂g_e = ∂F/∂g_e at v^β. The
   nudge's parameters (injected currents, clamp voltages) are computed from the
   free phase and then held fixed, so they do not depend on g, and the
   co-content of a resistor is g Δv² / 2. Hence

       ∂Φ/∂g_e (β) − ∂Φ/∂g_e (0) = [(Δ_e v^β)² − (Δ_e v⁰)²] / 2,

   which a resistor can measure locally (its own voltage drop in two phases).

2. *Order of the nudge.* To first order, the difference in 1. is linear in
   the displacement v^β − v⁰. That displacement is H⁻¹ times the current the
   nudge injects at the free state (H is the network's conductance matrix at
   v⁰). If that current is O(β^k), so is the difference, and

       GEP_k = [(Δv^β)² − (Δv⁰)²] / (2 β^k)

   has a limit as β → 0. This module returns GEP_k for the chosen nudge and
   ``order`` k. The paper defines the order through the nudge's *energy* at
   the free state, n(β, v⁰) = O(β^k). It defines the objective as
   ℓ = (1/k!) ∂^k Φ/∂β^k at β = 0, so that Φ(β, g) − Φ(0, g) = β^k ℓ(g) + o(β^k).
   For current nudges, n is linear in v, the two orders coincide, and the limit
   is dℓ/dg (the nudge's parameters frozen). For the clamp, the orders differ
   (see below).

Nudges (``nudge=``)
-------------------
``"current"``
    Current sources inject I = −β ∂C/∂v (evaluated at v⁰) at the outputs:
    n(β, v) = −Iᵀ v_out, k = 1 and ℓ = (∂C/∂v)ᵀ v_out(g) with ∂C/∂v frozen, so
    dℓ/dg = dC/dg. This is Equilibrium Propagation: the same computation as
    ``learn.gradient(method="ep", beta=β)``. Its error is O(β).
callable ``nudge(beta, v_out, targets) -> currents``
    Any current nudge I(β) = β^k I_k + o(β^k) (shape of ``v_out``, injected
    into the outputs). The same argument gives ℓ = −I_kᵀ v_out(g), so with
    ``order=k`` the estimate converges to −I_kᵀ dv_out/dg. Example:
    ``lambda b, v, t: -b**2 * (v - t)`` with ``order=2`` is a second-order nudge
    whose limit is dC/dg of the squared error. When I = β^k I_k exactly, Φ is
    a series in β^k (the next term, −½ β^{2k} I_kᵀ H⁻¹ I_k, H the Hessian), so
    the error is O(β^k): for that example, O(β²) (it is EP at β' = β²).
``"clamp"``
    The outputs are clamped to c = v⁰ + β (t − v⁰) (coupled learning, Stern et
    al. 2021): the same computation as ``learn.gradient(method="coupled",
    eta=β)``. Written as a stiff spring (K/2)|v_out − c|², the nudge's *energy*
    at v⁰ is (K/2) β² |t − v⁰|² = O(β²): this is the paper's count, which makes
    clamping a higher-order nudge, and its objective (1/2!) ∂²Φ/∂β² is the
    Schur-weighted loss ½ (v − t)ᵀ S (v − t), S the conductance matrix seen at
    the output ports. The nudge's *force* at v⁰, the clamp current
    S (c − v⁰), is O(β), and that is the order the local difference has: at
    fixed clamp values, Φ = Φ₀ + ½ (c − v_out(g))ᵀ S (c − v_out(g)) + O(β³), so

        [(Δv^β)² − (Δv⁰)²] / 2 = β (v⁰ − t)ᵀ S dv_out/dg + O(β²).

    Normalised by β (``order=1``, the only order accepted) this converges to
    the gradient of the Schur-weighted loss with S held fixed; normalised by
    β² it would diverge as 1/β (the paper's total derivative in g also moves
    the clamp value c with g, a non-local term a resistor cannot measure). The
    estimate equals dC/dg only when S is the identity.

Readout (``readout=``)
----------------------
The paper's "readout only at some branches" setting: only the voltage drops of
the given resistors are measured in the two phases, so only their estimates
exist; the others are reported as 0 (they are not updated by
:func:`ohmflow.learn.step`-style rules). Combined with ``trainable=``, an
estimate is returned for resistors that are both measured and trainable.

Source: the framework (a nudged energy F = E + n, the order k defined by
n(β, θ, y⁰) = O(β^k) at the free equilibrium y⁰, and the objective
ℓ = (1/k!) ∂^k Φ/∂β^k) is the paper's Generalized Equilibrium Propagation. The
derivation above, its specialisation to ohmflow's nudges, and the analysis of
the clamp's order are ours, and ``tests/test_gep.py`` checks them numerically.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import numpy as np

from . import learn
from .learn import NUDGES
from .network import Network

__all__ = ["NUDGES", "gep_gradient"]


Nudge = Union[str, Callable[[float, np.ndarray, np.ndarray], Any]]


def gep_gradient(net: Network, targets: Any, *, outputs: Any = None, inputs: Any = None,
                 nudge: Nudge, order: float = 1, beta: float | None = None,
                 loss: Any = "mse", trainable: Any = None, readout: Any = None,
                 threads: int | None = None, return_loss: bool = False) -> Any:
    """Estimate dC/dg by Generalized Equilibrium Propagation.

    Two phases: the free equilibrium v⁰, then the equilibrium v^β under the
    nudge. The estimate for resistor e is
    ``[(Δ_e v^β)² − (Δ_e v⁰)²] / (2 β^order)`` (batch mean), aligned with
    ``net.resistor_names`` and with the sign of dC/dg, like
    :func:`ohmflow.learn.gradient`. See the module docstring for the derivation
    and for what each nudge converges to.

    Parameters
    ----------
    net : Network
    targets : dict or array_like
        ``{node: target}`` for one sample, or an array (batch, n_outputs) with
        ``outputs=`` (class labels (batch,) for cross-entropy with a current
        nudge), as in :func:`ohmflow.learn.gradient`.
    outputs : sequence, optional
        Output nodes, or ``(plus, minus)`` pairs for differential outputs
        (current nudges only).
    inputs : array_like, optional
        Input voltages (batch, n_inputs); the estimate is the batch mean.
    nudge : {"current", "clamp"} or callable
        ``"current"``: inject −β ∂C/∂v at the outputs (Equilibrium Propagation).
        ``"clamp"``: clamp the outputs to v + β (t − v) (coupled learning).
        A callable ``nudge(beta, v_out, targets)`` returns the currents (A)
        injected into the outputs, shape (batch, n_outputs) like ``v_out``
        (for a differential output, into ``plus`` and out of ``minus``).
    order : float
        The order k of the nudge in β (its injected current is O(β^k)); the
        two-phase difference is divided by 2 β^k. The built-in nudges are
        first order and accept only 1.
    beta : float, optional
        Nudging strength, > 0. Defaults as in :func:`ohmflow.learn.gradient`:
        1e-3 × the largest conductance for ``"current"`` (amperes per unit of
        ∂C/∂v), 1e-3 for ``"clamp"`` (a fraction of the error); 1e-3 for a
        callable, which sets its own units.
    loss : "mse", "cross-entropy", or callable
        The loss C (a callable takes (v_out, targets) and returns (C per sample,
        ∂C/∂v_out per sample)). It defines the ``"current"`` nudge and the loss
        returned with ``return_loss``.
    trainable : mask, indices or names, optional
        Resistors to estimate; the others get 0.
    readout : mask, indices or names, optional
        Resistors whose voltage drops can be measured; the others get 0.
    threads : int, optional
        Threads for the solves.
    return_loss : bool
        Also return the loss at the free equilibrium (batch mean).

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, float)
        The estimate (n_resistors,), and the loss if ``return_loss``.

    Raises
    ------
    InvalidNetworkError
        Unknown nudge, an order other than 1 for a built-in nudge, β ≤ 0, a
        callable returning the wrong shape or non-finite currents, or a clamp
        on differential outputs.

    Examples
    --------
    >>> import numpy as np
    >>> import ohmflow as of
    >>> from ohmflow.gep import gep_gradient
    >>> net = of.Network()
    >>> x, o = net.add_node("x"), net.add_node("o")
    >>> _ = net.add_input(x)
    >>> _ = net.add_resistor(x, o, 2e-3)
    >>> _ = net.add_resistor(o, of.GROUND, 1e-3)
    >>> exact = net.gradient({"o": 0.2}, inputs=[1.0])
    >>> est = gep_gradient(net, {"o": 0.2}, inputs=[1.0], order=2, beta=1e-4,
    ...                    nudge=lambda b, v, t: -b**2 * (v - t))
    >>> bool(np.allclose(est, exact, rtol=1e-4))
    True
    """
    return learn.gradient(net, targets, "gep", outputs=outputs, inputs=inputs, loss=loss,
                          nudge=nudge, order=order, beta=beta, trainable=trainable,
                          readout_mask=readout, threads=threads, return_loss=return_loss)
