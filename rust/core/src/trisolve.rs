//! Triangular solves with a supernodal Cholesky factor, one right-hand side.
//!
//! The ideal-diode iteration repeats single right-hand-side solves with one factor
//! (a Newton step per multiplier update, low-rank corrected steps), so their cost
//! matters next to the factorization's. These are plain loops over faer's supernodal
//! layout ([`Structure`]): per supernode a dense triangular solve of its diagonal
//! block, then a product with the rows below it (four columns at a time, so the
//! scattered rows are touched once per four columns), compiled for AVX2 where the CPU
//! has it. On the 1M-edge lattice (26M values in L) a solve took 58 ms through faer's
//! general solve (`LltRef::solve_in_place_with_conj`) on one thread, 40 ms with these
//! loops on one thread and 22 ms on two.
//!
//! Two threads split the elimination tree into a group of whole subtrees, the path
//! from its last supernode to the root (the top), and the rest ([`Plan`]): the
//! groups' columns are disjoint and meet only in the top's columns. In the forward
//! solve the first group accumulates its updates of the top in a buffer of its own
//! while the second writes them directly, and the buffer is subtracted afterwards;
//! the backward solve does the top first and the groups then only read it. The
//! operations and their order are the same whatever the number of threads, so one
//! thread and two give the same bits.

use crate::factor::Structure;
use crate::simd::with_avx2;

/// How the supernodes are split between two threads. Group A is the supernodes
/// `0..a` (columns `0..ca`), whole subtrees since the supernodes are in postorder;
/// the top is the proper ancestors of supernode `a - 1` (a path to the root, every
/// one at or beyond `a`); group B is every other supernode, in the ranges `b`. A's
/// updates reach its own columns and the top's; B's reach its own and the top's. So
/// in the forward solve B writes columns `ca..` directly while A subtracts its
/// updates to the top in a buffer; the backward solve does the top first, then A
/// (reading a copy of the top's values) and B.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    a: usize,
    ca: usize,
    top: Vec<usize>,
    b: Vec<std::ops::Range<usize>>,
}

impl Plan {
    /// The split that minimises the two-thread time max(work A, work B) + work of
    /// the top, counting the values of L read; the trivial plan (everything in B,
    /// one thread) when the supernodes are not in postorder or no split gains.
    pub(crate) fn new(st: &Structure) -> Self {
        let ns = st.n_super();
        let serial = Plan {
            a: 0,
            ca: 0,
            top: Vec::new(),
            b: std::iter::once(0..ns).collect(),
        };
        let work: Vec<f64> = (0..ns)
            .map(|s| {
                let (nc, pl) = st.dims(s);
                (nc * (nc + pl)) as f64
            })
            .collect();
        let parent = |s: usize| match st.parent[s] {
            u32::MAX => None,
            p => Some(p as usize),
        };
        if (0..ns).any(|s| parent(s).is_some_and(|p| p <= s)) {
            return serial;
        }
        // Postorder: every subtree is the contiguous range first[s]..=s.
        let mut first: Vec<usize> = (0..ns).collect();
        let mut size = vec![1usize; ns];
        for s in 0..ns {
            if let Some(p) = parent(s) {
                first[p] = first[p].min(first[s]);
                size[p] += size[s];
            }
        }
        if (0..ns).any(|s| s + 1 - first[s] != size[s]) {
            return serial;
        }
        // Work of each supernode's proper ancestors.
        let mut above = vec![0.0f64; ns];
        for s in (0..ns).rev() {
            if let Some(p) = parent(s) {
                above[s] = above[p] + work[p];
            }
        }
        let total: f64 = work.iter().sum();
        let (mut best, mut best_a) = (total, 0);
        let mut wa = 0.0;
        for a in 1..ns {
            wa += work[a - 1];
            let wt = above[a - 1];
            let time = wa.max(total - wa - wt) + wt;
            if time < best {
                (best, best_a) = (time, a);
            }
        }
        // Two threads must save at least a tenth, or the combination is not worth it.
        if best_a == 0 || best > 0.9 * total {
            return serial;
        }
        let a = best_a;
        let mut top = Vec::new();
        let mut p = parent(a - 1);
        while let Some(s) = p {
            top.push(s);
            p = parent(s);
        }
        // The split relies on every row below the first group's columns being a
        // column of the top (true of an elimination tree's patterns): checked, as a
        // violation would drop updates silently.
        let ca = st.begin[a];
        let mut in_top = vec![false; st.begin[ns] - ca];
        for &t in &top {
            in_top[st.begin[t] - ca..st.begin[t + 1] - ca].fill(true);
        }
        let outside = (0..a).any(|s| {
            st.pattern(s)
                .iter()
                .any(|&r| r as usize >= ca && !in_top[r as usize - ca])
        });
        if outside {
            return serial;
        }
        let mut b = Vec::new();
        let mut from = a;
        for &t in &top {
            if t > from {
                b.push(from..t);
            }
            from = t + 1;
        }
        if from < ns {
            b.push(from..ns);
        }
        Plan { a, ca, top, b }
    }

    /// Whether the plan splits the work between two groups.
    pub(crate) fn is_split(&self) -> bool {
        self.a > 0
    }

    /// Threads worth using: one when there is nothing to split.
    fn threads(&self, allowed: usize) -> usize {
        if self.is_split() {
            allowed
        } else {
            1
        }
    }
}

/// Scratch of the solves: group A's buffer of the top, a product's rows per group.
#[derive(Default)]
pub(crate) struct Scratch {
    ta: Vec<f64>,
    tmp_a: Vec<f64>,
    tmp_b: Vec<f64>,
}

/// Runs `f` and `g`, on two threads when allowed (the same arithmetic either way).
fn both(threads: usize, f: impl FnOnce() + Send, g: impl FnOnce() + Send) {
    if threads >= 2 {
        rayon::join(f, g);
    } else {
        f();
        g();
    }
}

/// Solves L y = x in place (`x` in the factor's permuted order).
pub(crate) fn l_solve(
    st: &Structure,
    plan: &Plan,
    l: &[f64],
    x: &mut [f64],
    threads: usize,
    sc: &mut Scratch,
) {
    let n = st.begin[st.n_super()];
    debug_assert_eq!(x.len(), n);
    let ca = plan.ca;
    let Scratch { ta, tmp_a, tmp_b } = sc;
    let (xa, xb) = x.split_at_mut(ca);
    // The first group writes only the top's entries of its buffer: zero those (a plan
    // without a first group has no top either, and its buffer stays empty).
    ta.resize(if plan.a > 0 { n - ca } else { 0 }, 0.0);
    for &s in &plan.top {
        ta[st.begin[s] - ca..st.begin[s + 1] - ca].fill(0.0);
    }
    both(
        plan.threads(threads),
        || forward(st, l, 0..plan.a, xa, 0, ta, ca, tmp_a),
        || {
            for r in &plan.b {
                forward(st, l, r.clone(), xb, ca, &mut [], n, tmp_b);
            }
        },
    );
    for &s in &plan.top {
        for c in st.begin[s]..st.begin[s + 1] {
            xb[c - ca] -= ta[c - ca];
        }
    }
    for &s in &plan.top {
        forward(st, l, s..s + 1, xb, ca, &mut [], n, tmp_a);
    }
}

/// Solves Lᵀ x = y in place (`x` in the factor's permuted order).
pub(crate) fn lt_solve(
    st: &Structure,
    plan: &Plan,
    l: &[f64],
    x: &mut [f64],
    threads: usize,
    sc: &mut Scratch,
) {
    let n = st.begin[st.n_super()];
    debug_assert_eq!(x.len(), n);
    let ca = plan.ca;
    let Scratch { ta, tmp_a, tmp_b } = sc;
    let (xa, xb) = x.split_at_mut(ca);
    for &s in plan.top.iter().rev() {
        backward(st, l, s..s + 1, xb, ca, &[], n, tmp_b);
    }
    // The first group reads the top's values from a copy while the other works on
    // its columns.
    ta.resize(if plan.a > 0 { n - ca } else { 0 }, 0.0);
    for &s in &plan.top {
        let cols = st.begin[s] - ca..st.begin[s + 1] - ca;
        ta[cols.clone()].copy_from_slice(&xb[cols]);
    }
    let ta = &*ta;
    both(
        plan.threads(threads),
        || backward(st, l, 0..plan.a, xa, 0, ta, ca, tmp_a),
        || {
            for r in plan.b.iter().rev() {
                backward(st, l, r.clone(), xb, ca, &[], n, tmp_b);
            }
        },
    );
}

with_avx2! {
    /// Forward substitution over the supernodes `range`, whose columns start at `off`
    /// in `x`; the updates of rows at or beyond `far` are accumulated in `t` (index
    /// `row - far`, to be subtracted by the caller) instead of applied to `x`.
    fn forward / forward_avx2 / forward_body(
        st: &Structure,
        l: &[f64],
        range: std::ops::Range<usize>,
        x: &mut [f64],
        off: usize,
        t: &mut [f64],
        far: usize,
        tmp: &mut Vec<f64>,
    ) {
        for s in range {
            let c0 = st.begin[s] - off;
            let (nr, blk, pat) = st.block(s, l);
            let pl = pat.len();
            let nc = nr - pl;
            if nc == 1 && pat.last().is_none_or(|&r| (r as usize) < far) {
                // One column whose rows are all in x (most supernodes of a lattice).
                let x0 = x[c0] / blk[0];
                x[c0] = x0;
                if x0 != 0.0 {
                    for (&r, &li) in pat.iter().zip(&blk[1..]) {
                        x[r as usize - off] -= li * x0;
                    }
                }
                continue;
            }
            // Diagonal block, column by column.
            for j in 0..nc {
                let col = &blk[j * nr..(j + 1) * nr];
                let xj = x[c0 + j] / col[j];
                x[c0 + j] = xj;
                if xj != 0.0 {
                    for (xi, &li) in x[c0 + j + 1..c0 + nc].iter_mut().zip(&col[j + 1..nc]) {
                        *xi -= li * xj;
                    }
                }
            }
            if pl == 0 {
                continue;
            }
            // The rows below: tmp = L21 x_s, four columns at a time.
            tmp.clear();
            tmp.resize(pl, 0.0);
            let mut j = 0;
            while j + 4 <= nc {
                let (x0, x1, x2, x3) = (x[c0 + j], x[c0 + j + 1], x[c0 + j + 2], x[c0 + j + 3]);
                let b0 = &blk[j * nr + nc..(j + 1) * nr];
                let b1 = &blk[(j + 1) * nr + nc..(j + 2) * nr];
                let b2 = &blk[(j + 2) * nr + nc..(j + 3) * nr];
                let b3 = &blk[(j + 3) * nr + nc..(j + 4) * nr];
                for i in 0..pl {
                    tmp[i] += ((b0[i] * x0 + b1[i] * x1) + b2[i] * x2) + b3[i] * x3;
                }
                j += 4;
            }
            while j < nc {
                let xj = x[c0 + j];
                let b0 = &blk[j * nr + nc..(j + 1) * nr];
                for i in 0..pl {
                    tmp[i] += b0[i] * xj;
                }
                j += 1;
            }
            let split = pat.partition_point(|&r| (r as usize) < far);
            for (&r, &v) in pat[..split].iter().zip(&tmp[..split]) {
                x[r as usize - off] -= v;
            }
            for (&r, &v) in pat[split..].iter().zip(&tmp[split..]) {
                t[r as usize - far] += v;
            }
        }
    }
}

with_avx2! {
    /// Backward substitution over the supernodes `range` in reverse, whose columns
    /// start at `off` in `x`; the rows at or beyond `far` are read from `t` (index
    /// `row - far`).
    fn backward / backward_avx2 / backward_body(
        st: &Structure,
        l: &[f64],
        range: std::ops::Range<usize>,
        x: &mut [f64],
        off: usize,
        t: &[f64],
        far: usize,
        g: &mut Vec<f64>,
    ) {
        for s in range.rev() {
            let c0 = st.begin[s] - off;
            let (nr, blk, pat) = st.block(s, l);
            let pl = pat.len();
            let nc = nr - pl;
            if nc == 1 && pat.last().is_none_or(|&r| (r as usize) < far) {
                let mut sum = 0.0;
                for (&r, &li) in pat.iter().zip(&blk[1..]) {
                    sum += li * x[r as usize - off];
                }
                x[c0] = (x[c0] - sum) / blk[0];
                continue;
            }
            if pl > 0 {
                g.clear();
                g.extend(pat.iter().map(|&r| {
                    let r = r as usize;
                    if r < far {
                        x[r - off]
                    } else {
                        t[r - far]
                    }
                }));
                // x_s −= L21ᵀ g, four columns per pass over g.
                let mut j = 0;
                while j + 4 <= nc {
                    let d = dot4(
                        [
                            &blk[j * nr + nc..(j + 1) * nr],
                            &blk[(j + 1) * nr + nc..(j + 2) * nr],
                            &blk[(j + 2) * nr + nc..(j + 3) * nr],
                            &blk[(j + 3) * nr + nc..(j + 4) * nr],
                        ],
                        g,
                    );
                    for (k, d) in d.into_iter().enumerate() {
                        x[c0 + j + k] -= d;
                    }
                    j += 4;
                }
                while j < nc {
                    x[c0 + j] -= dot(&blk[j * nr + nc..(j + 1) * nr], g);
                    j += 1;
                }
            }
            for j in (0..nc).rev() {
                let col = &blk[j * nr..(j + 1) * nr];
                let s = x[c0 + j] - dot(&col[j + 1..nc], &x[c0 + j + 1..c0 + nc]);
                x[c0 + j] = s / col[j];
            }
        }
    }
}

/// Σ a_i b_i in four lanes (fixed order: the same bits with and without AVX2).
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (p, q) in ca.zip(cb) {
        for k in 0..4 {
            acc[k] += p[k] * q[k];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (p, q) in ra.iter().zip(rb) {
        s += p * q;
    }
    s
}

/// The four dot products cᵢ · g in one pass over g, each in four lanes like [`dot`]
/// (the same bits as four calls of it).
#[inline(always)]
fn dot4(c: [&[f64]; 4], g: &[f64]) -> [f64; 4] {
    let n = g.len();
    let [c0, c1, c2, c3] = c;
    let (c0, c1, c2, c3) = (&c0[..n], &c1[..n], &c2[..n], &c3[..n]);
    let (mut a0, mut a1, mut a2, mut a3) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
    let body = n / 4 * 4;
    for ((((p0, p1), p2), p3), q) in c0[..body]
        .chunks_exact(4)
        .zip(c1[..body].chunks_exact(4))
        .zip(c2[..body].chunks_exact(4))
        .zip(c3[..body].chunks_exact(4))
        .zip(g[..body].chunks_exact(4))
    {
        for k in 0..4 {
            a0[k] += p0[k] * q[k];
            a1[k] += p1[k] * q[k];
            a2[k] += p2[k] * q[k];
            a3[k] += p3[k] * q[k];
        }
    }
    let acc = [a0, a1, a2, a3];
    let mut out = [0.0; 4];
    for (c, (o, a)) in [c0, c1, c2, c3].iter().zip(out.iter_mut().zip(&acc)) {
        let mut s = (a[0] + a[1]) + (a[2] + a[3]);
        for i in body..n {
            s += c[i] * g[i];
        }
        *o = s;
    }
    out
}

#[cfg(test)]
#[path = "tests/trisolve_tests.rs"]
mod tests;
