"""Typed errors: each one raised, with its attributes, and nothing lost afterwards.

Every error class of the contract (``OhmflowError`` and its subclasses
``FloatingNodeError``, ``InfeasibleError``, ``ConvergenceError``,
``SpiceParseError``, ``InvalidNetworkError`` -- also a ``ValueError``) is
raised by at least one test.  After each error the network object must be
exactly as before (a failed add adds nothing) and still solve correctly,
checked against a hand formula.
"""

from __future__ import annotations

import math

import numpy as np
import ohmflow as of
import pytest

VT = 1.38064852e-23 * 300.15 / 1.6021766208e-19  # ngspice's k T / q at 27 °C


def divider():
    """1 V - 1 kOhm - b - 1 kOhm - ground: v(b) = 0.5 V, 0.5 mA."""
    net = of.Network()
    a, b = net.add_node("a"), net.add_node("b")
    net.add_voltage_source(a, 1.0, name="V1")
    net.add_resistor(a, b, 1e-3, name="R1")
    net.add_resistor(b, of.GROUND, 1e-3, name="R2")
    return net


def snapshot(net):
    return (
        net.n_nodes, net.node_names, net.n_resistors, net.resistor_names,
        net.conductances.tolist(), [tuple(x.tolist()) for x in net.resistor_nodes],
        net.n_diodes, net.diode_names, net.diode_models,
        net.voltage_source_names, net.voltage_source_nodes.tolist(),
        [None if math.isnan(x) else x for x in net.voltage_source_values.tolist()],
        net.n_inputs, net.current_source_names, net.current_source_values.tolist(),
        repr(net),
    )


def assert_divider_still_works(net):
    sol = net.solve()
    assert sol.voltage("b") == pytest.approx(0.5, rel=1e-14, abs=0.0)
    assert sol.current("R1") == pytest.approx(0.5e-3, rel=1e-13, abs=0.0)
    assert sol.current("V1") == pytest.approx(-0.5e-3, rel=1e-13, abs=0.0)


def test_error_hierarchy():
    for cls in (of.FloatingNodeError, of.InfeasibleError, of.ConvergenceError,
                of.SpiceParseError, of.InvalidNetworkError):
        assert issubclass(cls, of.OhmflowError)
    assert issubclass(of.InvalidNetworkError, ValueError)
    assert issubclass(of.OhmflowError, Exception)


# --------------------------------------------------------------------------
# InvalidNetworkError: construction input, and nothing half-added
# --------------------------------------------------------------------------

BAD_CALLS = {
    "zero conductance": lambda n: n.add_resistor("a", "b", 0.0),
    "negative conductance": lambda n: n.add_resistor("a", "b", -1e-3),
    "nan conductance": lambda n: n.add_resistor("a", "b", float("nan")),
    "inf conductance": lambda n: n.add_resistor("a", "b", float("inf")),
    "zero resistance": lambda n: n.add_resistor("a", "b", resistance=0.0),
    "nan resistance": lambda n: n.add_resistor("a", "b", resistance=float("nan")),
    "both conductance and resistance": lambda n: n.add_resistor("a", "b", 1.0, resistance=1.0),
    "non-numeric conductance": lambda n: n.add_resistor("a", "b", "1k"),
    "one bad conductance in a vector": lambda n: n.add_resistors(
        np.array([1, 2, 1]), np.array([2, 0, 0]), np.array([1e-3, 1e-3, -1.0])),
    "nan in a vector": lambda n: n.add_resistors(
        np.array([1, 2]), np.array([2, 0]), np.array([1e-3, np.nan])),
    "length mismatch": lambda n: n.add_resistors(np.array([1, 2]), np.array([2]), [1.0, 1.0]),
    "unknown node index": lambda n: n.add_resistor(1, 7, 1e-3),
    "negative node index": lambda n: n.add_resistor(-1, 1, 1e-3),
    "huge node index": lambda n: n.add_resistors(np.array([2**62]), np.array([1]), [1e-3]),
    "unknown node name": lambda n: n.add_resistor("a", "nowhere", 1e-3),
    "unknown node in a vector": lambda n: n.add_resistors(np.array([1, 2]), np.array([2, 3]),
                                                          [1e-3, 1e-3]),
    "resistor self-loop": lambda n: n.add_resistor("a", "a", 1e-3),
    "self-loop in a vector": lambda n: n.add_resistors(np.array([1, 2]), np.array([2, 2]),
                                                       [1e-3, 1e-3]),
    "diode self-loop": lambda n: n.add_diode("b", "b"),
    "current-source self-loop": lambda n: n.add_current_source("b", "b", 1e-3),
    "nan voltage source": lambda n: n.add_voltage_source("b", float("nan")),
    "inf voltage source": lambda n: n.add_voltage_source("b", float("inf")),
    "nan current source": lambda n: n.add_current_source("b", 0, float("nan")),
    "clamping a clamped node": lambda n: n.add_voltage_source("a", 2.0),
    "clamping ground": lambda n: n.add_voltage_source(0, 2.0),
    "input on ground": lambda n: n.add_input(0),
    "unknown diode model": lambda n: n.add_diode("b", 0, model="1N4148"),
    "one bad model in a list": lambda n: n.add_diodes(
        np.array([1, 2]), np.array([2, 0]), [of.IdealDiode(), object()]),
    "diode on unknown node": lambda n: n.add_diodes(np.array([2]), np.array([9]),
                                                    of.IdealDiode()),
    "duplicate node name": lambda n: n.add_node("a"),
    "duplicate node names in one call": lambda n: n.add_nodes(2, names=["x", "x"]),
    "reserved node name": lambda n: n.add_nodes(2, names=["y", "gnd"]),
    "names/count mismatch": lambda n: n.add_nodes(2, names=["z"]),
    "negative node count": lambda n: n.add_nodes(-1),
    "duplicate resistor name": lambda n: n.add_resistor("a", "b", 1e-3, name="R1"),
    "duplicate names in one resistor call": lambda n: n.add_resistors(
        np.array([1, 2]), np.array([2, 0]), [1e-3, 1e-3], names=["Rx", "Rx"]),
    "another element's default name": lambda n: n.add_diode("b", 0, name="D0"),
    "duplicate source name": lambda n: n.add_voltage_source("b", 1.0, name="V1"),
    "negative conductances set": lambda n: setattr(n, "conductances", [1e-3, -1e-3]),
    "nan conductances set": lambda n: setattr(n, "conductances", [1e-3, np.nan]),
    "conductances of wrong length": lambda n: setattr(n, "conductances", [1e-3]),
    "nan source value set": lambda n: n.set_voltage_source("V1", float("nan")),
    "unknown source set": lambda n: n.set_voltage_source("V9", 1.0),
    "current-source values of wrong length": lambda n: setattr(
        n, "current_source_values", [1.0]),
    "unknown diode in set_diode_model": lambda n: n.set_diode_model(3, of.IdealDiode()),
    "not a model in set_diode_model": lambda n: n.set_diode_model(0, "ideal"),
    "inputs on a network without inputs": lambda n: n.solve(inputs=np.ones((2, 1))),
    "unknown method": lambda n: n.solve(method="newton"),
    "zero threads": lambda n: n.solve(threads=0),
    "negative max_iter": lambda n: n.solve(max_iter=-1),
    "nan rtol": lambda n: n.solve(rtol=float("nan")),
    "negative rtol": lambda n: n.solve(rtol=-1e-12),
    "nan vtol": lambda n: n.solve(vtol=float("nan")),
    "unknown node in a solution": lambda n: n.solve().voltage("nowhere"),
    "unknown element in a solution": lambda n: n.solve().current("R9"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_invalid_input_raises_and_loses_nothing(case):
    net = divider()
    net.add_diode("b", 0, model=of.IdealDiode(v_on=5.0))  # never conducts here
    before = snapshot(net)
    with pytest.raises(of.InvalidNetworkError) as info:
        BAD_CALLS[case](net)
    assert isinstance(info.value, ValueError) and isinstance(info.value, of.OhmflowError)
    assert str(info.value)  # a message, not an empty error
    assert snapshot(net) == before
    assert_divider_still_works(net)
    # and the network can still grow normally
    c = net.add_node("c")
    net.add_resistor("b", c, 1e-3)
    net.add_resistor(c, 0, 1e-3)
    # b: 1 V through 1 kOhm, loaded by 1 kOhm || 2 kOhm = 2/3 kOhm -> 0.4 V
    assert net.solve().voltage("b") == pytest.approx(0.4, rel=1e-14, abs=0.0)


def test_failed_add_nodes_does_not_reserve_names():
    """A rejected add_nodes leaves no trace: the names it carried are still free."""
    net = divider()
    with pytest.raises(of.InvalidNetworkError):
        net.add_nodes(2, names=["x", "x"])
    assert net.n_nodes == 3
    with pytest.raises(of.InvalidNetworkError):
        net.node("x")  # x does not exist
    x = net.add_node("x")  # and its name is free
    assert x == 3 and net.node("x") == 3


def test_wrong_input_shapes():
    net = divider()
    net.add_input("b")  # b is now clamped per sample
    before = snapshot(net)
    for bad in (None, np.zeros((3, 2)), np.zeros((3, 1, 1)), np.zeros(2),
                np.array([[np.nan]]), np.array([[np.inf]]), [["x"]]):
        with pytest.raises(of.InvalidNetworkError):
            net.solve() if bad is None else net.solve(inputs=bad)
        assert snapshot(net) == before
    sol = net.solve(inputs=np.array([[0.25], [0.75]]))
    # R1 carries (1 - x) / 1 kOhm, the source -(1 - x) mA
    assert sol.voltage("b") == pytest.approx([0.25, 0.75], rel=1e-15, abs=0.0)
    assert sol.current("R1") == pytest.approx([0.75e-3, 0.25e-3], rel=1e-13, abs=0.0)


# --------------------------------------------------------------------------
# FloatingNodeError
# --------------------------------------------------------------------------


def test_floating_nodes_are_named_exactly():
    net = divider()  # nodes 1 (a, clamped), 2 (b)
    c, d, e, f, g, h = net.add_nodes(6)  # 3..8
    net.add_diode("b", c, model=of.IdealDiode())  # c: only an ideal diode to b
    net.add_resistor(c, d, 1e-3)  # d: island {c, d}
    net.add_current_source(e, 0, 1e-3)  # e: only a current source
    net.add_diode(f, 0, model=of.ReluDiode(g_on=1e-3))  # f: only a ReLU diode
    net.add_diode(g, "a", model=of.ShockleyDiode())  # g: a junction (GMIN) to a: fine
    net.add_resistor(h, "b", 1e-3)  # h: resistor to b: fine
    before = snapshot(net)
    with pytest.raises(of.FloatingNodeError) as info:
        net.solve()
    assert isinstance(info.value, of.OhmflowError)
    assert sorted(info.value.nodes) == [int(c), int(d), int(e), int(f)]
    assert snapshot(net) == before
    # anchoring the islands fixes it
    for node in (c, e, f):
        net.add_resistor(node, 0, 1e-3)
    sol = net.solve()
    assert sol.voltages[e] == pytest.approx(-1.0, rel=1e-12, abs=0.0)  # 1 mA drawn out of e
    assert sol.voltages[g] == pytest.approx(1.0, rel=0.0, abs=1e-12)  # no current: v(g) = v(a)


def test_floating_node_without_any_element():
    net = divider()
    lone = net.add_node("lone")
    with pytest.raises(of.FloatingNodeError) as info:
        net.solve()
    assert list(info.value.nodes) == [lone]
    net.add_resistor(lone, "a", 1e-3)
    sol = net.solve()
    assert sol.voltage("lone") == pytest.approx(1.0, rel=1e-15, abs=0.0)
    assert sol.voltage("b") == pytest.approx(0.5, rel=1e-14, abs=0.0)


# --------------------------------------------------------------------------
# InfeasibleError
# --------------------------------------------------------------------------


def test_infeasible_diode_between_clamped_nodes():
    net = of.Network()
    a, b = net.add_node("a"), net.add_node("b")
    net.add_voltage_source(a, 2.0, name="Va")
    net.add_voltage_source(b, 0.5, name="Vb")
    net.add_resistor(a, b, 1e-3)
    net.add_diode(b, a, model=of.IdealDiode(v_on=0.7))  # reverse: harmless
    net.add_diode(a, b, model=of.IdealDiode(v_on=0.7))  # forced to 1.5 V > 0.7 V
    with pytest.raises(of.InfeasibleError) as info:
        net.solve()
    assert isinstance(info.value, of.OhmflowError)
    assert list(info.value.diodes) == [1]
    # lowering the source below the threshold makes it feasible: diodes carry nothing
    net.set_voltage_source("Va", 1.1)
    sol = net.solve()
    assert np.all(sol.diode_currents == 0.0)
    # 0.6 mA flows a -> b: out of Va's + terminal, into Vb's (SPICE's sign)
    assert sol.current("Va") == pytest.approx(-0.6e-3, rel=1e-13, abs=0.0)
    assert sol.current("Vb") == pytest.approx(0.6e-3, rel=1e-13, abs=0.0)


def test_infeasible_chain_through_free_nodes():
    """2 V source -> ideal diode (0.7) -> m1 -> ideal diode (0.6) -> m2 -> ideal diode
    (0.5) -> ground: the chain can hold 1.8 V only."""
    net = of.Network()
    a, m1, m2, x = net.add_nodes(4)
    net.add_voltage_source(a, 2.0)
    for node in (a, m1, m2, x):
        net.add_resistor(node, 0, 1e-3)
    net.add_diode(x, a, model=of.IdealDiode(v_on=0.1))  # not on the chain
    net.add_diode(a, m1, model=of.IdealDiode(v_on=0.7))
    net.add_diode(m1, m2, model=of.IdealDiode(v_on=0.6))
    net.add_diode(m2, 0, model=of.IdealDiode(v_on=0.5))
    net.add_diode(m1, x, model=of.IdealDiode(v_on=3.0))  # not on the chain
    before = snapshot(net)
    with pytest.raises(of.InfeasibleError) as info:
        net.solve()
    assert sorted(info.value.diodes) == [1, 2, 3]
    assert snapshot(net) == before
    # at 1 V only the first diode conducts: m1 = 1 - 0.7 V, fed through it
    net.set_voltage_source(0, 1.0)
    sol = net.solve()
    assert sol.voltages[m1] == pytest.approx(0.3, rel=0.0, abs=1e-12)
    assert sol.voltages[[m2, x]] == pytest.approx([0.0, 0.0], rel=0.0, abs=1e-12)
    assert sol.diode_currents == pytest.approx([0.0, 0.3e-3, 0.0, 0.0, 0.0], rel=0.0,
                                               abs=1e-15)


def test_infeasible_in_one_sample_of_a_batch():
    net = of.Network()
    a, b = net.add_nodes(2)
    net.add_input(a)
    net.add_resistor(a, b, 1e-3)
    net.add_resistor(b, 0, 1e-3)
    net.add_diode(a, 0, model=of.IdealDiode(v_on=1.0))
    with pytest.raises(of.InfeasibleError):
        net.solve(inputs=np.array([[0.5], [1.5]]))
    sol = net.solve(inputs=np.array([[0.5], [-1.5]]))
    assert sol.voltages[:, b] == pytest.approx([0.25, -0.75], rel=1e-14, abs=0.0)


# --------------------------------------------------------------------------
# ConvergenceError
# --------------------------------------------------------------------------


def test_convergence_error_then_normal_solve():
    """V = 5 V - 1 kOhm - junction to ground: one Newton step cannot converge."""
    net = of.Network()
    a, b = net.add_nodes(2)
    net.add_voltage_source(a, 5.0)
    net.add_resistor(a, b, 1e-3)
    net.add_diode(b, 0, model=of.ShockleyDiode(i_s=1e-14))
    before = snapshot(net)
    with pytest.raises(of.ConvergenceError) as info:
        net.solve(max_iter=1)
    assert isinstance(info.value, of.OhmflowError)
    assert snapshot(net) == before
    vb = net.solve().voltages[b]
    # KCL at b, by hand: (5 - vb)/1k = i_s (exp(vb/V_T) - 1) + gmin vb
    i_r = (5.0 - vb) * 1e-3
    i_d = 1e-14 * math.expm1(vb / VT) + 1e-12 * vb
    assert i_d == pytest.approx(i_r, rel=1e-12, abs=0.0)
    assert 0.6 < vb < 0.8


# --------------------------------------------------------------------------
# SpiceParseError
# --------------------------------------------------------------------------

NETLIST = """multi-line netlist
* a comment
V1 in 0 DC 5
R1 in mid
+ 1k ; the value on a continuation line
R2 mid 0 {bad}
D1 mid 0 dmod
.model dmod D(IS=1e-14)
.op
.end
"""


@pytest.mark.parametrize(
    "bad, line",
    [("1x2", 6), ("", 6), ("-1k", 6)],
)
def test_spice_parse_error_names_the_line(bad, line):
    text = NETLIST.format(bad=bad)
    with pytest.raises(of.SpiceParseError) as info:
        of.read_spice(text)
    assert isinstance(info.value, of.OhmflowError)
    assert info.value.line == line
    assert info.value.text.lower().startswith("r2")
    assert f"line {line}" in str(info.value)
    # the corrected netlist reads and solves: 5 V - 1k - mid - (1k || junction)
    net = of.read_spice(NETLIST.format(bad="1k"))
    vm = net.solve().voltage("mid")
    i_d = 1e-14 * math.expm1(vm / VT) + 1e-12 * vm
    assert (5.0 - vm) / 1e3 == pytest.approx(vm / 1e3 + i_d, rel=1e-12, abs=0.0)


@pytest.mark.parametrize(
    "card, line",
    [
        ("Q1 mid 0 in qmod", 5),  # bipolar transistor
        ("L1 mid 0 1u", 5),  # inductor: a DC short
        ("E1 mid 0 in 0 2", 5),  # controlled source
        ("X1 mid 0 sub", 5),  # subcircuit instance
        (".tran 1n 1u", 5),  # analysis other than .op
        ("D2 mid 0 nomodel", 5),  # undefined model
        ("V2 mid in 1", 5),  # floating voltage source
    ],
)
def test_unsupported_elements(card, line):
    text = f"unsupported\n* comment\nV1 in 0 5\nR1 in mid 1k\n{card}\nR2 mid 0 1k\n.op\n.end\n"
    with pytest.raises(of.SpiceParseError) as info:
        of.read_spice(text)
    assert info.value.line == line
    assert info.value.text.split()[0].lower() == card.split()[0].lower()


@pytest.mark.parametrize(
    "content",
    [b"\x7fELF\x02\x01\x01\x00\x00\x00", bytes(range(256)), b"title\nR1 a 0 1k\xff\xfe\n"],
)
def test_binary_file_is_a_parse_error(tmp_path, content):
    path = tmp_path / "netlist.cir"
    path.write_bytes(content)
    for arg in (path, str(path)):
        with pytest.raises(of.SpiceParseError) as info:
            of.read_spice(arg)
        # the documented attributes exist (no line applies: 0 or None)
        assert getattr(info.value, "line", "missing") in (0, None)
        assert hasattr(info.value, "text")


def test_missing_file_is_a_parse_error(tmp_path):
    with pytest.raises(of.SpiceParseError):
        of.read_spice(tmp_path / "nope.cir")
    with pytest.raises(of.SpiceParseError):
        of.read_spice(str(tmp_path / "nope.cir"))
