"""Independent reference for networks of resistors and *ideal* diodes.

Ideal diode (anode ``a``, cathode ``b``, threshold ``v_on``): its current
``i >= 0`` flows from ``a`` to ``b``, ``v_a - v_b <= v_on`` and
``i * (v_on - (v_a - v_b)) = 0``.

With ground (node 0) at 0 V, clamped nodes (voltage sources to ground) fixed
and every other node connected resistively to a fixed node, the DC operating
point is the unique minimiser over the free node voltages of

    E(v) = sum_resistors g (v_a - v_b)^2 / 2  -  sum_nodes I_inj v

subject to ``v_a - v_b <= v_on`` for every diode, and the diode currents are
the KKT multipliers of those constraints.

:func:`solve_ideal_diode_qp` finds the active set with SciPy's SLSQP, then
*polishes*: it solves the equality-constrained KKT system of that active set
exactly (dense linear algebra), verifies primal feasibility, dual feasibility
and complementarity, and corrects the active set if needed (primal-dual
active-set iterations, then, as a last resort, a primal active-set method
from an exactly feasible start).  Only a verified KKT point is returned.

The node voltages are always unique.  The diode currents are unique unless
active diodes form a degenerate structure (e.g. zero-threshold diodes in a
loop, or two diodes in parallel both conducting); then *a* valid set of
currents is returned.  The random generator's default thresholds (0.2-0.8 V)
make that a probability-zero event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.optimize

__all__ = [
    "IdealDiodeNetwork",
    "QPError",
    "kkt_report",
    "random_ideal_diode_network",
    "solve_ideal_diode_qp",
]

#: Relative tolerance of the final KKT verification.
KKT_RTOL = 1e-12


class QPError(RuntimeError):
    """Ill-posed network, or no verified KKT point found."""


# --------------------------------------------------------------------------
# problem assembly
# --------------------------------------------------------------------------


@dataclass
class _Reduced:
    n_nodes: int
    free: np.ndarray  # indices of free nodes
    v_fixed: np.ndarray  # full-length vector, fixed values filled, free = 0
    G: np.ndarray  # conductance matrix restricted to free nodes (SPD)
    q: np.ndarray  # right-hand side: G x = q (+ diode terms)
    D: np.ndarray  # (m_free_constraints, n_free)
    c: np.ndarray  # D x <= c
    rows: np.ndarray  # diode index of each constraint row
    fixed_diodes: np.ndarray  # diodes whose both terminals are fixed
    cur_scale: float
    v_scale: float
    res_arr: np.ndarray  # (n_res, 3) rows (a, b, g)
    i_src_max: float


def _injections(n_nodes, current_sources):
    inj = np.zeros(n_nodes)
    for a, b, amps in current_sources:
        inj[int(a)] -= amps  # SPICE: drawn out of a ...
        inj[int(b)] += amps  # ... and pushed into b
    return inj


def _assemble(n_nodes, resistors, diodes, clamps, current_sources) -> _Reduced:
    n_nodes = int(n_nodes)
    if n_nodes < 1:
        raise QPError("n_nodes must be >= 1 (node 0 is ground)")
    fixed = {0: 0.0}
    for node, volts in dict(clamps).items():
        node = int(node)
        if not 0 <= node < n_nodes:
            raise QPError(f"clamp on unknown node {node}")
        if node == 0 and volts != 0.0:
            raise QPError("ground (node 0) cannot be clamped to a non-zero voltage")
        fixed[node] = float(volts)
    v_fixed = np.zeros(n_nodes)
    is_fixed = np.zeros(n_nodes, dtype=bool)
    for node, volts in fixed.items():
        v_fixed[node] = volts
        is_fixed[node] = True
    free = np.flatnonzero(~is_fixed)
    pos = -np.ones(n_nodes, dtype=int)
    pos[free] = np.arange(free.size)

    Gfull = np.zeros((n_nodes, n_nodes))
    for a, b, g in resistors:
        a, b, g = int(a), int(b), float(g)
        if a == b:
            continue
        if not (g > 0 and math.isfinite(g)):
            raise QPError(f"resistor conductance must be positive and finite, got {g}")
        Gfull[a, a] += g
        Gfull[b, b] += g
        Gfull[a, b] -= g
        Gfull[b, a] -= g
    inj = _injections(n_nodes, current_sources)
    G = Gfull[np.ix_(free, free)]
    q = inj[free] - Gfull[np.ix_(free, is_fixed.nonzero()[0])] @ v_fixed[is_fixed]

    D_rows, c, rows, fixed_diodes = [], [], [], []
    for k, (a, b, v_on) in enumerate(diodes):
        a, b, v_on = int(a), int(b), float(v_on)
        if a == b:
            raise QPError(f"diode {k} is a self-loop")
        row = np.zeros(free.size)
        rhs = v_on
        if is_fixed[a]:
            rhs -= v_fixed[a]
        else:
            row[pos[a]] += 1.0
        if is_fixed[b]:
            rhs += v_fixed[b]
        else:
            row[pos[b]] -= 1.0
        if is_fixed[a] and is_fixed[b]:
            fixed_diodes.append(k)
            continue
        D_rows.append(row)
        c.append(rhs)
        rows.append(k)
    D = np.array(D_rows).reshape(len(D_rows), free.size)

    if free.size:
        try:
            scipy.linalg.cholesky(G)
        except np.linalg.LinAlgError:
            raise QPError(
                "conductance matrix of the free nodes is singular: some free node "
                "has no resistive path to ground or a clamp"
            ) from None
    g_abs = [abs(float(r[2])) for r in resistors] or [1.0]
    v_scale = max([1.0] + [abs(x) for x in fixed.values()] + [abs(float(d[2])) for d in diodes])
    # a-priori scales, never larger than those kkt_report uses for verification
    cur_scale = max([abs(float(s[2])) for s in current_sources] + [max(g_abs) * 1.0])
    return _Reduced(
        n_nodes,
        free,
        v_fixed,
        G,
        q,
        D,
        np.array(c),
        np.array(rows, dtype=int),
        np.array(fixed_diodes, dtype=int),
        cur_scale,
        v_scale,
        np.array([(int(a), int(b), float(g)) for a, b, g in resistors], dtype=float).reshape(-1, 3),
        max([abs(float(s[2])) for s in current_sources] + [0.0]),
    )


# --------------------------------------------------------------------------
# KKT machinery on the reduced problem
# --------------------------------------------------------------------------


def _solve_kkt(P: _Reduced, W):
    """Equality-constrained QP with constraints ``W`` active.

    Returns ``(x, lam_full)`` or ``None`` if the KKT matrix is singular
    (linearly dependent active constraints).
    """
    W = np.asarray(sorted(W), dtype=int)
    n, m = P.G.shape[0], P.D.shape[0]
    lam = np.zeros(m)
    if W.size == 0:
        x = scipy.linalg.cho_solve(scipy.linalg.cho_factor(P.G), P.q) if n else np.zeros(0)
        return x, lam
    DW = P.D[W]
    K = np.zeros((n + W.size, n + W.size))
    K[:n, :n] = P.G
    K[:n, n:] = DW.T
    K[n:, :n] = DW
    rhs = np.concatenate([P.q, P.c[W]])
    # rank check of the active constraint rows (relative to their norm ~1)
    if np.linalg.matrix_rank(DW, tol=1e-10) < W.size:
        return None
    try:
        sol = scipy.linalg.solve(K, rhs, assume_a="sym")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgWarning):
        return None
    # one step of iterative refinement for good measure
    r = rhs - K @ sol
    sol = sol + scipy.linalg.solve(K, r, assume_a="sym")
    x = sol[:n]
    lam[W] = sol[n:]
    return x, lam


def _tolerances(P: _Reduced, rtol):
    return rtol * P.v_scale, rtol * P.cur_scale


def _actual_tolerances(P: _Reduced, x, rtol):
    """Tolerances relative to the magnitudes at ``x`` (no 1 V floor).

    Tighter than :func:`_tolerances` for networks with tiny voltages and
    currents, where the a-priori floors would let a wrong active set pass.
    """
    v = P.v_fixed.copy()
    v[P.free] = x
    d_von = np.abs(P.c) if P.c.size else np.zeros(1)
    v_scale = max(float(np.max(np.abs(v), initial=0.0)), float(np.max(d_von)), 1e-300)
    if P.res_arr.size:
        a = P.res_arr[:, 0].astype(int)
        b = P.res_arr[:, 1].astype(int)
        terms = np.abs(P.res_arr[:, 2]) * np.maximum(np.abs(v[a]), np.abs(v[b]))
        i_scale = max(float(terms.max()), P.i_src_max, 1e-300)
    else:
        i_scale = max(P.i_src_max, 1e-300)
    return rtol * v_scale, rtol * i_scale


def _pdas(P: _Reduced, W0, tols, max_iter=200):
    """Primal-dual active-set iterations on the exact KKT system.

    ``tols = (vtol, itol)``: a constraint outside the working set counts as
    violated beyond ``vtol`` volts, a multiplier as negative below ``-itol``.
    """
    vtol, itol = tols
    W = set(int(k) for k in W0)
    seen = set()
    for _ in range(max_iter):
        key = frozenset(W)
        if key in seen:
            return None
        seen.add(key)
        sol = _solve_kkt(P, W)
        if sol is None:
            return None
        x, lam = sol
        slack = P.c - P.D @ x
        newW = {k for k in W if lam[k] >= -itol} | {
            k for k in range(P.D.shape[0]) if k not in W and slack[k] < -vtol
        }
        if newW == W:
            return x, lam, W
        W = newW
    return None


def _feasible_start(P: _Reduced):
    """Exactly feasible x for ``D x <= c`` via Bellman-Ford on difference constraints.

    Each constraint row has the form ``x_a - x_b <= c`` (or a single +-x
    term relative to the fixed potential).  Node ``n`` (one extra vertex)
    stands for "the fixed potential 0".  Returns None if infeasible.
    """
    n, m = P.G.shape[0], P.D.shape[0]
    src = n
    edges = []  # x_j <= x_i + w  <=>  edge i -> j with weight w
    for k in range(m):
        row = P.D[k]
        plus = np.flatnonzero(row > 0)
        minus = np.flatnonzero(row < 0)
        j = int(plus[0]) if plus.size else src
        i = int(minus[0]) if minus.size else src
        edges.append((i, j, P.c[k]))
    dist = np.zeros(n + 1)  # start everyone at 0: a virtual super-source
    for _ in range(n + 2):
        changed = False
        for i, j, w in edges:
            if dist[i] + w < dist[j]:
                dist[j] = dist[i] + w
                changed = True
        if not changed:
            break
    else:
        return None
    x = dist[:n] - dist[src]
    return x


def _difference_feasible(n_nodes, diodes, fixed) -> bool:
    """Is ``{v_a - v_b <= v_on for all diodes, v_k = fixed[k]}`` feasible?"""
    src = n_nodes
    edges = [(b, a, v_on) for a, b, v_on in diodes]  # v_a <= v_b + v_on
    for k, volts in fixed.items():
        edges.append((src, k, volts))  # v_k <= v_src + volts
        edges.append((k, src, -volts))  # v_src <= v_k - volts
    dist = np.zeros(n_nodes + 1)
    for _ in range(n_nodes + 2):
        changed = False
        for i, j, w in edges:
            if dist[i] + w < dist[j] - 1e-12:
                dist[j] = dist[i] + w
                changed = True
        if not changed:
            return True
    return False


def _primal_active_set(P: _Reduced, rtol, max_iter=10000):
    """Primal active-set method (Nocedal & Wright, Alg. 16.3) from a feasible start."""
    vtol, itol = _tolerances(P, rtol)
    x = _feasible_start(P)
    if x is None:
        raise QPError(
            "diode constraints are infeasible (cycle of diodes with negative total threshold?)"
        )
    n, m = P.G.shape[0], P.D.shape[0]
    slack = P.c - P.D @ x
    W: list[int] = []
    for k in np.argsort(slack):
        if slack[k] <= vtol:
            trial = W + [int(k)]
            if np.linalg.matrix_rank(P.D[trial], tol=1e-10) == len(trial):
                W = trial
    for _ in range(max_iter):
        g = P.G @ x - P.q
        DW = P.D[W]
        K = np.zeros((n + len(W), n + len(W)))
        K[:n, :n] = P.G
        K[:n, n:] = DW.T
        K[n:, :n] = DW
        sol = scipy.linalg.solve(K, np.concatenate([-g, np.zeros(len(W))]), assume_a="sym")
        p, mult = sol[:n], sol[n:]
        if np.max(np.abs(p), initial=0.0) <= 1e-13 * P.v_scale:
            if len(W) == 0 or mult.min() >= -itol:
                lam = np.zeros(m)
                lam[W] = mult
                return x, lam, set(W)
            W.pop(int(np.argmin(mult)))
            continue
        alpha, block = 1.0, -1
        Dp = P.D @ p
        slack = P.c - P.D @ x
        Wset = set(W)
        for k in range(m):
            if k not in Wset and Dp[k] > 0:
                step = max(slack[k], 0.0) / Dp[k]
                if step < alpha:
                    alpha, block = step, k
        x = x + alpha * p
        if block >= 0:
            W.append(block)
    raise QPError("primal active-set method did not terminate")


def kkt_report(n_nodes, resistors, diodes, clamps, current_sources, v, diode_currents):
    """Independent KKT check of a solution, in physical units, from raw inputs.

    Returns a dict with ``kcl`` (max |net current| at free nodes [A]),
    ``primal`` (max ``v_a - v_b - v_on`` [V], <= 0 when feasible),
    ``dual`` (min diode current [A]), ``compl`` (max ``|i * slack|`` [W]),
    ``compl_rel`` (max over diodes of ``min(|i|/cur_scale, |slack|/v_scale)``),
    ``clamp`` (max deviation of fixed voltages [V]) and the scales used for
    relative tolerances: ``cur_scale`` (largest of ``g*max(|v_a|, |v_b|)``
    over resistors, of the source and diode currents, and of
    ``max(g) * 1 V`` [A]) and ``v_scale`` (max(1, |v|, |v_on|) [V]).
    """
    v = np.asarray(v, dtype=float)
    i_d = np.asarray(diode_currents, dtype=float)
    n_nodes = int(n_nodes)
    net = _injections(n_nodes, current_sources) * -1.0  # net current *leaving*
    for a, b, g in resistors:
        i = float(g) * (v[int(a)] - v[int(b)])
        net[int(a)] += i
        net[int(b)] -= i
    for (a, b, _), i in zip(diodes, i_d):
        net[int(a)] += i
        net[int(b)] -= i
    fixed = {0: 0.0, **{int(k): float(x) for k, x in dict(clamps).items()}}
    free = [k for k in range(n_nodes) if k not in fixed]
    slack = np.array([float(von) - (v[int(a)] - v[int(b)]) for a, b, von in diodes])
    # current scale of the KCL sums: |g*v| of resistor terms (their rounding
    # level), source and diode currents
    v_scale = max([1.0] + [abs(x) for x in v] + [abs(float(d[2])) for d in diodes])
    g_max = max([abs(float(r[2])) for r in resistors] + [0.0])
    branch = [abs(float(g)) * max(abs(v[int(a)]), abs(v[int(b)])) for a, b, g in resistors]
    branch += [abs(float(s[2])) for s in current_sources] + [abs(x) for x in i_d]
    cur_scale = max(branch + [g_max * 1.0, 1e-300])  # floor: g_max * 1 V
    rel = (
        np.minimum(np.abs(i_d) / cur_scale, np.abs(slack) / v_scale) if len(diodes) else np.zeros(0)
    )
    return {
        "kcl": float(np.max(np.abs(net[free]), initial=0.0)),
        "primal": float(np.max(-slack, initial=-np.inf)),
        "dual": float(np.min(i_d, initial=np.inf)),
        "compl": float(np.max(np.abs(i_d * slack), initial=0.0)),
        "compl_rel": float(np.max(rel, initial=0.0)),
        "clamp": max([abs(v[k] - x) for k, x in fixed.items()]),
        "cur_scale": cur_scale,
        "v_scale": v_scale,
    }


def _kkt_ok(rep, rtol):
    itol = rtol * rep["cur_scale"]
    vtol = rtol * rep["v_scale"]
    return (
        rep["kcl"] <= itol
        and rep["primal"] <= vtol
        and rep["dual"] >= -itol
        and rep["compl_rel"] <= rtol
        and rep["clamp"] == 0.0
    )


# --------------------------------------------------------------------------
# public solver
# --------------------------------------------------------------------------


def solve_ideal_diode_qp(
    n_nodes, resistors, diodes, clamps, current_sources, *, rtol: float = KKT_RTOL
):
    """Operating point of a resistor / ideal-diode network.

    Parameters
    ----------
    n_nodes : int
        Number of nodes *including* ground; nodes are ``0..n_nodes-1`` and
        node 0 is ground (0 V).
    resistors : iterable of ``(a, b, g)``
        Conductance ``g > 0`` [S] between nodes ``a`` and ``b``.
    diodes : iterable of ``(anode, cathode, v_on)``
        Ideal diodes with threshold ``v_on`` [V].
    clamps : mapping ``{node: volts}``
        Nodes held by voltage sources to ground.
    current_sources : iterable of ``(a, b, amps)``
        SPICE convention: ``amps`` drawn out of ``a`` and pushed into ``b``.

    Returns
    -------
    (v, diode_currents) : (ndarray (n_nodes,), ndarray (len(diodes),))
        All node voltages (ground and clamps included) and the diode
        currents (anode -> cathode, >= 0), i.e. the KKT multipliers.

    The result is verified: KCL at free nodes, primal and dual feasibility
    and complementarity hold to ``rtol`` times the network's current /
    voltage scales (see :func:`kkt_report`), else :class:`QPError`.
    """
    resistors = [tuple(r) for r in resistors]
    diodes = [tuple(d) for d in diodes]
    current_sources = [tuple(s) for s in current_sources]
    clamps = dict(clamps)
    P = _assemble(n_nodes, resistors, diodes, clamps, current_sources)
    vtol, itol = _tolerances(P, rtol)

    # diodes between two fixed nodes: current is 0 if strictly off, else ill-posed
    for k in P.fixed_diodes:
        a, b, v_on = diodes[k]
        drop = P.v_fixed[int(a)] - P.v_fixed[int(b)]
        if drop > v_on - vtol:
            raise QPError(
                f"diode {k} sits between two fixed nodes with drop {drop} >= v_on={v_on}: "
                "its current is infeasible or not unique"
            )

    n, m = P.G.shape[0], P.D.shape[0]
    result = None
    if m == 0 or n == 0:
        result = _solve_kkt(P, [])
        if result is not None:
            result = (*result, set())
    else:
        # 1) SLSQP to guess the active set.  Work in whitened coordinates
        #    y = L^T x (G = L L^T): the objective becomes |y|^2/2 - b.y, whose
        #    Hessian is the identity SLSQP's BFGS starts from, so SLSQP's
        #    first QP subproblem already is the exact problem.
        gs = float(np.median(np.diag(P.G)))
        L = scipy.linalg.cholesky(P.G / gs, lower=True)
        b = scipy.linalg.solve_triangular(L, P.q / gs, lower=True)
        A = scipy.linalg.solve_triangular(L, P.D.T, lower=True).T  # D L^-T
        x0 = _feasible_start(P)
        if x0 is None:
            raise QPError("diode constraints are infeasible")
        res = scipy.optimize.minimize(
            lambda y: 0.5 * y @ y - b @ y,
            L.T @ x0,
            jac=lambda y: y - b,
            method="SLSQP",
            constraints=[
                {
                    "type": "ineq",
                    "fun": lambda y: P.c - A @ y,
                    "jac": lambda y: -A,
                }
            ],
            options={"ftol": 1e-14, "maxiter": 200},
        )
        x_guess = scipy.linalg.solve_triangular(L.T, res.x, lower=False)
        slack = P.c - P.D @ x_guess
        W0 = set(np.flatnonzero(slack <= 1e-6 * P.v_scale).tolist())
        # 2) exact KKT polish + primal-dual active-set correction, first with
        #    strict tolerances relative to the actual magnitudes (a diode at
        #    its on/off boundary to within 1e-15 is decided by rounding), then
        #    looser, then with the a-priori (floored) ones
        result = None
        stages = [_actual_tolerances(P, x_guess, min(rtol, r)) for r in (1e-15, 1e-13)]
        for tols in stages + [_tolerances(P, rtol)]:
            result = _pdas(P, W0, tols)
            if result is not None and _check(
                P, result, diodes, resistors, clamps, current_sources, n_nodes, rtol
            ):
                break
            result = None
        # 3) last resort: primal active-set method from an exactly feasible start
        if result is None:
            result = _primal_active_set(P, rtol)
            polished = _pdas(P, result[2], _tolerances(P, rtol))
            if polished is not None:
                result = polished

    if result is None:
        raise QPError("could not solve the KKT system (dependent active diode constraints?)")
    v, i_d = _expand(P, result[0], result[1], len(diodes))
    rep = kkt_report(n_nodes, resistors, diodes, clamps, current_sources, v, i_d)
    if not _kkt_ok(rep, rtol):
        raise QPError(f"KKT verification failed: {rep}")
    # multipliers in [-tol, 0) are rounding noise of weakly active diodes
    i_d = np.maximum(i_d, 0.0)
    return v, i_d


def _expand(P: _Reduced, x, lam, n_diodes):
    v = P.v_fixed.copy()
    v[P.free] = x
    i_d = np.zeros(n_diodes)
    if P.rows.size:
        i_d[P.rows] = lam
    return v, i_d


def _check(P, result, diodes, resistors, clamps, current_sources, n_nodes, rtol):
    v, i_d = _expand(P, result[0], result[1], len(diodes))
    return _kkt_ok(kkt_report(n_nodes, resistors, diodes, clamps, current_sources, v, i_d), rtol)


# --------------------------------------------------------------------------
# random networks
# --------------------------------------------------------------------------


@dataclass
class IdealDiodeNetwork:
    """Arguments of :func:`solve_ideal_diode_qp`, as generated."""

    n_nodes: int
    resistors: list[tuple[int, int, float]] = field(default_factory=list)
    diodes: list[tuple[int, int, float]] = field(default_factory=list)
    clamps: dict[int, float] = field(default_factory=dict)
    current_sources: list[tuple[int, int, float]] = field(default_factory=list)

    def kwargs(self) -> dict:
        return {
            "n_nodes": self.n_nodes,
            "resistors": list(self.resistors),
            "diodes": list(self.diodes),
            "clamps": dict(self.clamps),
            "current_sources": list(self.current_sources),
        }

    def solve(self, **kw):
        return solve_ideal_diode_qp(**self.kwargs(), **kw)


def random_ideal_diode_network(
    seed: int,
    n_nodes: int,
    *,
    n_extra_edges: int | None = None,
    n_diodes: int | None = None,
    n_clamps: int = 2,
    n_current_sources: int = 2,
    v_on_range: tuple[float, float] = (0.2, 0.8),
    g_range: tuple[float, float] = (1e-5, 1e-2),
    v_range: tuple[float, float] = (-5.0, 5.0),
    i_range: tuple[float, float] = (-1e-3, 1e-3),
) -> IdealDiodeNetwork:
    """Random resistor / ideal-diode network on nodes ``0..n_nodes-1`` (0 = ground).

    A random spanning tree of resistors (log-uniform conductances in
    ``g_range``) connects all nodes, so every free node has a resistive path
    to ground.  ``n_extra_edges`` (default ``n_nodes // 2``) extra resistors,
    ``n_diodes`` (default ``max(1, n_nodes // 3)``) diodes with random
    orientation and ``v_on`` uniform in ``v_on_range`` (never between two
    fixed nodes), ``n_clamps`` clamped nodes (uniform in ``v_range``) and
    ``n_current_sources`` current sources (uniform in ``i_range``).
    Deterministic in ``seed``.
    """
    if n_nodes < 2:
        raise ValueError("n_nodes must be >= 2 (ground + at least one node)")
    if not 0 <= n_clamps <= n_nodes - 1:
        raise ValueError("need 0 <= n_clamps <= n_nodes - 1")
    rng = np.random.default_rng(seed)
    n_extra = n_nodes // 2 if n_extra_edges is None else int(n_extra_edges)
    n_dio = max(1, n_nodes // 3) if n_diodes is None else int(n_diodes)

    def log_uniform(lo, hi):
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    clamp_nodes = [int(k) for k in rng.choice(np.arange(1, n_nodes), size=n_clamps, replace=False)]
    clamps = {k: float(rng.uniform(*v_range)) for k in clamp_nodes}
    fixed = set(clamp_nodes) | {0}
    if n_dio and len(fixed) == n_nodes:
        raise ValueError("no free node to attach diodes to")

    order = [0] + [int(k) for k in rng.permutation(np.arange(1, n_nodes))]
    resistors = []
    for pos in range(1, n_nodes):
        a, b = order[pos], order[int(rng.integers(0, pos))]
        resistors.append((a, b, log_uniform(*g_range)))
    for _ in range(n_extra):
        a, b = (int(x) for x in rng.choice(n_nodes, size=2, replace=False))
        resistors.append((a, b, log_uniform(*g_range)))
    diodes = []
    attempts = 0
    while len(diodes) < n_dio:
        attempts += 1
        if attempts > 100 * (n_dio + 10):
            raise ValueError("cannot place the requested number of diodes")
        a, b = (int(x) for x in rng.choice(n_nodes, size=2, replace=False))
        if a in fixed and b in fixed:
            continue
        cand = (a, b, float(rng.uniform(*v_on_range)))
        # reject diodes closing a diode-only path between fixed nodes whose
        # thresholds cannot hold the voltage (infinite current: infeasible)
        if _difference_feasible(n_nodes, diodes + [cand], {0: 0.0, **clamps}):
            diodes.append(cand)
    sources = []
    for _ in range(n_current_sources):
        a, b = (int(x) for x in rng.choice(n_nodes, size=2, replace=False))
        sources.append((a, b, float(rng.uniform(*i_range))))
    return IdealDiodeNetwork(n_nodes, resistors, diodes, clamps, sources)
