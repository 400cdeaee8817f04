//! Criterion benches of the ohmflow core, stage by stage, on 2D lattices.
//!
//! Run: `cargo bench -p ohmflow-core --bench core` (add `-- <filter>` to run a subset,
//! e.g. `-- factor`). Lattice sides come from `OHMFLOW_BENCH_SIDES` (comma-separated,
//! default `100,300`: about 20k and 180k edges; `708` is the 1M-edge lattice of the
//! comparison in `benches/compare.py`). `OHMFLOW_BENCH_SAMPLES` sets criterion's sample
//! count (default 10).
//!
//! Stages (each group is named `<stage>/<edges>`):
//! * `compile`: `Network::compiled()` on a network never compiled — free-node
//!   numbering, floating-node check, CSC pattern of the reduced Laplacian and the
//!   symbolic Cholesky analysis (AMD ordering, elimination tree, supernodes).
//! * `symbolic_only`: faer's symbolic analysis alone on the compiled pattern (the part
//!   of `compile` spent in ordering and analysis).
//! * `numeric_factor`: one numeric Cholesky factorization on the cached analysis.
//! * `triangular_solve`: one forward/backward solve with an existing factor.
//! * `factor_solve`: new conductances, then `solve_batch` (numeric factor + solve +
//!   KCL check / refinement): what `net.conductances = g; net.solve()` costs.
//! * `cached_solve`: `solve_batch` again with the factor cached in the network.
//! * `batch16`: 16 input samples sharing one factor.
//! * `ideal_active_set`: the lattice with 10% of its edges given ideal diodes in
//!   parallel (augmented-Lagrangian active set on the fixed pattern), cold start.
//! * `shockley_newton`: the lattice with 10% Shockley diodes (damped Newton).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, CholeskySymbolicParams, SymmetricOrdering,
};
use faer::sparse::SymbolicSparseColMatRef;
use faer::Side;
use ohmflow_core::factor::Factor;
use ohmflow_core::{solve_batch, Network, Parallelism, SolveOptions};
use std::hint::black_box;
use std::time::Duration;

mod common;
use common::{lattice, Diodes};

fn sides() -> Vec<usize> {
    std::env::var("OHMFLOW_BENCH_SIDES")
        .ok()
        .map(|s| {
            s.split(',')
                .filter_map(|x| x.trim().parse().ok())
                .filter(|&x: &usize| x >= 2)
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![100, 300])
}

fn samples() -> usize {
    std::env::var("OHMFLOW_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(10)
}

fn edges(side: usize) -> u64 {
    (2 * side * (side - 1)) as u64
}

/// Values of the reduced Laplacian on the compiled pattern (what the solver stamps).
fn matrix_values(net: &Network) -> Vec<f64> {
    let c = net.compiled().expect("compiled");
    let mut values = vec![0.0; c.nnz()];
    for (s, &g) in c.res_slots.iter().zip(net.conductances()) {
        for (k, &slot) in s.iter().enumerate() {
            if slot != u32::MAX {
                values[slot as usize] += if k == 2 { -g } else { g };
            }
        }
    }
    values
}

fn group_name(stage: &str, side: usize) -> String {
    format!("{stage}/{}", edges(side))
}

fn bench_structure(c: &mut Criterion) {
    for side in sides() {
        let fresh = lattice(side, Diodes::None, false, 1);
        let name = group_name("compile", side);
        let mut g = c.benchmark_group(name);
        g.sample_size(samples())
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .throughput(Throughput::Elements(edges(side)));
        // A clone of a never-compiled network is itself uncompiled.
        g.bench_function("Network::compiled", |bch| {
            bch.iter_batched(
                || fresh.clone(),
                |net| black_box(net.compiled().expect("compile").n_free),
                BatchSize::LargeInput,
            )
        });
        let compiled = fresh.compiled().expect("compile");
        g.bench_function("symbolic_only(AMD)", |bch| {
            bch.iter(|| {
                let n = compiled.n_free;
                let pattern = SymbolicSparseColMatRef::new_checked(
                    n,
                    n,
                    &compiled.col_ptr,
                    None,
                    &compiled.row_idx,
                );
                black_box(
                    factorize_symbolic_cholesky(
                        pattern,
                        Side::Lower,
                        SymmetricOrdering::Amd,
                        CholeskySymbolicParams::default(),
                    )
                    .expect("symbolic")
                    .len_val(),
                )
            })
        });
        g.finish();
    }
}

fn bench_linear(c: &mut Criterion) {
    let opts = SolveOptions::default();
    for side in sides() {
        let mut net = lattice(side, Diodes::None, false, 2);
        let comp = net.compiled().expect("compile");
        let values = matrix_values(&net);
        let name = group_name("linear", side);
        let mut g = c.benchmark_group(name);
        g.sample_size(samples())
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .throughput(Throughput::Elements(edges(side)));

        for (label, par) in [
            ("numeric_factor(default threads)", Parallelism::default()),
            ("numeric_factor(serial)", Parallelism::Serial),
        ] {
            let mut f = Factor::new(&comp, par);
            g.bench_function(label, |bch| {
                bch.iter(|| f.factorize(black_box(&values)).expect("factor"))
            });
        }
        let mut f = Factor::new(&comp, Parallelism::default());
        f.factorize(&values).expect("factor");
        let rhs0: Vec<f64> = (0..comp.n_free).map(|i| (i % 7) as f64 - 3.0).collect();
        let mut rhs = rhs0.clone();
        g.bench_function("triangular_solve", |bch| {
            bch.iter(|| {
                rhs.copy_from_slice(&rhs0);
                f.solve_in_place(black_box(&mut rhs));
            })
        });

        // New conductances each iteration: numeric factor + solve + KCL check.
        let g0 = net.conductances().to_vec();
        let g1: Vec<f64> = g0.iter().map(|x| x * 1.01).collect();
        let mut flip = false;
        g.bench_function("factor_solve(solve_batch)", |bch| {
            bch.iter(|| {
                flip = !flip;
                net.set_conductances(if flip { &g1 } else { &g0 })
                    .expect("conductances");
                black_box(solve_batch(&net, &[], 1, None, None, &opts).expect("solve"))
            })
        });
        solve_batch(&net, &[], 1, None, None, &opts).expect("solve");
        g.bench_function("cached_solve(solve_batch)", |bch| {
            bch.iter(|| black_box(solve_batch(&net, &[], 1, None, None, &opts).expect("solve")))
        });
        let inet = lattice(side, Diodes::None, true, 2);
        let x: Vec<f64> = (0..16).map(|k| 0.1 * k as f64).collect();
        solve_batch(&inet, &x, 16, None, None, &opts).expect("solve");
        g.bench_function("batch16_cached(solve_batch)", |bch| {
            bch.iter(|| black_box(solve_batch(&inet, &x, 16, None, None, &opts).expect("solve")))
        });
        g.finish();
    }
}

fn bench_diodes(c: &mut Criterion) {
    let opts = SolveOptions::default();
    for side in sides() {
        let name = group_name("diodes", side);
        let mut g = c.benchmark_group(name);
        g.sample_size(samples())
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(5))
            .throughput(Throughput::Elements(edges(side)));
        let ideal = lattice(side, Diodes::Ideal, false, 3);
        ideal.compiled().expect("compile");
        g.bench_function("ideal_active_set(10%)", |bch| {
            bch.iter(|| black_box(solve_batch(&ideal, &[], 1, None, None, &opts).expect("solve")))
        });
        let shock = lattice(side, Diodes::Shockley, false, 3);
        shock.compiled().expect("compile");
        g.bench_function("shockley_newton(10%)", |bch| {
            bch.iter(|| black_box(solve_batch(&shock, &[], 1, None, None, &opts).expect("solve")))
        });
        g.finish();
        // Iteration counts, to read the times above.
        let si = solve_batch(&ideal, &[], 1, None, None, &opts).expect("solve");
        let ss = solve_batch(&shock, &[], 1, None, None, &opts).expect("solve");
        eprintln!(
            "  [{} edges] ideal: {} iterations, {} factorizations; shockley: {} iterations, {} factorizations",
            edges(side),
            si.iterations[0],
            si.factorizations[0],
            ss.iterations[0],
            ss.factorizations[0]
        );
    }
}

criterion_group!(benches, bench_structure, bench_linear, bench_diodes);
criterion_main!(benches);
