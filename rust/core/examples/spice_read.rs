//! Times reading a SPICE netlist into a network (parse + build), e.g. the 80k-edge
//! lattice of `benches/compare.py` (d): `cargo run --release -p ohmflow-core
//! --example spice_read -- FILE [repeats]`.
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("a netlist file");
    let repeat: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let text = std::fs::read_to_string(path).expect("readable file");
    let (mut parse, mut total) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..repeat {
        let t0 = Instant::now();
        let netlist = ohmflow_core::spice::parse_spice(&text).expect("netlist");
        parse = parse.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(netlist);
        let t0 = Instant::now();
        let c = ohmflow_core::spice_net::read_spice(&text).expect("circuit");
        total = total.min(t0.elapsed().as_secs_f64());
        std::hint::black_box(c);
    }
    println!(
        "parse {:.1} ms, parse + build {:.1} ms",
        parse * 1e3,
        total * 1e3
    );
    // Then the operating point (the first solve includes the symbolic analysis).
    let c = ohmflow_core::spice_net::read_spice(&text).expect("circuit");
    let opts = ohmflow_core::SolveOptions::default();
    let (mut first, mut again) = (0.0, f64::INFINITY);
    for r in 0..repeat {
        let t0 = Instant::now();
        let s = ohmflow_core::solve_batch(&c.network, &[], 1, None, None, &opts).expect("solve");
        let t = t0.elapsed().as_secs_f64();
        if r == 0 {
            first = t;
        } else {
            again = again.min(t);
        }
        if r + 1 == repeat {
            println!(
                "solve {:.1} ms first, {:.1} ms again ({} Newton iterations, {} factorizations, {} low-rank)",
                first * 1e3,
                again * 1e3,
                s.iterations[0],
                s.factorizations[0],
                s.low_rank_solves[0]
            );
        }
    }
}
