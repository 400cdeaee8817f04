"""SPICE netlists in and out.

Reading supports R, D (``.model NAME D(IS= N= RS=)``), V and I (DC) elements,
ideal transformers written as an E element in series with a 0 V sense source plus
an F element sensing it (``Ename p2 x p1 n1 a``, ``Vsense x n2 0``,
``Fname n1 p1 Vsense a``; the transformer is named after the E element without
its letter) and ideal gyrators written as two G elements each controlled by the
other's port (``Gname p1 n1 p2 n2 g``, ``Gname2 n2 p2 p1 n1 g``) or, in impedance
form, as two H elements each in series with a 0 V sense source and controlled by
the other port's (``Vs1 p1 x1 0``, ``Hname x1 n1 Vs2 -r``, ``Vs2 p2 x2 0``,
``Hname2 x2 n2 Vs1 r`` with r = 1/g; either sense source may sit on either side
of its H element and point either way, the signs of r following; the gyrator is
named after the first H element without its letter),
comments, ``+`` continuations, any case (names are stored lowercase, as SPICE
does), value suffixes f p n u m k meg g t mil with trailing units, ``0``/``gnd`` as
ground; ``.op``, ``.end``, ``.options`` (``gmin``, ``temp``, ``tnom``), ``.temp`` and
``.control`` blocks. Anything else raises :class:`SpiceParseError` with the line
number and text.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from ._core import InvalidNetworkError, SpiceParseError
from ._names import NameTable
from .diodes import IdealDiode, ReluDiode, ShockleyDiode
from .network import Network

__all__ = ["read_spice", "to_spice"]

ACCURATE_OPTIONS = ".options reltol=1e-9 abstol=1e-18 vntol=1e-12"


def _file_error(message: str, path: object) -> SpiceParseError:
    """A file-level SpiceParseError (line 0: no line of the file is at fault)."""
    err = SpiceParseError(message)
    err.line = 0
    err.text = str(path)
    return err


def _read_text(source: str | os.PathLike) -> str:
    if isinstance(source, os.PathLike) or ("\n" not in source and Path(source).is_file()):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise _file_error(f"{path}: cannot read ({e})", path) from None
        if b"\x00" in data:
            raise _file_error(f"{path}: not a SPICE netlist (binary data)", path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _file_error(f"{path}: not a text file ({e})", path) from None
    if isinstance(source, str) and "\n" not in source and not source.strip().startswith("*"):
        # A one-line string that is no file: most likely a mistyped path.
        if source.endswith((".cir", ".sp", ".spice", ".net", ".txt")):
            raise _file_error(f"{source}: no such file", source)
    return source


def read_spice(source: str | os.PathLike) -> Network:
    """Reads a SPICE netlist (text, or a path to a file) into a :class:`Network`.

    Element and node names are kept (lowercase). A diode's series resistance
    ``RS`` becomes a resistor ``<diode>:rs`` to an internal node
    ``<diode>#internal``, as SPICE models it. Voltage sources must have one terminal
    on ground.

    Raises
    ------
    SpiceParseError
        With ``line`` (1-based) and ``text`` attributes for the offending line.
    """
    text = _read_text(source)
    core, info = _core.read_spice(text)
    names = info["names"]
    net = Network.__new__(Network)
    net._core = core
    # The names stay in the core until one is looked up (unique and non-empty: the
    # reader checks them).
    net._nodes = NameTable("n", "node")
    net._resistors = NameTable("R", "resistor")
    net._diodes = NameTable("D", "diode")
    net._vsources = NameTable("V", "voltage source")
    net._isources = NameTable("I", "current source")
    net._transformers = NameTable("T", "transformer")
    net._gyrators = NameTable("GY", "gyrator")
    for table, kind in ((net._nodes, "nodes"), (net._resistors, "resistors"),
                        (net._diodes, "diodes"), (net._vsources, "voltage_sources"),
                        (net._isources, "current_sources"),
                        (net._transformers, "transformers"), (net._gyrators, "gyrators")):
        table.extend_lazy(names.count(kind), functools.partial(names.names, kind))
    net._vsign = list(info["voltage_source_signs"])
    net._inputs = []
    net.title = info["title"]
    return net


def _spice_name(letter: str, name: str) -> str:
    if any(c.isspace() for c in name) or not name:
        raise InvalidNetworkError(f"name {name!r} cannot be written to SPICE")
    return name if name[0].lower() == letter.lower() else f"{letter}{name}"


def to_spice(net: Network, *, inputs: Any = None, title: str = "ohmflow network",
             accurate: bool = True, gyrators: str = "vccs") -> str:
    """Writes ``net`` as a SPICE netlist that ngspice runs (``.op``).

    Shockley diodes become ``.model`` cards (one per distinct parameter set);
    ``gmin`` and the temperature, global in SPICE, must be the same for every diode
    and are written as ``.options gmin= temp= tnom=``. Ideal and ReLU diodes have no
    SPICE equivalent and raise :class:`InvalidNetworkError` (a documented choice:
    any SPICE stand-in would give a different operating point). Inputs need their
    values: pass one sample as ``inputs``. ``accurate`` adds tight tolerances
    (``reltol=1e-9 abstol=1e-18 vntol=1e-12``) so that ngspice's answer is exact to
    about 1e-9. A transformer ``T`` becomes ``ET`` (VCVS across port 2) in series
    with a 0 V source ``VT#sense`` through an internal node ``T#sense`` and ``FT``
    (CCCS on port 1) sensing it; a gyrator ``Y`` becomes two VCCS ``GY`` and
    ``GY#b`` (``gyrators="vccs"``, the default) or, with ``gyrators="ccvs"``, its
    impedance form: each port a CCVS in series with a 0 V sense source,
    ``VY#1 p1 Y#1 0``, ``HY Y#1 n1 VY#2 -1/g``, ``VY#2 p2 Y#2 0``,
    ``HY#b Y#2 n2 VY#1 1/g`` (v1 = −i2/g, v2 = i1/g; a gyrator with g = 0 has no
    impedance form and raises :class:`InvalidNetworkError`). :func:`read_spice`
    reads all these patterns back.
    """
    if gyrators not in ("vccs", "ccvs"):
        raise InvalidNetworkError(f"gyrators={gyrators!r}: expected 'vccs' or 'ccvs'")
    fmt = _core.format_spice_value
    nodes = net.node_names
    nodes[0] = "0"
    for n in nodes[1:]:
        if not n or any(c.isspace() for c in n) or n.lower() in ("0", "gnd"):
            raise InvalidNetworkError(f"node name {n!r} cannot be written to SPICE")
    lines = [f"* {title}"]
    a, b = net.resistor_nodes
    r = 1.0 / net.conductances
    for name, i, j, x in zip(net.resistor_names, a, b, r):
        lines.append(f"{_spice_name('R', name)} {nodes[i]} {nodes[j]} {fmt(float(x))}")
    models = net.diode_models
    cards: dict[tuple, str] = {}
    gmins, temps = set(), set()
    da, db = net.diode_nodes
    for name, i, j, m in zip(net.diode_names, da, db, models):
        if isinstance(m, (IdealDiode, ReluDiode)):
            raise InvalidNetworkError(
                f"diode {name!r} is {type(m).__name__}: SPICE has no ideal or ReLU diode; "
                "only Shockley diodes can be written")
        assert isinstance(m, ShockleyDiode)
        key = (m.i_s, m.n)
        if key not in cards:
            cards[key] = f"dmod{len(cards)}"
        gmins.add(m.gmin)
        temps.add(m.temperature)
        lines.append(f"{_spice_name('D', name)} {nodes[i]} {nodes[j]} {cards[key]}")
    for (i_s, n), card in cards.items():
        lines.append(f".model {card} D(IS={fmt(i_s)} N={fmt(n)})")
    vn = net.voltage_source_nodes
    vv = net.voltage_source_values.copy()
    _, _, kin = net._core.voltage_sources()
    if net.n_inputs:
        if inputs is None:
            raise InvalidNetworkError("the network has inputs: pass inputs= (one sample)")
        x = np.asarray(inputs, dtype=float).reshape(-1)
        if x.shape[0] != net.n_inputs:
            raise InvalidNetworkError(f"inputs: expected {net.n_inputs} values")
        vv[kin >= 0] = x[kin[kin >= 0]]
    for name, node, v, s in zip(net.voltage_source_names, vn, vv, net._vsign):
        if s > 0:
            lines.append(f"{_spice_name('V', name)} {nodes[node]} 0 DC {fmt(float(v))}")
        else:
            lines.append(f"{_spice_name('V', name)} 0 {nodes[node]} DC {fmt(float(-v))}")
    ia, ib, iv = net._core.current_sources()
    for name, i, j, v in zip(net.current_source_names, ia, ib, iv):
        lines.append(f"{_spice_name('I', name)} {nodes[i]} {nodes[j]} DC {fmt(float(v))}")
    used = {n.lower() for n in nodes}
    q = net.transformer_nodes
    for name, (p1, n1, p2, n2), a in zip(net.transformer_names, q, net.transformer_ratios):
        # v2 = a v1: E across port 2 in series with a 0 V source sensing i2 (into p2);
        # i1 = -a i2: F on port 1 driven by that current.
        _spice_name("E", name)
        x = f"{name}#sense"
        while x.lower() in used:
            x += "_"
        used.add(x.lower())
        sense = f"V{name}#sense"
        lines.append(f"E{name} {nodes[p2]} {x} {nodes[p1]} {nodes[n1]} {fmt(float(a))}")
        lines.append(f"{sense} {x} {nodes[n2]} DC 0")
        lines.append(f"F{name} {nodes[n1]} {nodes[p1]} {sense} {fmt(float(a))}")
    q = net.gyrator_nodes
    for name, (p1, n1, p2, n2), g in zip(net.gyrator_names, q, net.gyrator_conductances):
        # i1 = g v2 into p1; i2 = -g v1 into p2 (= g v1 into n2).
        _spice_name("G", name)
        if gyrators == "vccs":
            lines.append(f"G{name} {nodes[p1]} {nodes[n1]} {nodes[p2]} {nodes[n2]} "
                         f"{fmt(float(g))}")
            lines.append(f"G{name}#b {nodes[n2]} {nodes[p2]} {nodes[p1]} {nodes[n1]} "
                         f"{fmt(float(g))}")
            continue
        # Impedance form: V{name}#k senses i_k (into p_k, through the port to n_k);
        # H{name} forces v1 = (-1/g) i2, H{name}#b forces v2 = (1/g) i1.
        if g == 0.0:
            raise InvalidNetworkError(f"gyrator {name!r} has g = 0: no impedance (H) form")
        xs = []
        for k in (1, 2):
            x = f"{name}#{k}"
            while x.lower() in used:
                x += "_"
            used.add(x.lower())
            xs.append(x)
        r = float(1.0 / g)
        lines.append(f"V{name}#1 {nodes[p1]} {xs[0]} DC 0")
        lines.append(f"H{name} {xs[0]} {nodes[n1]} V{name}#2 {fmt(-r)}")
        lines.append(f"V{name}#2 {nodes[p2]} {xs[1]} DC 0")
        lines.append(f"H{name}#b {xs[1]} {nodes[n2]} V{name}#1 {fmt(r)}")
    opts = []
    if len(gmins) > 1 or len(temps) > 1:
        raise InvalidNetworkError("SPICE has one gmin and one temperature per netlist; "
                                  "the diodes differ")
    if gmins:
        opts.append(f"gmin={fmt(gmins.pop())}")
    t = temps.pop() - 273.15 if temps else 27.0
    opts.append(f"temp={fmt(t)} tnom={fmt(t)}")
    if accurate:
        lines.append(ACCURATE_OPTIONS)
    lines.append(".options " + " ".join(opts))
    lines += [".op", ".end", ""]
    return "\n".join(lines)
