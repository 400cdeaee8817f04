#![allow(clippy::needless_range_loop)]
use super::*;
use crate::network::{DiodeModel, Network, SourceValue, GROUND};
use crate::solve::{solve_batch, Injections};

fn solve(net: &Network) -> Result<BatchSolution> {
    solve_batch(net, &[], 1, None, None, &SolveOptions::default())
}

/// source — R1 — b, transformer (b, 0) → (c, 0) of ratio a, load R2 on c.
fn reflected(a: f64) -> Network {
    let mut net = Network::new();
    net.add_nodes(3).unwrap();
    net.add_voltage_source(1, SourceValue::Fixed(1.0)).unwrap();
    net.add_resistors(&[1, 3], &[2, GROUND], &[1e-3, 2e-3])
        .unwrap();
    net.add_transformers(&[2], &[GROUND], &[3], &[GROUND], &[a])
        .unwrap();
    net
}

#[test]
fn transformer_reflects_load_by_ratio_squared() {
    for a in [2.0, -0.5, 3.7] {
        let sol = solve(&reflected(a)).unwrap();
        // R2 = 500 Ω seen from the primary as 500 / a²; divider with R1 = 1 kΩ.
        let r = 500.0 / (a * a);
        let vb = r / (1000.0 + r);
        assert!(
            (sol.voltages[2] - vb).abs() < 1e-14,
            "{a}: {}",
            sol.voltages[2]
        );
        assert!((sol.voltages[3] - a * vb).abs() < 1e-14);
        // i1 into b: the current through R1.
        let i1 = (1.0 - vb) / 1000.0;
        assert!((sol.transformer_currents[0] - i1).abs() < 1e-15 * 1e3);
        // i2 = −i1 / a into c, equal to minus the load current: lossless.
        let i2 = -sol.transformer_currents[0] / a;
        assert!((i2 + sol.voltages[3] * 2e-3).abs() < 1e-15);
    }
}

#[test]
fn gyrator_inverts_its_load() {
    let mut net = Network::new();
    net.add_nodes(3).unwrap();
    net.add_voltage_source(1, SourceValue::Fixed(1.0)).unwrap();
    net.add_resistors(&[1, 3], &[2, GROUND], &[1.0, 0.5])
        .unwrap();
    net.add_gyrators(&[2], &[GROUND], &[3], &[GROUND], &[2.0])
        .unwrap();
    let sol = solve(&net).unwrap();
    // Input conductance g² / G_L = 8 S against the 1 S source resistor.
    assert!((sol.voltages[2] - 1.0 / 9.0).abs() < 1e-15);
    // i2 = −g v1 into c is carried by the load: v_c = g v1 / G_L.
    assert!((sol.voltages[3] - 4.0 / 9.0).abs() < 1e-15);
    assert_eq!(net.n_gyrators(), 1);
}

#[test]
fn floating_secondary_names_its_nodes() {
    let mut net = Network::new();
    net.add_nodes(4).unwrap();
    net.add_voltage_source(1, SourceValue::Fixed(1.0)).unwrap();
    net.add_resistors(&[1, 2, 3], &[2, GROUND, 4], &[1.0, 1.0, 1.0])
        .unwrap();
    net.add_transformers(&[2], &[GROUND], &[3], &[4], &[2.0])
        .unwrap();
    match solve(&net) {
        Err(Error::FloatingNodes { nodes }) => assert_eq!(nodes, vec![3, 4]),
        other => panic!("expected floating nodes, got {other:?}"),
    }
    net.add_resistors(&[4], &[GROUND], &[1.0]).unwrap();
    let sol = solve(&net).unwrap();
    let (v1, v2) = (sol.voltages[2], sol.voltages[3] - sol.voltages[4]);
    assert!((v2 - 2.0 * v1).abs() < 1e-15);
}

#[test]
fn invalid_two_ports_are_rejected() {
    let mut net = Network::new();
    net.add_nodes(2).unwrap();
    for r in [0.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            net.add_transformers(&[1], &[0], &[2], &[0], &[r]),
            Err(Error::InvalidInput(_))
        ));
    }
    assert!(matches!(
        net.add_gyrators(&[1], &[1], &[2], &[0], &[1.0]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        net.add_gyrators(&[1], &[0], &[5], &[0], &[1.0]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        net.add_gyrators(&[1], &[0], &[2], &[0], &[f64::NAN]),
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(net.n_transformers() + net.n_gyrators(), 0);
    net.add_transformers(&[1], &[0], &[2], &[0], &[1.0])
        .unwrap();
    assert!(matches!(
        net.set_transformer_ratios(&[0.0]),
        Err(Error::InvalidInput(_))
    ));
}

/// A ring of nodes with resistors to ground, gyrators between neighbours, ideal
/// diodes to ground and current sources: a nonsymmetric LCP.
fn gyrator_ring(k: usize, seed: u64) -> Network {
    let mut net = Network::new();
    net.add_nodes(k).unwrap();
    let mut x = seed;
    let mut rnd = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 11) as f64) / ((1u64 << 53) as f64)
    };
    for i in 1..=k {
        net.add_resistors(&[i], &[GROUND], &[0.1 + rnd()]).unwrap();
        let j = i % k + 1;
        net.add_gyrators(&[i], &[GROUND], &[j], &[GROUND], &[3.0 * (rnd() - 0.5)])
            .unwrap();
        net.add_current_sources(&[GROUND], &[i], &[2.0 * (rnd() - 0.5)])
            .unwrap();
        net.add_diodes(&[i], &[GROUND], &[DiodeModel::Ideal { v_on: 0.1 * rnd() }])
            .unwrap();
    }
    net
}

#[test]
fn ideal_diodes_with_gyrators_satisfy_kcl_and_complementarity() {
    for seed in 0..20 {
        let net = gyrator_ring(8, seed);
        let sol = solve(&net).unwrap();
        let v = &sol.voltages;
        let (da, _, models) = net.diodes();
        // KCL at every node from the element laws.
        let mut r = vec![0.0; net.n_nodes()];
        let (ra, rb, g) = net.resistors();
        for k in 0..g.len() {
            let i = g[k] * (v[ra[k] as usize] - v[rb[k] as usize]);
            r[ra[k] as usize] += i;
            r[rb[k] as usize] -= i;
        }
        let (q, gg) = net.gyrators();
        for k in 0..gg.len() {
            let [p1, n1, p2, n2] = q[k].map(|x| x as usize);
            let i1 = gg[k] * (v[p2] - v[n2]);
            let i2 = -gg[k] * (v[p1] - v[n1]);
            r[p1] += i1;
            r[n1] -= i1;
            r[p2] += i2;
            r[n2] -= i2;
        }
        let (ia, ib, iv) = net.current_sources();
        for k in 0..iv.len() {
            r[ia[k] as usize] += iv[k];
            r[ib[k] as usize] -= iv[k];
        }
        for k in 0..da.len() {
            r[da[k] as usize] += sol.diode_currents[k];
            r[0] -= sol.diode_currents[k];
        }
        for x in 1..net.n_nodes() {
            assert!(r[x].abs() < 1e-12, "seed {seed}: KCL {x}: {}", r[x]);
        }
        for k in 0..da.len() {
            let DiodeModel::Ideal { v_on } = models[k] else {
                unreachable!()
            };
            let (dv, i) = (v[da[k] as usize], sol.diode_currents[k]);
            assert!(i >= 0.0 && dv <= v_on + 1e-13, "seed {seed}");
            assert!(
                i == 0.0 || (dv - v_on).abs() <= 1e-13,
                "seed {seed}: {i} {dv} {v_on}"
            );
        }
    }
}

#[test]
fn gyrators_are_lossless_and_transformers_conserve_power() {
    let mut net = reflected(1.5);
    net.add_gyrators(&[3], &[GROUND], &[2], &[1], &[0.7e-3])
        .unwrap();
    let sol = solve(&net).unwrap();
    let v = &sol.voltages;
    let i1 = sol.transformer_currents[0];
    let (v1, v2) = (v[2], v[3]);
    assert!((v1 * i1 + v2 * (-i1 / 1.5)).abs() < 1e-18);
    // Tellegen: Σ branch powers = 0 (resistors + source + transformer + gyrator).
    let (ra, rb, g) = net.resistors();
    let mut p: f64 = (0..g.len())
        .map(|k| g[k] * (v[ra[k] as usize] - v[rb[k] as usize]).powi(2))
        .sum();
    p += v[1] * sol.source_currents[0];
    p += v1 * i1 + v2 * (-i1 / 1.5);
    let (gv1, gv2) = (v[3], v[2] - v[1]);
    p += gv1 * (0.7e-3 * gv2) + gv2 * (-0.7e-3 * gv1);
    assert!(p.abs() < 1e-15, "{p}");
}

#[test]
fn shockley_and_relu_with_two_ports_converge() {
    let mut net = reflected(-2.0);
    let shock = DiodeModel::Shockley {
        i_s: 1e-14,
        n: 1.0,
        temperature: crate::network::DEFAULT_TEMPERATURE,
        gmin: crate::network::DEFAULT_GMIN,
    };
    net.add_nodes(1).unwrap(); // node 4
    net.add_resistors(&[4], &[GROUND], &[1e-3]).unwrap();
    net.add_gyrators(&[2], &[GROUND], &[4], &[GROUND], &[1e-3])
        .unwrap();
    net.add_diodes(
        &[3, 4],
        &[GROUND, GROUND],
        &[
            shock,
            DiodeModel::Relu {
                g_on: 1e-2,
                v_on: 0.1,
            },
        ],
    )
    .unwrap();
    let sol = solve(&net).unwrap();
    assert!(sol.kcl_residual[0] < 1e-15, "{}", sol.kcl_residual[0]);
    // The ReLU law holds exactly at the solution.
    let dv = sol.voltages[4];
    let expect = 1e-2 * (dv - 0.1).max(0.0);
    assert!((sol.diode_currents[1] - expect).abs() < 1e-15);
}

#[test]
fn adjoint_matches_finite_differences() {
    let mut net = gyrator_ring(6, 3);
    net.add_transformers(&[1], &[GROUND], &[3], &[GROUND], &[0.8])
        .unwrap();
    let out = 4usize;
    let t = 0.05;
    let loss = |net: &Network| {
        let s = solve(net).unwrap();
        0.5 * (s.voltages[out] - t).powi(2)
    };
    let sol = solve(&net).unwrap();
    let n = net.n_nodes();
    let mut rhs = vec![0.0; n];
    rhs[out] = sol.voltages[out] - t;
    let adj = crate::adjoint_batch(&net, &sol, &rhs, &SolveOptions::default()).unwrap();
    let (ra, rb, g) = net.resistors();
    let g0 = g.to_vec();
    let (ra, rb) = (ra.to_vec(), rb.to_vec());
    for k in 0..g0.len() {
        let dv = sol.voltages[ra[k] as usize] - sol.voltages[rb[k] as usize];
        let dl = adj.lambda[ra[k] as usize] - adj.lambda[rb[k] as usize];
        let exact = -dl * dv;
        let h = 1e-6 * g0[k];
        let mut gp = g0.clone();
        gp[k] += h;
        net.set_conductances(&gp).unwrap();
        let fp = loss(&net);
        gp[k] -= 2.0 * h;
        net.set_conductances(&gp).unwrap();
        let fm = loss(&net);
        net.set_conductances(&g0).unwrap();
        let fd = (fp - fm) / (2.0 * h);
        assert!(
            (exact - fd).abs() <= 1e-6 * fd.abs().max(1e-8),
            "resistor {k}: {exact} vs {fd}"
        );
    }
}

#[test]
fn injections_and_batches_use_the_mna_path() {
    let net = gyrator_ring(5, 7);
    let nodes = [2u32];
    let vals = [0.3, -0.2, 0.0];
    let inj = Injections {
        nodes: &nodes,
        values: &vals,
    };
    let sol = solve_batch(&net, &[], 3, None, Some(inj), &SolveOptions::default()).unwrap();
    let base = solve(&net).unwrap();
    let n = net.n_nodes();
    // The sample with no injection is the plain solve; the others differ.
    for x in 0..n {
        assert!((sol.voltages[2 * n + x] - base.voltages[x]).abs() < 1e-14);
    }
    assert!((sol.voltages[2] - base.voltages[2]).abs() > 1e-6);
}
