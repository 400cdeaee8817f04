"""Cost of one exact gradient and one EP estimate relative to one solve.

Run: python benches/gradient_cost.py [--side 708]
A lattice of side² nodes (about 2 side² edges), one input, a squared-error loss on
a few output nodes. The exact gradient reuses the factor cached by the solve (one
extra pair of triangular solves); EP needs a second (nudged) solve, which for a
linear network reuses the same factor too.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _lattice import lattice


def best(f, repeat=3):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=708)
    args = ap.parse_args()
    n = args.side
    net, idx, src, dst, g = lattice(n)
    net.add_input(int(idx[0, 0]))
    net.add_voltage_source(int(idx[-1, -1]), 0.0)
    outs = [int(idx[n // 2, n // 2]), int(idx[n // 3, 2 * n // 3])]
    x = np.array([[1.0]])
    t = np.array([[0.3, 0.2]])

    def fresh():
        net.conductances = g  # invalidates the cached factor: a full numeric solve
    def solve():
        fresh()
        net.solve(x)
    def exact():
        fresh()
        net.gradient(t, "exact", outputs=outs, inputs=x)
    def ep():
        fresh()
        net.gradient(t, "ep", outputs=outs, inputs=x, beta=1e-3)
    net.solve(x)  # symbolic analysis, once
    ts, te, tp = best(solve), best(exact), best(ep)
    print(f"lattice {n}x{n}, {src.size} edges")
    print(f"solve {ts:.3f} s; exact gradient {te:.3f} s ({te / ts:.2f}x); "
          f"EP estimate {tp:.3f} s ({tp / ts:.2f}x)")


if __name__ == "__main__":
    main()
