//! The supernodal triangular solves against the matrix they solve (a sparse
//! product from the compiled pattern, independent of the factor) and against faer's
//! own solve, with one and two threads.

use crate::compile::{stamp, Compiled};
use crate::factor::{Factor, Parallelism};
use crate::network::{Network, SourceValue};
use crate::test_util::{grid_edges, Rng};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::sparse::linalg::cholesky::LltRef;
use faer::{Conj, MatMut, Par};

/// A side × side lattice of random conductances (spread over four decades), clamped
/// at one corner, with `extra` random long-range resistors; its compiled analysis and
/// matrix values.
fn lattice(side: usize, extra: usize, seed: u64) -> (Compiled, Vec<f64>) {
    let mut rng = Rng(seed);
    let mut net = Network::new();
    let first = net.add_nodes(side * side).unwrap();
    let (mut a, mut b) = grid_edges(first, side);
    for _ in 0..extra {
        let (x, y) = (rng.below(side * side), rng.below(side * side));
        if x != y {
            a.push(first + x);
            b.push(first + y);
        }
    }
    let g: Vec<f64> = (0..a.len()).map(|_| rng.log_range(1e-2, 1e2)).collect();
    net.add_resistors(&a, &b, &g).unwrap();
    net.add_voltage_source(first, SourceValue::Fixed(1.0))
        .unwrap();
    let c = Compiled::new(&net).unwrap();
    let mut values = vec![0.0; c.nnz()];
    for (s, &w) in c.res_slots.iter().zip(&g) {
        stamp(&mut values, s, w);
    }
    (c, values)
}

/// K x from the lower triangle stored in `c`'s pattern.
fn matvec(c: &Compiled, values: &[f64], x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; c.n_free];
    for j in 0..c.n_free {
        let entries = c.col_ptr[j] as usize..c.col_ptr[j + 1] as usize;
        for (&i, &v) in c.row_idx[entries.clone()].iter().zip(&values[entries]) {
            let i = i as usize;
            y[i] += v * x[j];
            if i != j {
                y[j] += v * x[i];
            }
        }
    }
    y
}

fn rhs(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed);
    (0..n).map(|_| rng.range(-1.0, 1.0)).collect()
}

/// Solves with `threads`, checks K x = b to 1e-12 relative to |K| |x|, and returns x.
fn solve_checked(c: &Compiled, values: &[f64], b: &[f64], threads: usize) -> Vec<f64> {
    let mut f = Factor::new(c, Parallelism::Threads(threads));
    f.factorize(values).unwrap();
    let mut x = b.to_vec();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| f.solve_in_place(&mut x));
    let kx = matvec(c, values, &x);
    let absk: Vec<f64> = values.iter().map(|v| v.abs()).collect();
    let scale = matvec(c, &absk, &x.iter().map(|v| v.abs()).collect::<Vec<_>>());
    for i in 0..c.n_free {
        let err = (kx[i] - b[i]).abs();
        assert!(
            err <= 1e-12 * scale[i].max(b[i].abs()),
            "row {i}: K x = {} vs b = {}",
            kx[i],
            b[i]
        );
    }
    x
}

#[test]
fn solves_match_the_matrix_and_faer() {
    // 70 × 70: supernodal; 12 × 12 with long-range edges: simplicial or small supernodes.
    let (mut kinds, mut plans) = (Vec::new(), Vec::new());
    for (side, extra, seed) in [(70, 0, 1), (70, 300, 2), (12, 40, 3), (3, 0, 4)] {
        let (c, values) = lattice(side, extra, seed);
        kinds.push(matches!(
            c.symbolic.as_ref().unwrap().raw(),
            faer::sparse::linalg::cholesky::SymbolicCholeskyRaw::Supernodal(_)
        ));
        let mut f = Factor::new(&c, Parallelism::Serial);
        f.factorize(&values).unwrap();
        plans.push(f.layout().1.is_split());
        let b = rhs(c.n_free, seed + 10);
        let x1 = solve_checked(&c, &values, &b, 1);
        let x2 = solve_checked(&c, &values, &b, 2);
        // One thread and two: the same operations in the same order.
        assert!(
            x1.iter().zip(&x2).all(|(p, q)| p.to_bits() == q.to_bits()),
            "side {side}"
        );
        // faer's general solve (a different implementation) agrees to rounding.
        let symbolic = c.symbolic.as_ref().unwrap();
        let mut f = Factor::new(&c, Parallelism::Serial);
        f.factorize(&values).unwrap();
        let llt = LltRef::<'_, u32, f64>::new(symbolic, f.l_values());
        let mut y = b.clone();
        let mut mem = MemBuffer::new(symbolic.solve_in_place_scratch::<f64>(1, Par::Seq));
        llt.solve_in_place_with_conj(
            Conj::No,
            MatMut::from_column_major_slice_mut(&mut y, c.n_free, 1),
            Par::Seq,
            MemStack::new(&mut mem),
        );
        let xmax = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (p, q) in x1.iter().zip(&y) {
            assert!(
                (p - q).abs() <= 1e-10 * xmax,
                "side {side}: {p} vs faer {q}"
            );
        }
    }
    // Both factor layouts, and both a split plan and the one-group fallback, were used.
    assert!(
        kinds.contains(&true) && kinds.contains(&false),
        "supernodal: {kinds:?}"
    );
    assert!(
        plans.contains(&true) && plans.contains(&false),
        "split: {plans:?}"
    );
}

#[test]
fn plan_splits_a_lattice_into_whole_subtrees() {
    let (c, values) = lattice(60, 0, 5);
    let mut f = Factor::new(&c, Parallelism::Serial);
    f.factorize(&values).unwrap();
    let layout = f.layout();
    let (st, plan) = &*layout;
    let ns = st.n_super();
    assert!(plan.is_split(), "no split: {plan:?}");
    assert_eq!(plan.ca, st.begin[plan.a]);
    let group = |x: usize| {
        if x < plan.a {
            0
        } else if plan.top.contains(&x) {
            2
        } else {
            1
        }
    };
    // B's ranges and the top cover a.. exactly once.
    let mut covered: Vec<usize> = plan.b.iter().flat_map(|r| r.clone()).collect();
    covered.extend(&plan.top);
    covered.sort_unstable();
    assert_eq!(covered, (plan.a..ns).collect::<Vec<_>>());
    // Every ancestor of a group's supernode is in the same group or in the top, and
    // the top is a path of ancestors.
    for s in 0..ns {
        let mut p = st.parent[s];
        while p != u32::MAX {
            let g = group(p as usize);
            assert!(
                g == group(s) || g == 2,
                "supernode {s}'s ancestor {p} is in the other group"
            );
            p = st.parent[p as usize];
        }
    }
    // Two threads at least 1.6x faster by the work count on a lattice.
    let work = |s: usize| {
        let (nc, pl) = st.dims(s);
        (nc * (nc + pl)) as f64
    };
    let wa: f64 = (0..ns).filter(|&s| group(s) == 0).map(work).sum();
    let wb: f64 = (0..ns).filter(|&s| group(s) == 1).map(work).sum();
    let wt: f64 = (0..ns).filter(|&s| group(s) == 2).map(work).sum();
    assert!(
        wa.max(wb) + wt <= (wa + wb + wt) / 1.6,
        "shares {wa} {wb} {wt}"
    );
}

#[test]
fn sparse_right_hand_sides_and_each_triangle() {
    // L y = e_i, then Lᵀ x = y: x = K⁻¹ e_i in permuted order, checked by K x.
    let (c, values) = lattice(40, 50, 6);
    let mut f = Factor::new(&c, Parallelism::Threads(2));
    f.factorize(&values).unwrap();
    let (fwd, inv) = f.perm();
    for i in [0, c.n_free / 2, c.n_free - 1] {
        let mut y = vec![0.0; c.n_free];
        let pi = inv.map_or(i, |p| p[i] as usize);
        y[pi] = 1.0;
        f.l_solve(&mut y);
        f.lt_solve(&mut y);
        let mut x = vec![0.0; c.n_free];
        for (k, &yk) in y.iter().enumerate() {
            x[fwd.map_or(k, |p| p[k] as usize)] = yk;
        }
        let kx = matvec(&c, &values, &x);
        for (j, &v) in kx.iter().enumerate() {
            let e = if j == i { 1.0 } else { 0.0 };
            assert!((v - e).abs() < 1e-10, "column {i}, row {j}: {v}");
        }
    }
}
