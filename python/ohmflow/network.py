"""Network construction and the equilibrium solve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from . import _core
from ._core import InvalidNetworkError
from ._names import NameTable
from ._validation import check_finite, float_array, positive_array
from .diodes import IdealDiode, ReluDiode, ShockleyDiode, _from_row

__all__ = ["GROUND", "Network", "Solution"]

GROUND = 0
"""Index of the ground node (0 V)."""

Node = Union[int, str]
_GROUND_ALIASES = ("0", "gnd", "GND", "Gnd")
_METHODS = ("auto", "direct", "layered")


class Network:
    """A network of resistors, diodes, voltage sources and current sources.

    Nodes are integers (``GROUND == 0``) or names; every method that takes a node
    accepts either. Elements get default names (``R0``, ``D0``, ``V0``, ``I0``,
    nodes ``n1``...) unless named. The topology's symbolic analysis is computed on
    the first solve and kept until the topology changes: setting
    :attr:`conductances` or source values only costs a numeric refactorization.

    Examples
    --------
    >>> import ohmflow as of
    >>> net = of.Network()
    >>> a, b = net.add_node("a"), net.add_node("b")
    >>> _ = net.add_voltage_source(a, 1.0)
    >>> _ = net.add_resistor(a, b, conductance=1e-3)
    >>> _ = net.add_resistor(b, of.GROUND, conductance=1e-3)
    >>> round(net.solve().voltage("b"), 12)
    0.5
    """

    def __init__(self) -> None:
        self._core = _core.CoreNetwork()
        self._nodes = NameTable("n", "node")
        self._nodes.extend(1, ["0"])
        self._resistors = NameTable("R", "resistor")
        self._diodes = NameTable("D", "diode")
        self._vsources = NameTable("V", "voltage source")
        self._isources = NameTable("I", "current source")
        self._transformers = NameTable("T", "transformer")
        self._gyrators = NameTable("GY", "gyrator")
        # Sign of each voltage source's reported current (-1 for SPICE sources whose
        # + terminal is on ground; see read_spice).
        self._vsign: list[float] = []
        self._inputs: list[int] = []  # voltage-source index of each input

    # ------------------------------------------------------------------ nodes
    def add_node(self, name: str | None = None) -> int:
        """Adds a node; returns its index."""
        return int(self.add_nodes(1, None if name is None else [name])[0])

    def add_nodes(self, count: int, names: Sequence[str] | None = None) -> np.ndarray:
        """Adds ``count`` nodes; returns their indices as an int64 array."""
        count = int(count)
        if count < 0:
            raise InvalidNetworkError("count must be >= 0")
        if names is not None:
            for nm in names:
                if nm in _GROUND_ALIASES:
                    raise InvalidNetworkError(f"node name {nm!r} is reserved for ground")
        table = self._nodes.copy()
        table.extend(count, None if names is None else list(names))
        first = self._core.add_nodes(count)
        self._nodes = table
        return np.arange(first, first + count, dtype=np.int64)

    def node(self, key: Node) -> int:
        """Index of a node given by index or name."""
        if isinstance(key, str) and key in _GROUND_ALIASES:
            return GROUND
        return self._nodes.lookup(key)

    def _node_array(self, keys: Any, what: str) -> np.ndarray:
        if isinstance(keys, np.ndarray) and keys.dtype.kind in "iu":
            if keys.dtype.kind == "u" and keys.size and int(keys.max()) >= self.n_nodes:
                bad = int(keys[keys >= self.n_nodes][0])
                raise InvalidNetworkError(f"{what}: unknown node {bad} (the network has "
                                          f"{self.n_nodes} nodes)")
            a = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1)
            if a.size and (a.min() < 0 or a.max() >= self.n_nodes):
                bad = a[(a < 0) | (a >= self.n_nodes)][0]
                raise InvalidNetworkError(f"{what}: unknown node {bad} (the network has "
                                          f"{self.n_nodes} nodes)")
            return a
        if isinstance(keys, (str, int, np.integer)):
            keys = [keys]
        return np.asarray([self.node(k) for k in keys], dtype=np.int64)

    @property
    def n_nodes(self) -> int:
        """Number of nodes, ground included."""
        return self._core.n_nodes

    @property
    def node_names(self) -> list[str]:
        """Name of each node, in index order (ground is ``"0"``)."""
        return self._nodes.names()

    # -------------------------------------------------------------- resistors
    def add_resistor(self, a: Node, b: Node, conductance: float | None = None, *,
                     resistance: float | None = None, name: str | None = None) -> int:
        """Adds a resistor between ``a`` and ``b``; returns its index.

        Give exactly one of ``conductance`` (S) or ``resistance`` (Ω).
        """
        if (conductance is None) == (resistance is None):
            raise InvalidNetworkError("give exactly one of conductance= or resistance=")
        g = conductance if resistance is None else 1.0 / positive_array(resistance, "resistance")[0]
        idx = self.add_resistors([self.node(a)], [self.node(b)], [g],
                                 names=None if name is None else [name])
        return int(idx[0])

    def add_resistors(self, src: Any, dst: Any, conductances: Any,
                      names: Sequence[str] | None = None) -> np.ndarray:
        """Adds resistors ``src[i] — dst[i]`` (vectorised); returns their indices."""
        a = self._node_array(src, "resistor")
        b = self._node_array(dst, "resistor")
        g = float_array(conductances, "conductance")
        if g.shape[0] == 1 and a.shape[0] != 1:
            g = np.full(a.shape[0], g[0])
        # Names are validated before the core changes, so a bad name loses nothing.
        table = self._resistors.copy()
        table.extend(a.shape[0], None if names is None else list(names))
        first = self._core.add_resistors(a, b, g)
        self._resistors = table
        return np.arange(first, first + a.shape[0], dtype=np.int64)

    @property
    def n_resistors(self) -> int:
        return self._core.n_resistors

    @property
    def resistor_names(self) -> list[str]:
        """Name of each resistor, aligned with :attr:`conductances`."""
        return self._resistors.names()

    @property
    def resistor_nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """End nodes (a, b) of every resistor; currents are counted a → b."""
        return self._core.resistors()

    @property
    def conductances(self) -> np.ndarray:
        """Conductances (S), aligned with :attr:`resistor_names` (a copy; assign to change)."""
        return self._core.conductances()

    @conductances.setter
    def conductances(self, g: Any) -> None:
        self._core.set_conductances(float_array(g, "conductances", length=self.n_resistors))

    @property
    def resistances(self) -> np.ndarray:
        """Resistances (Ω) = 1 / conductances."""
        return 1.0 / self.conductances

    def resistor(self, key: str | int) -> int:
        """Index of a resistor given by name or index."""
        return self._resistors.lookup(key)

    # ----------------------------------------------------------------- diodes
    def add_diode(self, anode: Node, cathode: Node, model: Any = None, *,
                  name: str | None = None) -> int:
        """Adds a diode from ``anode`` to ``cathode``; returns its index.

        ``model`` is :class:`IdealDiode` (default), :class:`ReluDiode` or
        :class:`ShockleyDiode`.
        """
        idx = self.add_diodes([self.node(anode)], [self.node(cathode)], model,
                              names=None if name is None else [name])
        return int(idx[0])

    def add_diodes(self, anodes: Any, cathodes: Any, model: Any = None,
                   names: Sequence[str] | None = None) -> np.ndarray:
        """Adds diodes (vectorised) sharing one model, or one model per diode."""
        a = self._node_array(anodes, "diode")
        b = self._node_array(cathodes, "diode")
        models = model if isinstance(model, (list, tuple)) else [model] * a.shape[0]
        if len(models) != a.shape[0]:
            raise InvalidNetworkError(f"diode: {a.shape[0]} diodes but {len(models)} models")
        kinds = np.empty(a.shape[0], dtype=np.uint8)
        params = np.empty((a.shape[0], 4))
        for i, m in enumerate(models):
            m = IdealDiode() if m is None else m
            if not isinstance(m, (IdealDiode, ReluDiode, ShockleyDiode)):
                raise InvalidNetworkError(f"unknown diode model {m!r}")
            kinds[i], params[i] = m._row()
        table = self._diodes.copy()
        table.extend(a.shape[0], None if names is None else list(names))
        first = self._core.add_diodes(a, b, kinds, params)
        self._diodes = table
        return np.arange(first, first + a.shape[0], dtype=np.int64)

    @property
    def n_diodes(self) -> int:
        return self._core.n_diodes

    @property
    def diode_names(self) -> list[str]:
        return self._diodes.names()

    @property
    def diode_nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(anodes, cathodes) of every diode."""
        a, b, _, _ = self._core.diodes()
        return a, b

    @property
    def diode_models(self) -> list[IdealDiode | ReluDiode | ShockleyDiode]:
        _, _, kinds, params = self._core.diodes()
        return [_from_row(int(k), p) for k, p in zip(kinds, params)]

    def set_diode_model(self, key: str | int, model: Any) -> None:
        """Replaces the model of one diode (no new symbolic analysis)."""
        if not isinstance(model, (IdealDiode, ReluDiode, ShockleyDiode)):
            raise InvalidNetworkError(f"unknown diode model {model!r}")
        kind, row = model._row()
        self._core.set_diode_model(self._diodes.lookup(key), kind, row)

    # ------------------------------------------------------------- two-ports
    def add_transformer(self, p1: Node, n1: Node, p2: Node, n2: Node, ratio: float, *,
                        name: str | None = None) -> int:
        """Adds an ideal transformer from port 1 (``p1``, ``n1``) to port 2 (``p2``, ``n2``).

        The law is ``v2 = ratio * v1`` and ``i1 = -ratio * i2``, where
        ``v = V(p) - V(n)`` and ``i`` is the current flowing *into* the + terminal of
        each port from the circuit, so ``v1 i1 + v2 i2 = 0`` (lossless, reciprocal).
        ``ratio`` is any finite nonzero real (a negative ratio swaps the windings).
        With the other usual convention (i2 counted out of p2) this reads i1 = a i2.
        Transformers do not connect their two sides galvanically: each side needs
        its own path to ground or a source (resistors, junctions, or a port terminal
        on such a node; a port fixes only the difference of its terminals), else
        :class:`FloatingNodeError`. Returns the transformer's index.
        """
        idx = self.add_transformers([self.node(p1)], [self.node(n1)], [self.node(p2)],
                                    [self.node(n2)], [ratio],
                                    names=None if name is None else [name])
        return int(idx[0])

    def add_transformers(self, p1s: Any, n1s: Any, p2s: Any, n2s: Any, ratios: Any, *,
                         names: Sequence[str] | None = None) -> np.ndarray:
        """Vectorised :meth:`add_transformer`; returns the new indices."""
        q = [self._node_array(x, "transformer") for x in (p1s, n1s, p2s, n2s)]
        r = float_array(ratios, "transformer ratio")
        if r.shape[0] == 1 and q[0].shape[0] != 1:
            r = np.full(q[0].shape[0], r[0])
        table = self._transformers.copy()
        table.extend(q[0].shape[0], None if names is None else list(names))
        first = self._core.add_transformers(*q, r)
        self._transformers = table
        return np.arange(first, first + q[0].shape[0], dtype=np.int64)

    def add_gyrator(self, p1: Node, n1: Node, p2: Node, n2: Node, g: float, *,
                    name: str | None = None) -> int:
        """Adds an ideal gyrator between port 1 (``p1``, ``n1``) and port 2 (``p2``, ``n2``).

        The law is ``i1 = g * v2`` and ``i2 = -g * v1`` (``i`` the current into the +
        terminal of each port, ``v = V(p) - V(n)``): lossless (``v1 i1 + v2 i2 = 0``)
        and not reciprocal. ``g`` (siemens) is any finite real. Networks holding
        gyrators are solved by a nonsymmetric sparse-LU path (modified nodal
        analysis); their equilibrium is unique but is not an energy minimiser.
        As for transformers, the two sides are not connected galvanically.
        Returns the gyrator's index.
        """
        idx = self.add_gyrators([self.node(p1)], [self.node(n1)], [self.node(p2)],
                                [self.node(n2)], [g], names=None if name is None else [name])
        return int(idx[0])

    def add_gyrators(self, p1s: Any, n1s: Any, p2s: Any, n2s: Any, gs: Any, *,
                     names: Sequence[str] | None = None) -> np.ndarray:
        """Vectorised :meth:`add_gyrator`; returns the new indices."""
        q = [self._node_array(x, "gyrator") for x in (p1s, n1s, p2s, n2s)]
        g = float_array(gs, "gyrator conductance")
        if g.shape[0] == 1 and q[0].shape[0] != 1:
            g = np.full(q[0].shape[0], g[0])
        table = self._gyrators.copy()
        table.extend(q[0].shape[0], None if names is None else list(names))
        first = self._core.add_gyrators(*q, g)
        self._gyrators = table
        return np.arange(first, first + q[0].shape[0], dtype=np.int64)

    @property
    def n_transformers(self) -> int:
        return self._core.n_transformers

    @property
    def n_gyrators(self) -> int:
        return self._core.n_gyrators

    @property
    def transformer_names(self) -> list[str]:
        return self._transformers.names()

    @property
    def gyrator_names(self) -> list[str]:
        return self._gyrators.names()

    @property
    def transformer_nodes(self) -> np.ndarray:
        """Terminals of every transformer, shape (n_transformers, 4): p1, n1, p2, n2."""
        return self._core.transformers()[0]

    @property
    def gyrator_nodes(self) -> np.ndarray:
        """Terminals of every gyrator, shape (n_gyrators, 4): p1, n1, p2, n2."""
        return self._core.gyrators()[0]

    @property
    def transformer_ratios(self) -> np.ndarray:
        """Transformer ratios a (v2 = a v1), a copy; assign to change."""
        return self._core.transformers()[1]

    @transformer_ratios.setter
    def transformer_ratios(self, r: Any) -> None:
        self._core.set_transformer_ratios(
            float_array(r, "transformer ratios", length=self.n_transformers))

    @property
    def gyrator_conductances(self) -> np.ndarray:
        """Gyration conductances g (S), a copy; assign to change."""
        return self._core.gyrators()[1]

    @gyrator_conductances.setter
    def gyrator_conductances(self, g: Any) -> None:
        self._core.set_gyrator_conductances(
            float_array(g, "gyrator conductances", length=self.n_gyrators))

    # ---------------------------------------------------------------- sources
    def add_voltage_source(self, node: Node, value: float, *, name: str | None = None) -> int:
        """Clamps ``node`` to ``value`` volts (a source to ground); returns its index."""
        value = check_finite(value, "voltage source value")
        return self._add_vsource(node, value, name)

    def add_input(self, node: Node, *, name: str | None = None) -> int:
        """Clamps ``node`` to a per-sample input; returns the input's column in ``inputs``."""
        self._add_vsource(node, None, name)
        return len(self._inputs) - 1

    def _add_vsource(self, node: Node, value: float | None, name: str | None) -> int:
        n = self.node(node)
        table = self._vsources.copy()
        table.extend(1, None if name is None else [name])
        k = self._core.add_voltage_source(n, value)
        self._vsources = table
        self._vsign.append(1.0)
        if value is None:
            self._inputs.append(k)
        return k

    def set_voltage_source(self, key: str | int, value: float) -> None:
        """Changes the value of a fixed voltage source (no new symbolic analysis)."""
        k = self._vsources.lookup(key)
        self._core.set_voltage_source_value(k, check_finite(value, "voltage source value")
                                            * self._vsign[k])

    @property
    def n_inputs(self) -> int:
        return self._core.n_inputs

    @property
    def input_nodes(self) -> np.ndarray:
        """Node of each input, in input order."""
        nodes, _, k = self._core.voltage_sources()
        return nodes[k >= 0][np.argsort(k[k >= 0])]

    @property
    def voltage_source_names(self) -> list[str]:
        return self._vsources.names()

    @property
    def voltage_source_nodes(self) -> np.ndarray:
        return self._core.voltage_sources()[0]

    @property
    def voltage_source_values(self) -> np.ndarray:
        """Clamp values (NaN for inputs)."""
        return self._core.voltage_sources()[1]

    def add_current_source(self, a: Node, b: Node, current: float, *,
                           name: str | None = None) -> int:
        """Adds a current source drawing ``current`` amperes out of ``a`` and into ``b``.

        This is SPICE's convention for ``I a b current``.
        """
        idx = self.add_current_sources([self.node(a)], [self.node(b)], [current],
                                       names=None if name is None else [name])
        return int(idx[0])

    def add_current_sources(self, a: Any, b: Any, currents: Any,
                            names: Sequence[str] | None = None) -> np.ndarray:
        """Vectorised :meth:`add_current_source`."""
        na = self._node_array(a, "current source")
        nb = self._node_array(b, "current source")
        i = float_array(currents, "current")
        table = self._isources.copy()
        table.extend(na.shape[0], None if names is None else list(names))
        first = self._core.add_current_sources(na, nb, i)
        self._isources = table
        return np.arange(first, first + na.shape[0], dtype=np.int64)

    @property
    def current_source_names(self) -> list[str]:
        return self._isources.names()

    @property
    def current_source_values(self) -> np.ndarray:
        return self._core.current_sources()[2]

    @current_source_values.setter
    def current_source_values(self, values: Any) -> None:
        self._core.set_current_source_values(
            float_array(values, "current source values", length=self._core.n_current_sources))

    def set_current_source(self, key: str | int, current: float) -> None:
        vals = self.current_source_values
        vals[self._isources.lookup(key)] = check_finite(current, "current")
        self._core.set_current_source_values(vals)

    # ------------------------------------------------------------------ solve
    def solve(self, inputs: Any = None, *, method: str = "auto", threads: int | None = None,
              rtol: float = 1e-12, vtol: float = 1e-13, max_iter: int = 500,
              warm_start: Solution | None = None,
              injections: tuple[Any, Any] | None = None,
              sweeps: int | None = None) -> Solution:
        """Computes the DC operating point.

        Parameters
        ----------
        inputs : array_like, optional
            Shape ``(batch, n_inputs)``: one row of input voltages per sample. A 1-d
            array is one sample. Omit when the network has no inputs.
        method : {"auto", "direct", "layered"}
            ``"direct"``: sparse Cholesky with active-set / Newton iterations.
            ``"layered"``: exact block coordinate descent over the two classes of a
            layered network (free nodes two-colourable, ideal diodes with a fixed
            end), all samples at once. ``"auto"`` takes the layered solver for
            dense layered networks (on average 16 or more branches per free node
            between free nodes), the direct one otherwise.
        sweeps : int, optional
            Layered solver only: a fixed number of sweeps (as training with a few
            sweeps per phase does); by default it sweeps until the voltages settle.
        threads : int, optional
            Threads to use (1: serial). Default: all cores.
        rtol, vtol : float
            Convergence: at every free node the KCL residual is at most ``rtol`` times
            the largest current at that node, plus the rounding floor of its currents
            (64 eps x conductance x the largest voltage; for a conducting ideal diode
            the conductance is its penalty, 1e3 x the conductance around it). Ideal
            diodes hold ``v_a - v_b <= v_on`` to ``vtol`` times the voltage scale
            (the largest of 1 V, the source values and the thresholds).
        max_iter : int
            Newton iterations allowed per sample.
        warm_start : Solution, optional
            A previous solution of the same network and batch size to start from.
        injections : (nodes, currents), optional
            Extra currents (A) flowing into ``nodes``, one row per sample (shape
            ``(batch, len(nodes))``): the nudging of Equilibrium Propagation.

        Returns
        -------
        Solution
            Batched if ``inputs`` was 2-d, a single operating point otherwise.

        Raises
        ------
        FloatingNodeError, InfeasibleError, ConvergenceError, InvalidNetworkError
        """
        if method not in _METHODS:
            raise InvalidNetworkError(f"method must be one of {_METHODS}, got {method!r}")
        if threads is not None and int(threads) < 1:
            raise InvalidNetworkError("threads must be >= 1")
        for what, tol in (("rtol", rtol), ("vtol", vtol)):
            if not (np.isfinite(tol) and tol > 0):
                raise InvalidNetworkError(f"{what} must be finite and > 0, got {tol}")
        if int(max_iter) < 1:
            raise InvalidNetworkError(f"max_iter must be >= 1, got {max_iter}")
        ni = self.n_inputs
        single = True
        if inputs is None:
            if ni:
                raise InvalidNetworkError(f"this network has {ni} inputs: pass inputs=")
            x = np.zeros((1, 0))
        else:
            x = float_array(inputs, "inputs", ndim=np.ndim(inputs) if np.ndim(inputs) else 1)
            if x.ndim == 1:
                x = x.reshape(1, -1)
            else:
                single = False
            if x.ndim != 2 or x.shape[1] != ni:
                raise InvalidNetworkError(
                    f"inputs: expected shape (batch, {ni}), got {np.shape(inputs)}")
        batch = x.shape[0]
        wv = wi = None
        if warm_start is not None:
            wv = np.ascontiguousarray(warm_start._raw["voltages"])
            wi = np.ascontiguousarray(warm_start._raw["diode_currents"])
            if wv.shape != (batch, self.n_nodes):
                raise InvalidNetworkError("warm_start: solution of another network or batch size")
        inj_nodes = inj_vals = None
        if injections is not None:
            inj_nodes = self._node_array(injections[0], "injections")
            inj_vals = float_array(injections[1], "injections", ndim=2)
            if inj_vals.shape != (batch, inj_nodes.shape[0]):
                raise InvalidNetworkError(
                    f"injections: expected shape ({batch}, {inj_nodes.shape[0]}), "
                    f"got {inj_vals.shape}")
        raw = self._core.solve(np.ascontiguousarray(x), batch, warm_voltages=wv,
                               warm_diode_currents=wi, injection_nodes=inj_nodes,
                               injections=inj_vals, rtol=float(rtol), vtol=float(vtol),
                               max_iter=int(max_iter),
                               threads=None if threads is None else int(threads),
                               method=method, sweeps=None if sweeps is None else int(sweeps))
        if any(s < 0 for s in self._vsign):
            raw["source_currents"] = raw["source_currents"] * np.asarray(self._vsign)
        return Solution(self, raw, single)

    def linearize(self, solution: Solution | None = None, *, inputs: Any = None,
                  sample: int = 0, adjoint: bool = False) -> Network:
        """The incremental (small-signal) circuit at an operating point.

        This is the circuit that hardware solves to compute exact gradients
        ("hardware linearization"): resistors keep their conductances; a ReLU or
        Shockley diode becomes a resistor of its differential conductance (named
        ``<diode>:lin``; an off ReLU diode is open and left out); a conducting ideal
        diode becomes a short, written as two antiparallel ideal diodes with
        ``v_on = 0`` (``<diode>:short+``, ``<diode>:short-``); an off one is open;
        every voltage source and input becomes a 0 V source on the same node and
        current sources carry 0 A; transformers and gyrators (linear) are kept.
        Injecting currents ∂C/∂v at the outputs of the linearized circuit gives node
        voltages λ, the adjoint of :func:`ohmflow.learn.gradient` (dC/dg = −Δλ Δv).

        With gyrators (not reciprocal) the adjoint λ solves the *transposed*
        system: ``adjoint=True`` returns the adjoint network, the linearized
        circuit with every gyrator's conductance negated (transformers, being
        reciprocal, are unchanged), whose response to the injected ∂C/∂v is λ.
        Without gyrators both are the same circuit.

        Parameters
        ----------
        solution : Solution, optional
            The operating point; solved here (with ``inputs``) if omitted.
        sample : int
            Which sample of a batched solution to linearize at.
        adjoint : bool
            Return the adjoint network (gyrators negated) instead; see above.
        """
        if solution is None:
            solution = self.solve(inputs) if inputs is not None else self.solve()
        v = np.atleast_2d(solution.voltages)[sample]
        mu = np.atleast_2d(solution.diode_currents)[sample] if self.n_diodes else np.zeros(0)
        lin = Network()
        names = self.node_names
        lin.add_nodes(self.n_nodes - 1, names[1:])
        ra, rb = self.resistor_nodes
        lin.add_resistors(ra, rb, self.conductances, names=self.resistor_names)
        da, db = self.diode_nodes
        for k, (m, name) in enumerate(zip(self.diode_models, self.diode_names)):
            a, b = int(da[k]), int(db[k])
            dv = v[a] - v[b]
            if isinstance(m, IdealDiode):
                if mu[k] > 0:
                    lin.add_diode(a, b, IdealDiode(0.0), name=f"{name}:short+")
                    lin.add_diode(b, a, IdealDiode(0.0), name=f"{name}:short-")
            elif isinstance(m, ReluDiode):
                if dv > m.v_on:
                    lin.add_resistor(a, b, m.g_on, name=f"{name}:lin")
            else:
                nvt = m.n * m.thermal_voltage
                g = m.i_s / nvt * np.exp(dv / nvt) + m.gmin
                lin.add_resistor(a, b, float(g), name=f"{name}:lin")
        for node, name in zip(self.voltage_source_nodes, self.voltage_source_names):
            lin.add_voltage_source(int(node), 0.0, name=name)
        ia, ib, iv = self._core.current_sources()
        if iv.size:
            lin.add_current_sources(ia, ib, np.zeros_like(iv), names=self.current_source_names)
        if self.n_transformers:
            q = self.transformer_nodes
            lin.add_transformers(q[:, 0], q[:, 1], q[:, 2], q[:, 3], self.transformer_ratios,
                                 names=self.transformer_names)
        if self.n_gyrators:
            q = self.gyrator_nodes
            g = self.gyrator_conductances
            lin.add_gyrators(q[:, 0], q[:, 1], q[:, 2], q[:, 3], -g if adjoint else g,
                             names=self.gyrator_names)
        return lin

    def gradient(self, targets: Any, method: str = "exact", **kwargs: Any) -> np.ndarray:
        """dC/dg of a loss on output voltages; see :func:`ohmflow.learn.gradient`."""
        from .learn import gradient

        return gradient(self, targets, method=method, **kwargs)

    # ----------------------------------------------------------------- misc
    def copy(self) -> Network:
        """An independent copy (shares the cached symbolic analysis until edited)."""
        new = Network.__new__(Network)
        new._core = self._core.copy()
        new._nodes = self._nodes.copy()
        new._resistors = self._resistors.copy()
        new._diodes = self._diodes.copy()
        new._vsources = self._vsources.copy()
        new._isources = self._isources.copy()
        new._transformers = self._transformers.copy()
        new._gyrators = self._gyrators.copy()
        new._vsign = list(self._vsign)
        new._inputs = list(self._inputs)
        return new

    def to_spice(self, *, inputs: Any = None, title: str = "ohmflow network",
                 accurate: bool = True, gyrators: str = "vccs") -> str:
        """The network as a SPICE netlist (see :func:`ohmflow.spice.to_spice`)."""
        from .spice import to_spice

        return to_spice(self, inputs=inputs, title=title, accurate=accurate,
                        gyrators=gyrators)

    def __repr__(self) -> str:
        return (f"Network(nodes={self.n_nodes}, resistors={self.n_resistors}, "
                f"diodes={self.n_diodes}, voltage_sources={self._core.n_voltage_sources}, "
                f"inputs={self.n_inputs}, current_sources={self._core.n_current_sources}"
                + (f", transformers={self.n_transformers}" if self.n_transformers else "")
                + (f", gyrators={self.n_gyrators}" if self.n_gyrators else "") + ")")


class Solution:
    """An operating point (or a batch of them) of a :class:`Network`.

    For a single solve (no inputs, or a 1-d input row) arrays drop the batch axis.
    """

    def __init__(self, net: Network, raw: dict, single: bool) -> None:
        self._net = net
        self._raw = raw
        self._single = single
        self._currents: np.ndarray | None = None

    def _out(self, a: np.ndarray) -> np.ndarray:
        return a[0] if self._single else a

    @property
    def batch(self) -> int:
        return self._raw["voltages"].shape[0]

    @property
    def voltages(self) -> np.ndarray:
        """Node voltages in node order (``net.node_names``); (batch, n_nodes) if batched."""
        return self._out(self._raw["voltages"])

    def voltage(self, node: Node) -> Any:
        """Voltage of one node (a float, or an array over the batch)."""
        return self._out(self._raw["voltages"][:, self._net.node(node)])

    @property
    def currents(self) -> np.ndarray:
        """Resistor currents (a → b), aligned with ``net.resistor_names``."""
        if self._currents is None:
            self._currents = self._net._core.resistor_currents(self._raw["voltages"])
        return self._out(self._currents)

    @property
    def diode_currents(self) -> np.ndarray:
        """Diode currents (anode → cathode), aligned with ``net.diode_names``."""
        return self._out(self._raw["diode_currents"])

    @property
    def source_currents(self) -> np.ndarray:
        """Voltage-source currents in SPICE's convention (into the + terminal)."""
        return self._out(self._raw["source_currents"])

    @property
    def transformer_currents(self) -> np.ndarray:
        """Current i1 into the + terminal p1 of each transformer's port 1
        (``i2 = -i1 / ratio``), aligned with ``net.transformer_names``;
        shape (..., n_transformers)."""
        return self._out(self._raw["transformer_currents"])

    def current(self, name: str | int) -> Any:
        """Current of an element given by name: resistor, diode, voltage source,
        current source or transformer (its port-1 current i1 into p1).

        An integer is a resistor index.
        """
        net = self._net
        if not isinstance(name, str):
            return self._out(self._all_currents()[:, net._resistors.lookup(name)])
        for table, get in ((net._resistors, lambda: self._all_currents()),
                           (net._diodes, lambda: self._raw["diode_currents"]),
                           (net._vsources, lambda: self._raw["source_currents"])):
            k = table.index(name)
            if k is not None:
                return self._out(get()[:, k])
        k = net._isources.index(name)
        if k is not None:
            return float(net.current_source_values[k])
        k = net._transformers.index(name)
        if k is not None:  # i1, into the + terminal of port 1
            return self._out(self._raw["transformer_currents"][:, k])
        raise InvalidNetworkError(f"unknown element {name!r}")

    def _all_currents(self) -> np.ndarray:
        self.currents  # noqa: B018 - computes the cache
        assert self._currents is not None
        return self._currents

    @property
    def kcl_residual(self) -> Any:
        """Largest KCL imbalance over the free nodes (A), per sample."""
        return self._out(self._raw["kcl_residual"])

    @property
    def iterations(self) -> Any:
        """Newton iterations per sample."""
        return self._out(self._raw["iterations"])

    @property
    def factorizations(self) -> Any:
        """Numeric factorizations per sample (a linear batch shares one)."""
        return self._out(self._raw["factorizations"])

    @property
    def low_rank_solves(self) -> Any:
        """Newton steps per sample solved by a low-rank correction of an earlier
        factor (a few diodes changed since it) instead of a refactorization."""
        return self._out(self._raw["low_rank_solves"])

    def __repr__(self) -> str:
        return f"Solution(batch={self.batch}, nodes={self._net.n_nodes})"
