"""Deterministic random SPICE netlists of resistors, diodes and sources.

:func:`random_netlist` returns a :class:`GeneratedNetlist`: the SPICE text and
a structured description of every element, so the very same network can be
built in another simulator (ohmflow) and compared.

Structure of a generated network (nodes ``n1``..``nN``, ground ``0``):

* a random spanning tree of *resistors* over ``{0, n1..nN}``: every node has a
  purely resistive path to ground, so the operating point is unique without
  relying on diodes or GMIN (the network equations are strictly monotone);
* ``n_extra_edges`` further random edges (no self-loops; parallel edges are
  allowed), a ``diode_fraction`` of all two-terminal branches being diodes,
  which are only placed on extra edges and never between two nodes whose
  voltage is fixed (ground or a voltage-source node);
* voltage sources between distinct nodes and ground, current sources between
  random distinct node pairs (ground allowed).

All element values are rounded to 6 significant digits and the structured
values are exactly ``float()`` of the text written to the netlist.  Beware:
ngspice's number parser is not correctly rounded; it may read a value 1 ulp
away from ``float(text)`` (e.g. ``DC -3.47992`` gives ``v = -3.4799200000000003``),
so compare with ngspice at >= ~1e-15 relative, never bit-exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .ngspice import ACCURATE_OPTIONS, DEFAULT_GMIN, ngspice_diode_current

__all__ = ["GeneratedNetlist", "random_netlist", "format_value"]

R_RANGE = (100.0, 100e3)
IS_RANGE = (1e-16, 1e-12)
N_RANGE = (1.0, 2.0)
V_RANGE = (-5.0, 5.0)
I_RANGE = (-1e-3, 1e-3)


def format_value(x: float, digits: int = 6) -> str:
    """Round ``x`` to ``digits`` significant digits, in a SPICE-readable form."""
    return f"{float(x):.{digits - 1}e}"


def _rounded(x: float) -> float:
    return float(format_value(x))


@dataclass
class GeneratedNetlist:
    """A random network, as SPICE text and as element lists.

    Node names are strings: ``"n1"``..``"nN"`` and ``"0"`` for ground.

    * ``resistors``: ``(name, a, b, ohms)``
    * ``diodes``: ``(name, anode, cathode, model_name)``
    * ``vsources``: ``(name, node, volts)`` -- always ``node`` to ground
      (``+`` terminal at ``node``)
    * ``isources``: ``(name, a, b, amps)`` -- SPICE convention: ``amps`` flow
      out of ``a``, through the source, into ``b``
    * ``models``: ``(name, IS, N)``
    """

    seed: int
    n_nodes: int
    netlist: str
    nodes: list[str]
    resistors: list[tuple[str, str, str, float]] = field(default_factory=list)
    diodes: list[tuple[str, str, str, str]] = field(default_factory=list)
    vsources: list[tuple[str, str, float]] = field(default_factory=list)
    isources: list[tuple[str, str, str, float]] = field(default_factory=list)
    models: list[tuple[str, float, float]] = field(default_factory=list)

    @staticmethod
    def node_index(name: str) -> int:
        """``"0"`` -> 0, ``"nK"`` -> K."""
        return 0 if name == "0" else int(name[1:])

    def model(self, name: str) -> tuple[float, float]:
        """``(IS, N)`` of diode model ``name``."""
        for mname, IS, N in self.models:
            if mname == name:
                return IS, N
        raise KeyError(name)

    def voltage_vector(self, voltages: dict[str, float]) -> np.ndarray:
        """Array ``v`` of length ``n_nodes + 1`` with ``v[0] = 0`` (ground)."""
        v = np.zeros(self.n_nodes + 1)
        for k in range(1, self.n_nodes + 1):
            v[k] = voltages[f"n{k}"]
        return v

    def branch_currents(
        self, voltages: dict[str, float], diode_current=None, *, gmin: float = DEFAULT_GMIN
    ):
        """Currents of resistors and diodes at the given node voltages.

        Returns ``(i_res, i_dio)``: arrays in element order, positive from
        the first node (``a`` / anode) to the second.  ``diode_current`` is
        ``f(vd, IS, N) -> amps``; by default ngspice's model with ``gmin``.
        """
        if diode_current is None:

            def diode_current(vd, IS, N):
                return ngspice_diode_current(vd, IS, N, gmin=gmin)

        v = self.voltage_vector(voltages)
        ni = self.node_index
        i_res = np.array([(v[ni(a)] - v[ni(b)]) / r for _, a, b, r in self.resistors])
        i_dio = np.array(
            [diode_current(v[ni(a)] - v[ni(b)], *self.model(m)) for _, a, b, m in self.diodes]
        )
        return i_res, i_dio

    def kcl_residual(
        self,
        voltages: dict[str, float],
        vsource_currents: dict[str, float],
        diode_current=None,
        *,
        gmin: float = DEFAULT_GMIN,
    ):
        """Kirchhoff current-law imbalance at every node.

        Returns ``(residual, scale)``: ``residual[k]`` is the net current
        leaving node ``k`` (index 0 = ground) through all elements, including
        voltage-source branches (ngspice sign: ``i`` flows into ``+``, i.e.
        out of the node); ``scale`` is the largest branch-current magnitude.
        """
        ni = self.node_index
        res = np.zeros(self.n_nodes + 1)
        i_res, i_dio = self.branch_currents(voltages, diode_current, gmin=gmin)
        for (_, a, b, _), i in zip(self.resistors, i_res):
            res[ni(a)] += i
            res[ni(b)] -= i
        for (_, a, b, _), i in zip(self.diodes, i_dio):
            res[ni(a)] += i
            res[ni(b)] -= i
        for _, a, b, amps in self.isources:
            res[ni(a)] += amps
            res[ni(b)] -= amps
        i_v = []
        for name, node, _ in self.vsources:
            i = vsource_currents[name.lower()]
            i_v.append(i)
            res[ni(node)] += i
            res[0] -= i
        scale = max(
            [0.0]
            + [abs(x) for x in i_res]
            + [abs(x) for x in i_dio]
            + [abs(x) for x in i_v]
            + [abs(s[3]) for s in self.isources]
        )
        return res, scale


def random_netlist(
    seed: int,
    n_nodes: int,
    *,
    n_extra_edges: int | None = None,
    diode_fraction: float = 0.2,
    n_vsources: int = 2,
    n_isources: int = 2,
    models: int = 2,
    options: str = ACCURATE_OPTIONS,
) -> GeneratedNetlist:
    """Random connected network on ``n1..n{n_nodes}`` plus ground ``0``.

    ``n_extra_edges`` (default ``n_nodes``) branches are added to a
    resistor spanning tree; ``round(diode_fraction * total_branches)`` of
    them (capped) are diodes, the rest resistors.  Deterministic in ``seed``.
    """
    if n_nodes < 1:
        raise ValueError("n_nodes must be >= 1")
    if not 0 <= n_vsources <= n_nodes:
        raise ValueError("need 0 <= n_vsources <= n_nodes (one source per node)")
    if models < 1:
        raise ValueError("models must be >= 1")
    if not 0.0 <= diode_fraction <= 1.0:
        raise ValueError("diode_fraction must be in [0, 1]")
    rng = np.random.default_rng(seed)
    n_extra = n_nodes if n_extra_edges is None else int(n_extra_edges)
    if n_extra < 0:
        raise ValueError("n_extra_edges must be >= 0")

    def name(k: int) -> str:
        return "0" if k == 0 else f"n{k}"

    def log_uniform(lo: float, hi: float) -> float:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    # Voltage-source nodes (distinct, never ground).
    vs_nodes = [
        int(k) for k in rng.choice(np.arange(1, n_nodes + 1), size=n_vsources, replace=False)
    ]
    fixed = set(vs_nodes) | {0}

    # Random spanning tree over 0..n_nodes (random attachment in random order).
    order = [0] + [int(k) for k in rng.permutation(np.arange(1, n_nodes + 1))]
    tree_edges = []
    for pos in range(1, len(order)):
        parent = order[int(rng.integers(0, pos))]
        child = order[pos]
        tree_edges.append((child, parent) if rng.random() < 0.5 else (parent, child))

    n_branches = n_nodes + n_extra
    n_diodes = min(int(round(diode_fraction * n_branches)), n_extra)

    def random_pair(allow_fixed_pair: bool) -> tuple[int, int]:
        for _ in range(10000):
            a, b = (int(x) for x in rng.choice(n_nodes + 1, size=2, replace=False))
            if allow_fixed_pair or not (a in fixed and b in fixed):
                return a, b
        raise ValueError("cannot place a diode: every node is fixed by a source")

    diode_edges = [random_pair(False) for _ in range(n_diodes)]
    extra_res_edges = [random_pair(True) for _ in range(n_extra - n_diodes)]
    res_edges = tree_edges + extra_res_edges
    res_edges = [res_edges[int(k)] for k in rng.permutation(len(res_edges))]

    model_cards = []
    for m in range(models):
        IS = _rounded(log_uniform(*IS_RANGE))
        N = _rounded(rng.uniform(*N_RANGE))
        model_cards.append((f"dmod{m + 1}", IS, N))

    resistors = [
        (f"R{k + 1}", name(a), name(b), _rounded(log_uniform(*R_RANGE)))
        for k, (a, b) in enumerate(res_edges)
    ]
    diodes = [
        (f"D{k + 1}", name(a), name(b), model_cards[int(rng.integers(0, models))][0])
        for k, (a, b) in enumerate(diode_edges)
    ]
    vsources = [
        (f"V{k + 1}", name(node), _rounded(rng.uniform(*V_RANGE)))
        for k, node in enumerate(vs_nodes)
    ]
    isources = []
    for k in range(n_isources):
        a, b = (int(x) for x in rng.choice(n_nodes + 1, size=2, replace=False))
        isources.append((f"I{k + 1}", name(a), name(b), _rounded(rng.uniform(*I_RANGE))))

    lines = [f"ohmflow random netlist seed={seed} n_nodes={n_nodes}"]
    lines += [f"{n} {a} {b} {format_value(r)}" for n, a, b, r in resistors]
    lines += [f"{n} {a} {b} {m}" for n, a, b, m in diodes]
    lines += [f"{n} {node} 0 DC {format_value(v)}" for n, node, v in vsources]
    lines += [f"{n} {a} {b} DC {format_value(i)}" for n, a, b, i in isources]
    lines += [
        f".model {m} D(IS={format_value(IS)} N={format_value(N)})" for m, IS, N in model_cards
    ]
    if options:
        lines.append(options)
    lines += [".op", ".end"]
    return GeneratedNetlist(
        seed=seed,
        n_nodes=n_nodes,
        netlist="\n".join(lines) + "\n",
        nodes=[name(k) for k in range(1, n_nodes + 1)],
        resistors=resistors,
        diodes=diodes,
        vsources=vsources,
        isources=isources,
        models=model_cards,
    )
