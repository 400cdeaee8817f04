//! SPICE netlist → [`Network`]: the elements ohmflow models, with names kept.

use crate::error::{Error, Result};
use crate::network::{DiodeModel, Network, SourceValue};
use crate::spice::{parse_spice, ElementKind, NameMap, SpiceNetlist, SpiceParseError, GROUND};
use std::collections::HashMap;

/// A network read from SPICE, with the netlist's names (lowercase) for each element.
#[derive(Debug, Clone)]
pub struct SpiceCircuit {
    /// The network.
    pub network: Network,
    /// Title line.
    pub title: String,
    /// Name of each node (index 0 is ground, "0").
    pub node_names: Vec<String>,
    /// Name of each resistor (a diode's series resistance RS is `<diode>:rs`).
    pub resistor_names: Vec<String>,
    /// Name of each diode.
    pub diode_names: Vec<String>,
    /// Name of each voltage source.
    pub vsource_names: Vec<String>,
    /// +1 when the source's − terminal is ground, −1 when its + terminal is (the
    /// network clamps the other terminal to −value; currents are reported as SPICE does).
    pub vsource_sign: Vec<f64>,
    /// Name of each current source.
    pub isource_names: Vec<String>,
    /// Name of each transformer (the E element's name without its letter).
    pub transformer_names: Vec<String>,
    /// Name of each gyrator (the first G element's name without its letter).
    pub gyrator_names: Vec<String>,
}

fn err(line: usize, text: &str, message: impl Into<String>) -> Error {
    Error::SpiceParse(SpiceParseError {
        line,
        text: text.to_string(),
        message: message.into(),
    })
}

/// Parses `text` and builds the network it describes.
pub fn read_spice(text: &str) -> Result<SpiceCircuit> {
    let nl = parse_spice(text)?;
    circuit_from_netlist(&nl)
}

/// Builds the network of a parsed netlist.
pub fn circuit_from_netlist(nl: &SpiceNetlist) -> Result<SpiceCircuit> {
    let two = two_ports(nl)?;
    let mut net = Network::new();
    let mut node_names = vec![GROUND.to_string()];
    let mut index: NameMap<String, usize> = NameMap::default();
    index.insert(GROUND.to_string(), 0);
    let mut names: Vec<String> = nl.nodes();
    if !two.alias.is_empty() {
        names.retain(|x| !two.alias.contains_key(x));
    }
    if !names.is_empty() {
        net.add_nodes(names.len())?;
    }
    index.reserve(names.len());
    for name in names {
        index.insert(name.clone(), node_names.len());
        node_names.push(name);
    }
    for (x, target) in &two.alias {
        let t = index[target];
        index.insert(x.clone(), t);
    }
    let opts = &nl.options;
    if (opts.temp_celsius - opts.tnom_celsius).abs() > 0.0 {
        return Err(err(
            0,
            "",
            format!(
                "temp = {} °C differs from tnom = {} °C: temperature scaling of diode parameters is not supported",
                opts.temp_celsius, opts.tnom_celsius
            ),
        ));
    }
    let temperature = opts.temp_celsius + 273.15;
    let mut c = SpiceCircuit {
        network: Network::new(),
        title: nl.title.clone(),
        node_names,
        resistor_names: vec![],
        diode_names: vec![],
        vsource_names: vec![],
        vsource_sign: vec![],
        isource_names: vec![],
        transformer_names: vec![],
        gyrator_names: vec![],
    };
    let node4 = |q: &[String; 4]| -> [usize; 4] { [&q[0], &q[1], &q[2], &q[3]].map(|x| index[x]) };
    let text_of = |e: &crate::spice::SpiceElement| format!("{} {} {}", e.name, e.pos, e.neg);
    // Resistors are added in one call at the end (in netlist order, series resistances
    // included), each checked here where its line is known.
    let (mut ra, mut rb, mut rg) = (Vec::new(), Vec::new(), Vec::new());
    let has_two_ports = !two.at.is_empty() || !two.consumed.is_empty();
    for (ei, e) in nl.elements.iter().enumerate() {
        let port = if has_two_ports { two.at.get(&ei) } else { None };
        if let Some(&(kind, k)) = port {
            // The first element of a recognised two-port builds it; the others are part of it.
            let (q, value, name) = if kind == 0 {
                let t = &two.transformers[k];
                (node4(&t.0), t.1, &t.2)
            } else {
                let g = &two.gyrators[k];
                (node4(&g.0), g.1, &g.2)
            };
            let r = if kind == 0 {
                net.add_transformers(&[q[0]], &[q[1]], &[q[2]], &[q[3]], &[value])
                    .map(|_| c.transformer_names.push(name.clone()))
            } else {
                net.add_gyrators(&[q[0]], &[q[1]], &[q[2]], &[q[3]], &[value])
                    .map(|_| c.gyrator_names.push(name.clone()))
            };
            r.map_err(|x| err(e.line, &text_of(e), x.to_string()))?;
            continue;
        }
        if has_two_ports && two.consumed.contains(&ei) {
            continue;
        }
        let (a, b) = (index[e.pos.as_str()], index[e.neg.as_str()]);
        match &e.kind {
            ElementKind::Resistor { resistance } => {
                if resistance.is_nan() || *resistance <= 0.0 {
                    return Err(err(
                        e.line,
                        &text_of(e),
                        format!("resistance {resistance} must be > 0"),
                    ));
                }
                if a == b {
                    return Err(err(
                        e.line,
                        &text_of(e),
                        "resistor with both ends on one node",
                    ));
                }
                let g = 1.0 / resistance;
                if !g.is_finite() {
                    return Err(err(
                        e.line,
                        &text_of(e),
                        format!("resistance {resistance} is too small (conductance {g})"),
                    ));
                }
                ra.push(a);
                rb.push(b);
                rg.push(g);
                c.resistor_names.push(e.name.clone());
            }
            ElementKind::Diode { model, area } => {
                let card = &nl.models[model];
                if a == b {
                    return Err(err(e.line, &text_of(e), "diode with both ends on one node"));
                }
                let mut anode = a;
                if card.rs > 0.0 {
                    // Series resistance: an internal node between RS and the junction, as SPICE does.
                    let inner_name = format!("{}#internal", e.name);
                    if index.contains_key(inner_name.as_str()) {
                        return Err(err(
                            e.line,
                            &text_of(e),
                            format!("the series resistance's internal node {inner_name} is also a node of the netlist"),
                        ));
                    }
                    let inner = net.add_nodes(1)?;
                    c.node_names.push(inner_name);
                    let g = area / card.rs;
                    if !(g.is_finite() && g > 0.0) {
                        return Err(err(
                            e.line,
                            &text_of(e),
                            format!("series resistance: area / rs = {g} must be finite and > 0"),
                        ));
                    }
                    ra.push(a);
                    rb.push(inner);
                    rg.push(g);
                    c.resistor_names.push(format!("{}:rs", e.name));
                    anode = inner;
                }
                let m = DiodeModel::Shockley {
                    i_s: card.is * area,
                    n: card.n,
                    temperature,
                    gmin: opts.gmin,
                };
                net.add_diodes(&[anode], &[b], &[m])
                    .map_err(|x| err(e.line, &text_of(e), x.to_string()))?;
                c.diode_names.push(e.name.clone());
            }
            ElementKind::VoltageSource { value } => {
                let (node, v, sign) = if b == 0 && a != 0 {
                    (a, *value, 1.0)
                } else if a == 0 && b != 0 {
                    (b, -*value, -1.0)
                } else {
                    return Err(err(
                        e.line,
                        &text_of(e),
                        "voltage sources must have one terminal on ground (floating sources are not supported)",
                    ));
                };
                net.add_voltage_source(node, SourceValue::Fixed(v))
                    .map_err(|x| err(e.line, &text_of(e), x.to_string()))?;
                c.vsource_names.push(e.name.clone());
                c.vsource_sign.push(sign);
            }
            ElementKind::CurrentSource { value } => {
                if a == b {
                    return Err(err(
                        e.line,
                        &text_of(e),
                        "current source with both ends on one node",
                    ));
                }
                net.add_current_sources(&[a], &[b], &[*value])
                    .map_err(|x| err(e.line, &text_of(e), x.to_string()))?;
                c.isource_names.push(e.name.clone());
            }
            ElementKind::Vcvs { .. }
            | ElementKind::Cccs { .. }
            | ElementKind::Vccs { .. }
            | ElementKind::Ccvs { .. } => {
                unreachable!("two_ports() rejects controlled sources outside two-ports")
            }
        }
    }
    if !ra.is_empty() {
        net.add_resistors(&ra, &rb, &rg)?;
    }
    c.network = net;
    Ok(c)
}

const SUPPORTED: &str = "controlled sources are read only where they form an ideal transformer (Ename p2 x p1 n1 a, Vsense x n2 0, Fname n1 p1 Vsense a: an E in series with a 0 V sense source and an F sensing it, with the same ratio) or an ideal gyrator (Gname p1 n1 p2 n2 g with Gname2 n2 p2 p1 n1 g: two G elements, each controlled by the other's port; or, in impedance form, Vs1 p1 x1 0, Ha x1 n1 Vs2 -r, Vs2 p2 x2 0, Hb x2 n2 Vs1 r with r = 1/g: each port an H element in series with a 0 V sense source, each H controlled by the other port's sense source)";

/// Two-ports recognised in a netlist.
#[derive(Default)]
struct TwoPorts {
    /// (nodes p1, n1, p2, n2; ratio; name) of each transformer.
    transformers: Vec<([String; 4], f64, String)>,
    /// (nodes p1, n1, p2, n2; conductance; name) of each gyrator.
    gyrators: Vec<([String; 4], f64, String)>,
    /// Element index of the first element of each two-port → (0 transformer / 1 gyrator, index).
    at: HashMap<usize, (u8, usize)>,
    /// Elements that are part of a two-port (including the first).
    consumed: std::collections::HashSet<usize>,
    /// Internal node of each transformer's sense source → the port node it equals.
    alias: HashMap<String, String>,
}

fn same(x: f64, y: f64) -> bool {
    (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
}

/// Finds the E/F transformer patterns and G gyrator pairs; any other use of a
/// controlled source is an error naming its line.
fn two_ports(nl: &SpiceNetlist) -> Result<TwoPorts> {
    let mut out = TwoPorts::default();
    let els = &nl.elements;
    let controlled = |e: &&crate::spice::SpiceElement| {
        matches!(
            e.kind,
            ElementKind::Vcvs { .. }
                | ElementKind::Cccs { .. }
                | ElementKind::Vccs { .. }
                | ElementKind::Ccvs { .. }
        )
    };
    if !els.iter().any(|e| controlled(&e)) {
        return Ok(out);
    }
    let text_of = |e: &crate::spice::SpiceElement| format!("{} {} {}", e.name, e.pos, e.neg);
    // Node occurrences (terminals and controlling nodes).
    let mut uses: NameMap<&str, usize> = NameMap::default();
    for e in els {
        let mut names = vec![e.pos.as_str(), e.neg.as_str()];
        if let ElementKind::Vcvs { cp, cn, .. } | ElementKind::Vccs { cp, cn, .. } = &e.kind {
            names.push(cp);
            names.push(cn);
        }
        for n in names {
            *uses.entry(n).or_insert(0) += 1;
        }
    }
    let by_name: NameMap<&str, usize> = els
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    for (fi, f) in els.iter().enumerate() {
        let ElementKind::Cccs { vsource, gain } = &f.kind else {
            continue;
        };
        let bad = |why: &str| err(f.line, &text_of(f), format!("{why}; {SUPPORTED}"));
        let vi = by_name[vsource.as_str()];
        let v = &els[vi];
        if !matches!(v.kind, ElementKind::VoltageSource { value } if value == 0.0) {
            return Err(bad(&format!("{vsource} is not a 0 V sense source")));
        }
        if out.consumed.contains(&vi) {
            return Err(bad(&format!(
                "{vsource} already senses another transformer"
            )));
        }
        // The E element in series with the sense source, through a node used by nothing else.
        let mut found = None;
        for (ei, e) in els.iter().enumerate() {
            let ElementKind::Vcvs { cp, cn, gain: a } = &e.kind else {
                continue;
            };
            let (x, p2, n2) = if e.neg == v.pos {
                (&e.neg, &e.pos, &v.neg)
            } else if v.neg == e.pos {
                (&e.pos, &v.pos, &e.neg)
            } else {
                continue;
            };
            if x == GROUND || uses.get(x.as_str()) != Some(&2) || out.consumed.contains(&ei) {
                continue;
            }
            found = Some((
                ei,
                x.clone(),
                [cp.clone(), cn.clone(), p2.clone(), n2.clone()],
                *a,
            ));
            break;
        }
        let Some((ei, x, q, a)) = found else {
            return Err(bad(&format!(
                "no E element in series with the sense source {vsource}"
            )));
        };
        let ok = (f.pos == q[0] && f.neg == q[1] && same(*gain, -a))
            || (f.pos == q[1] && f.neg == q[0] && same(*gain, a));
        if !ok {
            return Err(bad(&format!(
                "F gain {gain} or nodes do not match the E element {} (ratio {a}, port 1 {} {})",
                els[ei].name, q[0], q[1]
            )));
        }
        if q[2] == q[3] || q[0] == q[1] {
            return Err(bad("a transformer port with both terminals on one node"));
        }
        let target = if x == els[ei].neg {
            q[3].clone()
        } else {
            q[2].clone()
        };
        out.alias.insert(x, target);
        let name = els[ei].name[1..].to_string();
        let first = ei.min(fi).min(vi);
        out.at.insert(first, (0, out.transformers.len()));
        out.transformers.push((q, a, name));
        out.consumed.extend([ei, fi, vi]);
    }
    // Gyrators: pairs of G elements, each controlled by the other's output port.
    let gs: Vec<usize> = (0..els.len())
        .filter(|&i| matches!(els[i].kind, ElementKind::Vccs { .. }))
        .collect();
    let g_of = |i: usize| match &els[i].kind {
        ElementKind::Vccs { cp, cn, gm } => (cp, cn, *gm),
        _ => unreachable!(),
    };
    for (ii, &i) in gs.iter().enumerate() {
        if out.consumed.contains(&i) {
            continue;
        }
        let x = &els[i];
        let (xcp, xcn, gx) = g_of(i);
        // Port 1 = x's output (pos, neg), port 2 = x's control (cp, cn), g = gx.
        let q = [x.pos.clone(), x.neg.clone(), xcp.clone(), xcn.clone()];
        let mut partner = None;
        for &j in &gs[ii + 1..] {
            if out.consumed.contains(&j) {
                continue;
            }
            let y = &els[j];
            let (ycp, ycn, gy) = g_of(j);
            let s_out = if y.pos == q[2] && y.neg == q[3] {
                1.0
            } else if y.pos == q[3] && y.neg == q[2] {
                -1.0
            } else {
                continue;
            };
            let s_ctl = if *ycp == q[0] && *ycn == q[1] {
                1.0
            } else if *ycp == q[1] && *ycn == q[0] {
                -1.0
            } else {
                continue;
            };
            if same(s_out * s_ctl * gy, -gx) {
                partner = Some(j);
                break;
            }
        }
        let Some(j) = partner else {
            return Err(err(
                x.line,
                &text_of(x),
                format!("G element without a matching partner; {SUPPORTED}"),
            ));
        };
        if q[0] == q[1] || q[2] == q[3] {
            return Err(err(
                x.line,
                &text_of(x),
                "a gyrator port with both terminals on one node",
            ));
        }
        out.at.insert(i, (1, out.gyrators.len()));
        out.gyrators.push((q, gx, x.name[1..].to_string()));
        out.consumed.extend([i, j]);
    }
    h_gyrators(nl, &uses, &by_name, &mut out)?;
    for (i, e) in els.iter().enumerate() {
        if out.consumed.contains(&i) {
            continue;
        }
        let what = match e.kind {
            ElementKind::Vcvs { .. } => "E (VCVS) element outside a transformer pattern",
            ElementKind::Cccs { .. } => "F (CCCS) element outside a transformer pattern",
            ElementKind::Ccvs { .. } => "H (CCVS) element outside a gyrator pattern",
            _ => continue,
        };
        return Err(err(e.line, &text_of(e), format!("{what}; {SUPPORTED}")));
    }
    Ok(out)
}

/// One port of an impedance-form gyrator: an H element in series with a 0 V
/// sense source through an internal node used by nothing else.
struct HPort {
    /// Port terminals (P, N), oriented like the H element: V(P) − V(N) equals
    /// the H element's own voltage V(h+) − V(h−).
    p: String,
    n: String,
    /// The internal node between the H element and the sense source, and the
    /// port terminal it equals (the sense source's other node).
    x: String,
    target: String,
    /// Index of the sense source.
    s: usize,
    /// +1 when the sense source's current I(Vs) (from its + to its − node)
    /// is the port current i (into P from the circuit, through the branch to N),
    /// −1 when it is −i.
    sigma: f64,
}

/// The sense source in series with the H element `h`, if there is one.
///
/// With x the shared node: x = h− = s+ (H on the P side, the source pointing
/// on towards N) or x = h+ = s− (source on the P side pointing towards x) give
/// I(Vs) = i, σ = +1; x = h− = s− or x = h+ = s+ reverse the source, σ = −1.
fn h_port(
    nl: &SpiceNetlist,
    h: usize,
    uses: &NameMap<&str, usize>,
    at_node: &HashMap<&str, Vec<usize>>,
    consumed: &std::collections::HashSet<usize>,
) -> Option<HPort> {
    let els = &nl.elements;
    let e = &els[h];
    for (x, h_neg_side) in [(&e.neg, true), (&e.pos, false)] {
        if x == GROUND || uses.get(x.as_str()) != Some(&2) {
            continue;
        }
        for &si in &at_node[x.as_str()] {
            let s = &els[si];
            if si == h
                || consumed.contains(&si)
                || s.pos == s.neg
                || !matches!(s.kind, ElementKind::VoltageSource { value } if value == 0.0)
            {
                continue;
            }
            let (outer, s_pos_is_x) = if s.pos == *x {
                (&s.neg, true)
            } else if s.neg == *x {
                (&s.pos, false)
            } else {
                continue;
            };
            // H on the P side (x = h−): P = h+, N = the source's outer node.
            // H on the N side (x = h+): P = the source's outer node, N = h−.
            let (p, n) = if h_neg_side {
                (e.pos.clone(), outer.clone())
            } else {
                (outer.clone(), e.neg.clone())
            };
            let sigma = if h_neg_side == s_pos_is_x { 1.0 } else { -1.0 };
            return Some(HPort {
                p,
                n,
                x: x.clone(),
                target: outer.clone(),
                s: si,
                sigma,
            });
        }
    }
    None
}

/// Gyrators written in impedance form: two H elements, each in series with a
/// 0 V sense source and each controlled by the other port's sense source.
///
/// Signs. An H element `Hk h+ h− Vc r` forces V(h+) − V(h−) = r·I(Vc). For a
/// port k (H_k with ratio r_k in series with sense source S_k, see [`HPort`]):
/// v_k = r_k·I(S_other) and I(S_k) = σ_k·i_k. For the pair (a = the H element
/// written first, b = its partner):
///   v_a = r_a σ_b i_b,   v_b = r_b σ_a i_a.
/// ohmflow's gyrator with port 1 = a, port 2 = b has v2 = i1/g, v1 = −i2/g, so
///   g = 1/(r_b σ_a)   and   r_a σ_b = −1/g = −r_b σ_a.
/// The canonical form `Vs1 p1 x1 0`, `Ha x1 n1 Vs2 -r`, `Vs2 p2 x2 0`,
/// `Hb x2 n2 Vs1 r` has σ_a = σ_b = 1 and g = 1/r.
fn h_gyrators(
    nl: &SpiceNetlist,
    uses: &NameMap<&str, usize>,
    by_name: &NameMap<&str, usize>,
    out: &mut TwoPorts,
) -> Result<()> {
    let els = &nl.elements;
    let text_of = |e: &crate::spice::SpiceElement| format!("{} {} {}", e.name, e.pos, e.neg);
    let h_of = |i: usize| match &els[i].kind {
        ElementKind::Ccvs { vsource, r } => Some((vsource.as_str(), *r)),
        _ => None,
    };
    // Elements at each node (terminals only), to find series neighbours.
    let mut at_node: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in els.iter().enumerate() {
        at_node.entry(e.pos.as_str()).or_default().push(i);
        if e.neg != e.pos {
            at_node.entry(e.neg.as_str()).or_default().push(i);
        }
    }
    for a in 0..els.len() {
        let Some((ca, ra)) = h_of(a) else { continue };
        if out.consumed.contains(&a) {
            continue;
        }
        let ea = &els[a];
        let bad = |why: String| {
            err(
                ea.line,
                &text_of(ea),
                format!("H (CCVS) element {}: {why}; {SUPPORTED}", ea.name),
            )
        };
        let ci = by_name[ca];
        if !matches!(els[ci].kind, ElementKind::VoltageSource { value } if value == 0.0) {
            return Err(bad(format!("{ca} is not a 0 V sense source")));
        }
        if out.consumed.contains(&ci) {
            return Err(bad(format!("{ca} already belongs to another two-port")));
        }
        let Some(pa) = h_port(nl, a, uses, &at_node, &out.consumed) else {
            return Err(bad(
                "no 0 V sense source in series with it (through a node used by nothing else)"
                    .into(),
            ));
        };
        if pa.s == ci {
            return Err(bad(format!(
                "{ca} senses its own port (an H element controlled by its own current is a resistor, not a gyrator)"
            )));
        }
        // The partner: the H element in series with the controlling source ca.
        let mut partner = None;
        let near = [&els[ci].pos, &els[ci].neg].map(|x| &at_node[x.as_str()]);
        for &b in near.into_iter().flatten() {
            if b == a || out.consumed.contains(&b) || h_of(b).is_none() {
                continue;
            }
            if let Some(pb) = h_port(nl, b, uses, &at_node, &out.consumed) {
                if pb.s == ci {
                    partner = Some((b, pb));
                    break;
                }
            }
        }
        let Some((b, pb)) = partner else {
            return Err(bad(format!(
                "no H element in series with its sense source {ca}"
            )));
        };
        let (cb, rb) = h_of(b).unwrap();
        if by_name[cb] != pa.s {
            return Err(bad(format!(
                "its partner {} is controlled by {cb}, not by {}, the sense source of {}'s port",
                els[b].name, els[pa.s].name, ea.name
            )));
        }
        let gyrator = ra.is_finite()
            && rb.is_finite()
            && ra != 0.0
            && rb != 0.0
            && same(ra * pb.sigma, -rb * pa.sigma);
        if !gyrator {
            return Err(bad(format!(
                "transresistances {ra} and {rb} of {} and {} do not form a gyrator (with these orientations they must satisfy r_a·σ_b = −r_b·σ_a, σ = ±1 the sense sources' directions)",
                ea.name, els[b].name
            )));
        }
        if pa.p == pa.n || pb.p == pb.n {
            return Err(bad("a gyrator port with both terminals on one node".into()));
        }
        let g = 1.0 / (rb * pa.sigma);
        let first = a.min(b).min(pa.s).min(pb.s);
        out.at.insert(first, (1, out.gyrators.len()));
        out.gyrators.push((
            [pa.p.clone(), pa.n.clone(), pb.p.clone(), pb.n.clone()],
            g,
            ea.name[1..].to_string(),
        ));
        out.consumed.extend([a, b, pa.s, pb.s]);
        out.alias.insert(pa.x, pa.target);
        out.alias.insert(pb.x, pb.target);
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests/spice_net_tests.rs"]
mod tests;
