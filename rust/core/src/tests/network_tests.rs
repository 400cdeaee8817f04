#![allow(clippy::needless_range_loop, clippy::type_complexity)]
use super::*;
use crate::error::Error;
use std::sync::Arc;

fn is_invalid<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::InvalidInput(_)))
}

fn shockley() -> DiodeModel {
    DiodeModel::Shockley {
        i_s: 1e-14,
        n: 1.0,
        temperature: DEFAULT_TEMPERATURE,
        gmin: DEFAULT_GMIN,
    }
}

/// ground + `n` nodes.
fn net_with(n: usize) -> Network {
    let mut net = Network::new();
    net.add_nodes(n).unwrap();
    net
}

// ---------------------------------------------------------------- constants

#[test]
fn spice_constants_and_thermal_voltage() {
    // ngspice (CODATA 2014): k = 1.38064852e-23 J/K, q = 1.6021766208e-19 C, 27 °C.
    assert_eq!(BOLTZMANN, 1.38064852e-23);
    assert_eq!(CHARGE, 1.6021766208e-19);
    assert_eq!(DEFAULT_TEMPERATURE, 300.15);
    assert_eq!(DEFAULT_GMIN, 1e-12);
    let vt = thermal_voltage(300.15);
    // kT/q at 300.15 K = 8.6173303e-5 V/K × 300.15 K = 0.0258649170... V
    assert!((vt - 0.025_864_917_007).abs() < 1e-12, "V_T = {vt}");
    // Linear in T.
    assert!((thermal_voltage(600.3) - 2.0 * vt).abs() < 1e-15);
}

// ---------------------------------------------------------------- nodes

#[test]
fn new_network_holds_only_ground() {
    let net = Network::new();
    assert_eq!(net.n_nodes(), 1);
    assert_eq!(GROUND, 0);
    assert_eq!(net.n_resistors(), 0);
    assert_eq!(net.n_diodes(), 0);
    assert_eq!(net.n_voltage_sources(), 0);
    assert_eq!(net.n_current_sources(), 0);
    assert_eq!(net.n_inputs(), 0);
    assert!(!net.is_compiled());
}

#[test]
fn add_nodes_returns_first_index_of_consecutive_blocks() {
    let mut net = Network::new();
    assert_eq!(net.add_nodes(3).unwrap(), 1);
    assert_eq!(net.add_nodes(1).unwrap(), 4);
    assert_eq!(net.add_nodes(0).unwrap(), 5);
    assert_eq!(net.add_nodes(10).unwrap(), 5);
    assert_eq!(net.n_nodes(), 15);
}

#[test]
fn add_nodes_rejects_too_many() {
    let mut net = Network::new();
    assert!(is_invalid(net.add_nodes(u32::MAX as usize)));
    assert_eq!(net.n_nodes(), 1);
}

#[test]
fn add_nodes_rejects_count_that_overflows_usize() {
    // BUG candidate: `first + count` overflows (wraps in release, panics in debug).
    let mut net = Network::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| net.add_nodes(usize::MAX)));
    match r {
        Ok(res) => {
            assert!(is_invalid(res), "add_nodes(usize::MAX) must be an error");
            assert_eq!(
                net.n_nodes(),
                1,
                "a failed add_nodes must leave the network unchanged"
            );
        }
        Err(_) => panic!("add_nodes(usize::MAX) panicked instead of returning an error"),
    }
}

#[test]
fn default_network_is_usable_like_new() {
    // `Network` derives `Default` publicly; node 0 (ground) must exist in every network.
    let r = std::panic::catch_unwind(|| {
        let mut net = Network::default();
        let n0 = net.n_nodes();
        let first = net.add_nodes(1).unwrap();
        // The new node has no path to ground: the analysis must name it as floating.
        let ok =
            matches!(net.compiled(), Err(Error::FloatingNodes { ref nodes }) if nodes == &vec![1]);
        (n0, first, ok)
    });
    match r {
        Ok((n0, first, ok)) => {
            assert_eq!(n0, 1, "Network::default() has no ground node");
            assert_eq!(first, 1);
            assert!(ok);
        }
        Err(_) => panic!("using Network::default() panics (it has no ground node)"),
    }
}

// ---------------------------------------------------------------- resistors

#[test]
fn add_resistors_stores_branches_and_returns_first_index() {
    let mut net = net_with(3);
    assert_eq!(net.add_resistors(&[1, 2], &[2, 0], &[1.0, 2.0]).unwrap(), 0);
    assert_eq!(net.add_resistors(&[3], &[1], &[0.5]).unwrap(), 2);
    let (a, b, g) = net.resistors();
    assert_eq!(a, &[1, 2, 3]);
    assert_eq!(b, &[2, 0, 1]);
    assert_eq!(g, &[1.0, 2.0, 0.5]);
    assert_eq!(net.conductances(), &[1.0, 2.0, 0.5]);
    assert_eq!(net.n_resistors(), 3);
    // Duplicate (parallel) resistors are allowed.
    net.add_resistors(&[1, 2], &[2, 1], &[1.0, 1.0]).unwrap();
    assert_eq!(net.n_resistors(), 5);
}

#[test]
fn resistor_conductance_must_be_finite_and_positive() {
    for bad in [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut net = net_with(2);
        assert!(
            is_invalid(net.add_resistors(&[1], &[2], &[bad])),
            "g = {bad} accepted"
        );
        assert_eq!(net.n_resistors(), 0);
    }
    // Tiny but positive is fine.
    let mut net = net_with(2);
    net.add_resistors(&[1], &[2], &[1e-300]).unwrap();
}

#[test]
fn failed_batch_adds_nothing() {
    let mut net = net_with(3);
    net.add_resistors(&[1], &[0], &[1.0]).unwrap();
    net.add_voltage_source(2, SourceValue::Fixed(1.0)).unwrap();
    net.add_voltage_source(3, SourceValue::Fixed(1.0)).unwrap();
    net.compiled().unwrap();
    // Second entry bad: nothing from the call may be added.
    assert!(is_invalid(net.add_resistors(
        &[1, 2],
        &[2, 3],
        &[1.0, -1.0]
    )));
    assert!(is_invalid(net.add_resistors(&[1, 2], &[2, 2], &[1.0, 1.0])));
    assert!(is_invalid(net.add_resistors(&[1, 9], &[2, 3], &[1.0, 1.0])));
    assert_eq!(net.n_resistors(), 1);
    assert_eq!(net.resistors().0, &[1]);
    assert!(
        net.is_compiled(),
        "a rejected call must not touch the cached analysis"
    );
}

#[test]
fn resistor_self_loop_rejected() {
    let mut net = net_with(2);
    assert!(is_invalid(net.add_resistors(&[1], &[1], &[1.0])));
    assert!(is_invalid(net.add_resistors(&[0], &[0], &[1.0])));
    assert_eq!(net.n_resistors(), 0);
}

#[test]
fn resistor_unknown_node_rejected() {
    let mut net = net_with(2);
    assert!(is_invalid(net.add_resistors(&[1], &[3], &[1.0])));
    assert!(is_invalid(net.add_resistors(&[3], &[1], &[1.0])));
    assert!(is_invalid(net.add_resistors(&[usize::MAX], &[1], &[1.0])));
    // Node 2 exists (ground + 2 nodes).
    net.add_resistors(&[2], &[0], &[1.0]).unwrap();
}

#[test]
fn resistor_length_mismatch_rejected() {
    let mut net = net_with(3);
    assert!(is_invalid(net.add_resistors(&[1, 2], &[2], &[1.0, 1.0])));
    assert!(is_invalid(net.add_resistors(&[1, 2], &[2, 3], &[1.0])));
    assert_eq!(net.n_resistors(), 0);
}

#[test]
fn set_conductances_validates_and_replaces() {
    let mut net = net_with(2);
    net.add_resistors(&[1, 2], &[2, 0], &[1.0, 2.0]).unwrap();
    assert!(is_invalid(net.set_conductances(&[1.0])));
    assert!(is_invalid(net.set_conductances(&[1.0, 2.0, 3.0])));
    assert!(is_invalid(net.set_conductances(&[1.0, 0.0])));
    assert!(is_invalid(net.set_conductances(&[f64::NAN, 1.0])));
    assert!(is_invalid(net.set_conductances(&[1.0, -3.0])));
    assert_eq!(net.conductances(), &[1.0, 2.0]);
    net.set_conductances(&[3.0, 4.0]).unwrap();
    assert_eq!(net.conductances(), &[3.0, 4.0]);
}

// ---------------------------------------------------------------- diodes

#[test]
fn diode_models_validated() {
    let bad = [
        DiodeModel::Ideal { v_on: f64::NAN },
        DiodeModel::Ideal {
            v_on: f64::INFINITY,
        },
        DiodeModel::Relu {
            g_on: 0.0,
            v_on: 0.0,
        },
        DiodeModel::Relu {
            g_on: -1.0,
            v_on: 0.0,
        },
        DiodeModel::Relu {
            g_on: f64::NAN,
            v_on: 0.0,
        },
        DiodeModel::Relu {
            g_on: f64::INFINITY,
            v_on: 0.0,
        },
        DiodeModel::Relu {
            g_on: 1.0,
            v_on: f64::NAN,
        },
        DiodeModel::Shockley {
            i_s: 0.0,
            n: 1.0,
            temperature: 300.0,
            gmin: 0.0,
        },
        DiodeModel::Shockley {
            i_s: -1e-14,
            n: 1.0,
            temperature: 300.0,
            gmin: 0.0,
        },
        DiodeModel::Shockley {
            i_s: f64::NAN,
            n: 1.0,
            temperature: 300.0,
            gmin: 0.0,
        },
        DiodeModel::Shockley {
            i_s: 1e-14,
            n: 0.0,
            temperature: 300.0,
            gmin: 0.0,
        },
        DiodeModel::Shockley {
            i_s: 1e-14,
            n: f64::NAN,
            temperature: 300.0,
            gmin: 0.0,
        },
        DiodeModel::Shockley {
            i_s: 1e-14,
            n: 1.0,
            temperature: 0.0,
            gmin: 0.0,
        },
        DiodeModel::Shockley {
            i_s: 1e-14,
            n: 1.0,
            temperature: -5.0,
            gmin: 0.0,
        },
        DiodeModel::Shockley {
            i_s: 1e-14,
            n: 1.0,
            temperature: f64::INFINITY,
            gmin: 0.0,
        },
        DiodeModel::Shockley {
            i_s: 1e-14,
            n: 1.0,
            temperature: 300.0,
            gmin: -1e-12,
        },
        DiodeModel::Shockley {
            i_s: 1e-14,
            n: 1.0,
            temperature: 300.0,
            gmin: f64::NAN,
        },
    ];
    for m in bad {
        assert!(is_invalid(m.validate()), "{m:?} validated");
        let mut net = net_with(2);
        assert!(
            is_invalid(net.add_diodes(&[1], &[2], &[m])),
            "{m:?} accepted"
        );
        assert_eq!(net.n_diodes(), 0);
    }
    let good = [
        DiodeModel::Ideal { v_on: -0.3 },
        DiodeModel::Ideal { v_on: 0.0 },
        DiodeModel::Relu {
            g_on: 1e-3,
            v_on: 0.7,
        },
        DiodeModel::Shockley {
            i_s: 1e-14,
            n: 1.0,
            temperature: 300.0,
            gmin: 0.0,
        },
        shockley(),
    ];
    let mut net = net_with(2);
    for m in good {
        m.validate().unwrap();
        net.add_diodes(&[1], &[2], &[m]).unwrap();
    }
    assert_eq!(net.n_diodes(), good.len());
    assert!(!DiodeModel::Ideal { v_on: 0.0 }.always_conducts());
    assert!(!DiodeModel::Relu {
        g_on: 1.0,
        v_on: 0.0
    }
    .always_conducts());
    assert!(shockley().always_conducts());
}

#[test]
fn diode_branch_errors() {
    let m = DiodeModel::Ideal { v_on: 0.0 };
    let mut net = net_with(2);
    assert!(is_invalid(net.add_diodes(&[1], &[1], &[m])));
    assert!(is_invalid(net.add_diodes(&[1], &[5], &[m])));
    assert!(is_invalid(net.add_diodes(&[1, 2], &[2], &[m, m])));
    assert!(is_invalid(net.add_diodes(&[1, 2], &[2, 0], &[m])));
    assert_eq!(net.n_diodes(), 0);
    assert_eq!(
        net.add_diodes(&[1, 2], &[2, 0], &[m, shockley()]).unwrap(),
        0
    );
    assert_eq!(net.add_diodes(&[0], &[1], &[m]).unwrap(), 2);
    let (a, b, models) = net.diodes();
    assert_eq!(a, &[1, 2, 0]);
    assert_eq!(b, &[2, 0, 1]);
    assert_eq!(models[1], shockley());
}

#[test]
fn set_diode_model_validates() {
    let mut net = net_with(2);
    net.add_diodes(&[1], &[2], &[DiodeModel::Ideal { v_on: 0.0 }])
        .unwrap();
    assert!(is_invalid(
        net.set_diode_model(1, DiodeModel::Ideal { v_on: 0.0 })
    ));
    assert!(is_invalid(net.set_diode_model(
        0,
        DiodeModel::Relu {
            g_on: -1.0,
            v_on: 0.0
        }
    )));
    assert_eq!(net.diodes().2[0], DiodeModel::Ideal { v_on: 0.0 });
    net.set_diode_model(
        0,
        DiodeModel::Relu {
            g_on: 2.0,
            v_on: 0.1,
        },
    )
    .unwrap();
    assert_eq!(
        net.diodes().2[0],
        DiodeModel::Relu {
            g_on: 2.0,
            v_on: 0.1
        }
    );
}

// ---------------------------------------------------------------- voltage sources

#[test]
fn voltage_source_errors() {
    let mut net = net_with(2);
    // Clamp on ground.
    assert!(is_invalid(
        net.add_voltage_source(GROUND, SourceValue::Fixed(1.0))
    ));
    // Unknown node.
    assert!(is_invalid(
        net.add_voltage_source(3, SourceValue::Fixed(1.0))
    ));
    // Non-finite value.
    assert!(is_invalid(
        net.add_voltage_source(1, SourceValue::Fixed(f64::NAN))
    ));
    assert!(is_invalid(
        net.add_voltage_source(1, SourceValue::Fixed(f64::INFINITY))
    ));
    assert_eq!(net.n_voltage_sources(), 0);
    // Double clamp, with fixed or input sources.
    assert_eq!(
        net.add_voltage_source(1, SourceValue::Fixed(1.0)).unwrap(),
        0
    );
    assert!(is_invalid(
        net.add_voltage_source(1, SourceValue::Fixed(2.0))
    ));
    assert!(is_invalid(net.add_input(1)));
    assert_eq!(net.n_voltage_sources(), 1);
    assert_eq!(net.n_inputs(), 0, "a rejected input must not count");
    // Inputs must come in order.
    assert!(is_invalid(net.add_voltage_source(2, SourceValue::Input(1))));
    assert_eq!(net.n_inputs(), 0);
    assert_eq!(net.add_input(2).unwrap(), 0);
    assert!(is_invalid(net.add_input(GROUND)));
    assert_eq!(net.n_inputs(), 1);
    let (nodes, values) = net.voltage_sources();
    assert_eq!(nodes, &[1, 2]);
    assert_eq!(values, &[SourceValue::Fixed(1.0), SourceValue::Input(0)]);
}

#[test]
fn inputs_numbered_in_order() {
    let mut net = net_with(3);
    assert_eq!(net.add_input(3).unwrap(), 0);
    assert_eq!(
        net.add_voltage_source(1, SourceValue::Fixed(0.5)).unwrap(),
        1
    );
    assert_eq!(net.add_input(2).unwrap(), 1);
    assert_eq!(net.n_inputs(), 2);
    assert_eq!(net.n_voltage_sources(), 3);
    assert_eq!(net.voltage_sources().1[2], SourceValue::Input(1));
}

#[test]
fn set_voltage_source_value_errors() {
    let mut net = net_with(2);
    net.add_voltage_source(1, SourceValue::Fixed(1.0)).unwrap();
    net.add_input(2).unwrap();
    assert!(
        is_invalid(net.set_voltage_source_value(1, 3.0)),
        "input source set as fixed"
    );
    assert!(
        is_invalid(net.set_voltage_source_value(2, 3.0)),
        "unknown source"
    );
    assert!(is_invalid(net.set_voltage_source_value(0, f64::NAN)));
    assert_eq!(net.voltage_sources().1[0], SourceValue::Fixed(1.0));
    net.set_voltage_source_value(0, -2.5).unwrap();
    assert_eq!(net.voltage_sources().1[0], SourceValue::Fixed(-2.5));
}

// ---------------------------------------------------------------- current sources

#[test]
fn current_source_errors() {
    let mut net = net_with(2);
    assert!(is_invalid(net.add_current_sources(&[1], &[1], &[1.0])));
    assert!(is_invalid(net.add_current_sources(&[1], &[4], &[1.0])));
    assert!(is_invalid(net.add_current_sources(&[1], &[2], &[f64::NAN])));
    assert!(is_invalid(net.add_current_sources(
        &[1],
        &[2],
        &[f64::NEG_INFINITY]
    )));
    assert!(is_invalid(net.add_current_sources(&[1], &[2], &[1.0, 2.0])));
    assert!(is_invalid(net.add_current_sources(
        &[1, 0],
        &[2],
        &[1.0, 2.0]
    )));
    assert_eq!(net.n_current_sources(), 0);
    // Zero and negative values are legitimate.
    assert_eq!(
        net.add_current_sources(&[0, 2], &[1, 1], &[0.0, -1e-3])
            .unwrap(),
        0
    );
    let (a, b, v) = net.current_sources();
    assert_eq!(
        (a, b, v),
        (&[0u32, 2][..], &[1u32, 1][..], &[0.0, -1e-3][..])
    );
    assert!(is_invalid(net.set_current_source_values(&[1.0])));
    assert!(is_invalid(net.set_current_source_values(&[1.0, f64::NAN])));
    net.set_current_source_values(&[2.0, 3.0]).unwrap();
    assert_eq!(net.current_sources().2, &[2.0, 3.0]);
}

// ---------------------------------------------------------------- cache

#[test]
fn compiled_analysis_is_cached_until_topology_changes() {
    let mut net = net_with(3);
    net.add_resistors(&[1, 2, 3], &[2, 3, 0], &[1.0, 2.0, 3.0])
        .unwrap();
    net.add_voltage_source(1, SourceValue::Fixed(1.0)).unwrap();
    assert!(!net.is_compiled());
    let c1 = net.compiled().unwrap();
    assert!(net.is_compiled());
    // Values only: same analysis object.
    net.set_conductances(&[4.0, 5.0, 6.0]).unwrap();
    assert!(net.is_compiled());
    net.set_voltage_source_value(0, 2.0).unwrap();
    assert!(net.is_compiled());
    let c2 = net.compiled().unwrap();
    assert!(
        Arc::ptr_eq(&c1, &c2),
        "set_conductances repeated the symbolic analysis"
    );

    // Topology changes invalidate.
    net.add_resistors(&[1], &[3], &[1.0]).unwrap();
    assert!(!net.is_compiled());
    let c3 = net.compiled().unwrap();
    assert!(!Arc::ptr_eq(&c1, &c3));
    assert_eq!(c1.nnz(), 3); // free 2, 3: two diagonals + (3, 2)
    assert_eq!(c3.nnz(), 3, "1-3 with 1 clamped adds no free-free entry");

    net.add_nodes(1).unwrap();
    assert!(!net.is_compiled());
    net.add_resistors(&[4], &[2], &[1.0]).unwrap();
    net.compiled().unwrap();
    net.add_diodes(&[4], &[0], &[DiodeModel::Ideal { v_on: 0.0 }])
        .unwrap();
    assert!(!net.is_compiled());
    net.compiled().unwrap();
    net.add_voltage_source(4, SourceValue::Fixed(0.0)).unwrap();
    assert!(!net.is_compiled());
    let c = net.compiled().unwrap();
    assert_eq!(c.n_free, 2);
}

#[test]
fn set_diode_model_invalidates_only_on_change_of_kind_that_matters() {
    // Node 2 hangs off node 1 through diode 0 only.
    let mut net = net_with(2);
    net.add_resistors(&[1], &[0], &[1.0]).unwrap();
    net.add_diodes(&[1], &[2], &[DiodeModel::Ideal { v_on: 0.0 }])
        .unwrap();
    match net.compiled() {
        Err(Error::FloatingNodes { nodes }) => assert_eq!(nodes, vec![2]),
        other => panic!("expected node 2 floating, got {other:?}"),
    }
    assert!(!net.is_compiled());
    // Ideal → Shockley: node 2 now has a path, the analysis must be redone.
    net.set_diode_model(0, shockley()).unwrap();
    let c = net.compiled().unwrap();
    assert_eq!(c.n_free, 2);
    // Shockley → Shockley (other parameters): cached.
    net.set_diode_model(
        0,
        DiodeModel::Shockley {
            i_s: 1e-9,
            n: 2.0,
            temperature: 350.0,
            gmin: 0.0,
        },
    )
    .unwrap();
    assert!(net.is_compiled());
    // Shockley → ReLU: node 2 floats again; a stale cache would hide it.
    net.set_diode_model(
        0,
        DiodeModel::Relu {
            g_on: 1.0,
            v_on: 0.0,
        },
    )
    .unwrap();
    assert!(matches!(net.compiled(), Err(Error::FloatingNodes { .. })));
}

#[test]
fn clone_is_independent() {
    let mut net = net_with(2);
    net.add_resistors(&[1, 2], &[2, 0], &[1.0, 1.0]).unwrap();
    net.compiled().unwrap();
    let mut other = net.clone();
    assert!(other.is_compiled());
    other.set_conductances(&[5.0, 6.0]).unwrap();
    other.add_resistors(&[1], &[0], &[1.0]).unwrap();
    assert!(!other.is_compiled());
    assert!(net.is_compiled());
    assert_eq!(net.conductances(), &[1.0, 1.0]);
    assert_eq!(net.n_resistors(), 2);
    assert_eq!(other.n_resistors(), 3);
}
