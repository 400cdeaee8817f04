"""SPICE netlist reading (and writing), feature by feature, against ngspice or a
hand formula.

Each netlist is read with ``of.read_spice`` and solved; the same text (with
tight tolerances) is run by ngspice.  Agreement is asserted to 1e-9 relative
(ngspice's reltol here); measured: ~1e-15 on these small circuits.
"""

from __future__ import annotations

import math
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import ohmflow as of  # noqa: E402
from reference.ngspice import run_ngspice, thermal_voltage  # noqa: E402

OPT = ".options reltol=1e-9 abstol=1e-18 vntol=1e-12\n"
REL = 1e-9


def agree_with_ngspice(text, ngspice_text=None, *, expect_nodes=None):
    """Reads ``text`` with ohmflow, runs ``ngspice_text`` (default: the same text),
    asserts every node voltage and source current agree; returns (net, sol, ng)."""
    net = of.read_spice(text)
    sol = net.solve()
    ng = run_ngspice(ngspice_text or text)
    assert ng.voltages, "ngspice returned no node"
    if expect_nodes is not None:
        assert set(ng.voltages) == set(expect_nodes)
    for node, v in ng.voltages.items():
        assert sol.voltage(node) == pytest.approx(v, rel=REL, abs=1e-15), node
    for src, i in ng.currents.items():
        assert sol.current(src) == pytest.approx(i, rel=REL, abs=1e-18), src
    return net, sol, ng


# --------------------------------------------------------------------------
# values: suffixes and units
# --------------------------------------------------------------------------

SUFFIXES = [
    # token, value in ohms (hand), plain reference resistor of the same magnitude
    ("1.5f", 1.5e-15), ("2p", 2e-12), ("3.3n", 3.3e-9), ("4.7u", 4.7e-6),
    ("10m", 1e-2), ("10M", 1e-2),  # SPICE: M is milli, case-insensitive
    ("2.2k", 2.2e3), ("2.2K", 2.2e3), ("1meg", 1e6), ("1MEG", 1e6), ("1.2g", 1.2e9),
    ("0.5t", 0.5e12), ("10mil", 10 * 25.4e-6), ("3kohm", 3e3), ("47Ohm", 47.0),
    ("1e3", 1e3), ("2.5E-3", 2.5e-3),
]


def test_resistance_suffixes_hand_values():
    lines = ["suffixes", "V1 in 0 1"]
    expected = []
    for k, (tok, val) in enumerate(SUFFIXES):
        lines.append(f"R{k} in n{k} {tok}")
        lines.append(f"Rref{k} n{k} 0 {val!r}")
        expected += [val, val]
    net = of.read_spice("\n".join(lines + [".op", ".end", ""]))
    assert net.resistances == pytest.approx(expected, rel=1e-15, abs=0.0)


def test_resistance_suffixes_against_ngspice():
    """Each suffixed resistor forms a divider with a plain resistor of twice its
    value: v(n_k) = 2/3 V exactly when the suffix is read right."""
    lines = ["suffixes", "V1 in 0 1"]
    nodes = []
    for k, (tok, val) in enumerate(SUFFIXES):
        lines.append(f"R{k} in n{k} {tok}")
        lines.append(f"Rref{k} n{k} 0 {2 * val!r}")
        nodes.append(f"n{k}")
    text = "\n".join(lines) + "\n" + OPT + ".op\n.end\n"
    _, sol, _ = agree_with_ngspice(text, expect_nodes=nodes + ["in"])
    for node in nodes:
        assert sol.voltage(node) == pytest.approx(2 / 3, rel=1e-12, abs=0.0)


def test_source_values_with_units_against_ngspice():
    text = (
        "units\n"
        "V1 in 0 DC 5V\n"
        "V2 neg 0 -2.5v\n"
        "R1 in a 1kOhm\n"
        "R2 a 0 3.3K\n"
        "I1 a 0 100uA\n"  # draws 100 uA out of a
        "I2 0 b 2.5mA\n"  # pushes 2.5 mA into b
        "R3 b neg 1k\n"
        "R4 b 0 4k\n"
        "I3 0 c 10nA\n"
        "R5 c 0 1meg\n"
        + OPT + ".op\n.end\n"
    )
    net, sol, _ = agree_with_ngspice(text)
    assert net.current_source_values == pytest.approx([100e-6, 2.5e-3, 10e-9], rel=1e-15, abs=0)
    # hand: node c is 10 nA into 1 MOhm
    assert sol.voltage("c") == pytest.approx(1e-2, rel=1e-12, abs=0.0)
    # node a: (5 - a)/1k = a/3.3k + 100 uA
    va = (5 / 1e3 - 100e-6) / (1 / 1e3 + 1 / 3.3e3)
    assert sol.voltage("a") == pytest.approx(va, rel=1e-12, abs=0.0)


# --------------------------------------------------------------------------
# syntax: comments, continuation, case, ground, .control, .end, DC/AC
# --------------------------------------------------------------------------


def test_comments_against_ngspice():
    text = (
        "comments\n"
        "* a full-line comment R9 in 0 1\n"
        "V1 in 0 DC 5 ; inline semicolon comment\n"
        "R1 in mid 1k $ a dollar comment 1meg\n"
        "\n"
        "R2 mid 0 3k // a slash comment\n"
        "*R3 mid 0 1\n"
        "  * an indented comment\n"
        + OPT + ".op\n.end\n"
    )
    net, sol, _ = agree_with_ngspice(text)
    assert net.n_resistors == 2
    assert sol.voltage("mid") == pytest.approx(3.75, rel=1e-14, abs=0.0)


def test_continuation_lines_against_ngspice():
    text = (
        "continuation\n"
        "V1 in 0\n"
        "+ DC 5\n"
        "R1 in\n"
        "* a comment between continuation lines\n"
        "+ mid\n"
        "\n"
        "+ 2k\n"
        "R2 mid 0 2k\n"
        "D1 mid 0 dm\n"
        ".model dm D(IS=1e-14\n"
        "+ N=1.2)\n"
        + OPT + ".op\n.end\n"
    )
    net, sol, _ = agree_with_ngspice(text)
    assert net.resistances == pytest.approx([2e3, 2e3], rel=1e-15, abs=0.0)
    assert net.diode_models[0].n == 1.2 and net.diode_models[0].i_s == 1e-14


def test_case_insensitivity_and_ground_names_against_ngspice():
    text = (
        "CASE and ground\n"
        "V1 IN 0 5\n"
        "R1 In Out 1K\n"
        "r2 OUT gnd 1k\n"
        "R3 out GND 3K\n"
        "R4 oUt Gnd 6k\n"
        "D1 Out 0 DMOD\n"
        ".MODEL dmod d(is=1E-14 n=1.3)\n"
        + OPT.upper() + ".OP\n.END\n"
    )
    net, sol, _ = agree_with_ngspice(text, expect_nodes=["in", "out"])
    assert sorted(net.node_names) == ["0", "in", "out"]  # stored lowercase, one ground
    assert net.resistor_names == ["r1", "r2", "r3", "r4"]
    a, b = net.resistor_nodes
    assert b.tolist()[1:] == [0, 0, 0]  # gnd, GND and Gnd are ground


def test_control_block_is_skipped():
    circuit = "control\nV1 in 0 5\nR1 in mid 1k\nR2 mid 0 4k\n"
    block = ".control\nrun\nprint all\nR9 garbage line here\nalter R1 10\n.endc\n"
    net = of.read_spice(circuit + block + OPT + ".op\n.end\n")
    assert net.n_resistors == 2
    sol = net.solve()
    assert sol.voltage("mid") == pytest.approx(4.0, rel=1e-15, abs=0.0)
    # ngspice refuses to batch-run .control here: compare with the bare circuit
    agree_with_ngspice(circuit + block + OPT + ".op\n.end\n", circuit + OPT + ".op\n.end\n")


def test_lines_after_end_are_ignored():
    net = of.read_spice("end\nV1 in 0 5\nR1 in mid 1k\nR2 mid 0 4k\n.op\n.end\nR3 mid 0 1\n"
                        "this is not spice\n")
    assert net.n_resistors == 2
    assert net.solve().voltage("mid") == pytest.approx(4.0, rel=1e-15, abs=0.0)


def test_title_line_is_never_an_element():
    text = "R1 in 0 1k\nV1 in 0 5\nR2 in mid 1k\nR3 mid 0 1k\n" + OPT + ".op\n.end\n"
    net, sol, _ = agree_with_ngspice(text)
    assert net.resistor_names == ["r2", "r3"]
    assert sol.voltage("mid") == pytest.approx(2.5, rel=1e-15, abs=0.0)


def test_dc_keyword_optional_and_ac_part_ignored():
    text = ("dc/ac\nV1 in 0 DC 5 AC 1\nV2 b 0 3\nR1 in b 1k\nR2 in 0 1k\nI1 b 0 DC 1m AC 2\n"
            + OPT + ".op\n.end\n")
    net, sol, _ = agree_with_ngspice(text)
    assert net.voltage_source_values.tolist() == [5.0, 3.0]
    # R1 brings (5 - 3)/1k = 2 mA into b, I1 draws 1 mA out of b: the other 1 mA
    # flows into V2's + terminal
    assert sol.current("v2") == pytest.approx(1e-3, rel=1e-13, abs=0.0)


def test_source_with_plus_terminal_on_ground_against_ngspice():
    """V1 0 a 5: node a at -5 V; i(v1) is the current into the + terminal (ground)."""
    text = "neg\nV1 0 a 5\nR1 a b 1k\nR2 b 0 1k\nI1 a b 1m\n" + OPT + ".op\n.end\n"
    _, sol, ng = agree_with_ngspice(text)
    assert sol.voltage("a") == -5.0
    # b: (a - b)/1k + 1 mA (into b) = b/1k -> b = (-5 + 1)/2 = -2 V
    assert sol.voltage("b") == pytest.approx(-2.0, rel=1e-14, abs=0.0)
    # R1 brings 3 mA into a ((b - a)/1k), I1 draws 1 mA out: 2 mA enter the
    # source's - terminal and leave at + (into ground), so i(v1) = -2 mA
    assert sol.current("v1") == pytest.approx(-2e-3, rel=1e-13, abs=0.0)
    assert ng.currents["v1"] == pytest.approx(-2e-3, rel=1e-9, abs=0.0)


# --------------------------------------------------------------------------
# diodes: models, RS, options, temperature
# --------------------------------------------------------------------------


def test_diode_series_resistance_against_ngspice():
    text = ("rs\nV1 in 0 5\nV2 0 m 2\nR1 in a 1k\nD1 a 0 dmod\nD2 a m dmod2\nR2 a m 2k\n"
            "I1 a m 0.5m\n.model dmod D(IS=1e-14 N=1.2 RS=10)\n.model dmod2 D(IS=3e-15 RS=50)\n"
            + OPT + ".op\n.end\n")
    net, sol, _ = agree_with_ngspice(text)
    # RS is a resistor to an internal node, as SPICE models it
    assert net.resistor("d1:rs") >= 0 and net.resistor("d2:rs") >= 0
    assert net.resistances[net.resistor("d1:rs")] == pytest.approx(10.0, rel=1e-15, abs=0)
    assert net.resistances[net.resistor("d2:rs")] == pytest.approx(50.0, rel=1e-15, abs=0)
    # hand: the junction of D1 sits at v(d1#internal) with the RS drop in front
    vi = sol.voltage("d1#internal")
    i_d1 = sol.current("d1")
    # (the RS drop is a difference of two O(1) V numbers: rounding eps * |v| / RS)
    assert (sol.voltage("a") - vi) / 10.0 == pytest.approx(
        i_d1, rel=1e-12, abs=4e-16 * abs(vi) / 10.0)
    vt = 1.2 * thermal_voltage()
    assert i_d1 == pytest.approx(1e-14 * math.expm1(vi / vt) + 1e-12 * vi, rel=1e-12, abs=0)
    # D2 (a -> m) is forward biased, 5 mA: the same with RS = 50 Ohm
    v2 = sol.voltage("d2#internal")
    i_d2 = sol.current("d2")
    assert i_d2 > 1e-3
    assert (sol.voltage("a") - v2) / 50.0 == pytest.approx(i_d2, rel=1e-12, abs=0.0)
    vj = v2 - sol.voltage("m")
    assert i_d2 == pytest.approx(3e-15 * math.expm1(vj / thermal_voltage()) + 1e-12 * vj,
                                 rel=1e-12, abs=0.0)
    # and the series resistance matters (sharpness): without it, v(a) moves
    no_rs = of.read_spice(text.replace(" RS=10", "").replace(" RS=50", "")).solve()
    assert abs(no_rs.voltage("a") - sol.voltage("a")) > 1e-3


@pytest.mark.parametrize(
    "options",
    [
        "",
        ".options gmin=1e-6\n",
        ".options temp=60 tnom=60\n",
        ".temp 60\n.options tnom=60\n",
        ".options temp=-20 tnom=-20 gmin=1e-10\n",
    ],
)
def test_diode_options_against_ngspice(options):
    text = ("diode options\nV1 in 0 5\nR1 in mid 1k\nD1 mid 0 dm\nR2 mid 0 1k\nD2 0 neg dm\n"
            "I1 neg 0 1u\nR3 neg 0 10meg\n.model dm D(IS=1e-14 N=1.1)\n"
            + OPT + options + ".op\n.end\n")
    agree_with_ngspice(text)


def test_temperature_without_tnom_is_rejected_not_ignored():
    """ngspice would rescale IS from tnom to temp; ohmflow says it cannot."""
    with pytest.raises(of.SpiceParseError):
        of.read_spice("t\nV1 in 0 5\nR1 in mid 1k\nD1 mid 0 dm\n.model dm D(IS=1e-14)\n"
                      ".options temp=60\n.op\n.end\n")


# --------------------------------------------------------------------------
# files and round trips
# --------------------------------------------------------------------------

DIVIDER = "divider\nV1 in 0 DC 5\nR1 in out 1k\nD1 out 0 dmod\n.model dmod D(IS=1e-14 N=1.5)\n" \
    + OPT + ".op\n.end\n"


def test_path_on_disk(tmp_path):
    path = tmp_path / "divider.cir"
    path.write_text(DIVIDER)
    ng = run_ngspice(DIVIDER)
    for arg in (path, str(path)):
        net = of.read_spice(arg)
        assert net.title == "divider"
        v = net.solve().voltage("out")
        assert v == pytest.approx(ng.voltages["out"], rel=REL, abs=0.0)


def test_to_spice_round_trip_keeps_names_and_operating_point():
    """to_spice of a netlist read from SPICE runs in ngspice with the same node
    names and operating point, and reads back to the same network."""
    text = ("round trip\nV1 in 0 5\nV2 0 m 2\nR1 in a 1k\nD1 a 0 dmod\nR2 a m 2k\n"
            "I1 a m 0.5m\n.model dmod D(IS=1e-14 N=1.2)\n" + OPT + ".op\n.end\n")
    net = of.read_spice(text)
    sol = net.solve()
    out = net.to_spice()
    ng = run_ngspice(out)
    assert set(ng.voltages) == {"in", "a", "m"}  # the user's node names
    for node, v in ng.voltages.items():
        assert sol.voltage(node) == pytest.approx(v, rel=REL, abs=1e-15)
    for src in ("v1", "v2"):
        assert sol.current(src) == pytest.approx(ng.currents[src], rel=REL, abs=0.0)
    back = of.read_spice(out)
    # SPICE has no node declarations: a reader numbers nodes in order of first
    # appearance, so the round trip keeps the names, not the indices.
    assert sorted(back.node_names) == sorted(net.node_names)
    assert back.resistor_names == net.resistor_names
    bsol = back.solve()
    for node in net.node_names:
        assert bsol.voltage(node) == pytest.approx(sol.voltage(node), rel=1e-14, abs=1e-15)


def test_ideal_diodes_cannot_be_written():
    net = of.Network()
    a = net.add_node("a")
    net.add_voltage_source(a, 0.6)
    net.add_diode(a, 0, model=of.IdealDiode(v_on=2.0))
    net.add_resistor(a, 0, 1e-3)
    with pytest.raises(of.InvalidNetworkError):
        net.to_spice()
    net.set_diode_model(0, of.ShockleyDiode(i_s=1e-14))
    ng = run_ngspice(net.to_spice())
    sol = net.solve()
    # a 0.6 V source: the current is the resistor's 0.6 mA plus the junction's
    i = 0.6e-3 + 1e-14 * math.expm1(0.6 / thermal_voltage()) + 1e-12 * 0.6
    assert sol.source_currents[0] == pytest.approx(-i, rel=1e-12, abs=0.0)
    name = net.voltage_source_names[0].lower()
    assert ng.currents[name] == pytest.approx(-i, rel=REL, abs=0.0)
    assert np.isfinite(sol.voltages).all()


def test_names_are_fetched_from_the_core_on_first_use():
    # The names of a netlist stay in the core until one is looked up; the tables then
    # hold exactly the netlist's names (lowercase), and an element can be found by name.
    text = "t\nV1 In 0 1\nR1 in Mid 1k\nR2 mid 0 2k\nD1 mid 0 dm\n.model dm D(rs=5)\n"
    net = of.read_spice(text)
    assert net._nodes._pending is not None  # nothing converted yet
    assert net.node_names == ["0", "in", "mid", "d1#internal"]
    assert net._nodes._pending is None
    assert net.resistor_names == ["r1", "r2", "d1:rs"]
    sol = net.solve()
    v_in, v_mid = sol.voltages[net.node("in")], sol.voltages[net.node("mid")]
    # KCL at mid, by the names just fetched: R1's current feeds R2 and the diode.
    assert (v_in - v_mid) / 1e3 == pytest.approx(v_mid / 2e3 + sol.diode_currents[0], rel=1e-9)
    names = of._core.read_spice(text)[1]["names"]
    assert names.count("diodes") == 1 and names.names("diodes") == ["d1"]
    with pytest.raises(ValueError, match="no names of kind"):
        names.names("capacitors")
