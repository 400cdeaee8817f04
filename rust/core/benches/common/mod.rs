//! Helpers shared by the criterion benches and the examples that time the same
//! networks.

use ohmflow_core::{DiodeModel, Network, SourceValue};

/// SplitMix64: a small deterministic generator (no dev-dependency needed).
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    #[allow(dead_code)]
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// The edges of a side × side grid whose node (r, c) is `first + r side + c`: the
/// horizontal edges row by row, then the vertical ones (ends `a` → `b`).
#[allow(dead_code)]
pub fn grid_edges(first: usize, side: usize) -> (Vec<usize>, Vec<usize>) {
    let id = |r: usize, c: usize| first + r * side + c;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in 0..side {
        for c in 0..side - 1 {
            a.push(id(r, c));
            b.push(id(r, c + 1));
        }
    }
    for r in 0..side - 1 {
        for c in 0..side {
            a.push(id(r, c));
            b.push(id(r + 1, c));
        }
    }
    (a, b)
}

#[derive(Clone, Copy)]
#[allow(dead_code)]
pub enum Diodes {
    None,
    Ideal,
    Shockley,
}

/// A side×side lattice (2 side (side−1) resistors, conductances in [0.5, 2] mS) and
/// 10% of the edges given a diode in parallel, randomly oriented. Sources: one corner
/// at +1 V (an input when `input`) and the opposite one at −1 V; with Shockley diodes,
/// 1% of the nodes clamped in [−2, 2] V instead.
#[allow(dead_code)]
pub fn lattice(side: usize, diodes: Diodes, input: bool, seed: u64) -> Network {
    let mut rng = Rng(seed);
    let mut net = Network::new();
    let first = net.add_nodes(side * side).expect("nodes");
    let id = |r: usize, c: usize| first + r * side + c;
    let (a, b) = grid_edges(first, side);
    let g: Vec<f64> = (0..a.len()).map(|_| rng.uniform(0.5e-3, 2e-3)).collect();
    net.add_resistors(&a, &b, &g).expect("resistors");
    let model = match diodes {
        Diodes::None => None,
        Diodes::Ideal => Some(DiodeModel::Ideal { v_on: 0.0 }),
        Diodes::Shockley => Some(DiodeModel::Shockley {
            i_s: 1e-14,
            n: 1.0,
            temperature: 300.15,
            gmin: 1e-12,
        }),
    };
    // With Shockley diodes: 1% of the nodes clamped to voltages in [-2, 2] V, so that
    // the diodes near the sources conduct (as in benches/compare.py).
    let mut clamped = vec![false; side * side];
    let mut clamps = Vec::new();
    if let Diodes::Shockley = diodes {
        let k = (side * side / 100).max(2);
        while clamps.len() < k {
            let node = (rng.next_u64() % (side * side) as u64) as usize;
            if !clamped[node] {
                clamped[node] = true;
                clamps.push((first + node, rng.uniform(-2.0, 2.0)));
            }
        }
    }
    if let Some(m) = model {
        let (mut da, mut db) = (Vec::new(), Vec::new());
        for (&x, &y) in a.iter().zip(&b) {
            let keep = rng.uniform(0.0, 1.0) < 0.1;
            let forward = rng.uniform(0.0, 1.0) < 0.5; // random orientation
                                                       // no junction between two clamped nodes (its current would be absurd)
            if keep && !(clamped[x - first] && clamped[y - first]) {
                let (p, q) = if forward { (x, y) } else { (y, x) };
                da.push(p);
                db.push(q);
            }
        }
        let models = vec![m; da.len()];
        net.add_diodes(&da, &db, &models).expect("diodes");
    }
    if !clamps.is_empty() {
        for (node, v) in clamps {
            net.add_voltage_source(node, SourceValue::Fixed(v))
                .expect("source");
        }
        return net;
    }
    if input {
        net.add_input(id(0, 0)).expect("input");
    } else {
        net.add_voltage_source(id(0, 0), SourceValue::Fixed(1.0))
            .expect("source");
    }
    net.add_voltage_source(id(side - 1, side - 1), SourceValue::Fixed(-1.0))
        .expect("source");
    net
}
