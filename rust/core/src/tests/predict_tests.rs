//! The active-set prediction and the KCL currents of ideal diodes against a
//! brute-force reference: every active set of a small network, each solved as an
//! equality-constrained quadratic program by dense Gaussian elimination, the one
//! satisfying the KKT conditions (i ≥ 0 on the conducting diodes, Δv ≤ v_on on the
//! others) being the answer.
use super::*;
use crate::compile::Compiled;
use crate::factor::Parallelism;
use crate::network::NONE;
use crate::network::{DiodeModel, Network, SourceValue};
use crate::solve::{solve_batch, SolveOptions};
use crate::test_util::{resistor_grid, Rng};

/// A side × side lattice of 0.5–2 mS resistors, corners at +1 V and −1 V, `nd`
/// ideal diodes (v_on in [0, 0.2] V) on random distinct free–free edges, randomly
/// oriented, and a 10 µA current source into one node.
fn small_net(side: usize, nd: usize, seed: u64) -> Network {
    lattice_net(side, nd, seed, 0.2)
}

/// [`small_net`] with v_on in [0, `v_max`].
fn lattice_net(side: usize, nd: usize, seed: u64, v_max: f64) -> Network {
    let mut rng = Rng(seed);
    let (mut net, first, a, b) = resistor_grid(side, &mut rng, 0.5e-3, 2e-3);
    let id = |r: usize, c: usize| first + r * side + c;
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
            v_on: rng.range(0.0, v_max),
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
        let mut r = Refiner::new(&net, &c, &[], &[], Parallelism::Serial);
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

/// The refinement of `net` from the linear solution (every diode open) with its free
/// nodes cut into `parts` parts and the given parallelism (in a pool of that size).
fn refine_from_linear(
    net: &Network,
    parts: usize,
    par: Parallelism,
    rounds: usize,
    sweeps: usize,
) -> (Vec<f64>, Vec<bool>, usize) {
    let c = Compiled::new(net).unwrap();
    let mut lin = net.clone();
    lin.dio_a.clear();
    lin.dio_b.clear();
    lin.dio_model.clear();
    let s = solve_batch(&lin, &[], 1, None, None, &SolveOptions::default()).unwrap();
    let mut v = s.voltages;
    let mut on: Vec<bool> = (0..net.dio_a.len())
        .map(|k| {
            let DiodeModel::Ideal { v_on } = net.dio_model[k] else {
                unreachable!()
            };
            v[net.dio_a[k] as usize] - v[net.dio_b[k] as usize] > v_on
        })
        .collect();
    let t = Topology::new(net, &c, parts);
    assert_eq!(t.bounds.len(), parts + 1);
    let left = crate::factor::with_threads(par, || {
        let mut r = Refiner::with_topology(&t, net, &c, &[], &[], par);
        assert_eq!(r.threads, par.n_threads() > 1);
        Ok(r.refine(net, &c, &mut v, &mut on, rounds, sweeps))
    })
    .unwrap();
    (v, on, left)
}

#[test]
fn parallel_sweeps_repeat_the_serial_ones_exactly() {
    // The parts' interiors share no node, so relaxing them on two threads must give
    // the very same voltages and active set as one after the other.
    let net = lattice_net(40, 160, 7, 0.005);
    let c = Compiled::new(&net).unwrap();
    let t = Topology::new(&net, &c, 8);
    // The cut leaves both interiors and a separator, with clusters in each.
    assert!(
        !t.sep.is_empty() && t.sep.len() < c.n_free / 2,
        "{}",
        t.sep.len()
    );
    let serial = refine_from_linear(&net, 8, Parallelism::Serial, 3, 3);
    let parallel = refine_from_linear(&net, 8, Parallelism::Threads(2), 3, 3);
    assert_eq!(serial.1, parallel.1);
    for (x, (a, b)) in serial.0.iter().zip(&parallel.0).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "node {x}: {a} vs {b}");
    }
    // The rounds did switch diodes (the comparison is not of untouched guesses).
    assert!(serial.2 > 0);
}

#[test]
fn relaxation_in_parts_converges_to_the_solvers_active_set() {
    // Run to convergence, serially and on two threads, with the nodes cut into parts:
    // the fixed point is the KKT point, whose conducting set the full solver (checked
    // against brute force above) reports as the diodes carrying current.
    let net = lattice_net(24, 60, 11, 0.005);
    let s = solve_batch(&net, &[], 1, None, None, &SolveOptions::default()).unwrap();
    let imax = s.diode_currents.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let truth: Vec<bool> = s.diode_currents.iter().map(|&i| i > 1e-9 * imax).collect();
    assert!(truth.iter().filter(|&&x| x).count() >= 5);
    for par in [Parallelism::Serial, Parallelism::Threads(2)] {
        let (_, on, left) = refine_from_linear(&net, 4, par, 100, 200);
        assert_eq!(left, 0, "{par:?}: still switching");
        assert_eq!(on, truth, "{par:?}");
    }
}

#[test]
fn clusters_rebuilt_after_switches_are_the_conducting_components() {
    // After each batch of random switches, the incrementally rebuilt clusters must be
    // exactly the connected components (of two or more free nodes) of the conducting
    // diodes, each with a BFS tree of conducting diodes.
    let net = lattice_net(30, 250, 5, 0.005);
    let c = Compiled::new(&net).unwrap();
    let t = Topology::new(&net, &c, 4);
    let mut r = Refiner::with_topology(&t, &net, &c, &[], &[], Parallelism::Serial);
    let mut rng = Rng(99);
    let nd = net.dio_a.len();
    let mut on: Vec<bool> = (0..nd).map(|_| rng.next().is_multiple_of(3)).collect();
    let mut v = vec![0.0; c.n_free];
    r.reset_clusters();
    r.clusters(&mut v, &on, None);
    for round in 0..6 {
        if round > 0 {
            let flips: Vec<u32> = (0..nd as u32)
                .filter(|_| rng.next().is_multiple_of(8))
                .collect();
            for &k in &flips {
                on[k as usize] ^= true;
            }
            r.clusters(&mut v, &on, Some(&flips));
        }
        // Components by repeated relabelling to the smallest label.
        let nf = c.n_free;
        let mut comp: Vec<usize> = (0..nf).collect();
        loop {
            let mut changed = false;
            for k in (0..nd).filter(|&k| on[k]) {
                let [a, b] = t.end[k];
                if a == NONE || b == NONE {
                    continue;
                }
                let m = comp[a as usize].min(comp[b as usize]);
                for x in [a, b] {
                    if comp[x as usize] != m {
                        comp[x as usize] = m;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut size = vec![0usize; nf];
        for &m in &comp {
            size[m] += 1;
        }
        let mut seen = 0;
        for x in 0..nf {
            let alone = size[comp[x]] == 1;
            assert_eq!(r.cl[x] == NONE, alone, "round {round}: node {x}");
            for y in 0..x {
                if !alone && r.cl[y] != NONE {
                    assert_eq!(r.cl[x] == r.cl[y], comp[x] == comp[y], "round {round}");
                }
            }
        }
        for &j in &r.live {
            let (s0, s1) = (
                r.start[j as usize] as usize,
                r.start[j as usize + 1] as usize,
            );
            seen += s1 - s0;
            for i in s0 + 1..s1 {
                let (up, k) = r.tree[i];
                let [a, b] = t.end[k as usize];
                assert!(on[k as usize] && (up as usize) < i && up as usize >= s0);
                let (x, p) = (r.order[i], r.order[up as usize]);
                assert!((a, b) == (x, p) || (a, b) == (p, x), "round {round}");
            }
            let root = r.order[s0] as usize;
            assert_eq!(r.tag[root] == j, !r.on_sep[j as usize]);
        }
        assert_eq!(seen, (0..nf).filter(|&x| size[comp[x]] > 1).count());
    }
}
