"""ohmflow against its peers, side by side, on the same networks (issue 5).

Run:  python benches/compare.py --json benches/results/compare.json \
                                --plot benches/results/compare.png
      python benches/compare.py --quick          # small sizes only, a minute or so

Networks (all seeded, identical for every solver):
* linear: a side x side 2D lattice (2 side (side-1) resistors, 0.5-2 mS), one corner
  at +1 V, the opposite corner at -1 V;
* ideal: the same lattice with 10% of its edges given an ideal diode (v_on = 0) in
  parallel, random orientation (the QP of Scellier 2024);
* shockley: the lattice with 10% of its edges given a Shockley diode (IS = 1e-14,
  N = 1) in parallel, random orientation, and 1% of its nodes clamped to voltages
  uniform in [-2, 2] V (so that diodes near the sources conduct; diodes between two
  clamped nodes are left out), written by
  ``net.to_spice()`` with ``.options reltol=1e-9 abstol=1e-18 vntol=1e-12``.

Scenarios (times are the best of ``--repeat`` runs, wall clock, this process):
(a) ohmflow build (Network, add_nodes, add_resistors, sources) + assemble + analyse +
    factor + solve, from numpy arrays, vs CHOLMOD (scikit-sparse) assemble (the lower
    triangle of the reduced Laplacian, scipy COO -> CSC, right-hand side) + analyse +
    factor + solve; vs scipy.sparse.linalg.spsolve (assemble + SuperLU).
(b) ohmflow ``net.conductances = g2; net.solve()`` vs CHOLMOD ``cholesky_inplace``
    (numeric refactor on the cached analysis) + solve (assembly of the new matrix not
    counted for CHOLMOD).
(c) ohmflow on the ideal-diode lattice (symbolic analysis cached, cold start) vs the
    linear solve (b) and vs OSQP (eps 1e-9, polished) and Clarabel (tolerances 1e-9)
    on the QP  min 1/2 v'Kv - b'v  s.t.  v_a - v_c <= v_on  (setup + solve).
(d) ohmflow ``read_spice(file)`` + solve vs ``ngspice -b -r raw file`` (.op) on the
    same netlist file.
(e) peak RSS of a process doing (a), ohmflow vs CHOLMOD, each in its own subprocess
    (VmHWM, reset after imports and the lattice arrays; that baseline is reported too).

Answers are compared as max |v - v_peer| / max |v_peer| over the free nodes.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ohmflow as of
import scipy
import scipy.sparse as sp
import scipy.sparse.linalg as spla

try:
    from sksparse import cholmod
except Exception as e:  # noqa: BLE001 - any import failure means "peer missing"
    cholmod = None
    CHOLMOD_ERROR = f"{type(e).__name__}: {e}"
else:
    CHOLMOD_ERROR = ""
try:
    import osqp
except Exception as e:  # noqa: BLE001
    osqp = None
    OSQP_ERROR = f"{type(e).__name__}: {e}"
else:
    OSQP_ERROR = ""
try:
    import clarabel
except Exception as e:  # noqa: BLE001
    clarabel = None
    CLARABEL_ERROR = f"{type(e).__name__}: {e}"
else:
    CLARABEL_ERROR = ""
NGSPICE = shutil.which("ngspice")

DEFAULT_SIDES = "71,100,158,224,316,500,708"  # 9.9k ... 1.0M edges
DEFAULT_SPICE_SIDES = "50,71,100,141,200"  # 4.9k ... 80k edges
QUICK_SIDES = "71,100,158"
QUICK_SPICE_SIDES = "50,71"


# --------------------------------------------------------------------------- networks
class Lattice:
    """A seeded side x side lattice and everything derived from it."""

    def __init__(self, side: int, seed: int = 0) -> None:
        n = self.side = side
        rng = np.random.default_rng([seed, side])
        self.n_nodes = n * n + 1  # ground included
        idx = 1 + np.arange(n * n, dtype=np.int64).reshape(n, n)
        self.src = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
        self.dst = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
        e = self.edges = self.src.size
        self.g = rng.uniform(0.5e-3, 2e-3, e)
        self.g2 = self.g * rng.uniform(0.9, 1.1, e)
        d = rng.random(e) < 0.1
        flip = rng.random(e) < 0.5
        self.anode = np.where(flip, self.dst, self.src)[d]
        self.cathode = np.where(flip, self.src, self.dst)[d]
        self.corner_nodes = np.array([idx[0, 0], idx[-1, -1]])
        self.corner_values = np.array([1.0, -1.0])
        k = max(2, int(round(0.01 * n * n)))
        self.spice_nodes = np.sort(rng.choice(n * n, k, replace=False) + 1)
        self.spice_values = rng.uniform(-2.0, 2.0, k)
        # Shockley lattices: the same diodes less those between two clamped nodes
        # (a junction held at up to 4 V by two sources carries ~1e50 A in SPICE).
        clamped = np.zeros(self.n_nodes, dtype=bool)
        clamped[self.spice_nodes] = True
        keep = ~(clamped[self.anode] & clamped[self.cathode])
        self.s_anode, self.s_cathode = self.anode[keep], self.cathode[keep]

    def network(self, diodes: str | None = None, sources: str = "corner",
                g: np.ndarray | None = None) -> of.Network:
        net = of.Network()
        net.add_nodes(self.n_nodes - 1)
        net.add_resistors(self.src, self.dst, self.g if g is None else g)
        if diodes == "ideal":
            net.add_diodes(self.anode, self.cathode, of.IdealDiode(v_on=0.0))
        elif diodes == "shockley":
            net.add_diodes(self.s_anode, self.s_cathode, of.ShockleyDiode(i_s=1e-14, n=1.0))
        nodes, values = self.sources(sources)
        for node, v in zip(nodes.tolist(), values.tolist()):
            net.add_voltage_source(node, v)
        return net

    def sources(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        if kind == "corner":
            return self.corner_nodes, self.corner_values
        return self.spice_nodes, self.spice_values


class Reduced:
    """The reduced Laplacian K over the free nodes and its right-hand side, assembled
    with numpy/scipy as a competent user would (vectorised, no Python loops)."""

    def __init__(self, lat: Lattice, g: np.ndarray, sources: str = "corner",
                 lower: bool = True) -> None:
        nodes, values = lat.sources(sources)
        n = lat.n_nodes
        free = np.ones(n, dtype=bool)
        free[0] = False
        free[nodes] = False
        fo = np.full(n, -1, dtype=np.int64)
        nf = int(free.sum())
        fo[free] = np.arange(nf)
        vfix = np.zeros(n)
        vfix[nodes] = values
        fa, fb = fo[lat.src], fo[lat.dst]
        both = (fa >= 0) & (fb >= 0)
        hi = np.maximum(fa[both], fb[both])
        lo = np.minimum(fa[both], fb[both])
        off = -g[both]
        diag = np.bincount(fa[fa >= 0], g[fa >= 0], minlength=nf)
        diag += np.bincount(fb[fb >= 0], g[fb >= 0], minlength=nf)
        ar = np.arange(nf)
        if lower:
            rows, cols, vals = (np.concatenate([hi, ar]), np.concatenate([lo, ar]),
                                np.concatenate([off, diag]))
        else:
            rows = np.concatenate([hi, lo, ar])
            cols = np.concatenate([lo, hi, ar])
            vals = np.concatenate([off, off, diag])
        self.A = sp.csc_matrix((vals, (rows, cols)), shape=(nf, nf))
        rhs = np.zeros(nf)
        m = (fa >= 0) & (fb < 0)
        rhs += np.bincount(fa[m], g[m] * vfix[lat.dst[m]], minlength=nf)
        m = (fb >= 0) & (fa < 0)
        rhs += np.bincount(fb[m], g[m] * vfix[lat.src[m]], minlength=nf)
        self.b = rhs
        self.fo = fo
        self.vfix = vfix
        self.free_nodes = np.flatnonzero(free)
        self.n_free = nf


# --------------------------------------------------------------------------- helpers
def best(f, repeat: int, budget: float = 8.0):
    """Best wall time of up to ``repeat`` calls (one call if it takes > budget s)."""
    times, out = [], None
    for _ in range(max(1, repeat)):
        gc.collect()
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
        if times[-1] > budget:
            break
    return min(times), out


def rel_diff(x: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.max(np.abs(ref))) or 1.0
    return float(np.max(np.abs(np.asarray(x) - np.asarray(ref))) / scale)


def fmt_t(t) -> str:
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.0f}us"
    if t < 1:
        return f"{t * 1e3:.1f}ms"
    return f"{t:.2f}s"


def fmt_r(r) -> str:
    return "-" if r is None or (isinstance(r, float) and math.isnan(r)) else f"{r:.2f}x"


def fmt_e(x) -> str:
    return "-" if x is None else f"{x:.1e}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def table(headers: list[str], rows: list[list[str]]) -> str:
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
         for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w[i]) for i, h in enumerate(headers))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w[i]) for i, c in enumerate(r)) for r in rows]
    return "\n".join(out)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------- (a) + (b)
def run_linear(lat: Lattice, args) -> dict:
    r: dict = {"side": lat.side, "edges": lat.edges}
    th = args.threads

    def of_a():
        net = lat.network()
        return net, net.solve(threads=th)

    r["of_build_solve"], (net, sol) = best(of_a, args.repeat)
    t0 = time.perf_counter()
    lat.network()
    r["of_build_only"] = time.perf_counter() - t0
    v_a = sol.voltages
    r["n_free"] = int(lat.n_nodes - 3)

    def of_b(threads=th):
        net.conductances = lat.g2
        return net.solve(threads=threads)

    r["of_newg_solve"], sol2 = best(of_b, args.repeat)
    r["of_newg_solve_1thread"], _ = best(lambda: of_b(1), args.repeat)
    of_b()
    r["of_cached_solve"], _ = best(lambda: net.solve(threads=th), args.repeat)
    v_b = sol2.voltages
    net = sol = sol2 = None  # free the 1M-edge factor before the peers run

    if cholmod is not None:
        def ch_a():
            red = Reduced(lat, lat.g)
            f = cholmod.cholesky(red.A)
            return red, f(red.b)

        r["cholmod_full"], (red, x) = best(ch_a, args.repeat)
        r["agree_a_cholmod"] = rel_diff(v_a[red.free_nodes], x)
        # the split, for reading
        r["cholmod_assemble"], red = best(lambda: Reduced(lat, lat.g), args.repeat)
        r["cholmod_analyse"], f = best(lambda: cholmod.analyze(red.A), args.repeat)
        r["cholmod_factor"], _ = best(lambda: f.cholesky_inplace(red.A), args.repeat)
        r["cholmod_solve"], _ = best(lambda: f(red.b), args.repeat)
        red2 = Reduced(lat, lat.g2)

        def ch_b():
            f.cholesky_inplace(red2.A)
            return f(red2.b)

        r["cholmod_refactor_solve"], x2 = best(ch_b, args.repeat)
        r["agree_b_cholmod"] = rel_diff(v_b[red.free_nodes], x2)
        del f, red, red2
    if lat.edges <= args.spsolve_max_edges:
        def sps():
            red = Reduced(lat, lat.g, lower=False)
            return red, spla.spsolve(red.A, red.b)

        r["spsolve"], (red, x) = best(sps, args.repeat, budget=2.0)
        r["agree_a_spsolve"] = rel_diff(v_a[red.free_nodes], x)
    return r


# ------------------------------------------------------------------------------- (c)
def qp_data(lat: Lattice):
    """The ideal-diode QP on the free nodes: P = K/s, q = -b/s, D v <= u."""
    red = Reduced(lat, lat.g, lower=False)
    fa, fc = red.fo[lat.anode], red.fo[lat.cathode]
    keep = (fa >= 0) | (fc >= 0)
    fa, fc = fa[keep], fc[keep]
    u = np.zeros(keep.sum())  # v_on = 0
    u -= np.where(fa < 0, red.vfix[lat.anode[keep]], 0.0)
    u += np.where(fc < 0, red.vfix[lat.cathode[keep]], 0.0)
    m = fa.size
    rows = np.concatenate([np.flatnonzero(fa >= 0), np.flatnonzero(fc >= 0)])
    cols = np.concatenate([fa[fa >= 0], fc[fc >= 0]])
    vals = np.concatenate([np.ones((fa >= 0).sum()), -np.ones((fc >= 0).sum())])
    D = sp.csc_matrix((vals, (rows, cols)), shape=(m, red.n_free))
    s = float(red.A.diagonal().mean())
    return red, red.A / s, -red.b / s, D, u, s


def run_ideal(lat: Lattice, args, lin: dict) -> dict:
    r: dict = {"side": lat.side, "edges": lat.edges, "diodes": int(lat.anode.size)}
    t0 = time.perf_counter()
    net = lat.network("ideal")
    r["of_build"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    net.solve(threads=args.threads)
    r["of_ideal_first"] = time.perf_counter() - t0  # includes the symbolic analysis
    r["of_ideal"], sol = best(lambda: net.solve(threads=args.threads), args.repeat)
    r["of_iterations"] = int(sol.iterations)
    r["of_factorizations"] = int(sol.factorizations)
    r["of_low_rank"] = int(getattr(sol, "low_rank_solves", 0))
    v = sol.voltages
    dv = v[lat.anode] - v[lat.cathode]
    i = sol.diode_currents
    imax = float(np.max(np.abs(i))) or 1.0
    r["of_violation_V"] = float(max(np.max(dv), 0.0))  # v_on = 0
    r["of_min_current_A"] = float(np.min(i))
    r["of_complementarity_W"] = float(np.max(np.abs(i * dv)))
    r["of_complementarity_rel"] = r["of_complementarity_W"] / imax  # per volt of scale
    r["of_conducting"] = int(np.sum(i > 0))
    r["vs_of_linear"] = ratio(r["of_ideal"], lin.get("of_newg_solve"))
    r["vs_cholmod_linear"] = ratio(r["of_ideal"], lin.get("cholmod_refactor_solve"))
    net = None  # free it before the peers run
    red, P, q, D, u, s = qp_data(lat)
    vf = v[red.free_nodes]
    if osqp is not None and lat.edges <= args.osqp_max_edges:
        def run_osqp():
            prob = osqp.OSQP()
            prob.setup(sp.triu(P, format="csc"), q, D, np.full(u.size, -np.inf), u,
                       eps_abs=1e-9, eps_rel=1e-9, polishing=True, verbose=False,
                       max_iter=200000, time_limit=600.0)
            return prob.solve()

        r["osqp"], res = best(run_osqp, 1)
        r["osqp_status"] = str(res.info.status)
        r["osqp_polish"] = int(res.info.status_polish)
        r["osqp_iterations"] = int(res.info.iter)
        if res.x is not None and np.all(np.isfinite(res.x)):
            r["agree_osqp"] = rel_diff(vf, res.x)
            r["osqp_violation_V"] = float(max(np.max(D @ res.x - u), 0.0))
        r["osqp_vs_of"] = ratio(r["osqp"], r["of_ideal"])
    if clarabel is not None and lat.edges <= args.clarabel_max_edges:
        def run_clarabel():
            st = clarabel.DefaultSettings()
            st.verbose = False
            st.tol_gap_abs = st.tol_gap_rel = st.tol_feas = 1e-9
            st.tol_ktratio = 1e-9
            solver = clarabel.DefaultSolver(sp.triu(P, format="csc"), q, D, u,
                                            [clarabel.NonnegativeConeT(u.size)], st)
            return solver.solve()

        r["clarabel"], res = best(run_clarabel, 1)
        r["clarabel_status"] = str(res.status)
        r["clarabel_iterations"] = int(res.iterations)
        x = np.asarray(res.x)
        if x.size and np.all(np.isfinite(x)):
            r["agree_clarabel"] = rel_diff(vf, x)
            r["clarabel_violation_V"] = float(max(np.max(D @ x - u), 0.0))
        r["clarabel_vs_of"] = ratio(r["clarabel"], r["of_ideal"])
    return r


# ------------------------------------------------------------------------------- (d)
def parse_raw(data: bytes) -> dict[str, float]:
    """Node voltages of the operating point in a binary ngspice rawfile."""
    pos, names, nvars, npts = 0, [], 0, 0
    while True:
        nl = data.index(b"\n", pos)
        line = data[pos:nl].decode("ascii", "replace")
        pos = nl + 1
        key = line.split(":")[0].strip().lower()
        if key == "no. variables":
            nvars = int(line.split(":")[1])
        elif key == "no. points":
            npts = int(line.split(":")[1])
        elif key == "variables":
            for _ in range(nvars):
                nl = data.index(b"\n", pos)
                names.append(data[pos:nl].decode("ascii").split()[1].lower())
                pos = nl + 1
        elif key == "binary":
            break
        elif key == "values":
            raise ValueError("ASCII rawfile: unset SPICE_ASCIIRAWFILE")
    if npts != 1:
        raise ValueError(f"expected one point, got {npts}")
    vals = struct.unpack(f"<{nvars}d", data[pos:pos + 8 * nvars])
    return {n[2:-1]: v for n, v in zip(names, vals) if n.startswith("v(")}


def run_ngspice(path: Path, timeout: float) -> tuple[float, dict[str, float], str]:
    raw = path.with_suffix(".raw")
    env = dict(os.environ)
    env.pop("SPICE_ASCIIRAWFILE", None)
    env["HOME"] = str(path.parent)  # no ~/.spiceinit
    t = time.perf_counter()
    p = subprocess.run([NGSPICE, "-b", "-r", str(raw), str(path)], cwd=path.parent,
                       env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    dt = time.perf_counter() - t
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    if p.returncode != 0 or not raw.exists():
        raise RuntimeError(f"ngspice failed ({p.returncode}): {out[-800:]}")
    aids = [a for a in ("gmin stepping", "source stepping") if a in out.lower()]
    return dt, parse_raw(raw.read_bytes()), ",".join(aids)


def run_shockley(lat: Lattice, args, tmp: Path) -> dict:
    r: dict = {"side": lat.side, "edges": lat.edges, "diodes": int(lat.s_anode.size),
               "sources": int(lat.spice_nodes.size)}
    net = lat.network("shockley", sources="spice")
    # the first solve includes the symbolic analysis (small next to Newton)
    r["of_solve"], sol = best(lambda: net.solve(threads=args.threads), args.repeat)
    r["of_iterations"] = int(sol.iterations)
    r["of_kcl"] = float(sol.kcl_residual)
    v = sol.voltages
    r["of_nan"] = bool(not np.all(np.isfinite(v)))
    dv = v[lat.s_anode] - v[lat.s_cathode]
    r["max_diode_forward_V"] = float(np.max(dv))
    r["diodes_above_0.5V"] = int(np.sum(dv > 0.5))
    t0 = time.perf_counter()
    text = net.to_spice(title=f"ohmflow bench lattice {lat.side}x{lat.side}")
    r["to_spice"] = time.perf_counter() - t0
    net = None  # free it before the peers run
    path = tmp / f"lattice{lat.side}.cir"
    path.write_text(text)

    reads = []

    def read_solve():
        t0 = time.perf_counter()
        n2 = of.read_spice(path)
        reads.append(time.perf_counter() - t0)
        return n2, n2.solve(threads=args.threads)

    r["of_read_solve"], (n2, s2) = best(read_solve, args.repeat)
    r["of_read_only"] = min(reads)
    names = n2.node_names
    v2 = s2.voltages
    r["agree_file_vs_built"] = rel_diff(v2[1:], v[1:]) if len(v2) == len(v) else None
    if NGSPICE and lat.edges <= args.ngspice_max_edges:
        try:
            t, volts, aids = run_ngspice(path, args.ngspice_timeout)
            r["ngspice"] = t
            r["ngspice_aids"] = aids
            ref = np.array([volts[nm.lower()] for nm in names[1:]])
            r["agree_ngspice"] = rel_diff(v2[1:], ref)
            r["ngspice_vs_of"] = ratio(t, r["of_read_solve"])
        except Exception as e:  # noqa: BLE001 - report, keep going
            r["ngspice_error"] = f"{type(e).__name__}: {e}"[:500]
    return r


# ------------------------------------------------------------------------------- (e)
def _vm_hwm_kb() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_child(which: str, side: int, threads) -> None:
    """Runs in a subprocess: does scenario (a) once and prints its peak RSS (kB).

    ru_maxrss survives fork + exec on Linux (a child starts with its parent's
    high-water mark), so the peak is read from /proc/self/status (VmHWM) after
    resetting it through /proc/self/clear_refs; ru_maxrss is the fallback.
    """
    lat = Lattice(side)
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak RSS to the current RSS
        hwm = _vm_hwm_kb()
    except OSError:
        hwm = None

    def peak_kb() -> int:
        h = _vm_hwm_kb() if hwm is not None else None
        return h if h is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    base = peak_kb()
    t = time.perf_counter()
    if which == "ohmflow":
        net = lat.network()
        sol = net.solve(threads=threads)
        v = sol.voltages
    else:
        red = Reduced(lat, lat.g)
        f = cholmod.cholesky(red.A)
        v = f(red.b)
    dt = time.perf_counter() - t
    peak = peak_kb()
    print(json.dumps({"baseline_kb": base, "peak_kb": peak, "time": dt,
                      "source": "VmHWM" if hwm is not None else "ru_maxrss",
                      "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "checksum": float(np.sum(v))}))


def run_memory(side: int, args) -> dict:
    out: dict = {"side": side, "edges": 2 * side * (side - 1)}
    for which in ("ohmflow", "cholmod"):
        if which == "cholmod" and cholmod is None:
            continue
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_rss", which,
               "--_rss-side", str(side)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        if p.returncode != 0:
            out[which] = {"error": p.stderr[-500:]}
            continue
        out[which] = json.loads(p.stdout.strip().splitlines()[-1])
    if "peak_kb" in out.get("ohmflow", {}) and "peak_kb" in out.get("cholmod", {}):
        o, c = out["ohmflow"], out["cholmod"]
        out["ratio_peak"] = o["peak_kb"] / c["peak_kb"]
        out["ratio_increment"] = ((o["peak_kb"] - o["baseline_kb"])
                                  / max(1, c["peak_kb"] - c["baseline_kb"]))
    return out


# --------------------------------------------------------------------- orderings
def run_orderings(lat: Lattice) -> dict:
    """CHOLMOD's analyse + factor time and fill with each ordering (largest lattice)."""
    out = {}
    if cholmod is None:
        return out
    red = Reduced(lat, lat.g)
    for m in ("amd", "metis", "nesdis", "default"):
        try:
            t0 = time.perf_counter()
            f = cholmod.analyze(red.A, ordering_method=m)
            t1 = time.perf_counter()
            f.cholesky_inplace(red.A)
            t2 = time.perf_counter()
            nnz = int(f.L().nnz)
            out[m] = {"analyse": t1 - t0, "factor": t2 - t1, "nnz_L": nnz}
        except Exception as e:  # noqa: BLE001
            out[m] = {"error": str(e)}
    out["nnz_A_lower"] = int(red.A.nnz)
    return out


# --------------------------------------------------------------------------- report
def fit_exponent(edges, times):
    pts = [(e, t) for e, t in zip(edges, times) if t and e >= 9000]
    if len(pts) < 3:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def make_plot(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    lin, idl, shk = res["linear"], res["ideal"], res["shockley"]

    def series(ax, rows, key, label, style):
        pts = [(r["edges"], r[key]) for r in rows if r.get(key)]
        if pts:
            ax.loglog(*zip(*pts), style, label=label, markersize=5)

    series(axes[0], lin, "of_build_solve", "ohmflow build+analyse+factor+solve", "o-C0")
    series(axes[0], lin, "of_newg_solve", "ohmflow new g + solve", "s--C0")
    series(axes[0], lin, "cholmod_full", "CHOLMOD assemble+analyse+factor+solve", "o-C1")
    series(axes[0], lin, "cholmod_refactor_solve", "CHOLMOD refactor + solve", "s--C1")
    series(axes[0], lin, "spsolve", "scipy spsolve (assemble+SuperLU)", "^-C2")
    axes[0].set_title("linear 2D lattice (two corner sources)")
    series(axes[1], idl, "of_ideal", "ohmflow, 10% ideal diodes", "o-C0")
    series(axes[1], idl, "osqp", "OSQP (eps 1e-9, polished), same QP", "^-C3")
    series(axes[1], idl, "clarabel", "Clarabel (tol 1e-9), same QP", "v-C4")
    series(axes[1], shk, "of_read_solve", "ohmflow read_spice+solve, 10% Shockley", "s-C5")
    series(axes[1], shk, "ngspice", "ngspice -b .op, same netlist", "D-C6")
    axes[1].set_title("nonlinear lattices")
    for ax, xs in ((axes[0], [r["edges"] for r in lin]),
                   (axes[1], [r["edges"] for r in idl + shk])):
        if xs:
            lo, hi = min(xs), max(xs)
            ref = [r for r in lin if r.get("cholmod_full")]
            if ref:
                e0, t0 = ref[0]["edges"], ref[0]["cholmod_full"]
                ax.loglog([lo, hi], [t0 * lo / e0, t0 * hi / e0], ":", color="gray",
                          label="O(edges) guide")
        ax.set_xlabel("edges")
        ax.set_ylabel("seconds (best of runs)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    m = res["meta"]
    fig.suptitle(f"ohmflow {m['ohmflow']} vs peers — {m['cpus']} cores, {m['machine']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(res: dict) -> str:
    out = []
    lin = res["linear"]
    rows = []
    for r in lin:
        rows.append([
            str(r["edges"]), fmt_t(r["of_build_only"]), fmt_t(r["of_build_solve"]),
            fmt_t(r.get("cholmod_full")), fmt_r(ratio(r["of_build_solve"], r.get("cholmod_full"))),
            fmt_e(r.get("agree_a_cholmod")),
            fmt_t(r["of_newg_solve"]), fmt_t(r["of_newg_solve_1thread"]),
            fmt_t(r.get("cholmod_refactor_solve")),
            fmt_r(ratio(r["of_newg_solve"], r.get("cholmod_refactor_solve"))),
            fmt_e(r.get("agree_b_cholmod")),
            fmt_t(r["of_cached_solve"]), fmt_t(r.get("cholmod_solve")),
            fmt_t(r.get("spsolve")), fmt_r(ratio(r["of_build_solve"], r.get("spsolve"))),
            fmt_e(r.get("agree_a_spsolve")),
        ])
    out.append("(a)+(b) linear lattice; ratio = ohmflow / peer (< 1: ohmflow faster)")
    out.append(table(["edges", "of build", "of (a)", "CHOLMOD (a)", "ratio", "diff",
                      "of (b)", "of (b) 1thr", "CHOLMOD (b)", "ratio", "diff",
                      "of solve", "CM solve", "spsolve", "ratio", "diff"], rows))
    rows = []
    for r in lin:
        if r.get("cholmod_full"):
            rows.append([str(r["edges"]), fmt_t(r["cholmod_assemble"]),
                         fmt_t(r["cholmod_analyse"]), fmt_t(r["cholmod_factor"]),
                         fmt_t(r["cholmod_solve"])])
    if rows:
        out.append("\nCHOLMOD split: assemble (scipy), analyse, numeric factor, solve")
        out.append(table(["edges", "assemble", "analyse", "factor", "solve"], rows))
    rows = []
    for r in res["ideal"]:
        rows.append([
            str(r["edges"]), str(r["diodes"]), fmt_t(r["of_ideal"]),
            f"{r['of_iterations']}/{r['of_factorizations']}/{r.get('of_low_rank', 0)}",
            fmt_r(r["vs_of_linear"]), fmt_r(r["vs_cholmod_linear"]),
            fmt_e(r["of_complementarity_rel"]), fmt_e(r["of_violation_V"]),
            fmt_t(r.get("osqp")), fmt_r(r.get("osqp_vs_of")), fmt_e(r.get("agree_osqp")),
            fmt_t(r.get("clarabel")), fmt_r(r.get("clarabel_vs_of")),
            fmt_e(r.get("agree_clarabel")),
        ])
    out.append("\n(c) 10% ideal diodes; of/lin = ohmflow ideal / linear solve (b); "
               "peer ratios = peer / ohmflow (> 1: ohmflow faster)")
    out.append(table(["edges", "diodes", "of ideal", "it/fact/lr", "of/lin(of)",
                      "of/lin(CM)", "compl", "viol V", "OSQP", "ratio", "diff",
                      "Clarabel", "ratio", "diff"], rows))
    rows = []
    for r in res["shockley"]:
        rows.append([
            str(r["edges"]), fmt_t(r["of_solve"]), str(r["of_iterations"]),
            fmt_t(r["of_read_only"]), fmt_t(r["of_read_solve"]), fmt_t(r.get("ngspice")),
            fmt_r(r.get("ngspice_vs_of")), fmt_e(r.get("agree_ngspice")),
            r.get("ngspice_aids", "") or ("error" if "ngspice_error" in r else ""),
        ])
    out.append("\n(d) 10% Shockley diodes, 1% of nodes clamped in [-2, 2] V; "
               "ratio = ngspice / ohmflow read+solve")
    out.append(table(["edges", "of solve", "newton it", "of read", "of read+solve",
                      "ngspice .op", "ratio", "diff", "ngspice aids"], rows))
    if res.get("exponents"):
        out.append("\nexponent of cost against edges (log-log fit, >= 10k edges)")
        out.append(table(["series", "exponent"],
                         [[k, f"{v:.2f}"] for k, v in res["exponents"].items()]))
    mem = res.get("memory")
    if mem:
        rows = []
        for w in ("ohmflow", "cholmod"):
            m = mem.get(w, {})
            if "peak_kb" in m:
                rows.append([w, f"{m['baseline_kb'] / 1024:.0f} MB",
                             f"{m['peak_kb'] / 1024:.0f} MB",
                             f"{(m['peak_kb'] - m['baseline_kb']) / 1024:.0f} MB",
                             fmt_t(m["time"])])
            elif m:
                rows.append([w, "error", m.get("error", "")[:60], "", ""])
        out.append(f"\n(e) peak RSS of scenario (a) at {mem['edges']} edges, one process each "
                   f"(ratio of peaks {fmt_r(mem.get('ratio_peak'))}, of increments "
                   f"{fmt_r(mem.get('ratio_increment'))})")
        out.append(table(["solver", "baseline", "peak", "increment", "time"], rows))
    orders = res.get("orderings")
    if orders:
        rows = [[k, fmt_t(v.get("analyse")), fmt_t(v.get("factor")), str(v.get("nnz_L", "-"))]
                for k, v in orders.items() if isinstance(v, dict)]
        out.append(f"\nCHOLMOD orderings on the largest lattice (nnz of A's lower "
                   f"triangle {orders.get('nnz_A_lower')})")
        out.append(table(["ordering", "analyse", "factor", "nnz(L)"], rows))
    acc = res.get("acceptance")
    if acc:
        rows = [[a["name"], a["value"], a["target"], "yes" if a["pass"] else "NO"]
                for a in acc]
        out.append("\nacceptance (issue 5), measured in this run")
        out.append(table(["criterion", "measured", "target", "met"], rows))
    return "\n".join(out)


def acceptance(res: dict) -> list[dict]:
    acc = []

    def near_1m(rows):  # the acceptance list is about the 1M-edge lattice
        return min(rows, key=lambda r: abs(math.log(r["edges"] / 1e6)))

    lin = [r for r in res["linear"] if r.get("cholmod_full")]
    if lin:
        r = near_1m(lin)
        q = ratio(r["of_build_solve"], r["cholmod_full"])
        acc.append({"name": f"(a) {r['edges']} edges build+solve / CHOLMOD",
                    "value": f"{q:.2f}x, diff {r['agree_a_cholmod']:.1e}",
                    "target": "<= 1.0x, diff <= 1e-8",
                    "pass": bool(q <= 1.0 and r["agree_a_cholmod"] <= 1e-8)})
        q = ratio(r["of_newg_solve"], r["cholmod_refactor_solve"])
        acc.append({"name": "(b) new g + solve / CHOLMOD refactor + solve",
                    "value": f"{q:.2f}x, diff {r['agree_b_cholmod']:.1e}",
                    "target": "<= 1.0x", "pass": bool(q <= 1.0)})
    idl = res["ideal"]
    if idl:
        r = near_1m(idl)
        ok = r["of_complementarity_rel"] <= 1e-12
        acc.append({"name": f"(c) {r['edges']} edges ideal / linear (ohmflow)",
                    "value": f"{r['vs_of_linear']:.2f}x, compl {r['of_complementarity_rel']:.1e}",
                    "target": "<= 3x, compl <= 1e-12",
                    "pass": bool(r["vs_of_linear"] <= 3 and ok)})
        if r.get("osqp"):
            acc.append({"name": "(c) OSQP / ohmflow ideal",
                        "value": f"{r['osqp_vs_of']:.2f}x", "target": ">= ~2x",
                        "pass": bool(r["osqp_vs_of"] >= 2)})
    shk = [r for r in res["shockley"] if r.get("ngspice")]
    if shk:
        r = min(shk, key=lambda r: abs(r["edges"] - 80_000))  # the 200x200 lattice
        acc.append({"name": f"(d) {r['edges']} edges ngspice / ohmflow (SPICE file)",
                    "value": f"{r['ngspice_vs_of']:.0f}x, diff {r['agree_ngspice']:.1e}",
                    "target": ">= 300x, diff <= 1e-6",
                    "pass": bool(r["ngspice_vs_of"] >= 300 and r["agree_ngspice"] <= 1e-6)})
    mem = res.get("memory") or {}
    if mem.get("ratio_peak"):
        acc.append({"name": f"(e) peak RSS ohmflow / CHOLMOD, {mem['edges']} edges",
                    "value": f"{mem['ratio_peak']:.2f}x", "target": "<= 1.2x",
                    "pass": bool(mem["ratio_peak"] <= 1.2)})
    return acc


def meta(args) -> dict:
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=Path(__file__).resolve().parent,
                                  capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:  # noqa: BLE001
            return ""

    def ver(mod):
        try:
            from importlib.metadata import version
            return version(mod)
        except Exception:  # noqa: BLE001
            return None

    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ng = None
    if NGSPICE:
        p = subprocess.run([NGSPICE, "--version"], capture_output=True, text=True)
        ng = next((ln.strip("* ").strip() for ln in p.stdout.splitlines() if "ngspice-" in ln),
                  None)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": cpu or platform.machine(),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "ohmflow": of.__version__ if hasattr(of, "__version__") else ver("ohmflow"),
        "git": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "numpy": np.__version__, "scipy": scipy.__version__,
        "scikit-sparse": ver("scikit-sparse"), "osqp": ver("osqp"),
        "clarabel": ver("clarabel"), "ngspice": ng,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "threads": args.threads or "all",
        "loadavg_at_start": os.getloadavg()[0],
        "missing": {k: v for k, v in (("scikit-sparse", CHOLMOD_ERROR), ("osqp", OSQP_ERROR),
                                      ("clarabel", CLARABEL_ERROR),
                                      ("ngspice", "" if NGSPICE else "not on PATH")) if v},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sides", default=None,
                    help=f"lattice sides for (a)-(c) (default {DEFAULT_SIDES})")
    ap.add_argument("--spice-sides", default=None,
                    help=f"lattice sides for (d) (default {DEFAULT_SPICE_SIDES}, plus "
                         "the larger --sides without ngspice)")
    ap.add_argument("--extra-linear-sides", default="",
                    help="more sides for (a) and (b) only, e.g. 1000,1415 (2M, 4M edges)")
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="ohmflow threads (default all)")
    ap.add_argument("--ngspice-max-edges", type=int, default=80_000)
    ap.add_argument("--ngspice-timeout", type=float, default=900)
    ap.add_argument("--osqp-max-edges", type=int, default=1_100_000)
    ap.add_argument("--clarabel-max-edges", type=int, default=200_000)
    ap.add_argument("--spsolve-max-edges", type=int, default=1_100_000)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--only-c", action="store_true",
                    help="(a), (b) and (c) without OSQP, Clarabel, spsolve; no (d), no orderings")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    ap.add_argument("--_rss", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_rss-side", type=int, default=708, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._rss:
        rss_child(args._rss, args._rss_side, args.threads)
        return
    if args.only_c:
        args.osqp_max_edges = args.clarabel_max_edges = args.spsolve_max_edges = 0
    sides = [int(s) for s in (args.sides or (QUICK_SIDES if args.quick else DEFAULT_SIDES))
             .split(",")]
    spice_sides = [int(s) for s in (args.spice_sides or
                                    (QUICK_SPICE_SIDES if args.quick else DEFAULT_SPICE_SIDES))
                   .split(",")]
    spice_sides = sorted(set(spice_sides) | {s for s in sides if s > max(spice_sides)})
    res: dict = {"meta": meta(args), "linear": [], "ideal": [], "shockley": []}
    for k, v in res["meta"]["missing"].items():
        log(f"peer missing: {k}: {v}")
    # warm up (thread pools, first-call costs)
    warm = Lattice(20)
    warm.network().solve()
    if cholmod is not None:
        cholmod.cholesky(Reduced(warm, warm.g).A)
    t_start = time.perf_counter()
    if not args.no_memory and sides:
        # first, while this process is small (a child inherits nothing big)
        log(f"[{time.perf_counter() - t_start:6.0f}s] memory, side {max(sides)}")
        res["memory"] = run_memory(max(sides), args)
    for side in sides:
        lat = Lattice(side)
        log(f"[{time.perf_counter() - t_start:6.0f}s] linear + ideal, {lat.edges} edges")
        lin = run_linear(lat, args)
        res["linear"].append(lin)
        res["ideal"].append(run_ideal(lat, args, lin))
    for side in [int(x) for x in args.extra_linear_sides.split(",") if x.strip()]:
        lat = Lattice(side)
        log(f"[{time.perf_counter() - t_start:6.0f}s] linear only, {lat.edges} edges")
        res["linear"].append(run_linear(lat, args))
        del lat
    with tempfile.TemporaryDirectory(prefix="ohmflow-bench-") as tmp:
        for side in [] if args.only_c else spice_sides:
            lat = Lattice(side)
            log(f"[{time.perf_counter() - t_start:6.0f}s] shockley/SPICE, {lat.edges} edges")
            res["shockley"].append(run_shockley(lat, args, Path(tmp)))
    if sides and not args.only_c:
        res["orderings"] = run_orderings(Lattice(max(sides)))
    lin, idl, shk = res["linear"], res["ideal"], res["shockley"]
    ex = {}
    for name, rows, key in (
        ("ohmflow (a) build+solve", lin, "of_build_solve"),
        ("ohmflow (b) new g + solve", lin, "of_newg_solve"),
        ("CHOLMOD (a)", lin, "cholmod_full"),
        ("CHOLMOD (b) refactor+solve", lin, "cholmod_refactor_solve"),
        ("spsolve", lin, "spsolve"),
        ("ohmflow ideal diodes", idl, "of_ideal"),
        ("OSQP", idl, "osqp"),
        ("Clarabel", idl, "clarabel"),
        ("ohmflow Shockley read+solve", shk, "of_read_solve"),
        ("ngspice .op", shk, "ngspice"),
    ):
        e = fit_exponent([r["edges"] for r in rows], [r.get(key) for r in rows])
        if e is not None:
            ex[name] = e
    res["exponents"] = ex
    res["acceptance"] = acceptance(res)
    res["meta"]["wall_seconds"] = time.perf_counter() - t_start
    res["meta"]["loadavg_at_end"] = os.getloadavg()[0]
    text = report(res)
    res["table"] = text
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1, default=float) + "\n")
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        make_plot(res, args.plot)


if __name__ == "__main__":
    main()
