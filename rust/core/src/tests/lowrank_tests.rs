//! Low-rank corrections against fresh factorizations and against the residual of
//! the corrected system itself (a symmetric sparse product, computed here).
use super::*;
use crate::compile::{stamp, Compiled};
use crate::factor::{Factor, Parallelism};
use crate::network::{DiodeModel, Network, SourceValue, NONE};
use crate::test_util::{resistor_grid, Rng};
use faer::sparse::linalg::cholesky::SymbolicCholeskyRaw;

/// A side × side lattice of 0.5–2 S resistors, one corner clamped, a diode (ideal,
/// only its branch matters here) on every third edge, and one diode from the
/// clamped corner (a branch with a single free end).
fn lattice(side: usize, seed: u64) -> Network {
    let mut rng = Rng(seed);
    let (mut net, first, a, b) = resistor_grid(side, &mut rng, 0.5, 2.0);
    let id = |r: usize, c: usize| first + r * side + c;
    let (mut da, mut db) = (vec![id(0, 0)], vec![id(0, 1)]);
    for k in (0..a.len()).step_by(3) {
        da.push(a[k]);
        db.push(b[k]);
    }
    let m = vec![DiodeModel::Ideal { v_on: 0.0 }; da.len()];
    net.add_diodes(&da, &db, &m).unwrap();
    net.add_voltage_source(id(0, 0), SourceValue::Fixed(1.0))
        .unwrap();
    net
}

/// Matrix values: the resistors plus conductance `g[k]` on diode k's branch.
fn values(net: &Network, c: &Compiled, g: &[f64]) -> Vec<f64> {
    let mut v = vec![0.0; c.nnz()];
    let (_, _, rg) = net.resistors();
    for (k, s) in c.res_slots.iter().enumerate() {
        stamp(&mut v, s, rg[k]);
    }
    for (k, s) in c.dio_slots.iter().enumerate() {
        if g[k] != 0.0 {
            stamp(&mut v, s, g[k]);
        }
    }
    v
}

/// y = K x for the symmetric matrix stored as its lower triangle (CSC).
fn sym_matvec(c: &Compiled, vals: &[f64], x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for j in 0..c.n_free {
        let (lo, hi) = (c.col_ptr[j] as usize, c.col_ptr[j + 1] as usize);
        for (&i, &a) in c.row_idx[lo..hi].iter().zip(&vals[lo..hi]) {
            let i = i as usize;
            y[i] += a * x[j];
            if i != j {
                y[j] += a * x[i];
            }
        }
    }
    y
}

fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, z| m.max(z.abs()))
}

/// Solves with K_new = K_fact + Σ (g_new − g_fact) u uᵀ by a low-rank correction of
/// K_fact's factor, and checks it against the residual of K_new and a fresh
/// factorization of K_new. Returns whether the factor was supernodal.
fn check(side: usize, seed: u64, rounds: usize) -> bool {
    let net = lattice(side, seed);
    let c = net.compiled().unwrap();
    let nd = net.n_diodes();
    let (da, db, _) = net.diodes();
    let mut rng = Rng(seed ^ 0x77);
    // Factor: about half the diodes conducting with a penalty 1000× their resistors.
    let rho = 1e3;
    let g_fact: Vec<f64> = (0..nd)
        .map(|_| {
            if rng.next().is_multiple_of(2) {
                rho
            } else {
                0.0
            }
        })
        .collect();
    let mut factor = Factor::new(&c, Parallelism::Serial);
    factor.factorize(&values(&net, &c, &g_fact)).unwrap();
    let layout = factor.layout();
    let st = &layout.0;
    let inv = factor.perm().1;
    let ends = |k: u32, e: &mut Vec<(usize, f64)>| {
        for (x, sign) in [(da[k as usize], 1.0), (db[k as usize], -1.0)] {
            let f = c.free_of_node[x as usize];
            if f != NONE {
                e.push((inv.map_or(f as usize, |p| p[f as usize] as usize), sign));
            }
        }
    };
    let mut lr = LowRank::new(nd, c.n_free);
    let mut g_new = g_fact.clone();
    // Diode 0 (one end clamped) always changes; then a few more each round (the
    // columns of the earlier rounds are reused).
    g_new[0] = if g_fact[0] == 0.0 { rho } else { 0.0 };
    let (mut down, mut up) = (false, false);
    for round in 0..rounds {
        // One conducting diode of the factor turned off, one blocking one turned on.
        let start = (rng.next() % nd as u64) as usize;
        let off = (0..nd)
            .map(|i| (start + i) % nd)
            .find(|&k| g_fact[k] > 0.0)
            .unwrap();
        let on = (0..nd)
            .map(|i| (start + i) % nd)
            .find(|&k| g_fact[k] == 0.0)
            .unwrap();
        g_new[off] = 0.0;
        g_new[on] = 10.0 * rho;
        for _ in 0..3 + round {
            let k = (rng.next() % nd as u64) as usize;
            g_new[k] = match rng.next() % 3 {
                0 => 0.0,
                1 => rho,
                _ => 10.0 * rho,
            };
        }
        let (diodes, coef): (Vec<u32>, Vec<f64>) = (0..nd)
            .filter(|&k| g_new[k] != g_fact[k])
            .map(|k| (k as u32, g_new[k] - g_fact[k]))
            .unzip();
        down |= coef.iter().any(|&x| x < 0.0);
        up |= coef.iter().any(|&x| x > 0.0);
        let b: Vec<f64> = (0..c.n_free).map(|_| rng.range(-1.0, 1.0)).collect();
        let mut x = b.clone();
        assert!(lr.solve(&mut factor, st, &diodes, &coef, ends, &mut x));
        let k_new = values(&net, &c, &g_new);
        // Residual of the corrected system, relative to ‖K‖ ‖x‖ (five entries per row).
        let check = |k: &[f64], x: &[f64], b: &[f64], what: &str| {
            let r: Vec<f64> = sym_matvec(&c, k, x)
                .iter()
                .zip(b)
                .map(|(y, z)| y - z)
                .collect();
            assert!(
                max_abs(&r) <= 1e-11 * max_abs(k) * 5.0 * max_abs(x),
                "round {round}, {what}: residual {:e} (|x| {:e})",
                max_abs(&r),
                max_abs(x)
            );
        };
        check(&k_new, &x, &b, "first solve");
        // The same changes again with another right-hand side: the cached dense
        // system's factorization is reused, and must still solve K_new.
        let b2: Vec<f64> = (0..c.n_free).map(|_| rng.range(-1.0, 1.0)).collect();
        let mut x2 = b2.clone();
        assert!(lr.solve(&mut factor, st, &diodes, &coef, ends, &mut x2));
        check(&k_new, &x2, &b2, "second solve");
        // The same diodes with other coefficients (halfway): the cached dense system
        // must not be reused.
        let half: Vec<f64> = coef.iter().map(|c| 0.5 * c).collect();
        let mut g_half = g_fact.clone();
        for (&k, &c) in diodes.iter().zip(&half) {
            g_half[k as usize] += c;
        }
        let mut x3 = b2.clone();
        assert!(lr.solve(&mut factor, st, &diodes, &half, ends, &mut x3));
        check(&values(&net, &c, &g_half), &x3, &b2, "halfway coefficients");
        // A fresh factorization of K_new.
        let mut fresh = Factor::new(&c, Parallelism::Serial);
        fresh.factorize(&k_new).unwrap();
        let mut y = b.clone();
        fresh.solve_in_place(&mut y);
        let d: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p - q).collect();
        assert!(
            max_abs(&d) <= 1e-9 * max_abs(&y),
            "round {round}: differs from a fresh factorization by {:e} of {:e}",
            max_abs(&d),
            max_abs(&y)
        );
    }
    assert_eq!(lr.solves as usize, 3 * rounds);
    // Both a conductance leaving the factor and one entering it were corrected.
    assert!(down && up);
    matches!(
        c.symbolic.as_ref().unwrap().raw(),
        SymbolicCholeskyRaw::Supernodal(_)
    )
}

#[test]
fn simplicial_factor_corrections_match_a_fresh_factorization() {
    // Small lattices: faer factorises them simplicially.
    assert!(!check(5, 1, 4));
    assert!(!check(30, 5, 3));
}

#[test]
fn supernodal_factor_corrections_match_a_fresh_factorization() {
    // A 150 × 150 lattice: supernodal (faer factorises a 100 × 100 one simplicially).
    assert!(check(150, 2, 4));
    assert!(check(150, 3, 2));
}

#[test]
fn a_large_penalty_leaving_the_factor_is_refused() {
    // Removing a conductance 1e12 times the resistors around it cancels more digits
    // than the correction can afford: the solve declines (the caller refactorises).
    let net = lattice(8, 4);
    let c = net.compiled().unwrap();
    let nd = net.n_diodes();
    let mut g = vec![0.0; nd];
    g[3] = 1e12;
    let mut factor = Factor::new(&c, Parallelism::Serial);
    factor.factorize(&values(&net, &c, &g)).unwrap();
    let layout = factor.layout();
    let st = &layout.0;
    let (da, db, _) = net.diodes();
    let inv = factor.perm().1;
    let mut lr = LowRank::new(nd, c.n_free);
    let mut x = vec![1.0; c.n_free];
    let ok = lr.solve(
        &mut factor,
        st,
        &[3],
        &[-1e12],
        |k, e| {
            for (x, sign) in [(da[k as usize], 1.0), (db[k as usize], -1.0)] {
                let f = c.free_of_node[x as usize];
                if f != NONE {
                    e.push((inv.map_or(f as usize, |p| p[f as usize] as usize), sign));
                }
            }
        },
        &mut x,
    );
    assert!(!ok);
}
