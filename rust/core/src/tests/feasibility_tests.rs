#![allow(clippy::needless_range_loop, clippy::type_complexity)]
use super::*;
use crate::network::{SourceValue, DEFAULT_GMIN, DEFAULT_TEMPERATURE};
use proptest::prelude::*;

fn ideal(v_on: f64) -> DiodeModel {
    DiodeModel::Ideal { v_on }
}

/// ground + `n` nodes, diodes (anode, cathode, model), clamps (node, value). Returns the
/// network and the voltage vector holding the clamped values.
fn setup(
    n: usize,
    diodes: &[(usize, usize, DiodeModel)],
    clamps: &[(usize, f64)],
) -> (Network, Vec<f64>) {
    let mut net = Network::new();
    net.add_nodes(n).unwrap();
    for &(a, b, m) in diodes {
        net.add_diodes(&[a], &[b], &[m]).unwrap();
    }
    let mut v = vec![0.0; n + 1];
    for &(node, x) in clamps {
        net.add_voltage_source(node, SourceValue::Fixed(x)).unwrap();
        v[node] = x;
    }
    // Free nodes hold garbage: the check must only read clamped entries.
    for (i, x) in v.iter_mut().enumerate() {
        if i != 0 && !clamps.iter().any(|c| c.0 == i) {
            *x = 1e6 * (i as f64).sin();
        }
    }
    (net, v)
}

fn infeasible_diodes(net: &Network, v: &[f64]) -> Option<Vec<usize>> {
    match check(net, v, 1e-12) {
        Ok(()) => None,
        Err(Error::Infeasible { diodes, .. }) => Some(diodes),
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

#[test]
fn no_ideal_diodes_is_feasible() {
    let relu = DiodeModel::Relu {
        g_on: 1.0,
        v_on: 0.0,
    };
    let sh = DiodeModel::Shockley {
        i_s: 1e-14,
        n: 1.0,
        temperature: DEFAULT_TEMPERATURE,
        gmin: DEFAULT_GMIN,
    };
    // ReLU and Shockley diodes between clamps far beyond threshold: not constraints.
    let (net, v) = setup(2, &[(1, 2, relu), (1, 2, sh)], &[(1, 10.0), (2, -10.0)]);
    assert_eq!(infeasible_diodes(&net, &v), None);
    let (net, v) = setup(0, &[], &[]);
    assert_eq!(infeasible_diodes(&net, &v), None);
}

#[test]
fn two_clamped_nodes() {
    // 3 V across a diode with v_on = 0.7: infeasible.
    let (net, v) = setup(2, &[(1, 2, ideal(0.7))], &[(1, 3.0), (2, 0.0)]);
    assert_eq!(infeasible_diodes(&net, &v), Some(vec![0]));
    // Reverse-biased: feasible.
    let (net, v) = setup(2, &[(2, 1, ideal(0.7))], &[(1, 3.0), (2, 0.0)]);
    assert_eq!(infeasible_diodes(&net, &v), None);
    // Below threshold: feasible; exactly at threshold: feasible.
    let (net, v) = setup(2, &[(1, 2, ideal(3.5))], &[(1, 3.0), (2, 0.0)]);
    assert_eq!(infeasible_diodes(&net, &v), None);
    let (net, v) = setup(2, &[(1, 2, ideal(0.5))], &[(1, 0.75), (2, 0.25)]);
    assert_eq!(infeasible_diodes(&net, &v), None);
}

#[test]
fn clamped_node_to_ground() {
    let (net, v) = setup(1, &[(1, 0, ideal(0.5))], &[(1, 2.0)]);
    assert_eq!(infeasible_diodes(&net, &v), Some(vec![0]));
    let (net, v) = setup(1, &[(0, 1, ideal(-3.0))], &[(1, 2.0)]);
    assert_eq!(infeasible_diodes(&net, &v), Some(vec![0]));
    let (net, v) = setup(1, &[(0, 1, ideal(-2.0))], &[(1, 2.0)]);
    assert_eq!(infeasible_diodes(&net, &v), None);
}

#[test]
fn chain_through_free_nodes_names_the_cycle() {
    // 1 (3 V) → 3 → 4 → 2 (0 V), three diodes of 0.5 V: at most 1.5 V can drop.
    // Diode 3 (5 → 0) and diode 4 (3 → 6) are off the cycle.
    let diodes = [
        (1, 3, ideal(0.5)),
        (3, 4, ideal(0.5)),
        (4, 2, ideal(0.5)),
        (5, 0, ideal(0.1)),
        (3, 6, ideal(0.0)),
    ];
    let (net, v) = setup(6, &diodes, &[(1, 3.0), (2, 0.0)]);
    assert_eq!(infeasible_diodes(&net, &v), Some(vec![0, 1, 2]));
    let e = check(&net, &v, 1e-12).unwrap_err();
    assert!(e.to_string().contains("infeasible"), "{e}");
    // With 1.25 V across the chain it is feasible.
    let (net, v) = setup(6, &diodes, &[(1, 1.25), (2, 0.0)]);
    assert_eq!(infeasible_diodes(&net, &v), None);
    // Exactly 1.5 V: feasible (all three at threshold).
    let (net, v) = setup(6, &diodes, &[(1, 1.5), (2, 0.0)]);
    assert_eq!(infeasible_diodes(&net, &v), None);
}

#[test]
fn chain_between_clamp_and_ground() {
    let (net, v) = setup(
        3,
        &[
            (1, 2, ideal(0.25)),
            (2, 3, ideal(0.25)),
            (3, 0, ideal(0.25)),
        ],
        &[(1, 1.0)],
    );
    assert_eq!(infeasible_diodes(&net, &v), Some(vec![0, 1, 2]));
    let (net, v) = setup(
        3,
        &[
            (1, 2, ideal(0.25)),
            (2, 3, ideal(0.25)),
            (3, 0, ideal(0.25)),
        ],
        &[(1, 0.5)],
    );
    assert_eq!(infeasible_diodes(&net, &v), None);
}

#[test]
fn antiparallel_pairs() {
    // Zero-threshold antiparallel pair: a short circuit, feasible (cycle weight 0).
    let (net, v) = setup(2, &[(1, 2, ideal(0.0)), (2, 1, ideal(0.0))], &[]);
    assert_eq!(infeasible_diodes(&net, &v), None);
    // Between a clamped node and a free node, and between two clamps at one voltage.
    let (net, v) = setup(2, &[(1, 2, ideal(0.0)), (2, 1, ideal(0.0))], &[(1, 0.7)]);
    assert_eq!(infeasible_diodes(&net, &v), None);
    let (net, v) = setup(
        2,
        &[(1, 2, ideal(0.0)), (2, 1, ideal(0.0))],
        &[(1, 0.7), (2, 0.7)],
    );
    assert_eq!(infeasible_diodes(&net, &v), None);
    // ... but not at two different voltages: only the diode pointing down is named.
    let (net, v) = setup(
        2,
        &[(1, 2, ideal(0.0)), (2, 1, ideal(0.0))],
        &[(1, 0.7), (2, 0.5)],
    );
    assert_eq!(infeasible_diodes(&net, &v), Some(vec![0]));
    // Windows 0.2 ≤ Δv ≤ 0.3: feasible. 0.3 ≤ Δv ≤ 0.2: infeasible, both named.
    let (net, v) = setup(2, &[(1, 2, ideal(0.3)), (2, 1, ideal(-0.2))], &[]);
    assert_eq!(infeasible_diodes(&net, &v), None);
    let (net, v) = setup(2, &[(1, 2, ideal(0.2)), (2, 1, ideal(-0.3))], &[]);
    assert_eq!(infeasible_diodes(&net, &v), Some(vec![0, 1]));
    // Negative thresholds around a loop of free nodes.
    let (net, v) = setup(
        3,
        &[
            (1, 2, ideal(-0.1)),
            (2, 3, ideal(-0.1)),
            (3, 1, ideal(0.15)),
        ],
        &[],
    );
    assert_eq!(infeasible_diodes(&net, &v), Some(vec![0, 1, 2]));
    let (net, v) = setup(
        3,
        &[
            (1, 2, ideal(-0.1)),
            (2, 3, ideal(-0.1)),
            (3, 1, ideal(0.25)),
        ],
        &[],
    );
    assert_eq!(infeasible_diodes(&net, &v), None);
}

#[test]
fn parallel_constraint_edges_are_not_a_cycle() {
    // BUG repro: clamp node 1 at 0.5 V; ideal diode 0: 1 → 2 with v_on = −0.5 (v2 ≥ 1.0,
    // node 2 free); ideal diode 1: 0 → 1 with v_on = −0.25 (v1 ≥ 0.25, true). Feasible
    // (v2 = 1 works). The SPFA stops when a node has been *relaxed* more than m times;
    // node 0 is relaxed twice per pass through the two parallel edges 1 → 0 (diode 1 and
    // the clamp), so the check reports a cycle that does not exist and then panics
    // (index usize::MAX) walking the predecessor chain.
    // Simplest form: node 1 clamped at −1 V with two reverse-biased ideal diodes 1 → 0
    // (v_on −0.25 and −0.5): node 1 is relaxed three times (> m = 2) in the first pass.
    let cases: [(usize, Vec<(usize, usize, DiodeModel)>, Vec<(usize, f64)>); 2] = [
        (
            2,
            vec![(1, 2, ideal(-0.5)), (0, 1, ideal(-0.25))],
            vec![(1, 0.5)],
        ),
        (
            1,
            vec![(1, 0, ideal(-0.25)), (1, 0, ideal(-0.5))],
            vec![(1, -1.0)],
        ),
    ];
    let mut failures = vec![];
    for (n, diodes, clamps) in &cases {
        let (net, v) = setup(*n, diodes, clamps);
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&net, &v, 1e-12)));
        match got {
            Err(_) => failures.push(format!("{diodes:?} {clamps:?}: panicked")),
            Ok(Err(e)) => failures.push(format!("{diodes:?} {clamps:?}: {e}")),
            Ok(Ok(())) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "feasible systems rejected:\n{}",
        failures.join("\n")
    );
}

#[test]
fn tolerance_absorbs_rounding_only() {
    let (net, v) = setup(2, &[(1, 2, ideal(1.0))], &[(1, 1.0 + 1e-14), (2, 0.0)]);
    assert!(check(&net, &v, 1e-12).is_ok());
    let (net, v) = setup(2, &[(1, 2, ideal(1.0))], &[(1, 1.0 + 1e-9), (2, 0.0)]);
    assert!(check(&net, &v, 1e-12).is_err());
}

#[test]
fn large_feasible_ladder_is_fast_and_feasible() {
    // Node 2 ≤ node 1 (1 V), nodes 2..n tied by zero-threshold antiparallel pairs, node n
    // clamped to 0.5 V: feasible, and the check must not blow up.
    let n = 2000;
    let mut diodes = vec![(2, 1, ideal(0.0))];
    for k in 2..n {
        diodes.push((k, k + 1, ideal(0.0)));
        diodes.push((k + 1, k, ideal(0.0)));
    }
    let (net, v) = setup(n, &diodes, &[(1, 1.0), (n, 0.5)]);
    assert_eq!(infeasible_diodes(&net, &v), None);
    // Clamp the far end above node 1: the pairs and the first diode form the cycle.
    let (net, v) = setup(n, &diodes, &[(1, 1.0), (n, 1.5)]);
    let named = infeasible_diodes(&net, &v).expect("infeasible");
    assert!(named.contains(&0));
}

// ---------------------------------------------------------------- property

/// Most negative cycle weight of the difference constraints (Floyd–Warshall), or 0.
fn min_cycle(n_nodes: usize, diodes: &[(usize, usize, f64)], clamps: &[(usize, f64)]) -> f64 {
    let inf = f64::INFINITY;
    let mut d = vec![vec![inf; n_nodes]; n_nodes];
    for (i, row) in d.iter_mut().enumerate() {
        row[i] = 0.0;
    }
    let mut edge = |from: usize, to: usize, w: f64| {
        if w < d[from][to] {
            d[from][to] = w;
        }
    };
    for &(a, b, w) in diodes {
        edge(b, a, w); // x_a − x_b ≤ w
    }
    for &(c, x) in clamps {
        edge(0, c, x); // x_c − x_0 ≤ x
        edge(c, 0, -x); // x_0 − x_c ≤ −x
    }
    for k in 0..n_nodes {
        for i in 0..n_nodes {
            if d[i][k] == inf {
                continue;
            }
            for j in 0..n_nodes {
                let via = d[i][k] + d[k][j];
                if via < d[i][j] {
                    d[i][j] = via;
                }
            }
        }
    }
    (0..n_nodes).map(|i| d[i][i]).fold(0.0, f64::min)
}

#[derive(Debug, Clone)]
struct Case {
    n: usize,
    diodes: Vec<(usize, usize, f64)>,
    others: Vec<(usize, usize)>,
    clamps: Vec<(usize, f64)>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..10).prop_flat_map(|n| {
        // Quarter-volt grid: cycle weights are exact multiples of 0.25.
        let q = |lo: i32, hi: i32| (lo..=hi).prop_map(|k| k as f64 * 0.25);
        (
            Just(n),
            proptest::collection::vec((0..=n, 0..=n, q(-2, 4)), 0..2 * n + 3),
            proptest::collection::vec((0..=n, 0..=n), 0..3),
            proptest::collection::btree_map(1..=n, q(-8, 8), 0..n.min(4) + 1),
        )
            .prop_map(|(n, diodes, others, clamps)| Case {
                n,
                diodes: diodes.into_iter().filter(|d| d.0 != d.1).collect(),
                others: others.into_iter().filter(|d| d.0 != d.1).collect(),
                clamps: clamps.into_iter().collect(),
            })
    })
}

fn case_continuous() -> impl Strategy<Value = Case> {
    (1usize..8).prop_flat_map(|n| {
        (
            Just(n),
            proptest::collection::vec((0..=n, 0..=n, -0.5f64..1.0), 0..2 * n + 3),
            proptest::collection::btree_map(1..=n, -2.0f64..2.0, 0..n.min(4) + 1),
        )
            .prop_map(|(n, diodes, clamps)| Case {
                n,
                diodes: diodes.into_iter().filter(|d| d.0 != d.1).collect(),
                others: vec![],
                clamps: clamps.into_iter().collect(),
            })
    })
}

fn check_case(c: &Case) -> std::result::Result<(), TestCaseError> {
    let mut list: Vec<(usize, usize, DiodeModel)> =
        c.diodes.iter().map(|&(a, b, w)| (a, b, ideal(w))).collect();
    // ReLU diodes after the ideal ones: they must never be named.
    list.extend(c.others.iter().map(|&(a, b)| {
        (
            a,
            b,
            DiodeModel::Relu {
                g_on: 1.0,
                v_on: -5.0,
            },
        )
    }));
    let (net, v) = setup(c.n, &list, &c.clamps);
    let weight = min_cycle(c.n + 1, &c.diodes, &c.clamps);
    if weight < 0.0 && weight > -1e-9 {
        return Ok(()); // within rounding of the boundary
    }
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&net, &v, 1e-12)));
    prop_assert!(
        got.is_ok(),
        "check panicked on {:?} (min cycle weight {})",
        c,
        weight
    );
    match got.unwrap() {
        Ok(()) => prop_assert!(weight >= 0.0, "missed negative cycle of weight {}", weight),
        Err(Error::Infeasible { diodes, .. }) => {
            prop_assert!(
                weight < 0.0,
                "feasible system reported infeasible: {:?} in {:?}",
                diodes,
                c
            );
            prop_assert!(!diodes.is_empty());
            prop_assert!(diodes.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(
                diodes.iter().all(|&k| k < c.diodes.len()),
                "named a non-ideal diode"
            );
            // The named diodes with the clamps are infeasible on their own.
            let sub: Vec<(usize, usize, f64)> = diodes.iter().map(|&k| c.diodes[k]).collect();
            prop_assert!(
                min_cycle(c.n + 1, &sub, &c.clamps) < 0.0,
                "named diodes {:?} do not form an infeasible subsystem",
                diodes
            );
        }
        Err(e) => prop_assert!(false, "unexpected error {:?}", e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x0f10_u64), ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_floyd_warshall(c in case()) {
        check_case(&c)?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(0x0f10_u64), ..ProptestConfig::default() })]

    /// Continuous thresholds in [−0.5, 1) V and clamps in [−2, 2) V.
    #[test]
    fn agrees_with_floyd_warshall_continuous(c in case_continuous()) {
        check_case(&c)?;
    }
}
