//! The active-set prediction and the KCL currents of ideal diodes against a
//! brute-force reference: every active set of a small network, each solved as an
//! equality-constrained quadratic program by dense Gaussian elimination, the one
//! satisfying the KKT conditions (i ≥ 0 on the conducting diodes, Δv ≤ v_on on the
//! others) being the answer.
use super::*;
use crate::compile::Compiled;
use crate::network::{DiodeModel, Network, SourceValue};
use crate::solve::{solve_batch, SolveOptions};
use crate::test_util::{grid_edges, Rng};

/// A side × side lattice of 0.5–2 mS resistors, corners at +1 V and −1 V, `nd`
/// ideal diodes (v_on in [0, 0.2] V) on random distinct free–free edges, randomly
/// oriented, and a 10 µA current source into one node.
fn small_net(side: usize, nd: usize, seed: u64) -> Network {
    let mut rng = Rng(seed);
    let mut net = Network::new();
    let first = net.add_nodes(side * side).unwrap();
    let id = |r: usize, c: usize| first + r * side + c;
    let (a, b) = grid_edges(first, side);
    let g: Vec<f64> = a.iter().map(|_| rng.range(0.5e-3, 2e-3)).collect();
    net.add_resistors(&a, &b, &g).unwrap();
    let (hi, lo) = (id(0, 0), id(side - 1, side - 1));
    let mut edges: Vec<usize> = (0..a.len()).collect();
    for i in (1..edges.len()).rev() {
        edges.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let (mut da, mut db, mut m) = (Vec::new(), Vec::new(), Vec::new());
    for &e in &edges {
        if da.len() == nd {
            break;
        }
        if [a[e], b[e]].iter().any(|&x| x == hi || x == lo) {
            continue;
        }
        let (p, q) = if rng.next().is_multiple_of(2) {
            (a[e], b[e])
        } else {
            (b[e], a[e])
        };
        da.push(p);
        db.push(q);
        m.push(DiodeModel::Ideal {
            v_on: rng.range(0.0, 0.2),
        });
    }
    net.add_diodes(&da, &db, &m).unwrap();
    net.add_current_sources(&[0], &[id(1, side / 2)], &[1e-5])
        .unwrap();
    net.add_voltage_source(hi, SourceValue::Fixed(1.0)).unwrap();
    net.add_voltage_source(lo, SourceValue::Fixed(-1.0))
        .unwrap();
    net
}

/// Dense Gaussian elimination with partial pivoting (row-major `a`, n × n).
fn dense_solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for k in 0..n {
        let p = (k..n).max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs()))?;
        if a[p * n + k].abs() < 1e-300 {
            return None;
        }
        for j in 0..n {
            a.swap(k * n + j, p * n + j);
        }
        b.swap(k, p);
        for i in k + 1..n {
            let f = a[i * n + k] / a[k * n + k];
            for j in k..n {
                a[i * n + j] -= f * a[k * n + j];
            }
            b[i] -= f * b[k];
        }
    }
    for k in (0..n).rev() {
        let s: f64 = (k + 1..n).map(|j| a[k * n + j] * b[j]).sum();
        b[k] = (b[k] - s) / a[k * n + k];
    }
    Some(b)
}

/// The brute-force answer: node voltages, diode currents and the conducting set.
fn brute_force(net: &Network) -> (Vec<f64>, Vec<f64>, Vec<bool>) {
    let nn = net.n_nodes;
    let mut clamp = vec![None; nn];
    clamp[0] = Some(0.0);
    for (&node, val) in net.vs_node.iter().zip(&net.vs_value) {
        if let SourceValue::Fixed(x) = *val {
            clamp[node as usize] = Some(x);
        }
    }
    let free: Vec<usize> = (0..nn).filter(|&x| clamp[x].is_none()).collect();
    let mut idx = vec![usize::MAX; nn];
    for (i, &x) in free.iter().enumerate() {
        idx[x] = i;
    }
    let nf = free.len();
    let nd = net.dio_a.len();
    let mut found = None;
    for mask in 0u32..(1 << nd) {
        let on: Vec<usize> = (0..nd).filter(|&k| mask & (1 << k) != 0).collect();
        let n = nf + on.len();
        let (mut m, mut rhs) = (vec![0.0; n * n], vec![0.0; n]);
        for k in 0..net.res_g.len() {
            let (a, b, g) = (net.res_a[k] as usize, net.res_b[k] as usize, net.res_g[k]);
            for (x, y) in [(a, b), (b, a)] {
                if idx[x] == usize::MAX {
                    continue;
                }
                m[idx[x] * n + idx[x]] += g;
                match clamp[y] {
                    Some(vy) => rhs[idx[x]] += g * vy,
                    None => m[idx[x] * n + idx[y]] -= g,
                }
            }
        }
        for k in 0..net.is_value.len() {
            // The source's current leaves is_a and enters is_b.
            let (a, b) = (net.is_a[k] as usize, net.is_b[k] as usize);
            if idx[a] != usize::MAX {
                rhs[idx[a]] -= net.is_value[k];
            }
            if idx[b] != usize::MAX {
                rhs[idx[b]] += net.is_value[k];
            }
        }
        for (j, &k) in on.iter().enumerate() {
            let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
            let DiodeModel::Ideal { v_on } = net.dio_model[k] else {
                unreachable!()
            };
            let row = nf + j;
            rhs[row] = v_on;
            for (x, s) in [(a, 1.0), (b, -1.0)] {
                match clamp[x] {
                    Some(vx) => rhs[row] -= s * vx,
                    None => {
                        m[row * n + idx[x]] = s;
                        m[idx[x] * n + row] = s;
                    }
                }
            }
        }
        let Some(sol) = dense_solve(m, rhs, n) else {
            continue;
        };
        let mut v = vec![0.0; nn];
        for x in 0..nn {
            v[x] = clamp[x].unwrap_or_else(|| sol[idx[x]]);
        }
        let mut cur = vec![0.0; nd];
        let mut ok = true;
        for (j, &k) in on.iter().enumerate() {
            cur[k] = sol[nf + j];
            ok &= cur[k] >= -1e-15;
        }
        for k in 0..nd {
            let DiodeModel::Ideal { v_on } = net.dio_model[k] else {
                unreachable!()
            };
            if mask & (1 << k) == 0 {
                ok &= v[net.dio_a[k] as usize] - v[net.dio_b[k] as usize] <= v_on + 1e-13;
            }
        }
        if ok {
            assert!(found.is_none(), "two KKT points: degenerate test network");
            found = Some((v, cur, (0..nd).map(|k| mask & (1 << k) != 0).collect()));
        }
    }
    found.expect("a KKT point exists")
}

#[test]
fn relaxation_converges_to_the_brute_force_active_set() {
    // Run to convergence (many rounds and sweeps) from all diodes open, the
    // prediction's fixed point is the KKT point: every open diode reverse-biased, every
    // conducting one carrying a forward current by KCL over its cluster.
    let mut agreed = 0;
    for seed in 0..12u64 {
        let net = small_net(5, 9, 100 + seed);
        let (_, _, truth) = brute_force(&net);
        let c = Compiled::new(&net).unwrap();
        let mut v = vec![0.0; net.n_nodes];
        net.set_clamps(&mut v, &[]);
        let mut on = vec![false; net.dio_a.len()];
        let mut r = Refiner::new(&net, &[], &[]);
        let left = r.refine(&net, &c, &mut v, &mut on, 100, 400);
        assert_eq!(left, 0, "seed {seed}: still switching");
        assert_eq!(on, truth, "seed {seed}");
        agreed += truth.iter().filter(|&&x| x).count();
    }
    // The networks do exercise conducting diodes.
    assert!(agreed > 12, "{agreed} conducting diodes in all");
}

#[test]
fn ideal_diode_currents_and_voltages_equal_brute_force() {
    // The full solver (prediction, multipliers, currents from KCL over diode trees)
    // against the brute-force KKT point: voltages and currents to rounding.
    for seed in 0..12u64 {
        let net = small_net(5, 9, 200 + seed);
        let (v, cur, truth) = brute_force(&net);
        let s = solve_batch(&net, &[], 1, None, None, &SolveOptions::default()).unwrap();
        let imax = cur.iter().fold(1e-6f64, |m, x| m.max(x.abs()));
        for (x, (&got, &want)) in s.voltages.iter().zip(&v).enumerate() {
            assert!(
                (got - want).abs() <= 1e-12,
                "seed {seed}: node {x}: {got} vs {want}"
            );
        }
        for k in 0..cur.len() {
            assert!(
                (s.diode_currents[k] - cur[k]).abs() <= 1e-12 * imax,
                "seed {seed}: diode {k} ({}): {:e} vs {:e}",
                truth[k],
                s.diode_currents[k],
                cur[k]
            );
        }
    }
}
