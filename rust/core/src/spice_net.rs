//! SPICE netlist → [`Network`]: the elements ohmflow models, with names kept.

use crate::error::{Error, Result};
use crate::network::{DiodeModel, Network, SourceValue};
use crate::spice::{parse_spice, ElementKind, NameMap, SpiceNetlist, SpiceParseError, GROUND};

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
    let mut net = Network::new();
    let mut node_names = vec![GROUND.to_string()];
    let mut index: NameMap<String, usize> = NameMap::default();
    index.insert(GROUND.to_string(), 0);
    let names = nl.nodes();
    if !names.is_empty() {
        net.add_nodes(names.len())?;
    }
    index.reserve(names.len());
    for name in names {
        index.insert(name.clone(), node_names.len());
        node_names.push(name);
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
    };
    let text_of = |e: &crate::spice::SpiceElement| format!("{} {} {}", e.name, e.pos, e.neg);
    for e in &nl.elements {
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
                net.add_resistors(&[a], &[b], &[1.0 / resistance])
                    .map_err(|x| err(e.line, &text_of(e), x.to_string()))?;
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
                    let inner = net.add_nodes(1)?;
                    c.node_names.push(format!("{}#internal", e.name));
                    net.add_resistors(&[a], &[inner], &[area / card.rs])?;
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
                return Err(err(
                    e.line,
                    &text_of(e),
                    "controlled sources (E, F, G, H) are not supported yet",
                ));
            }
        }
    }
    c.network = net;
    Ok(c)
}

#[cfg(test)]
#[path = "tests/spice_net_tests.rs"]
mod tests;
