"""1M-edge 2D lattice: ohmflow (build + solve, resolve) vs scipy.sparse.linalg.spsolve.

Run: python benches/lattice_vs_scipy.py [--side 708]
Prints times and the largest relative voltage difference between the two.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from _lattice import lattice


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=708)
    args = ap.parse_args()
    n = args.side
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    net, idx, src, dst, g = lattice(n)
    net.add_voltage_source(int(idx[0, 0]), 1.0)
    net.add_voltage_source(int(idx[-1, -1]), 0.0)
    t1 = time.perf_counter()
    sol = net.solve()
    t2 = time.perf_counter()
    net.conductances = g * rng.uniform(0.9, 1.1, g.size)
    t3 = time.perf_counter()
    sol2 = net.solve()
    t4 = time.perf_counter()
    net.conductances = g
    # SciPy on the same reduced Laplacian.
    nn = n * n + 1
    a, b = src, dst
    lap = sp.coo_matrix((np.concatenate([g, g, -g, -g]),
                         (np.concatenate([a, b, a, b]), np.concatenate([a, b, b, a]))),
                        shape=(nn, nn)).tocsr()
    clamped = np.array([0, idx[0, 0], idx[-1, -1]])
    vals = np.array([0.0, 1.0, 0.0])
    free = np.setdiff1d(np.arange(nn), clamped)
    t5 = time.perf_counter()
    kff = lap[free][:, free].tocsc()
    rhs = -lap[free][:, clamped] @ vals
    x = spla.spsolve(kff, rhs)
    t6 = time.perf_counter()
    diff = np.max(np.abs(x - sol.voltages[free])) / np.max(np.abs(x))
    print(f"lattice {n}x{n}: {src.size} edges, {free.size} free nodes")
    print(f"ohmflow build {t1 - t0:.3f} s, first solve (analyse+factor+solve) {t2 - t1:.3f} s, "
          f"new conductances + solve {t4 - t3:.3f} s (kcl {sol2.kcl_residual:.1e})")
    print(f"scipy spsolve (assemble + solve) {t6 - t5:.3f} s; max rel difference {diff:.2e}")


if __name__ == "__main__":
    main()
