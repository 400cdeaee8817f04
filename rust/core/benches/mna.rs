//! Criterion benches of the MNA (sparse LU) path: networks with gyrators and ideal
//! diodes, as the circuits realising monotone operator equilibrium networks.
//!
//! Run: `cargo bench -p ohmflow-core --bench mna`. Sizes from `OHMFLOW_MNA_NODES`
//! (comma-separated, default `3000`).
//!
//! The network (`mon_like`): a √n × √n lattice of nodes, each with a resistor to
//! ground (0.5–2 S), an ideal diode to ground (v_on = 0: a ReLU unit) and a current
//! source (the bias, ±1 A); on every lattice edge a resistor (0.05–0.2 S) and a
//! gyrator (±0.5 S, grounded ports). Random graphs (no locality) fill in almost
//! densely under any ordering: measured 0.5 s per LU at 3000 nodes with 2 coupling
//! resistors and 3 gyrators per node between random pairs.
//!
//! Groups:
//! * `mna_compile/<n>`: free-node analysis and the symbolic LU (COLAMD ordering).
//! * `mna_linear/<n>`: the same network without diodes (one LU, one solve).
//! * `mna_ideal/<n>`: with the ideal diodes: active-set (semismooth Newton) solve,
//!   cold start, one refactorization per active-set change.
//! * `cholesky_reference/<n>`: the same network without its gyrators, solved by the
//!   Cholesky / augmented-Lagrangian path (for scale).
//! * `mna_ideal_batch8/<n>`: 8 samples (bias vectors) in parallel.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ohmflow_core::{solve_batch, DiodeModel, Injections, Network, SolveOptions};
use std::hint::black_box;
use std::time::Duration;

mod common;
use common::Rng;

fn mon_like(n: usize, diodes: bool, gyrators: bool, seed: u64) -> Network {
    let side = (n as f64).sqrt().round() as usize;
    let n = side * side;
    let mut rng = Rng(seed);
    let mut net = Network::new();
    net.add_nodes(n).unwrap();
    let nodes: Vec<usize> = (1..=n).collect();
    let g: Vec<f64> = (0..n).map(|_| rng.uniform(0.5, 2.0)).collect();
    net.add_resistors(&nodes, &vec![0; n], &g).unwrap();
    let bias: Vec<f64> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    net.add_current_sources(&vec![0; n], &nodes, &bias).unwrap();
    // Lattice edges: right and down neighbours.
    let (mut a, mut b) = (vec![], vec![]);
    for r in 0..side {
        for c in 0..side {
            let x = 1 + r * side + c;
            if c + 1 < side {
                a.push(x);
                b.push(x + 1);
            }
            if r + 1 < side {
                a.push(x);
                b.push(x + side);
            }
        }
    }
    let gc: Vec<f64> = a.iter().map(|_| rng.uniform(0.05, 0.2)).collect();
    net.add_resistors(&a, &b, &gc).unwrap();
    if gyrators {
        let gg: Vec<f64> = a.iter().map(|_| rng.uniform(-0.5, 0.5)).collect();
        let zeros = vec![0; a.len()];
        net.add_gyrators(&a, &zeros, &b, &zeros, &gg).unwrap();
    }
    if diodes {
        net.add_diodes(
            &nodes,
            &vec![0; n],
            &vec![DiodeModel::Ideal { v_on: 0.0 }; n],
        )
        .unwrap();
    }
    net
}

fn sizes() -> Vec<usize> {
    std::env::var("OHMFLOW_MNA_NODES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![3000])
}

fn bench(c: &mut Criterion) {
    let opts = SolveOptions::default();
    for n in sizes() {
        let mut g = c.benchmark_group(format!("mna_compile/{n}"));
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        g.bench_function("compile", |bch| {
            bch.iter_batched(
                || mon_like(n, true, true, 1),
                |net| black_box(net.mna_compiled().unwrap()),
                BatchSize::LargeInput,
            )
        });
        g.finish();
        let linear = mon_like(n, false, true, 1);
        let _ = solve_batch(&linear, &[], 1, None, None, &opts).unwrap();
        let mut g = c.benchmark_group(format!("mna_linear/{n}"));
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        g.bench_function("solve", |bch| {
            bch.iter(|| black_box(solve_batch(&linear, &[], 1, None, None, &opts).unwrap()))
        });
        g.finish();
        let net = mon_like(n, true, true, 1);
        let sol = solve_batch(&net, &[], 1, None, None, &opts).unwrap();
        let on = sol.diode_currents.iter().filter(|&&x| x > 0.0).count();
        eprintln!(
            "mna_ideal/{n}: {} iterations, {} factorizations, {on} of {n} diodes conducting, KCL residual {:.2e}",
            sol.iterations[0], sol.factorizations[0], sol.kcl_residual[0]
        );
        let mut g = c.benchmark_group(format!("mna_ideal/{n}"));
        g.sample_size(10).measurement_time(Duration::from_secs(10));
        g.bench_function("solve", |bch| {
            bch.iter(|| black_box(solve_batch(&net, &[], 1, None, None, &opts).unwrap()))
        });
        g.finish();
        // 8 samples: extra bias currents injected at every node.
        // The same network without gyrators goes through the Cholesky path.
        let sym = mon_like(n, true, false, 1);
        let sol = solve_batch(&sym, &[], 1, None, None, &opts).unwrap();
        eprintln!(
            "cholesky_reference/{n}: {} iterations, {} factorizations",
            sol.iterations[0], sol.factorizations[0]
        );
        let mut g = c.benchmark_group(format!("cholesky_reference/{n}"));
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        g.bench_function("solve", |bch| {
            bch.iter(|| black_box(solve_batch(&sym, &[], 1, None, None, &opts).unwrap()))
        });
        g.finish();
        let n = net.n_nodes() - 1;
        let nodes: Vec<u32> = (1..=n as u32).collect();
        let mut rng = Rng(9);
        let vals: Vec<f64> = (0..8 * n).map(|_| rng.uniform(-0.5, 0.5)).collect();
        let mut g = c.benchmark_group(format!("mna_ideal_batch8/{n}"));
        g.sample_size(10).measurement_time(Duration::from_secs(10));
        g.bench_function("solve", |bch| {
            bch.iter(|| {
                let inj = Injections {
                    nodes: &nodes,
                    values: &vals,
                };
                black_box(solve_batch(&net, &[], 8, None, Some(inj), &opts).unwrap())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
