#![allow(clippy::needless_range_loop, clippy::type_complexity)]
use super::*;
use crate::solve::{solve_batch, SolveOptions};

fn vt(temperature: f64) -> f64 {
    1.380_648_52e-23 * temperature / 1.602_176_620_8e-19
}

fn parse_err_line(text: &str) -> usize {
    match read_spice(text) {
        Err(Error::SpiceParse(e)) => e.line,
        other => panic!("expected a SPICE parse error, got {other:?}"),
    }
}

fn node(c: &SpiceCircuit, name: &str) -> usize {
    c.node_names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn op(c: &SpiceCircuit) -> Vec<f64> {
    solve_batch(&c.network, &[], 1, None, None, &SolveOptions::default())
        .unwrap()
        .voltages
}

#[test]
fn voltage_divider_netlist() {
    let text = "divider\nV1 in 0 DC 10\nR1 in out 1k\nR2 out gnd 3k\n.op\n.end\n";
    let c = read_spice(text).unwrap();
    assert_eq!(c.title, "divider");
    assert_eq!(c.node_names, vec!["0", "in", "out"]);
    assert_eq!(c.resistor_names, vec!["r1", "r2"]);
    assert_eq!(c.vsource_names, vec!["v1"]);
    assert_eq!(c.vsource_sign, vec![1.0]);
    let net = &c.network;
    assert_eq!(net.n_nodes(), 3);
    let (a, b, g) = net.resistors();
    assert_eq!((a, b), (&[1u32, 2][..], &[2u32, 0][..]));
    assert!((g[0] - 1e-3).abs() < 1e-18 && (g[1] - 1.0 / 3e3).abs() < 1e-18);
    assert_eq!(net.voltage_sources().0, &[1]);
    assert_eq!(net.voltage_sources().1, &[SourceValue::Fixed(10.0)]);
    let v = op(&c);
    assert!((v[node(&c, "out")] - 7.5).abs() < 1e-13);
}

#[test]
fn source_with_plus_terminal_on_ground_is_negated() {
    // V1 0 a 5: V(0) − V(a) = 5, so a sits at −5 V.
    let c = read_spice("t\nV1 0 a 5\nR1 a 0 1k\n").unwrap();
    assert_eq!(c.vsource_sign, vec![-1.0]);
    assert_eq!(c.network.voltage_sources().1, &[SourceValue::Fixed(-5.0)]);
    assert!((op(&c)[node(&c, "a")] + 5.0).abs() < 1e-14);
}

#[test]
fn current_source_convention() {
    // I1 0 out 1m: 1 mA drawn out of ground, pushed into out: +1 V on 1 kΩ.
    let c = read_spice("t\nI1 0 out 1m\nR1 out 0 1k\n").unwrap();
    assert_eq!(c.isource_names, vec!["i1"]);
    let (a, b, v) = c.network.current_sources();
    assert_eq!((a, b, v), (&[0u32][..], &[1u32][..], &[1e-3][..]));
    assert!((op(&c)[1] - 1.0).abs() < 1e-13);
    let c = read_spice("t\nI1 out 0 1m\nR1 out 0 1k\n").unwrap();
    assert!((op(&c)[1] + 1.0).abs() < 1e-13);
}

#[test]
fn diode_model_parameters() {
    let text = "t\nV1 a 0 5\nR1 a k 1k\nD1 k 0 dm\n.model dm D(IS=2.52n N=1.752)\n";
    let c = read_spice(text).unwrap();
    assert_eq!(c.diode_names, vec!["d1"]);
    let (da, db, dm) = c.network.diodes();
    assert_eq!((da, db), (&[2u32][..], &[0u32][..]));
    match dm[0] {
        DiodeModel::Shockley {
            i_s,
            n,
            temperature,
            gmin,
        } => {
            assert!((i_s - 2.52e-9).abs() < 1e-22);
            assert_eq!(n, 1.752);
            assert!((temperature - 300.15).abs() < 1e-12, "T = {temperature}");
            assert_eq!(gmin, 1e-12);
        }
        m => panic!("expected a Shockley diode, got {m:?}"),
    }
    // Operating point against bisection on (5 − u)/1k = I_s (e^{u/nV_T} − 1) + gmin u.
    let v = op(&c);
    let nvt = 1.752 * vt(300.15);
    let f = |u: f64| (5.0 - u) / 1e3 - 2.52e-9 * ((u / nvt).exp() - 1.0) - 1e-12 * u;
    let (mut lo, mut hi) = (0.0, 5.0);
    for _ in 0..200 {
        let m = 0.5 * (lo + hi);
        if f(m) > 0.0 {
            lo = m
        } else {
            hi = m
        }
    }
    assert!((v[2] - lo).abs() < 1e-12, "{} vs {lo}", v[2]);
}

#[test]
fn options_gmin_and_temperature() {
    let text = "t\nV1 a 0 1\nD1 a 0 dm\n.model dm D\n.options gmin=1e-10 temp=50 tnom=50\n";
    let c = read_spice(text).unwrap();
    match c.network.diodes().2[0] {
        DiodeModel::Shockley {
            i_s,
            n,
            temperature,
            gmin,
        } => {
            assert_eq!(i_s, 1e-14);
            assert_eq!(n, 1.0);
            assert!((temperature - 323.15).abs() < 1e-12);
            assert_eq!(gmin, 1e-10);
        }
        m => panic!("{m:?}"),
    }
    // temp ≠ tnom is refused rather than silently unscaled.
    assert!(matches!(
        read_spice("t\nV1 a 0 1\nD1 a 0 dm\n.model dm D\n.temp 50\n"),
        Err(Error::SpiceParse(_))
    ));
}

#[test]
fn series_resistance_and_area() {
    // RS = 10 Ω, area 2: internal node, RS/area in series, I_s × area.
    let text = "t\nV1 a 0 1\nD1 a 0 dm 2\n.model dm D(IS=1e-14 RS=10)\n";
    let c = read_spice(text).unwrap();
    assert_eq!(c.node_names, vec!["0", "a", "d1#internal"]);
    assert_eq!(c.resistor_names, vec!["d1:rs"]);
    let (ra, rb, rg) = c.network.resistors();
    assert_eq!((ra[0], rb[0]), (1, 2));
    assert!(
        (rg[0] - 0.2).abs() < 1e-15,
        "area / RS = 0.2 S, got {}",
        rg[0]
    );
    let (da, db, dm) = c.network.diodes();
    assert_eq!((da[0], db[0]), (2, 0));
    match dm[0] {
        DiodeModel::Shockley { i_s, .. } => assert!((i_s - 2e-14).abs() < 1e-28),
        m => panic!("{m:?}"),
    }
    // Operating point: (1 − u)·0.2 = 2e-14 (e^{u/V_T} − 1) + 1e-12 u.
    let v = op(&c);
    let nvt = vt(300.15);
    let f = |u: f64| (1.0 - u) * 0.2 - 2e-14 * ((u / nvt).exp() - 1.0) - 1e-12 * u;
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..200 {
        let m = 0.5 * (lo + hi);
        if f(m) > 0.0 {
            lo = m
        } else {
            hi = m
        }
    }
    assert!((v[2] - lo).abs() < 1e-12, "{} vs {lo}", v[2]);
}

#[test]
fn node_reached_only_through_junctions_is_well_posed() {
    let c = read_spice("t\nV1 a 0 1\nD1 a mid dm\nD2 mid 0 dm\n.model dm D\n").unwrap();
    let v = op(&c);
    // Identical junctions in series: the midpoint splits the voltage in half.
    assert!((v[node(&c, "mid")] - 0.5).abs() < 1e-12);
}

#[test]
fn construction_errors_carry_line_numbers() {
    // Floating voltage source (neither terminal on ground).
    assert_eq!(parse_err_line("t\nR1 a 0 1k\nV1 a b 1\nR2 b 0 1k\n"), 3);
    // Voltage source across ground.
    assert_eq!(parse_err_line("t\nR1 a 0 1k\n* comment\nV1 0 0 1\n"), 4);
    // Negative resistance.
    assert_eq!(parse_err_line("t\nV1 a 0 1\nR1 a 0 -1k\n"), 3);
    // Self-loops.
    assert_eq!(parse_err_line("t\nV1 a 0 1\nR1 a a 1k\n"), 3);
    // A resistance whose conductance overflows, after a valid resistor (the resistors
    // are added together at the end: the line must still be this one).
    assert_eq!(parse_err_line("t\nV1 a 0 1\nR1 a 0 1k\nR2 a 0 1e-320\n"), 4);
    // A diode's internal node named like a node of the netlist.
    assert_eq!(
        parse_err_line(
            "t\nV1 a 0 1\nR1 d1#internal 0 1k\nD1 a d1#internal dm\n.model dm D(rs=10)\n"
        ),
        4
    );
    // A series resistance whose conductance is not finite.
    assert_eq!(
        parse_err_line("t\nV1 a 0 1\nR1 a 0 1k\nD1 a 0 dm\n.model dm D(rs=1e-320)\n"),
        4
    );
    assert_eq!(parse_err_line("t\nV1 a 0 1\nD1 a a dm\n.model dm D\n"), 3);
    assert_eq!(parse_err_line("t\nV1 a 0 1\nR1 a 0 1k\nI1 a a 1m\n"), 4);
    // Two sources on one node.
    assert_eq!(parse_err_line("t\nV1 a 0 1\nR1 a 0 1k\nV2 a 0 2\n"), 4);
    // Controlled sources.
    assert_eq!(
        parse_err_line("t\nV1 a 0 1\nR1 a 0 1k\nE1 b 0 a 0 2\nR2 b 0 1k\n"),
        4
    );
    // Parse errors pass through with their line.
    assert_eq!(parse_err_line("t\nV1 a 0 1\nR1 a 0 1k2\n"), 3);
}

#[test]
fn elements_keep_order_and_names() {
    let text = "names\nI1 0 n2 1m\nR1 n1 n2 1k\nVIN n1 0 2\nR2 n2 0 2k\nD1 n2 0 dx\n.model DX d(is=1e-15)\nC1 n1 0 1u\n";
    let c = read_spice(text).unwrap();
    assert_eq!(c.node_names, vec!["0", "n2", "n1"]);
    assert_eq!(c.resistor_names, vec!["r1", "r2"]);
    assert_eq!(c.vsource_names, vec!["vin"]);
    assert_eq!(c.isource_names, vec!["i1"]);
    assert_eq!(c.diode_names, vec!["d1"]);
    assert_eq!(c.network.n_resistors(), 2);
    assert_eq!(c.network.n_diodes(), 1);
    // The capacitor is open at DC: the operating point satisfies KCL at n2 by hand.
    let v = op(&c);
    let (v1, v2) = (v[2], v[1]);
    assert_eq!(v1, 2.0);
    let id = 1e-15 * ((v2 / vt(300.15)).exp() - 1.0) + 1e-12 * v2;
    let kcl = 1e-3 + (v1 - v2) / 1e3 - v2 / 2e3 - id;
    assert!(kcl.abs() < 1e-15, "KCL at n2: {kcl:e}");
}

#[test]
fn transformer_and_gyrator_patterns_are_read() {
    let text = "* two-ports\nV1 a 0 1\nR1 a b 1k\nEt p 0 b 0 2\nVs c p 0\nFt 0 b Vs 2\nR2 c 0 500\nGy c 0 a 0 1m\nGy2 0 a c 0 1m\nR3 b 0 1k\n.end\n";
    let c = read_spice(text).unwrap();
    let net = &c.network;
    assert_eq!(net.n_transformers(), 1);
    assert_eq!(net.n_gyrators(), 1);
    assert_eq!(c.transformer_names, vec!["t".to_string()]);
    assert_eq!(c.gyrator_names, vec!["y".to_string()]);
    // The sense node p is merged into port 2's + terminal c.
    assert!(!c.node_names.contains(&"p".to_string()));
    let idx = |s: &str| c.node_names.iter().position(|x| x == s).unwrap() as u32;
    let (q, r) = net.transformers();
    assert_eq!(q[0], [idx("b"), 0, idx("c"), 0]);
    assert_eq!(r[0], 2.0);
    let (qg, g) = net.gyrators();
    assert_eq!(qg[0], [idx("c"), 0, idx("a"), 0]);
    assert_eq!(g[0], 1e-3);
}

#[test]
fn lone_controlled_sources_are_rejected_with_their_line() {
    for (card, what) in [
        ("E1 b 0 a 0 2", "E (VCVS)"),
        ("G1 b 0 a 0 1m", "G element"),
        ("H1 b 0 V1 1k", "H (CCVS)"),
        ("F1 b 0 V1 2", "0 V sense"),
    ] {
        let text = format!("* t\nV1 a 0 1\n{card}\nR1 a b 1k\nR2 b 0 1k\n.end\n");
        match read_spice(&text) {
            Err(Error::SpiceParse(e)) => {
                assert_eq!(e.line, 3, "{card}");
                assert!(e.message.contains(what), "{card}: {}", e.message);
                assert!(e.message.contains("gyrator"), "{card}");
            }
            other => panic!("{card}: {other:?}"),
        }
    }
}

/// V1 a 0 1, R1 a b 1 Ω, a gyrator g = 2 S from port (b, 0) to port (c, 0), and
/// R2 c 0 2 Ω (G_L = 0.5 S). By hand: the gyrator presents g²/G_L = 8 S at b, so
/// v_b = 1/(1 + 8) = 1/9; i2 = −g v_b into c, so v_c = g v_b / G_L = 4/9.
fn h_gyrator_netlist(ports: &str) -> String {
    format!("* h-pair gyrator\nV1 a 0 1\nR1 a b 1\n{ports}R2 c 0 2\n.end\n")
}

#[test]
fn h_pair_gyrator_is_read_in_all_orientations() {
    let canonical = "Vs1 b x1 0\nHa x1 0 Vs2 -0.5\nVs2 c x2 0\nHb x2 0 Vs1 0.5\n";
    let variants = [
        canonical,
        // Port 2's H written first: port 1 = (c, 0) with g = −2 (the same law).
        "Vs2 c x2 0\nHb x2 0 Vs1 0.5\nVs1 b x1 0\nHa x1 0 Vs2 -0.5\n",
        // H above its sense source (x = h− = s+, σ = +1).
        "Ha b x1 Vs2 -0.5\nVs1 x1 0 0\nHb c x2 Vs1 0.5\nVs2 x2 0 0\n",
        // Port 2's sense source reversed (x = h− = s−, σ = −1): r_a flips sign.
        "Vs1 b x1 0\nHa x1 0 Vs2 0.5\nHb c x2 Vs1 0.5\nVs2 0 x2 0\n",
        // Port 1's H reversed, so port 1 is (0, b) and g = −2: V(0) − V(b) =
        // 0.5·I(Vs2), and I(Vs1) (x1 → b) is the current into the port at 0.
        "Ha 0 x1 Vs2 0.5\nVs1 x1 b 0\nVs2 c x2 0\nHb x2 0 Vs1 -0.5\n",
    ];
    for ports in variants {
        let c = read_spice(&h_gyrator_netlist(ports)).unwrap();
        assert_eq!(c.network.n_gyrators(), 1, "{ports}");
        assert_eq!(c.network.n_transformers(), 0);
        assert_eq!(c.vsource_names, vec!["v1"], "sense sources are consumed");
        // The internal sense nodes are merged into the port terminals.
        assert_eq!(c.node_names.len(), 4, "{ports}: {:?}", c.node_names);
        let v = op(&c);
        assert!(
            (v[node(&c, "b")] - 1.0 / 9.0).abs() < 1e-14,
            "{ports}: {v:?}"
        );
        assert!(
            (v[node(&c, "c")] - 4.0 / 9.0).abs() < 1e-14,
            "{ports}: {v:?}"
        );
    }
    let c = read_spice(&h_gyrator_netlist(canonical)).unwrap();
    assert_eq!(c.gyrator_names, vec!["a".to_string()]);
    let (q, g) = c.network.gyrators();
    let (b, cc) = (node(&c, "b") as u32, node(&c, "c") as u32);
    assert_eq!(q[0], [b, 0, cc, 0]);
    assert!((g[0] - 2.0).abs() < 1e-15);
}

#[test]
fn bad_h_patterns_are_rejected_with_their_line() {
    let canonical = "Vs1 b x1 0\nHa x1 0 Vs2 -0.5\nVs2 c x2 0\nHb x2 0 Vs1 0.5\n";
    let cases = [
        // A lone H controlled by the 1 V supply.
        ("Hx c 0 V1 1k\n", 4, "not a 0 V sense source"),
        // A lone H in series with a 0 V source, controlled by its own current.
        ("Vs1 c x1 0\nHa x1 0 Vs1 1k\n", 5, "its own port"),
        // Mismatched transresistances.
        (
            &canonical.replace("Vs1 0.5", "Vs1 0.25") as &str,
            5,
            "do not form a gyrator",
        ),
        // Same magnitude, wrong relative sign (a lossless but reciprocal pair).
        (
            &canonical.replace("Vs2 -0.5", "Vs2 0.5") as &str,
            5,
            "do not form a gyrator",
        ),
        // The sense source in series with Ha is not 0 V.
        (
            &canonical.replace("Vs1 b x1 0", "Vs1 b x1 1") as &str,
            5,
            "no 0 V sense source in series",
        ),
        // The source controlling Ha is not 0 V.
        (
            &canonical.replace("Vs2 c x2 0", "Vs2 c x2 2") as &str,
            5,
            "not a 0 V sense source",
        ),
        // The partner is controlled by another source.
        (
            &canonical.replace("x2 0 Vs1", "x2 0 V1") as &str,
            5,
            "is controlled by v1",
        ),
    ];
    for (ports, line, what) in cases {
        let text = h_gyrator_netlist(ports);
        match read_spice(&text) {
            Err(Error::SpiceParse(e)) => {
                assert_eq!(e.line, line, "{ports}: {}", e.message);
                assert!(e.message.contains(what), "{ports}: {}", e.message);
                assert!(e.message.contains("H (CCVS)"), "{ports}: {}", e.message);
            }
            other => panic!("{ports}: {other:?}"),
        }
    }
}
