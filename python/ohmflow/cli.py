"""Command line: ``ohmflow demo`` and ``ohmflow solve NETLIST``."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    import ohmflow as of

    print("ohmflow demo: DC operating points of resistor-diode networks\n")
    # 1. A half-wave rectifier stage with a Shockley diode, batched over inputs.
    net = of.Network()
    vin, out = net.add_node("in"), net.add_node("out")
    net.add_input(vin)
    net.add_diode(vin, out, of.ShockleyDiode(i_s=1e-14, n=1.0), name="D1")
    net.add_resistor(out, of.GROUND, resistance=1e3, name="Rload")
    x = np.linspace(-2.0, 2.0, 9).reshape(-1, 1)
    sol = net.solve(x)
    print("rectifier (1N-like diode into 1 kΩ):")
    for xi, vo, i in zip(x[:, 0], sol.voltage("out"), sol.current("D1")):
        print(f"  v_in = {xi:+.2f} V   v_out = {vo:+.6f} V   i_D = {i:+.6e} A")
    print(f"  largest KCL residual: {np.max(sol.kcl_residual):.2e} A\n")

    # 2. A random 2D lattice with 10% of its edges given ideal diodes.
    n = args.size
    rng = np.random.default_rng(args.seed)
    lat = of.Network()
    idx = lat.add_nodes(n * n).reshape(n, n)
    src = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    dst = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    is_diode = rng.random(src.size) < 0.1
    lat.add_resistors(src, dst, rng.uniform(0.5e-3, 2e-3, src.size))
    lat.add_diodes(src[is_diode], dst[is_diode], of.IdealDiode(v_on=0.0))
    lat.add_voltage_source(int(idx[0, 0]), 1.0)
    lat.add_voltage_source(int(idx[-1, -1]), -1.0)
    t = time.perf_counter()
    s = lat.solve()
    dt = time.perf_counter() - t
    on = int(np.sum(s.diode_currents > 0))
    print(f"{n}x{n} lattice: {lat.n_resistors} resistors, {lat.n_diodes} ideal diodes")
    print(f"  solved in {dt:.3f} s ({s.iterations} Newton iterations, "
          f"{s.factorizations} factorizations)")
    print(f"  {on} diodes conduct; KCL residual {s.kcl_residual:.2e} A; "
          f"voltages in [{s.voltages.min():+.4f}, {s.voltages.max():+.4f}] V")
    return 0


def _solve(args: argparse.Namespace) -> int:
    import ohmflow as of

    net = of.read_spice(args.netlist)
    sol = net.solve(threads=args.threads)
    print(f"* operating point of {args.netlist}")
    for name, v in zip(net.node_names[1:], sol.voltages[1:]):
        print(f"v({name}) = {v:.15g}")
    for name, i in zip(net.voltage_source_names, np.atleast_1d(sol.source_currents)):
        print(f"i({name}) = {i:.15g}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ohmflow", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    d = sub.add_parser("demo", help="build and solve example networks")
    d.add_argument("--size", type=int, default=300, help="lattice side (default 300)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_demo)
    s = sub.add_parser("solve", help="print the operating point of a SPICE netlist")
    s.add_argument("netlist")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=_solve)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["demo", *(argv or [])])
    from ._core import OhmflowError

    try:
        return args.func(args)
    except OhmflowError as e:
        print(f"ohmflow: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
