//! Exact block coordinate descent for layered networks (Scellier 2024).
//!
//! When the graph of free nodes is bipartite (every branch between two free nodes
//! joins the two colour classes, as in a layered network whose even and odd layers
//! form the classes), the nodes of one class are independent given the other: the
//! co-content splits into one-dimensional convex problems, each solved exactly —
//! a weighted mean clipped to the bounds that ideal diodes to fixed nodes impose,
//! or, with ReLU and Shockley diodes, the root of a monotone scalar equation found
//! by safeguarded Newton. Alternating the two classes decreases the energy
//! monotonically and converges to the unique equilibrium; all samples of a batch
//! are updated together (node-major storage, so that a node's update is a weighted
//! sum of its neighbours' rows), and the nodes of a class in parallel.
//!
//! Ideal diodes must have a fixed end (a source or ground): a constraint between two
//! free nodes would couple the one-dimensional problems.

use crate::compile::Compiled;
use crate::error::{Error, Result};
use crate::network::{DiodeModel, Network, NONE};
use rayon::prelude::*;

/// The two colour classes of the free nodes.
#[derive(Debug, Clone)]
pub struct Bipartition {
    /// Free nodes of each class.
    pub classes: [Vec<u32>; 2],
}

/// Why a network cannot take the layered path (None: it can).
pub fn layered_obstacle(net: &Network, c: &Compiled) -> Option<String> {
    for (k, m) in net.dio_model.iter().enumerate() {
        if matches!(m, DiodeModel::Ideal { .. })
            && c.free_of_node[net.dio_a[k] as usize] != NONE
            && c.free_of_node[net.dio_b[k] as usize] != NONE
        {
            return Some(format!(
                "ideal diode {k} joins two free nodes ({} and {})",
                net.dio_a[k], net.dio_b[k]
            ));
        }
    }
    bipartition(net, c).err()
}

/// Two-colours the graph of free nodes, or says which branch closes an odd cycle.
pub fn bipartition(net: &Network, c: &Compiled) -> std::result::Result<Bipartition, String> {
    let n = net.n_nodes;
    let adj = free_adjacency(net, c);
    let mut color = vec![u8::MAX; n];
    let mut classes = [Vec::new(), Vec::new()];
    let mut queue = std::collections::VecDeque::new();
    for &start in &c.node_of_free {
        if color[start as usize] != u8::MAX {
            continue;
        }
        color[start as usize] = 0;
        queue.push_back(start);
        while let Some(x) = queue.pop_front() {
            let cx = color[x as usize];
            classes[cx as usize].push(x);
            for &y in &adj.1[adj.0[x as usize]..adj.0[x as usize + 1]] {
                if color[y as usize] == u8::MAX {
                    color[y as usize] = 1 - cx;
                    queue.push_back(y);
                } else if color[y as usize] == cx {
                    return Err(format!(
                        "the free nodes are not layered: a branch joins nodes {x} and {y} of one layer"
                    ));
                }
            }
        }
    }
    Ok(Bipartition { classes })
}

/// CSR adjacency of free nodes through branches between free nodes.
fn free_adjacency(net: &Network, c: &Compiled) -> (Vec<usize>, Vec<u32>) {
    let n = net.n_nodes;
    let free = |x: u32| c.free_of_node[x as usize] != NONE;
    let pairs = net
        .res_a
        .iter()
        .zip(&net.res_b)
        .chain(net.dio_a.iter().zip(&net.dio_b))
        .filter(|(&a, &b)| free(a) && free(b));
    let mut deg = vec![0usize; n + 1];
    for (&a, &b) in pairs.clone() {
        deg[a as usize + 1] += 1;
        deg[b as usize + 1] += 1;
    }
    for i in 0..n {
        deg[i + 1] += deg[i];
    }
    let mut fill = deg.clone();
    let mut out = vec![0u32; deg[n]];
    for (&a, &b) in pairs {
        out[fill[a as usize]] = b;
        fill[a as usize] += 1;
        out[fill[b as usize]] = a;
        fill[b as usize] += 1;
    }
    (deg, out)
}

/// Per-node view of the branches, rebuilt per call (conductances may have changed).
struct NodeView {
    res_ptr: Vec<usize>,
    res: Vec<(u32, f64)>,
    dio_ptr: Vec<usize>,
    dio: Vec<(u32, bool)>,
    /// Current flowing into each node from current sources.
    inj0: Vec<f64>,
}

/// Incidence lists of the free nodes: for each branch (a_k, b_k), the entry
/// `at(k, true)` goes to a_k's list and `at(k, false)` to b_k's, where free.
fn incidence<T: Copy + Default>(
    c: &Compiled,
    n: usize,
    ends: (&[u32], &[u32]),
    at: impl Fn(usize, bool) -> T,
) -> (Vec<usize>, Vec<T>) {
    let free = |x: u32| c.free_of_node[x as usize] != NONE;
    let mut ptr = vec![0usize; n + 1];
    for (&a, &b) in ends.0.iter().zip(ends.1) {
        if free(a) {
            ptr[a as usize + 1] += 1;
        }
        if free(b) {
            ptr[b as usize + 1] += 1;
        }
    }
    for i in 0..n {
        ptr[i + 1] += ptr[i];
    }
    let mut fill = ptr.clone();
    let mut out = vec![T::default(); ptr[n]];
    for (k, (&a, &b)) in ends.0.iter().zip(ends.1).enumerate() {
        if free(a) {
            out[fill[a as usize]] = at(k, true);
            fill[a as usize] += 1;
        }
        if free(b) {
            out[fill[b as usize]] = at(k, false);
            fill[b as usize] += 1;
        }
    }
    (ptr, out)
}

fn node_view(net: &Network, c: &Compiled) -> NodeView {
    let n = net.n_nodes;
    let (res_ptr, res) = incidence(c, n, (&net.res_a, &net.res_b), |k, at_a| {
        let other = if at_a { net.res_b[k] } else { net.res_a[k] };
        (other, net.res_g[k])
    });
    let (dio_ptr, dio) = incidence(c, n, (&net.dio_a, &net.dio_b), |k, at_a| (k as u32, at_a));
    let mut inj0 = vec![0.0; n];
    for k in 0..net.is_value.len() {
        inj0[net.is_a[k] as usize] -= net.is_value[k];
        inj0[net.is_b[k] as usize] += net.is_value[k];
    }
    NodeView {
        res_ptr,
        res,
        dio_ptr,
        dio,
        inj0,
    }
}

/// Current leaving the node through a smooth diode (ReLU, Shockley) and its
/// derivative, with the node at `x` and the other end at `o`.
#[inline]
fn smooth_diode(m: &DiodeModel, is_anode: bool, x: f64, o: f64) -> (f64, f64) {
    let dv = if is_anode { x - o } else { o - x };
    let (i, g) = m.law(dv);
    if is_anode {
        (i, g)
    } else {
        (-i, g)
    }
}

/// Solves f(x) = s x − t + Σ diode currents(x) = 0 on [lo, hi] (f increasing).
#[allow(clippy::too_many_arguments)]
fn solve_node(
    net: &Network,
    dio: &[(u32, bool)],
    others: &[f64],
    s: f64,
    t: f64,
    lo: f64,
    hi: f64,
    x0: f64,
) -> f64 {
    let f = |x: f64| -> (f64, f64) {
        let mut v = s * x - t;
        let mut d = s;
        for (j, &(k, is_anode)) in dio.iter().enumerate() {
            let m = &net.dio_model[k as usize];
            if matches!(m, DiodeModel::Ideal { .. }) {
                continue;
            }
            let (i, g) = smooth_diode(m, is_anode, x, others[j]);
            v += i;
            d += g;
        }
        (v, d)
    };
    monotone_root(f, lo, hi, x0)
}

/// The root of an increasing function on `[lo, hi]` (an end if it has none there),
/// by Newton's method safeguarded with bisection, starting near `x0`. `f` returns
/// the value and the derivative; a NaN value counts as +∞ (overflow upwards).
pub(crate) fn monotone_root(f: impl Fn(f64) -> (f64, f64), lo: f64, hi: f64, x0: f64) -> f64 {
    let f = |x: f64| {
        let (v, d) = f(x);
        (if v.is_nan() { f64::INFINITY } else { v }, d)
    };
    if lo.is_finite() && f(lo).0 >= 0.0 {
        return lo;
    }
    if hi.is_finite() && f(hi).0 <= 0.0 {
        return hi;
    }
    // Bracket the root.
    let mut x = x0.clamp(lo, hi);
    if !x.is_finite() {
        x = 0.0f64.clamp(lo, hi);
    }
    let (fx, _) = f(x);
    let (mut a, mut b);
    if fx == 0.0 {
        return x;
    } else if fx < 0.0 {
        a = x;
        let mut step = 0.05;
        loop {
            let y = (x + step).min(hi);
            if f(y).0 >= 0.0 {
                b = y;
                break;
            }
            a = y;
            step *= 2.0;
        }
    } else {
        b = x;
        let mut step = 0.05;
        loop {
            let y = (x - step).max(lo);
            if f(y).0 <= 0.0 {
                a = y;
                break;
            }
            b = y;
            step *= 2.0;
        }
    }
    // Safeguarded Newton (bisection when Newton leaves the bracket).
    let mut x = 0.5 * (a + b);
    for _ in 0..200 {
        let (fx, dfx) = f(x);
        if fx == 0.0 {
            return x;
        }
        if fx < 0.0 {
            a = x;
        } else {
            b = x;
        }
        let newton = x - fx / dfx;
        let next = if dfx > 0.0 && newton > a && newton < b {
            newton
        } else {
            0.5 * (a + b)
        };
        if (next - x).abs() <= 2.0 * f64::EPSILON * x.abs().max(1e-30)
            || b - a <= 4.0 * f64::EPSILON * x.abs().max(1e-30)
        {
            return next;
        }
        x = next;
    }
    x
}

/// Sweeps both classes until the largest voltage change of a sweep is ≤ `tol`
/// (or `max_sweeps`). `vt` holds node-major voltages (n_nodes × batch) with the
/// clamped entries set; `inj_nodes` / `inj` (batch × k) are per-sample injections.
/// Returns the number of sweeps.
#[allow(clippy::too_many_arguments)]
pub fn sweep(
    net: &Network,
    c: &Compiled,
    parts: &Bipartition,
    vt: &mut [f64],
    batch: usize,
    inj_nodes: &[u32],
    inj: &[f64],
    tol: f64,
    max_sweeps: usize,
) -> Result<usize> {
    let view = node_view(net, c);
    let k = inj_nodes.len();
    // Per-node per-sample injections (node-major), only where present.
    let mut inj_node = vec![u32::MAX; net.n_nodes];
    for (j, &node) in inj_nodes.iter().enumerate() {
        inj_node[node as usize] = j as u32;
    }
    // The fixed part of each node's weighted sum (clamped neighbours, current
    // sources, injections) is the same in every sweep: one matrix product, here.
    let mut fixed = vec![0.0; net.n_nodes * batch];
    let rows: Vec<(u32, Vec<f64>)> = c
        .node_of_free
        .par_iter()
        .map(|&node| {
            let x = node as usize;
            let mut t = vec![view.inj0[x]; batch];
            if inj_node[x] != u32::MAX {
                let j = inj_node[x] as usize;
                for (si, ti) in t.iter_mut().enumerate() {
                    *ti += inj[si * k + j];
                }
            }
            for &(o, g) in &view.res[view.res_ptr[x]..view.res_ptr[x + 1]] {
                if c.free_of_node[o as usize] == NONE {
                    let row = &vt[o as usize * batch..(o as usize + 1) * batch];
                    for (ti, &vo) in t.iter_mut().zip(row) {
                        *ti += g * vo;
                    }
                }
            }
            (node, t)
        })
        .collect();
    for (node, t) in rows {
        fixed[node as usize * batch..(node as usize + 1) * batch].copy_from_slice(&t);
    }
    let mut sweeps = 0;
    loop {
        let mut change = 0.0f64;
        for class in &parts.classes {
            let vt_ref: &[f64] = vt;
            let updates: Vec<(Vec<f64>, f64)> = class
                .par_iter()
                .map(|&node| {
                    let x = node as usize;
                    let (r0, r1) = (view.res_ptr[x], view.res_ptr[x + 1]);
                    let (d0, d1) = (view.dio_ptr[x], view.dio_ptr[x + 1]);
                    let mut s = 0.0;
                    let mut t = fixed[x * batch..(x + 1) * batch].to_vec();
                    for &(o, g) in &view.res[r0..r1] {
                        s += g;
                        if c.free_of_node[o as usize] == NONE {
                            continue;
                        }
                        let row = &vt_ref[o as usize * batch..(o as usize + 1) * batch];
                        for (ti, &vo) in t.iter_mut().zip(row) {
                            *ti += g * vo;
                        }
                    }
                    let dio = &view.dio[d0..d1];
                    let smooth = dio.iter().any(|&(kk, _)| {
                        !matches!(net.dio_model[kk as usize], DiodeModel::Ideal { .. })
                    });
                    let old = &vt_ref[x * batch..(x + 1) * batch];
                    let mut new = vec![0.0; batch];
                    let mut others = vec![0.0; dio.len()];
                    let mut local = 0.0f64;
                    for si in 0..batch {
                        let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
                        for (j, &(kk, is_anode)) in dio.iter().enumerate() {
                            let kk = kk as usize;
                            let o = if is_anode {
                                net.dio_b[kk]
                            } else {
                                net.dio_a[kk]
                            };
                            let vo = vt_ref[o as usize * batch + si];
                            others[j] = vo;
                            if let DiodeModel::Ideal { v_on } = net.dio_model[kk] {
                                if is_anode {
                                    hi = hi.min(vo + v_on);
                                } else {
                                    lo = lo.max(vo - v_on);
                                }
                            }
                        }
                        let xn = if smooth || s == 0.0 {
                            solve_node(net, dio, &others, s, t[si], lo, hi, old[si])
                        } else {
                            (t[si] / s).max(lo).min(hi)
                        };
                        if lo > hi {
                            // Fixed ends force the node both above and below: infeasible.
                            return (vec![f64::NAN; batch], f64::INFINITY);
                        }
                        local = local.max((xn - old[si]).abs());
                        new[si] = xn;
                    }
                    (new, local)
                })
                .collect();
            for (&node, (new, local)) in class.iter().zip(updates) {
                if local.is_infinite() {
                    return Err(Error::Infeasible {
                        diodes: vec![],
                        detail: format!(
                            "ideal diodes to fixed nodes bound node {node} from above below its lower bound"
                        ),
                    });
                }
                change = change.max(local);
                vt[node as usize * batch..(node as usize + 1) * batch].copy_from_slice(&new);
            }
        }
        sweeps += 1;
        if change <= tol {
            return Ok(sweeps);
        }
        if sweeps >= max_sweeps {
            return Err(Error::Convergence {
                iterations: sweeps,
                residual: change,
                detail: "block coordinate descent (layered solver): voltage change per sweep"
                    .into(),
            });
        }
    }
}

/// KCL residuals (currents leaving minus currents injected) of every node for every
/// sample, node-major (n_nodes × batch), counting resistors, smooth diodes, current
/// sources and injections — not ideal diodes, whose currents follow from these.
/// Each branch updates two rows at once, so a batch costs one pass over the branches.
pub fn node_residuals(
    net: &Network,
    vt: &[f64],
    batch: usize,
    inj_nodes: &[u32],
    inj: &[f64],
) -> Vec<f64> {
    let n = net.n_nodes;
    let mut r = vec![0.0; n * batch];
    let mut cur = vec![0.0; batch];
    for k in 0..net.res_g.len() {
        let (a, b, g) = (net.res_a[k] as usize, net.res_b[k] as usize, net.res_g[k]);
        {
            let (va, vb) = (
                &vt[a * batch..(a + 1) * batch],
                &vt[b * batch..(b + 1) * batch],
            );
            for ((c, &x), &y) in cur.iter_mut().zip(va).zip(vb) {
                *c = g * (x - y);
            }
        }
        for (ra, &c) in r[a * batch..(a + 1) * batch].iter_mut().zip(&cur) {
            *ra += c;
        }
        for (rb, &c) in r[b * batch..(b + 1) * batch].iter_mut().zip(&cur) {
            *rb -= c;
        }
    }
    for (k, m) in net.dio_model.iter().enumerate() {
        if matches!(m, DiodeModel::Ideal { .. }) {
            continue;
        }
        let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
        for s in 0..batch {
            let (i, _) = smooth_diode(m, true, vt[a * batch + s], vt[b * batch + s]);
            r[a * batch + s] += i;
            r[b * batch + s] -= i;
        }
    }
    for k in 0..net.is_value.len() {
        let (a, b, i) = (net.is_a[k] as usize, net.is_b[k] as usize, net.is_value[k]);
        for s in 0..batch {
            r[a * batch + s] += i;
            r[b * batch + s] -= i;
        }
    }
    let kk = inj_nodes.len();
    for (j, &node) in inj_nodes.iter().enumerate() {
        for s in 0..batch {
            r[node as usize * batch + s] -= inj[s * kk + j];
        }
    }
    r
}
