"""Monotone operator equilibrium networks (MONs) and their circuits.

A ReLU MON (Winston & Kolter 2020) maps an input ``x`` to the fixed point

    z* = relu(W z* + U x + b),                                           (1)

which is unique when ``I − W`` is strongly monotone; Winston and Kolter
parametrise such ``W`` as

    W = (1 − m) I − AᵀA + B − Bᵀ,   m > 0                                 (2)

(:func:`parametrize`). Chaffey (arXiv 2509.13793, 2025) showed that such a network
*is* the equilibrium of a circuit of resistors, ideal transformers, ideal gyrators
and ideal diodes. This module holds the maths in NumPy (a software solver and the
implicit-differentiation gradient, the references) and the circuits.

Fixed point as a complementarity problem
----------------------------------------
Write ``M = I − W`` and ``c = U x + b``. With the pre-activation ``p = W z + c``,
(1) says ``z = max(p, 0)``; put ``d = z − p = M z − c``. Where ``z_k > 0``,
``p_k = z_k`` so ``d_k = 0``; where ``z_k = 0``, ``d_k = −p_k ≥ 0``. Hence (1) is
exactly the linear complementarity problem

    z ≥ 0,   d = M z − c ≥ 0,   z ⊙ d = 0,                                (3)

uniquely solvable because ``M + Mᵀ = 2 (m I + AᵀA) ≻ 0``.

The circuit (:func:`realize`)
-----------------------------
Hidden unit ``k`` is a node of voltage ``z_k`` with an ideal diode from ground
(anode) to node ``k`` (cathode): the diode holds ``z_k ≥ 0`` and carries a current
``d_k ≥ 0`` *into* node ``k``, zero unless ``z_k = 0`` — the complementarity of
(3). KCL at node ``k`` says that the rest of the circuit draws ``d_k`` out of the
node, so (3) holds if the rest of the circuit draws ``g (M z − c)``, ``g`` the
conductance unit (``g_unit``, 1 S by default). With (2),
``M = m I + AᵀA − (B − Bᵀ)``, and each term is one kind of element:

* ``m I``: a conductance ``g m`` from each node to ground.
* ``AᵀA`` (``coupling="transformer"``): for each row ``r`` of ``A`` a loop:
  ideal transformers with primary
  ``(k, ground)`` and ratio ``a_rk`` (one per nonzero entry) have their
  secondaries in series, from ground through internal nodes ``s_r1, s_r2, …``,
  and the last node closes the loop through a conductance ``g`` to ground. With
  the engine's convention (``v₂ = a v₁``, ``i₁ = −a i₂``, currents into each
  port's + terminal) the secondary voltages add up to ``(A z)_r`` at the last
  node, the resistor carries ``g (A z)_r``, every secondary carries
  ``i₂ = −g (A z)_r`` (KCL along the chain), and primary ``k`` draws
  ``i₁ = −a_rk i₂ = g a_rk (A z)_r`` from node ``k``: summed over the rows,
  ``g (AᵀA z)_k``. Transformers are reciprocal: this part stays an energy.
  The engine asks every node for a galvanic path to ground, which the inner
  nodes of a chain lack, so a leak conductance ``ε`` is put across every
  secondary: it carries ``ε a_rk z_k``, the secondary ``ε a_rk z_k`` more, and
  primary ``k`` draws ``ε a_rk² z_k`` more, which is cancelled exactly by
  lowering the ground conductance of node ``k`` from ``g m`` to
  ``g m − ε Σ_r a_rk²`` (``ε`` is chosen to keep it ≥ ``g m / 2``).
  (``coupling="gyrator"``, the default: a node ``y_r`` per row with ``g`` to
  ground, fed by gyrators of conductance ``g a_rk`` from ``(k, ground)``, so that
  ``y_r = (A z)_r`` and the gyrators draw ``g a_rk y_r`` from node ``k``; see
  :func:`realize`.)
* ``−(B − Bᵀ)``: with ``K = B − Bᵀ`` (skew), a gyrator of conductance
  ``−g K_jk`` between ports ``(j, ground)`` and ``(k, ground)`` for each pair
  ``j < k``: with ``i₁ = G v₂``, ``i₂ = −G v₁`` it draws ``−g K_jk z_k`` from
  ``j`` and ``g K_jk z_j = −g K_kj z_j`` from ``k``.
* ``−c = −(U x + b)``: input ``i`` is a voltage source ``x_i`` (a per-sample
  input of the network); a gyrator of conductance ``g U_ki`` from port
  ``(x_i, ground)`` to ``(k, ground)`` draws ``i₂ = −g U_ki x_i`` from node
  ``k``, i.e. injects ``g U_ki x_i`` (the source supplies the port-1 current).
  The bias is the same from a 1 V source (``bias="source"``), or a current
  source of ``g b_k`` into node ``k`` (``bias="current"``).

Any ``W`` with a strongly monotone ``I − W`` is split as (2) by
:func:`split`: ``B`` is the strict upper triangle of ``(W − Wᵀ)/2``, ``m`` half the
smallest eigenvalue of ``P = I − (W + Wᵀ)/2``, and ``A = Lᵀ`` from the Cholesky
factor ``P − m I = L Lᵀ`` (triangular: ``n (n + 1)/2`` transformers). A user
splitting ``(m, A, B)`` is used as given.

Gradients
---------
Differentiating (1) where the active set is locally constant
(``D = diag(1[p > 0])``, i.e. ``z_k > 0``): ``dz = D (W dz + dW z + dU x + db)``,
so ``dz = (I − D W)⁻¹ D dc̃`` with ``dc̃ = dW z + dU x + db``. For a loss ``L(z)``
with ``g = ∂L/∂z`` the sensitivity to an injected ``c`` is

    λ = ∂L/∂c = [(I − D W)⁻¹ D]ᵀ g = D (I − Wᵀ D)⁻¹ g = (I − D Wᵀ)⁻¹ D g,   (4)

(the push-through identity ``(I − D W)⁻¹ D = D (I − W D)⁻¹``): ``λ`` vanishes on
inactive units and solves ``M_AAᵀ λ_A = g_A`` on the active set ``A``. Then

    ∂L/∂b = λ,   ∂L/∂U = λ xᵀ,   ∂L/∂W = λ z*ᵀ,                         (5)

summed over a batch (``dloss_dz`` holds ``∂L/∂z`` for each sample of a total loss
``L``). :func:`gradient` computes (4)-(5) with NumPy.

*Hardware linearization*: at the operating point a conducting diode (``d_k > 0``,
``z_k = 0``) is a short and an off one (``z_k > 0``) is open, so the linearized
circuit is ``g M_AA δz_A = g δc_A``; its transpose (resistors and transformers are
reciprocal, gyrators reverse their sign) with currents ``∂L/∂z`` injected at the
hidden nodes has node voltages ``λ / g`` — the adjoint the engine solves for
exact gradients. :meth:`MonCircuit.gradient` reads ``λ`` from that adjoint solve
and applies (5). The two agree except at degenerate points (``z_k = 0 = d_k``),
where (1) is not differentiable.

From a circuit to a MON (:func:`from_network`)
----------------------------------------------
For a network whose nonlinear elements are ideal diodes from ground to some
nodes (the hidden units), the rest is linear; eliminating every other free node
(and the transformers' currents) by a Schur complement leaves KCL at the hidden
nodes as ``M_c z − C_c x − b_c = d`` with ``M_c`` in siemens. **Scale
convention**: ``W = I − M_c / s``, ``U = C_c / s``, ``b = b_c / s`` with ``s``
the ``scale`` argument (siemens; 1 by default, and ``realize(..., g_unit=s)``
round-trips with ``from_network(..., scale=s)``). Any ``s > 0`` gives the same
fixed point, since (3) is invariant under scaling ``d``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._core import ConvergenceError, InvalidNetworkError
from .diodes import IdealDiode
from .network import GROUND, Network

__all__ = ["parametrize", "split", "solve", "gradient", "realize", "from_network",
           "MonCircuit", "Splitting", "monotonicity"]


# ----------------------------------------------------------------- helpers
def _matrix(a: Any, what: str, shape: tuple[int | None, int | None] | None = None) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.ndim != 2:
        raise InvalidNetworkError(f"{what} must be a 2-d array, got shape {arr.shape}")
    if shape is not None:
        for got, want in zip(arr.shape, shape):
            if want is not None and got != want:
                raise InvalidNetworkError(f"{what}: expected shape "
                                          f"{tuple('?' if s is None else s for s in shape)}, "
                                          f"got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidNetworkError(f"{what} has non-finite entries")
    return arr


def _vector(a: Any, what: str, n: int) -> np.ndarray:
    arr = np.asarray(a, dtype=float).reshape(-1)
    if arr.shape != (n,):
        raise InvalidNetworkError(f"{what}: expected {n} entries, got shape {np.shape(a)}")
    if not np.all(np.isfinite(arr)):
        raise InvalidNetworkError(f"{what} has non-finite entries")
    return arr


def _check_wub(W: Any, U: Any, b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    W = _matrix(W, "W")
    n = W.shape[0]
    if W.shape != (n, n):
        raise InvalidNetworkError(f"W must be square, got shape {W.shape}")
    U = _matrix(U, "U", (n, None))
    b = _vector(b, "b", n)
    return W, U, b


def _inputs(x: Any, n_in: int) -> tuple[np.ndarray, bool]:
    arr = np.asarray(x, dtype=float)
    single = arr.ndim == 1
    arr = np.atleast_2d(arr)
    if arr.ndim != 2 or arr.shape[1] != n_in:
        raise InvalidNetworkError(f"x: expected shape ({n_in},) or (batch, {n_in}), "
                                  f"got {np.shape(x)}")
    if not np.all(np.isfinite(arr)):
        raise InvalidNetworkError("x has non-finite entries")
    return arr, single


def monotonicity(W: Any) -> float:
    """The strong-monotonicity modulus of ``I − W``: λ_min of its symmetric part."""
    W = _matrix(W, "W")
    P = np.eye(W.shape[0]) - 0.5 * (W + W.T)
    return float(np.linalg.eigvalsh(P)[0])


# ------------------------------------------------------------ parametrisation
def parametrize(A: Any, B: Any, m: float) -> np.ndarray:
    """``W = (1 − m) I − AᵀA + B − Bᵀ`` (Winston & Kolter's monotone parametrisation).

    Parameters
    ----------
    A : array_like, shape (r, n)
    B : array_like, shape (n, n)
    m : float
        Monotonicity margin, > 0: ``I − W`` then has symmetric part ``m I + AᵀA ⪰ m I``.
    """
    A = _matrix(A, "A")
    n = A.shape[1]
    B = _matrix(B, "B", (n, n))
    m = float(m)
    if not (np.isfinite(m) and m > 0):
        raise InvalidNetworkError(f"m must be finite and > 0, got {m}")
    return (1.0 - m) * np.eye(n) - A.T @ A + B - B.T


@dataclass(frozen=True)
class Splitting:
    """A splitting ``W = (1 − m) I − AᵀA + B − Bᵀ`` (see :func:`split`)."""

    m: float
    A: np.ndarray
    B: np.ndarray

    @property
    def W(self) -> np.ndarray:
        return parametrize(self.A, self.B, self.m)


def split(W: Any, *, m: float | None = None, tol: float = 1e-10) -> Splitting:
    """Splits a ``W`` with strongly monotone ``I − W`` as ``(m, A, B)`` of :func:`parametrize`.

    ``B`` is the strict upper triangle of ``(W − Wᵀ)/2``; ``m`` defaults to half of
    λ_min(I − (W + Wᵀ)/2) and must be below it; ``A = Lᵀ`` (upper triangular) with
    ``L Lᵀ = I − (W + Wᵀ)/2 − m I`` (Cholesky). Rows of ``A`` whose entries are all
    below ``tol`` times its largest entry are dropped, as are such entries.

    Raises
    ------
    InvalidNetworkError
        If ``I − W`` is not strongly monotone, or ``m`` is not in (0, λ_min).
    """
    W = _matrix(W, "W")
    n = W.shape[0]
    if W.shape != (n, n):
        raise InvalidNetworkError(f"W must be square, got shape {W.shape}")
    P = np.eye(n) - 0.5 * (W + W.T)
    lam = float(np.linalg.eigvalsh(P)[0]) if n else 1.0
    if not lam > 0:
        raise InvalidNetworkError(
            f"I − W is not strongly monotone (λ_min of its symmetric part is {lam:.3g}): "
            "no MON circuit realizes it")
    if m is None:
        m = 0.5 * lam
    m = float(m)
    if not (0 < m < lam):
        raise InvalidNetworkError(f"m must be in (0, {lam:.6g}) for this W, got {m}")
    K = 0.5 * (W - W.T)
    B = np.triu(K, 1)
    L = np.linalg.cholesky(P - m * np.eye(n))
    A = L.T.copy()
    if A.size:
        A[np.abs(A) <= tol * np.max(np.abs(A))] = 0.0
        A = A[np.any(A != 0, axis=1)]
    return Splitting(m, A, B)


# --------------------------------------------------------------- software solver
def _residual(W: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Per-sample ‖z − relu(W z + c)‖_∞."""
    return np.max(np.abs(z - np.maximum(z @ W.T + c, 0.0)), axis=1, initial=0.0)


def _polish(W: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Exact solution of (3) on the active set ``z > 0`` of each sample (per-sample
    linear solve); kept where it lowers the fixed-point residual."""
    n = W.shape[0]
    if n == 0:
        return z
    M = np.eye(n) - W
    D = (z @ W.T + c > 0).astype(float)  # active units
    # Rows of active units: (M z)_A = c_A; rows of inactive ones: z_k = 0.
    mats = D[:, :, None] * M[None] + (1 - D)[:, :, None] * np.eye(n)[None]
    try:
        zp = np.linalg.solve(mats, (D * c)[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return z
    better = _residual(W, c, zp) < _residual(W, c, z)
    return np.where(better[:, None], zp, z)


def solve(W: Any, U: Any, b: Any, x: Any, *, method: str = "pr", alpha: float | None = None,
          tol: float = 1e-10, max_iter: int = 100_000, z0: Any = None,
          polish: bool = True) -> np.ndarray:
    """The fixed point ``z* = relu(W z* + U x + b)`` by operator splitting.

    Parameters
    ----------
    W, U, b : array_like
        Shapes (n, n), (n, n_in), (n,); ``I − W`` strongly monotone.
    x : array_like
        Shape (n_in,) or (batch, n_in).
    method : {"fb", "pr"}
        Forward-backward splitting ``z ← relu((1 − α) z + α (W z + c))``, which
        converges for ``α < 2 m / ‖I − W‖²`` (default ``m / ‖I − W‖²``, ``m`` the
        monotonicity modulus), or Peaceman-Rachford
        ``u½ = 2z − u, z½ = (I + α (I − W))⁻¹ (u½ + α c), u = 2 z½ − u½, z = relu(u)``,
        convergent for any ``α > 0`` (default ``1/√(m ‖I − W‖)``) (Winston & Kolter
        2020).
    tol : float
        Stop when ``‖z − relu(W z + c)‖_∞ ≤ tol (1 + ‖c‖_∞)`` for every sample.
    polish : bool
        Finish with an exact solve on the converged active set (kept where it
        lowers the residual), so that the result is exact to rounding.

    Returns
    -------
    numpy.ndarray
        ``z*``, shape (n,) or (batch, n) like ``x``.

    Raises
    ------
    ConvergenceError
        If the iteration does not reach ``tol`` within ``max_iter`` iterations.
    InvalidNetworkError
        Bad shapes, non-finite entries, an unknown method, or ``I − W`` not strongly
        monotone.
    """
    W, U, b = _check_wub(W, U, b)
    X, single = _inputs(x, U.shape[1])
    if method not in ("fb", "pr"):
        raise InvalidNetworkError(f"method must be 'fb' or 'pr', got {method!r}")
    n = W.shape[0]
    c = X @ U.T + b
    if n == 0:
        z = np.zeros((X.shape[0], 0))
        return z[0] if single else z
    M = np.eye(n) - W
    mono = monotonicity(W)
    if not mono > 0:
        raise InvalidNetworkError(f"I − W is not strongly monotone (modulus {mono:.3g})")
    z = np.zeros_like(c) if z0 is None else np.atleast_2d(np.asarray(z0, dtype=float)).copy()
    if z.shape != c.shape:
        raise InvalidNetworkError(f"z0: expected shape {c.shape}, got {z.shape}")
    bound = tol * (1.0 + np.max(np.abs(c), axis=1, initial=0.0))
    if method == "fb":
        a = mono / np.linalg.norm(M, 2) ** 2 if alpha is None else float(alpha)
        if not a > 0:
            raise InvalidNetworkError(f"alpha must be > 0, got {alpha}")
        step = np.eye(n) - a * M  # z ← relu(z (I − αM)ᵀ + α c)
        for it in range(int(max_iter)):
            z = np.maximum(z @ step.T + a * c, 0.0)
            if it % 10 == 9 and np.all(_residual(W, c, z) <= bound):
                break
        else:
            if not np.all(_residual(W, c, z) <= bound):
                raise ConvergenceError(f"forward-backward splitting did not reach tol={tol} "
                                       f"in {max_iter} iterations")
    else:
        # α ≈ 1/√(m L) balances the two resolvents (m the monotonicity modulus, L
        # the norm of I − W); any α > 0 converges, this one is scale-free.
        a = 1.0 / np.sqrt(mono * np.linalg.norm(M, 2)) if alpha is None else float(alpha)
        if not a > 0:
            raise InvalidNetworkError(f"alpha must be > 0, got {alpha}")
        V = np.linalg.inv(np.eye(n) + a * M)
        u = z.copy()
        for it in range(int(max_iter)):
            uh = 2 * z - u
            zh = (uh + a * c) @ V.T
            u = 2 * zh - uh
            z = np.maximum(u, 0.0)
            if it % 10 == 9 and np.all(_residual(W, c, z) <= bound):
                break
        else:
            if not np.all(_residual(W, c, z) <= bound):
                raise ConvergenceError(f"Peaceman-Rachford splitting did not reach tol={tol} "
                                       f"in {max_iter} iterations")
    if polish:
        z = _polish(W, c, z)
    return z[0] if single else z


def _lambda(W: np.ndarray, z: np.ndarray, c: np.ndarray, g: np.ndarray) -> np.ndarray:
    """λ = (I − D Wᵀ)⁻¹ D g per sample (equation (4) of the module docstring)."""
    n = W.shape[0]
    D = (z @ W.T + c > 0).astype(float)
    mats = np.eye(n)[None] - D[:, :, None] * W.T[None]
    return np.linalg.solve(mats, (D * g)[:, :, None])[:, :, 0]


def gradient(W: Any, U: Any, b: Any, x: Any, dloss_dz: Any, *, z: Any = None,
             **solve_options: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Implicit-differentiation gradient of a loss on the fixed point (the reference).

    Parameters
    ----------
    W, U, b, x : array_like
        As for :func:`solve`.
    dloss_dz : array_like
        ``∂L/∂z*``, same shape as ``z*`` (one row per sample of a total loss ``L``).
    z : array_like, optional
        The fixed point, if already known (else :func:`solve` computes it).

    Returns
    -------
    (dW, dU, db)
        ``∂L/∂W = Σ λ z*ᵀ``, ``∂L/∂U = Σ λ xᵀ``, ``∂L/∂b = Σ λ`` over the batch, with
        ``λ = (I − D Wᵀ)⁻¹ D ∂L/∂z``, ``D = diag(1[W z* + U x + b > 0])``.
    """
    W, U, b = _check_wub(W, U, b)
    X, _ = _inputs(x, U.shape[1])
    if z is None:
        z = solve(W, U, b, X, **solve_options)
    Z = np.atleast_2d(np.asarray(z, dtype=float))
    G = np.atleast_2d(np.asarray(dloss_dz, dtype=float))
    if Z.shape != (X.shape[0], W.shape[0]) or G.shape != Z.shape:
        raise InvalidNetworkError(f"dloss_dz and z must have shape {(X.shape[0], W.shape[0])}, "
                                  f"got {G.shape} and {Z.shape}")
    lam = _lambda(W, Z, X @ U.T + b, G)
    return lam.T @ Z, lam.T @ X, lam.sum(axis=0)


# ------------------------------------------------------------------ circuits
class MonCircuit:
    """A MON realized as a circuit (made by :func:`realize`).

    Attributes
    ----------
    network : Network
        The circuit. Its inputs are ``x`` (in order); hidden unit ``k`` is node
        ``"z{k}"``.
    hidden : numpy.ndarray
        Node index of each hidden unit.
    W, U, b : numpy.ndarray
        The MON realized.
    splitting : Splitting
        The ``(m, A, B)`` the circuit is built from.
    g_unit : float
        Conductance unit (S).
    """

    def __init__(self, network: Network, hidden: np.ndarray, W: np.ndarray, U: np.ndarray,
                 b: np.ndarray, splitting: Splitting, g_unit: float) -> None:
        self.network = network
        self.hidden = hidden
        self.W, self.U, self.b = W, U, b
        self.splitting = splitting
        self.g_unit = g_unit

    @property
    def n_hidden(self) -> int:
        return int(self.hidden.shape[0])

    @property
    def n_inputs(self) -> int:
        return int(self.U.shape[1])

    def _solve(self, x: Any, **options: Any) -> tuple[Any, np.ndarray, bool]:
        X, single = _inputs(x, self.n_inputs)
        sol = self.network.solve(X, **options)
        return sol, X, single

    def __call__(self, x: Any, **options: Any) -> np.ndarray:
        """``z*`` for ``x`` of shape (n_in,) or (batch, n_in), by solving the circuit.

        Keywords go to :meth:`Network.solve`.
        """
        sol, _, single = self._solve(x, **options)
        z = np.atleast_2d(sol.voltages)[:, self.hidden]
        return z[0] if single else z

    def gradient(self, x: Any, dloss_dz: Any, *, threads: int | None = None,
                 return_z: bool = False, **options: Any) -> tuple:
        """``(dW, dU, db)`` of a loss on ``z*`` by hardware linearization.

        The circuit is solved at ``x``; its linearization (conducting diodes short,
        off ones open) is transposed and driven by currents ``dloss_dz`` injected at
        the hidden nodes (the engine's adjoint solve, batched); the hidden node
        voltages times ``g_unit`` are ``λ = ∂L/∂c``, and (5) of the module docstring
        gives the parameter gradients, summed over the batch.

        Parameters
        ----------
        x : array_like
            (n_in,) or (batch, n_in).
        dloss_dz : array_like
            ∂L/∂z*, same shape as ``z*``.
        return_z : bool
            Also return ``z*`` (as a fourth element).
        """
        sol, X, _ = self._solve(x, threads=threads, **options)
        v = np.ascontiguousarray(np.atleast_2d(sol.voltages))
        G = np.atleast_2d(np.asarray(dloss_dz, dtype=float))
        if G.shape != (X.shape[0], self.n_hidden) or not np.all(np.isfinite(G)):
            raise InvalidNetworkError(f"dloss_dz: expected finite values of shape "
                                      f"{(X.shape[0], self.n_hidden)}, got {G.shape}")
        lam = self.adjoint(sol, G, threads=threads)
        Z = v[:, self.hidden]
        out = (lam.T @ Z, lam.T @ X, lam.sum(axis=0))
        return out + (Z,) if return_z else out

    def adjoint(self, solution: Any, dloss_dz: np.ndarray, *,
                threads: int | None = None) -> np.ndarray:
        """``λ = ∂L/∂c`` per sample from the circuit's adjoint at ``solution``."""
        net = self.network
        v = np.ascontiguousarray(np.atleast_2d(solution.voltages))
        mu = np.ascontiguousarray(np.atleast_2d(solution.diode_currents))
        rhs = np.zeros_like(v)
        rhs[:, self.hidden] = dloss_dz
        adj = net._core.adjoint(v, mu, rhs, threads=threads)
        return self.g_unit * adj["lambda"][:, self.hidden]

    def adjoint_circuit(self, solution: Any, *, sample: int = 0) -> Network:
        """The circuit hardware solves for the gradient, at one sample's operating point.

        ``Network.linearize(adjoint=True)``: conducting diodes short, off ones open,
        sources at 0, and every gyrator reversed (``g → −g``: the transpose;
        resistors and transformers are reciprocal). Injecting ``∂L/∂z`` at the hidden nodes
        (``solve(injections=(m.hidden, dloss_dz[None]))``) gives hidden node
        voltages ``λ / g_unit``: what :meth:`gradient` reads from the engine's
        batched adjoint instead.
        """
        return self.network.linearize(solution, sample=sample, adjoint=True)

    def __repr__(self) -> str:
        return (f"MonCircuit(hidden={self.n_hidden}, inputs={self.n_inputs}, "
                f"network={self.network!r})")


def realize(W: Any, U: Any, b: Any, *, splitting: Splitting | None = None,
            m: float | None = None, g_unit: float = 1.0, bias: str = "source",
            coupling: str = "gyrator", diode: Any = None, tol: float = 1e-12) -> MonCircuit:
    """The circuit whose equilibrium is the MON ``z* = relu(W z* + U x + b)``.

    See the module docstring for the construction and its derivation: a node per
    hidden unit with an ideal diode from ground, conductances ``g_unit · m`` to
    ground, ideal-transformer loops for ``AᵀA``, gyrators for ``−(B − Bᵀ)`` and
    for ``U x`` (from input voltage sources) and the bias.

    Parameters
    ----------
    W, U, b : array_like
        Shapes (n, n), (n, n_in), (n,); ``I − W`` strongly monotone.
    splitting : Splitting, optional
        The ``(m, A, B)`` to build from (must reproduce ``W`` to 1e-9 relative);
        default :func:`split` (``m`` passed on).
    g_unit : float
        Conductance unit in siemens: every conductance, transformer-loop resistor
        and gyrator conductance scales with it (ratios do not).
    bias : {"source", "current"}
        Bias by gyrators from a 1 V source, or by current sources into the nodes.
    coupling : {"gyrator", "transformer"}
        How ``AᵀA`` is built. ``"transformer"``: the loops of series transformer
        secondaries of the module docstring (reciprocal). ``"gyrator"`` (default):
        per row ``r`` of ``A`` a node ``y_r`` with ``g`` to ground, and gyrators
        of conductance ``g a_rk`` from ``(k, ground)`` to ``(y_r, ground)``; they
        inject ``g a_rk z_k`` into ``y_r``, so ``y_r = (A z)_r``, and draw
        ``g a_rk y_r`` from node ``k``: again ``g (AᵀA z)_k`` (two gyrators in
        cascade act as a transformer). The engine asks every node for a galvanic
        path to ground, which the inner nodes of a chain of secondaries lack, so
        the transformer coupling puts a small leak conductance ``ε`` across every
        secondary and lowers the ground conductance of node ``k`` by
        ``ε Σ_r a_rk²``, which cancels the extra current the leaks make the
        primaries draw (exact; see the module docstring).
    tol : float
        Entries of magnitude ≤ ``tol`` times the largest one (per matrix) are left
        out of the circuit.
    diode : diode model, optional
        The diode of every unit (default ``IdealDiode()``: the ReLU MON). A
        non-ideal diode makes the circuit the MON ``z* = σ(W z* + U x + b)`` with
        ``σ`` the diode ReLU of that diode at conductance ``g_unit``
        (:func:`ohmflow.activations.diode_relu`): KCL reads
        ``g (M z − c) + Y(z) = 0``, i.e. ``z + Y(z)/g = W z + c``, and
        ``σ = (1 + Y/g)⁻¹``. :meth:`MonCircuit.gradient` still applies (5), with
        ``λ = (I − Σ' Wᵀ)⁻¹ Σ' ∂L/∂z``, ``Σ' = diag σ'(W z + c)``, from the adjoint.

    Returns
    -------
    MonCircuit
    """
    W, U, b = _check_wub(W, U, b)
    n, n_in = U.shape
    g_unit = float(g_unit)
    if not (np.isfinite(g_unit) and g_unit > 0):
        raise InvalidNetworkError(f"g_unit must be finite and > 0, got {g_unit}")
    if coupling not in ("gyrator", "transformer"):
        raise InvalidNetworkError(f"coupling must be 'gyrator' or 'transformer', "
                                  f"got {coupling!r}")
    if bias not in ("source", "current"):
        raise InvalidNetworkError(f"bias must be 'source' or 'current', got {bias!r}")
    if splitting is None:
        splitting = split(W, m=m)
    else:
        err = np.max(np.abs(splitting.W - W), initial=0.0)
        if err > 1e-9 * max(1.0, float(np.max(np.abs(W), initial=0.0))):
            raise InvalidNetworkError(f"splitting does not reproduce W (error {err:.3g})")
    A, K = splitting.A, splitting.B - splitting.B.T

    def small(mat: np.ndarray) -> float:
        return tol * float(np.max(np.abs(mat), initial=0.0))

    net = Network()
    hidden = net.add_nodes(n, [f"z{k}" for k in range(n)])
    xin = net.add_nodes(n_in, [f"x{i}" for i in range(n_in)])
    for i in range(n_in):
        net.add_input(int(xin[i]), name=f"Vx{i}")
    zeros = np.zeros(n, dtype=np.int64)
    net.add_diodes(zeros, hidden, IdealDiode(0.0) if diode is None else diode,
                   names=[f"D{k}" for k in range(n)])
    g_ground = np.full(n, g_unit * splitting.m)  # the m I part
    if A.size and coupling == "gyrator":
        # AᵀA through a node y_r per row of A: gyrators (k, 0) → (y_r, 0) of
        # conductance g a_rk inject g (A z)_r into y_r, which has g to ground, so
        # y_r = (A z)_r; their port-1 currents draw g a_rk y_r from node k.
        rows, cols = np.nonzero(np.abs(A) > small(A))
        used = np.unique(rows)
        y = net.add_nodes(used.size, [f"y{r}" for r in used])
        y_of = np.zeros(A.shape[0], dtype=np.int64)
        y_of[used] = y
        net.add_resistors(y, np.zeros(used.size, dtype=np.int64), np.full(used.size, g_unit),
                          names=[f"RA{r}" for r in used])
        net.add_gyrators(hidden[cols], zeros[cols], y_of[rows], zeros[cols],
                         g_unit * A[rows, cols], names=[f"GA{r}_{k}" for r, k in zip(rows, cols)])
    elif A.size:
        # AᵀA: one loop of series transformer secondaries per row of A.
        rows, cols = np.nonzero(np.abs(A) > small(A))
        chain = net.add_nodes(rows.shape[0], [f"s{r}_{k}" for r, k in zip(rows, cols)])
        # The minus terminal of each secondary is the previous node of its row's
        # chain (ground for the first entry of a row).
        first = np.ones(rows.shape[0], dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        prev = np.where(first, GROUND, np.concatenate([[GROUND], chain[:-1]]))
        a_rk = A[rows, cols]
        net.add_transformers(hidden[cols], zeros[cols], chain, prev, a_rk,
                             names=[f"T{r}_{k}" for r, k in zip(rows, cols)])
        last = np.ones(rows.shape[0], dtype=bool)
        last[:-1] = rows[1:] != rows[:-1]
        net.add_resistors(chain[last], np.zeros(int(last.sum()), dtype=np.int64),
                          np.full(int(last.sum()), g_unit),
                          names=[f"RA{r}" for r in rows[last]])
        # A leak conductance ε across every secondary gives the chain's inner nodes
        # a galvanic path to ground (the engine requires one). It carries ε a_rk z_k,
        # so primary k draws ε a_rk² z_k more; the ground conductance of node k is
        # lowered by ε Σ_r a_rk² to compensate — exactly. ε keeps half of m there.
        sq = np.zeros(n)
        np.add.at(sq, cols, a_rk**2)
        eps = min(g_unit, 0.5 * g_unit * splitting.m / float(np.max(sq)))
        net.add_resistors(chain, prev, np.full(rows.shape[0], eps),
                          names=[f"RL{r}_{k}" for r, k in zip(rows, cols)])
        g_ground = g_ground - eps * sq
    net.add_resistors(hidden, zeros, g_ground, names=[f"Rm{k}" for k in range(n)])
    # −(B − Bᵀ): a gyrator per pair j < k, conductance −g K_jk.
    j, k = np.nonzero(np.triu(np.abs(K) > small(K), 1))
    if j.size:
        net.add_gyrators(hidden[j], zeros[j], hidden[k], zeros[k], -g_unit * K[j, k],
                         names=[f"GB{a}_{c}" for a, c in zip(j, k)])
    # U x: gyrators from the input sources.
    kk, ii = np.nonzero(np.abs(U) > small(U))
    if kk.size:
        net.add_gyrators(xin[ii], zeros[kk], hidden[kk], zeros[kk], g_unit * U[kk, ii],
                         names=[f"GU{a}_{c}" for a, c in zip(kk, ii)])
    kb = np.nonzero(np.abs(b) > small(b[None]))[0]
    if kb.size and bias == "source":
        one = net.add_node("bias")
        net.add_voltage_source(one, 1.0, name="Vbias")
        net.add_gyrators(np.full(kb.size, one), zeros[kb], hidden[kb], zeros[kb],
                         g_unit * b[kb], names=[f"Gb{a}" for a in kb])
    elif kb.size:
        net.add_current_sources(zeros[kb], hidden[kb], g_unit * b[kb],
                                names=[f"Ib{a}" for a in kb])
    return MonCircuit(net, hidden, W.copy(), U.copy(), b.copy(), splitting, g_unit)


# ------------------------------------------------------------ circuit → MON
def _linear_system(net: Network) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense draws ``Y v + E j`` at every node and transformer constraints ``Eᵀ v = 0``.

    ``Y`` (n_nodes × n_nodes) holds resistors and gyrators (nonsymmetric), ``E``
    (n_nodes × n_transformers) the transformer incidence: transformer ``t`` with
    ratio ``a`` and secondary current ``j_t`` (into its port-2 + terminal) draws
    ``−a j_t`` at ``p1``, ``+a j_t`` at ``n1``, ``j_t`` at ``p2``, ``−j_t`` at
    ``n2``, and imposes ``(v_p2 − v_n2) − a (v_p1 − v_n1) = 0``. Also returns the
    current injected at each node by current sources.
    """
    n = net.n_nodes
    Y = np.zeros((n, n))
    ra, rb = net.resistor_nodes
    g = net.conductances
    np.add.at(Y, (ra, ra), g)
    np.add.at(Y, (rb, rb), g)
    np.add.at(Y, (ra, rb), -g)
    np.add.at(Y, (rb, ra), -g)
    E = np.zeros((n, 0))
    tr = _elements(net, "transformer")
    if tr is not None:
        p1, n1, p2, n2, a = tr
        E = np.zeros((n, a.shape[0]))
        t = np.arange(a.shape[0])
        np.add.at(E, (p1, t), -a)
        np.add.at(E, (n1, t), a)
        np.add.at(E, (p2, t), 1.0)
        np.add.at(E, (n2, t), -1.0)
    gy = _elements(net, "gyrator")
    if gy is not None:
        p1, n1, p2, n2, gg = gy
        # port 1 draws G v2, port 2 draws −G v1
        for rows, sgn_r in ((p1, 1.0), (n1, -1.0)):
            np.add.at(Y, (rows, p2), sgn_r * gg)
            np.add.at(Y, (rows, n2), -sgn_r * gg)
        for rows, sgn_r in ((p2, 1.0), (n2, -1.0)):
            np.add.at(Y, (rows, p1), -sgn_r * gg)
            np.add.at(Y, (rows, n1), sgn_r * gg)
    inj = np.zeros(n)
    ia, ib, iv = net._core.current_sources()
    np.add.at(inj, ia, -iv)
    np.add.at(inj, ib, iv)
    return Y, E, inj


def _elements(net: Network, kind: str) -> tuple | None:
    """(p1, n1, p2, n2, value) arrays of the network's transformers (ratios) or
    gyrators (conductances), or None if it has none."""
    if kind == "transformer":
        nodes, val = net.transformer_nodes, net.transformer_ratios
    else:
        nodes, val = net.gyrator_nodes, net.gyrator_conductances
    if len(val) == 0:
        return None
    q = np.asarray(nodes, dtype=np.int64).reshape(-1, 4)
    return q[:, 0], q[:, 1], q[:, 2], q[:, 3], np.asarray(val, dtype=float)


def from_network(net: Network, *, hidden: Sequence[Any] | None = None,
                 inputs: Sequence[Any] | None = None,
                 scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W, U, b)`` of the MON that a resistor / ideal-diode network computes.

    The network's nonlinear elements must be ideal diodes (``v_on = 0``) from
    ground (anode) to the hidden nodes; everything else linear (resistors,
    transformers, gyrators, voltage sources, inputs, current sources). The free
    nodes that are not hidden, and the transformer currents, are eliminated by a
    Schur complement of the linear part (dense: for networks of up to a few
    thousand nodes), leaving ``M_c z − C_c x − b_c = d`` at the hidden nodes; the
    result is ``W = I − M_c/scale``, ``U = C_c/scale``, ``b = b_c/scale`` with ``U``'s
    columns in input order and the fixed sources folded into ``b`` (see the module
    docstring for why any scale gives the same fixed point).

    Parameters
    ----------
    net : Network
    hidden : sequence of nodes, optional
        The hidden units, in order. Default: the cathodes of the diodes, in
        diode order.
    inputs : sequence of nodes, optional
        Clamped nodes that are the MON's inputs, in the order of ``U``'s columns:
        nodes of the network's inputs or of fixed voltage sources (a fixed source
        listed here is an input instead of part of ``b``). Default: the network's
        inputs, in input order. Every input of the network must be listed (it has
        no value to fold into ``b``).
    scale : float
        Conductance unit ``s`` in siemens (``realize(..., g_unit=s)`` round-trips).

    Raises
    ------
    InvalidNetworkError
        If a diode is not ideal, not from ground, has ``v_on ≠ 0``, or a hidden node
        has no such diode; or the linear part leaves the internal nodes undetermined.
    """
    scale = float(scale)
    if not (np.isfinite(scale) and scale > 0):
        raise InvalidNetworkError(f"scale must be finite and > 0, got {scale}")
    da, dc = net.diode_nodes
    models = net.diode_models
    for k, (mdl, a) in enumerate(zip(models, da)):
        if not isinstance(mdl, IdealDiode) or mdl.v_on != 0.0 or int(a) != GROUND:
            raise InvalidNetworkError(
                f"from_network: diode {net.diode_names[k]!r} is not an ideal diode with "
                "v_on = 0 from ground to a hidden node")
    h = (np.asarray(dc, dtype=np.int64) if hidden is None
         else net._node_array(list(hidden), "hidden"))
    if len(set(h.tolist())) != h.size or np.any(h == GROUND):
        raise InvalidNetworkError("from_network: hidden nodes must be distinct and not ground")
    if set(h.tolist()) != set(np.asarray(dc).tolist()):
        raise InvalidNetworkError("from_network: the hidden nodes must be exactly the "
                                  "diodes' cathodes")
    Y, E, inj = _linear_system(net)
    n = net.n_nodes
    vs_nodes, vs_vals, vs_input = net._core.voltage_sources()
    clamped = np.zeros(n, dtype=bool)
    clamped[GROUND] = True
    clamped[vs_nodes] = True
    hid = np.zeros(n, dtype=bool)
    hid[h] = True
    if np.any(clamped & hid):
        raise InvalidNetworkError("from_network: a hidden node is clamped by a voltage source")
    internal = np.nonzero(~clamped & ~hid)[0]
    nt = E.shape[1]
    # Unknowns y = [v_internal; j]; equations: KCL at internal nodes, constraints.
    Kmat = np.block([[Y[np.ix_(internal, internal)], E[internal]],
                     [E[internal].T, np.zeros((nt, nt))]])
    cols_h = np.block([[Y[np.ix_(internal, h)]], [E[h].T]])
    cl = np.nonzero(clamped)[0]
    cols_c = np.block([[Y[np.ix_(internal, cl)]], [E[cl].T]])
    rhs_inj = np.concatenate([inj[internal], np.zeros(nt)])
    # Draws at hidden nodes: Y_hh z + Y_h,int v_int + E_h j + Y_h,cl v_cl − inj_h.
    rows_y = np.hstack([Y[np.ix_(h, internal)], E[h]])
    if Kmat.size:
        try:
            sol = np.linalg.solve(Kmat, np.hstack([cols_h, cols_c, rhs_inj[:, None]]))
        except np.linalg.LinAlgError:
            raise InvalidNetworkError("from_network: the linear part leaves internal nodes "
                                      "undetermined (floating nodes?)") from None
        if not np.all(np.isfinite(sol)):
            raise InvalidNetworkError("from_network: singular linear part")
        # y = −S_h z − S_c v_cl + S_inj
        Sh, Sc, Sinj = sol[:, :h.size], sol[:, h.size:h.size + cl.size], sol[:, -1]
        Mc = Y[np.ix_(h, h)] - rows_y @ Sh
        Cc = -(Y[np.ix_(h, cl)] - rows_y @ Sc)
        bc = inj[h] - rows_y @ Sinj
    else:
        Mc = Y[np.ix_(h, h)]
        Cc = -Y[np.ix_(h, cl)]
        bc = inj[h].copy()
    # Split the clamped columns into inputs and fixed values.
    src_of = {int(nd): k for k, nd in enumerate(vs_nodes)}
    if inputs is None:
        in_nodes = np.asarray(net.input_nodes, dtype=np.int64)
    else:
        in_nodes = net._node_array(list(inputs), "inputs")
        if len(set(in_nodes.tolist())) != in_nodes.size:
            raise InvalidNetworkError("from_network: inputs must be distinct")
        for nd in in_nodes:
            if int(nd) not in src_of:
                raise InvalidNetworkError(f"from_network: input node {int(nd)} is not "
                                          "clamped by a voltage source or input")
        missing = set(np.asarray(net.input_nodes).tolist()) - set(in_nodes.tolist())
        if missing:
            raise InvalidNetworkError(f"from_network: the network's inputs at nodes "
                                      f"{sorted(missing)} are not listed in inputs=")
    col_of = {int(nd): i for i, nd in enumerate(in_nodes)}
    U = np.zeros((h.size, in_nodes.size))
    for col, nd in enumerate(cl):
        if nd == GROUND:
            continue
        if int(nd) in col_of:
            U[:, col_of[int(nd)]] += Cc[:, col]
        else:
            bc = bc + Cc[:, col] * vs_vals[src_of[int(nd)]]
    W = np.eye(h.size) - Mc / scale
    return W, U / scale, bc / scale
