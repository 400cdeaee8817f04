//! The ideal-diode lattice of `benches/compare.py` (c), solved from Rust: times of the
//! ideal solve against the linear one (new conductances + factor + solve) on the same
//! lattice, with iteration and factorization counts. For profiling (`perf record`).
//!
//! Run: `cargo run --release -p ohmflow-core --example ideal_lattice -- 708 3`
//! (lattice side, repeats; `--ideal-only` skips the linear solve). `OHMFLOW_RHO`
//! overrides the augmented-Lagrangian penalty (`SolveOptions::rho`, default 1e4).

use ohmflow_core::{solve_batch, Network, SolveOptions};
use std::time::Instant;

#[path = "../benches/common/mod.rs"]
mod common;
use common::Diodes;

/// The benches' lattice (`benches/common`): 10% ideal diodes, or none.
fn lattice(side: usize, ideal: bool, seed: u64) -> Network {
    let diodes = if ideal { Diodes::Ideal } else { Diodes::None };
    common::lattice(side, diodes, false, seed)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let side: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(300);
    let repeat: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let only_ideal = args.iter().any(|a| a == "--ideal-only");
    let mut opts = SolveOptions::default();
    if let Some(r) = std::env::var("OHMFLOW_RHO")
        .ok()
        .and_then(|x| x.parse().ok())
    {
        opts.rho = r;
    }
    let ideal = lattice(side, true, 3);
    ideal.compiled().expect("compile");
    let mut lin = lattice(side, false, 3);
    lin.compiled().expect("compile");
    let g: Vec<f64> = lin.conductances().to_vec();
    let mut t_lin = f64::INFINITY;
    if !only_ideal {
        for r in 0..repeat {
            let g2: Vec<f64> = g
                .iter()
                .map(|x| x * (1.0 + 0.01 * (r + 1) as f64))
                .collect();
            lin.set_conductances(&g2).expect("conductances");
            let t0 = Instant::now();
            let s = solve_batch(&lin, &[], 1, None, None, &opts).expect("linear");
            t_lin = t_lin.min(t0.elapsed().as_secs_f64());
            std::hint::black_box(s);
        }
    }
    let mut t_id = f64::INFINITY;
    let mut last = None;
    for _ in 0..repeat {
        let t0 = Instant::now();
        let s = solve_batch(&ideal, &[], 1, None, None, &opts).expect("ideal");
        t_id = t_id.min(t0.elapsed().as_secs_f64());
        last = Some(s);
    }
    let s = last.expect("one run");
    println!(
        "side {side}: {} diodes; ideal {:.1} ms ({} it / {} fact / {} low-rank), linear {:.1} ms, ratio {:.2}",
        ideal.n_diodes(),
        1e3 * t_id,
        s.iterations[0],
        s.factorizations[0],
        s.low_rank_solves[0],
        1e3 * t_lin,
        t_id / t_lin
    );
}
