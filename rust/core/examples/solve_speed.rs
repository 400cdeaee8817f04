//! Times one factorization and repeated single right-hand-side solves of the 1M-edge
//! lattice (the solves the ideal-diode iteration repeats).
use ohmflow_core::factor::Factor;
use ohmflow_core::Parallelism;
use std::time::Instant;

#[path = "../benches/common/mod.rs"]
mod common;
use common::{lattice, Diodes};

fn main() {
    let side: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(708);
    // The benches' linear lattice (both corners clamped).
    let net = lattice(side, Diodes::None, false, 3);
    let g = net.conductances();
    let c = net.compiled().unwrap();
    let mut values = vec![0.0; c.nnz()];
    for (k, s) in c.res_slots.iter().enumerate() {
        for (i, sg) in [(0, 1.0), (1, 1.0), (2, -1.0)] {
            if s[i] != u32::MAX {
                values[s[i] as usize] += sg * g[k];
            }
        }
    }
    println!(
        "n_free {} nnz(L) {} ({:.0} MB), {}",
        c.n_free,
        c.factor_len(),
        c.factor_len() as f64 * 8e-6,
        match c.symbolic.as_ref().expect("free nodes").raw() {
            faer::sparse::linalg::cholesky::SymbolicCholeskyRaw::Supernodal(_) => "supernodal",
            _ => "simplicial",
        }
    );
    let mut f = Factor::new(&c, Parallelism::default());
    let mut f1 = Factor::new(&c, Parallelism::Serial);
    f1.factorize(&values).unwrap();
    let t = Instant::now();
    f.factorize(&values).unwrap();
    println!("factor {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let b: Vec<f64> = (0..c.n_free)
        .map(|i| ((i * 7919) % 13) as f64 - 6.0)
        .collect();
    let mut rhs = b.clone();
    for (label, factor) in [("default threads", &mut f), ("one thread", &mut f1)] {
        let mut best = f64::INFINITY;
        for _ in 0..10 {
            rhs.copy_from_slice(&b);
            let t = Instant::now();
            factor.solve_in_place(&mut rhs);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("solve, {label} {:.3} ms (best of 10)", best * 1e3);
    }
}
