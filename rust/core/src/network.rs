//! The network model: nodes, branches and sources, validated on construction.
//!
//! Node 0 is ground. Every element is a branch between two nodes; voltage sources
//! clamp a node to a value relative to ground (a fixed value, or a per-sample input).

use crate::compile::Compiled;
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex, OnceLock};

/// Index of the ground node.
pub const GROUND: usize = 0;

/// Boltzmann constant used by ngspice (CODATA 2014), J/K.
pub const BOLTZMANN: f64 = 1.380_648_52e-23;
/// Elementary charge used by ngspice (CODATA 2014), C.
pub const CHARGE: f64 = 1.602_176_620_8e-19;
/// SPICE's default temperature, 27 °C, in kelvin.
pub const DEFAULT_TEMPERATURE: f64 = 300.15;
/// ngspice's default GMIN in parallel with every junction, siemens.
pub const DEFAULT_GMIN: f64 = 1e-12;

/// Thermal voltage kT/q with ngspice's constants.
pub fn thermal_voltage(temperature: f64) -> f64 {
    BOLTZMANN * temperature / CHARGE
}

/// The law of a diode branch (anode → cathode).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DiodeModel {
    /// Ideal diode: i ≥ 0, Δv ≤ v_on, i (v_on − Δv) = 0.
    Ideal {
        /// Threshold voltage.
        v_on: f64,
    },
    /// ReLU diode: i = g_on max(Δv − v_on, 0).
    Relu {
        /// On-conductance (S).
        g_on: f64,
        /// Threshold voltage.
        v_on: f64,
    },
    /// Shockley junction: i = i_s (exp(Δv / (n V_T)) − 1) + gmin Δv.
    Shockley {
        /// Saturation current (A).
        i_s: f64,
        /// Emission coefficient.
        n: f64,
        /// Temperature (K); V_T = k T / q with ngspice's constants.
        temperature: f64,
        /// Conductance in parallel with the junction (SPICE's GMIN).
        gmin: f64,
    },
}

impl DiodeModel {
    /// Checks the model parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidInput(m.to_string()));
        match *self {
            DiodeModel::Ideal { v_on } => {
                if !v_on.is_finite() {
                    return bad("ideal diode: v_on must be finite");
                }
            }
            DiodeModel::Relu { g_on, v_on } => {
                if !(g_on.is_finite() && g_on > 0.0) {
                    return bad("ReLU diode: g_on must be finite and > 0");
                }
                if !v_on.is_finite() {
                    return bad("ReLU diode: v_on must be finite");
                }
            }
            DiodeModel::Shockley {
                i_s,
                n,
                temperature,
                gmin,
            } => {
                if !(i_s.is_finite() && i_s > 0.0) {
                    return bad("Shockley diode: i_s must be finite and > 0");
                }
                if !(n.is_finite() && n > 0.0) {
                    return bad("Shockley diode: n must be finite and > 0");
                }
                if !(temperature.is_finite() && temperature > 0.0) {
                    return bad("Shockley diode: temperature must be finite and > 0 K");
                }
                if !(gmin.is_finite() && gmin >= 0.0) {
                    return bad("Shockley diode: gmin must be finite and >= 0");
                }
            }
        }
        Ok(())
    }

    /// Current (anode → cathode) and differential conductance at branch voltage `dv`
    /// for the laws that are functions of the voltage (ideal diodes: (0, 0); their
    /// current is a multiplier of the solver).
    #[inline]
    pub fn law(&self, dv: f64) -> (f64, f64) {
        match *self {
            DiodeModel::Ideal { .. } => (0.0, 0.0),
            DiodeModel::Relu { g_on, v_on } => {
                if dv > v_on {
                    (g_on * (dv - v_on), g_on)
                } else {
                    (0.0, 0.0)
                }
            }
            DiodeModel::Shockley {
                i_s,
                n,
                temperature,
                gmin,
            } => {
                let nvt = n * thermal_voltage(temperature);
                let x = dv / nvt;
                (i_s * x.exp_m1() + gmin * dv, i_s / nvt * x.exp() + gmin)
            }
        }
    }

    /// Whether the branch conducts at every voltage (gives a resistive path).
    pub fn always_conducts(&self) -> bool {
        matches!(self, DiodeModel::Shockley { .. })
    }
}

/// The value of a voltage source: fixed, or column `k` of the per-sample inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SourceValue {
    /// A fixed value in volts.
    Fixed(f64),
    /// The k-th input of each sample.
    Input(usize),
}

/// A resistive network. Construction validates every element; the compiled
/// structure (free-node map, sparsity pattern, symbolic Cholesky) is computed
/// once per topology and cached, so changing conductances or source values
/// never repeats the symbolic analysis.
#[derive(Debug)]
pub struct Network {
    pub(crate) n_nodes: usize,
    pub(crate) res_a: Vec<u32>,
    pub(crate) res_b: Vec<u32>,
    pub(crate) res_g: Vec<f64>,
    pub(crate) dio_a: Vec<u32>,
    pub(crate) dio_b: Vec<u32>,
    pub(crate) dio_model: Vec<DiodeModel>,
    pub(crate) vs_node: Vec<u32>,
    pub(crate) vs_value: Vec<SourceValue>,
    pub(crate) is_a: Vec<u32>,
    pub(crate) is_b: Vec<u32>,
    pub(crate) is_value: Vec<f64>,
    pub(crate) n_inputs: usize,
    /// Source index clamping each node (u32::MAX if none).
    pub(crate) clamp_of_node: Vec<u32>,
    pub(crate) compiled: OnceLock<Arc<Compiled>>,
    /// Incremented whenever the matrix values (conductances, diode models) or the
    /// topology change: a cached factor is valid only for the version it was made at.
    pub(crate) values_version: u64,
    /// The Cholesky factor of the last linear solve, reused by the adjoint (exact
    /// gradients) and by later solves with the same conductances.
    pub(crate) factor_cache: Mutex<Option<(u64, Arc<Vec<f64>>)>>,
    /// Ideal transformers: port 1 (p1, n1), port 2 (p2, n2), ratio a (v2 = a v1).
    pub(crate) tr_nodes: Vec<[u32; 4]>,
    pub(crate) tr_ratio: Vec<f64>,
    /// Ideal gyrators: port 1 (p1, n1), port 2 (p2, n2), gyration conductance g.
    pub(crate) gy_nodes: Vec<[u32; 4]>,
    pub(crate) gy_g: Vec<f64>,
    /// The modified-nodal-analysis structure (networks with two-ports only).
    pub(crate) mna: OnceLock<Arc<crate::mna::MnaCompiled>>,
}

impl Default for Network {
    /// The same as [`Network::new`]: only the ground node.
    fn default() -> Self {
        Network::new()
    }
}

impl Clone for Network {
    fn clone(&self) -> Self {
        let compiled = OnceLock::new();
        if let Some(c) = self.compiled.get() {
            let _ = compiled.set(c.clone());
        }
        let mna = OnceLock::new();
        if let Some(c) = self.mna.get() {
            let _ = mna.set(c.clone());
        }
        Network {
            n_nodes: self.n_nodes,
            res_a: self.res_a.clone(),
            res_b: self.res_b.clone(),
            res_g: self.res_g.clone(),
            dio_a: self.dio_a.clone(),
            dio_b: self.dio_b.clone(),
            dio_model: self.dio_model.clone(),
            vs_node: self.vs_node.clone(),
            vs_value: self.vs_value.clone(),
            is_a: self.is_a.clone(),
            is_b: self.is_b.clone(),
            is_value: self.is_value.clone(),
            n_inputs: self.n_inputs,
            clamp_of_node: self.clamp_of_node.clone(),
            compiled,
            values_version: self.values_version,
            factor_cache: Mutex::new(None),
            tr_nodes: self.tr_nodes.clone(),
            tr_ratio: self.tr_ratio.clone(),
            gy_nodes: self.gy_nodes.clone(),
            gy_g: self.gy_g.clone(),
            mna,
        }
    }
}

pub(crate) const NONE: u32 = u32::MAX;

fn check_finite(values: &[f64], what: &str) -> Result<()> {
    if let Some(i) = values.iter().position(|x| !x.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "{what}[{i}] is {} (must be finite)",
            values[i]
        )));
    }
    Ok(())
}

fn check_ratios(r: &[f64]) -> Result<()> {
    if let Some(i) = r.iter().position(|x| !(x.is_finite() && *x != 0.0)) {
        return Err(Error::InvalidInput(format!(
            "transformer ratio[{i}] = {} (ratios must be finite and nonzero)",
            r[i]
        )));
    }
    Ok(())
}

/// Validates conductances: finite and strictly positive.
pub(crate) fn check_conductances(g: &[f64]) -> Result<()> {
    if let Some(i) = g.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
        return Err(Error::InvalidInput(format!(
            "conductance[{i}] = {} (conductances must be finite and > 0)",
            g[i]
        )));
    }
    Ok(())
}

impl Network {
    /// A network holding only the ground node.
    pub fn new() -> Self {
        Network {
            n_nodes: 1,
            res_a: vec![],
            res_b: vec![],
            res_g: vec![],
            dio_a: vec![],
            dio_b: vec![],
            dio_model: vec![],
            vs_node: vec![],
            vs_value: vec![],
            is_a: vec![],
            is_b: vec![],
            is_value: vec![],
            n_inputs: 0,
            clamp_of_node: vec![NONE],
            compiled: OnceLock::new(),
            values_version: 0,
            factor_cache: Mutex::new(None),
            tr_nodes: vec![],
            tr_ratio: vec![],
            gy_nodes: vec![],
            gy_g: vec![],
            mna: OnceLock::new(),
        }
    }

    fn touch_values(&mut self) {
        self.values_version += 1;
        *self
            .factor_cache
            .get_mut()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn touch_topology(&mut self) {
        self.touch_values();
        self.compiled = OnceLock::new();
        self.mna = OnceLock::new();
    }

    /// Number of nodes, ground included.
    pub fn n_nodes(&self) -> usize {
        self.n_nodes
    }
    /// Number of resistors.
    pub fn n_resistors(&self) -> usize {
        self.res_g.len()
    }
    /// Number of diodes.
    pub fn n_diodes(&self) -> usize {
        self.dio_model.len()
    }
    /// Number of voltage sources.
    pub fn n_voltage_sources(&self) -> usize {
        self.vs_node.len()
    }
    /// Number of current sources.
    pub fn n_current_sources(&self) -> usize {
        self.is_value.len()
    }
    /// Number of per-sample inputs.
    pub fn n_inputs(&self) -> usize {
        self.n_inputs
    }

    /// Sets the entries of `v` (all node voltages of one sample) that the network
    /// clamps: ground to 0, every voltage source to its value or input.
    pub(crate) fn set_clamps(&self, v: &mut [f64], inputs: &[f64]) {
        v[0] = 0.0;
        for (&node, val) in self.vs_node.iter().zip(&self.vs_value) {
            v[node as usize] = match *val {
                SourceValue::Fixed(x) => x,
                SourceValue::Input(k) => inputs[k],
            };
        }
    }

    /// Adds `count` nodes; returns the index of the first.
    pub fn add_nodes(&mut self, count: usize) -> Result<usize> {
        let first = self.n_nodes;
        if first.checked_add(count).is_none_or(|t| t >= NONE as usize) {
            return Err(Error::InvalidInput("too many nodes".into()));
        }
        self.n_nodes += count;
        self.clamp_of_node.resize(self.n_nodes, NONE);
        self.touch_topology();
        Ok(first)
    }

    fn check_node(&self, node: usize, what: &str) -> Result<u32> {
        if node >= self.n_nodes {
            return Err(Error::InvalidInput(format!(
                "{what}: unknown node {node} (the network has {} nodes)",
                self.n_nodes
            )));
        }
        Ok(node as u32)
    }

    fn check_branches(&self, a: &[usize], b: &[usize], what: &str) -> Result<()> {
        if a.len() != b.len() {
            return Err(Error::InvalidInput(format!(
                "{what}: {} start nodes but {} end nodes",
                a.len(),
                b.len()
            )));
        }
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            self.check_node(x, what)?;
            self.check_node(y, what)?;
            if x == y {
                return Err(Error::InvalidInput(format!(
                    "{what}[{i}]: self-loop on node {x}"
                )));
            }
        }
        Ok(())
    }

    /// Adds resistors `a[i] — b[i]` with conductances `g[i]`; returns the first index.
    pub fn add_resistors(&mut self, a: &[usize], b: &[usize], g: &[f64]) -> Result<usize> {
        self.check_branches(a, b, "resistor")?;
        if g.len() != a.len() {
            return Err(Error::InvalidInput(format!(
                "resistor: {} branches but {} conductances",
                a.len(),
                g.len()
            )));
        }
        check_conductances(g)?;
        let first = self.res_g.len();
        self.res_a.extend(a.iter().map(|&x| x as u32));
        self.res_b.extend(b.iter().map(|&x| x as u32));
        self.res_g.extend_from_slice(g);
        self.touch_topology();
        Ok(first)
    }

    /// Resistor end nodes and conductances.
    pub fn resistors(&self) -> (&[u32], &[u32], &[f64]) {
        (&self.res_a, &self.res_b, &self.res_g)
    }

    /// Conductances, aligned with resistor indices.
    pub fn conductances(&self) -> &[f64] {
        &self.res_g
    }

    /// Replaces all conductances (same topology: no new symbolic analysis).
    pub fn set_conductances(&mut self, g: &[f64]) -> Result<()> {
        if g.len() != self.res_g.len() {
            return Err(Error::InvalidInput(format!(
                "expected {} conductances, got {}",
                self.res_g.len(),
                g.len()
            )));
        }
        check_conductances(g)?;
        self.res_g.copy_from_slice(g);
        self.touch_values();
        Ok(())
    }

    /// Adds diodes `anode[i] → cathode[i]` with one model each; returns the first index.
    pub fn add_diodes(
        &mut self,
        anode: &[usize],
        cathode: &[usize],
        models: &[DiodeModel],
    ) -> Result<usize> {
        self.check_branches(anode, cathode, "diode")?;
        if models.len() != anode.len() {
            return Err(Error::InvalidInput(format!(
                "diode: {} branches but {} models",
                anode.len(),
                models.len()
            )));
        }
        for m in models {
            m.validate()?;
        }
        let first = self.dio_model.len();
        self.dio_a.extend(anode.iter().map(|&x| x as u32));
        self.dio_b.extend(cathode.iter().map(|&x| x as u32));
        self.dio_model.extend_from_slice(models);
        self.touch_topology();
        Ok(first)
    }

    /// Diode anodes, cathodes and models.
    pub fn diodes(&self) -> (&[u32], &[u32], &[DiodeModel]) {
        (&self.dio_a, &self.dio_b, &self.dio_model)
    }

    /// Replaces the model of diode `k` (same kind keeps the topology).
    pub fn set_diode_model(&mut self, k: usize, model: DiodeModel) -> Result<()> {
        if k >= self.dio_model.len() {
            return Err(Error::InvalidInput(format!("unknown diode {k}")));
        }
        model.validate()?;
        // Whether a diode always conducts decides which nodes float: a change of
        // kind invalidates the cached analysis (the pattern itself is unchanged).
        if self.dio_model[k].always_conducts() != model.always_conducts() {
            self.touch_topology();
        }
        self.dio_model[k] = model;
        self.touch_values();
        Ok(())
    }

    /// Clamps `node` to a voltage source (to ground); returns the source index.
    pub fn add_voltage_source(&mut self, node: usize, value: SourceValue) -> Result<usize> {
        let n = self.check_node(node, "voltage source")?;
        if node == GROUND {
            return Err(Error::InvalidInput(
                "voltage source: cannot clamp the ground node".into(),
            ));
        }
        if self.clamp_of_node[node] != NONE {
            return Err(Error::InvalidInput(format!(
                "voltage source: node {node} is already clamped by source {}",
                self.clamp_of_node[node]
            )));
        }
        match value {
            SourceValue::Fixed(v) => check_finite(&[v], "voltage source value")?,
            SourceValue::Input(k) => {
                if k != self.n_inputs {
                    return Err(Error::InvalidInput("inputs must be added in order".into()));
                }
                self.n_inputs += 1;
            }
        }
        let k = self.vs_node.len();
        self.vs_node.push(n);
        self.vs_value.push(value);
        self.clamp_of_node[node] = k as u32;
        self.touch_topology();
        Ok(k)
    }

    /// Adds a per-sample input source on `node`; returns the input index.
    pub fn add_input(&mut self, node: usize) -> Result<usize> {
        let k = self.n_inputs;
        self.add_voltage_source(node, SourceValue::Input(k))?;
        Ok(k)
    }

    /// Voltage sources: clamped nodes and values.
    pub fn voltage_sources(&self) -> (&[u32], &[SourceValue]) {
        (&self.vs_node, &self.vs_value)
    }

    /// Sets the value of fixed voltage source `k`.
    pub fn set_voltage_source_value(&mut self, k: usize, value: f64) -> Result<()> {
        check_finite(&[value], "voltage source value")?;
        match self.vs_value.get_mut(k) {
            Some(SourceValue::Fixed(v)) => {
                *v = value;
                Ok(())
            }
            Some(SourceValue::Input(_)) => Err(Error::InvalidInput(format!(
                "voltage source {k} is an input: its value comes with each sample"
            ))),
            None => Err(Error::InvalidInput(format!("unknown voltage source {k}"))),
        }
    }

    /// Adds current sources drawing `value[i]` out of `a[i]` and into `b[i]` (SPICE's
    /// convention for `I a b value`); returns the first index.
    pub fn add_current_sources(
        &mut self,
        a: &[usize],
        b: &[usize],
        value: &[f64],
    ) -> Result<usize> {
        self.check_branches(a, b, "current source")?;
        if value.len() != a.len() {
            return Err(Error::InvalidInput(format!(
                "current source: {} branches but {} values",
                a.len(),
                value.len()
            )));
        }
        check_finite(value, "current source value")?;
        let first = self.is_value.len();
        self.is_a.extend(a.iter().map(|&x| x as u32));
        self.is_b.extend(b.iter().map(|&x| x as u32));
        self.is_value.extend_from_slice(value);
        // Current sources do not change the pattern: no new symbolic analysis.
        Ok(first)
    }

    /// Current sources: from-nodes, to-nodes, values.
    pub fn current_sources(&self) -> (&[u32], &[u32], &[f64]) {
        (&self.is_a, &self.is_b, &self.is_value)
    }

    /// Replaces all current-source values.
    pub fn set_current_source_values(&mut self, value: &[f64]) -> Result<()> {
        if value.len() != self.is_value.len() {
            return Err(Error::InvalidInput(format!(
                "expected {} current-source values, got {}",
                self.is_value.len(),
                value.len()
            )));
        }
        check_finite(value, "current source value")?;
        self.is_value.copy_from_slice(value);
        Ok(())
    }

    fn check_two_ports(
        &self,
        p1: &[usize],
        n1: &[usize],
        p2: &[usize],
        n2: &[usize],
        what: &str,
    ) -> Result<Vec<[u32; 4]>> {
        let m = p1.len();
        if n1.len() != m || p2.len() != m || n2.len() != m {
            return Err(Error::InvalidInput(format!(
                "{what}: node arrays of different lengths ({m}, {}, {}, {})",
                n1.len(),
                p2.len(),
                n2.len()
            )));
        }
        let mut out = Vec::with_capacity(m);
        for i in 0..m {
            let q = [
                self.check_node(p1[i], what)?,
                self.check_node(n1[i], what)?,
                self.check_node(p2[i], what)?,
                self.check_node(n2[i], what)?,
            ];
            if q[0] == q[1] || q[2] == q[3] {
                return Err(Error::InvalidInput(format!(
                    "{what}[{i}]: a port with both terminals on one node (p1={}, n1={}, p2={}, n2={})",
                    q[0], q[1], q[2], q[3]
                )));
            }
            out.push(q);
        }
        Ok(out)
    }

    /// Adds ideal transformers between port 1 (`p1[i]`, `n1[i]`) and port 2 (`p2[i]`,
    /// `n2[i]`) with ratios `ratio[i]` (finite, nonzero, any sign): v2 = a v1 and
    /// i1 = −a i2, with v = V(p) − V(n) and i the current flowing *into* the + terminal
    /// of each port from the circuit (power v1 i1 + v2 i2 = 0). Returns the first index.
    pub fn add_transformers(
        &mut self,
        p1: &[usize],
        n1: &[usize],
        p2: &[usize],
        n2: &[usize],
        ratio: &[f64],
    ) -> Result<usize> {
        let q = self.check_two_ports(p1, n1, p2, n2, "transformer")?;
        if ratio.len() != q.len() {
            return Err(Error::InvalidInput(format!(
                "transformer: {} two-ports but {} ratios",
                q.len(),
                ratio.len()
            )));
        }
        check_ratios(ratio)?;
        let first = self.tr_ratio.len();
        self.tr_nodes.extend(q);
        self.tr_ratio.extend_from_slice(ratio);
        self.touch_topology();
        Ok(first)
    }

    /// Adds ideal gyrators between port 1 (`p1[i]`, `n1[i]`) and port 2 (`p2[i]`,
    /// `n2[i]`) with gyration conductances `g[i]` (finite, any sign): i1 = g v2,
    /// i2 = −g v1 (currents into the + terminals). Returns the first index.
    pub fn add_gyrators(
        &mut self,
        p1: &[usize],
        n1: &[usize],
        p2: &[usize],
        n2: &[usize],
        g: &[f64],
    ) -> Result<usize> {
        let q = self.check_two_ports(p1, n1, p2, n2, "gyrator")?;
        if g.len() != q.len() {
            return Err(Error::InvalidInput(format!(
                "gyrator: {} two-ports but {} conductances",
                q.len(),
                g.len()
            )));
        }
        check_finite(g, "gyrator conductance")?;
        let first = self.gy_g.len();
        self.gy_nodes.extend(q);
        self.gy_g.extend_from_slice(g);
        self.touch_topology();
        Ok(first)
    }

    /// Number of ideal transformers.
    pub fn n_transformers(&self) -> usize {
        self.tr_ratio.len()
    }
    /// Number of ideal gyrators.
    pub fn n_gyrators(&self) -> usize {
        self.gy_g.len()
    }
    /// Whether the network holds transformers or gyrators (solved by the MNA path).
    pub fn has_two_ports(&self) -> bool {
        !self.tr_ratio.is_empty() || !self.gy_g.is_empty()
    }
    /// Transformer terminals `[p1, n1, p2, n2]` and ratios.
    pub fn transformers(&self) -> (&[[u32; 4]], &[f64]) {
        (&self.tr_nodes, &self.tr_ratio)
    }
    /// Gyrator terminals `[p1, n1, p2, n2]` and gyration conductances.
    pub fn gyrators(&self) -> (&[[u32; 4]], &[f64]) {
        (&self.gy_nodes, &self.gy_g)
    }
    /// Replaces all transformer ratios (no new symbolic analysis).
    pub fn set_transformer_ratios(&mut self, ratio: &[f64]) -> Result<()> {
        if ratio.len() != self.tr_ratio.len() {
            return Err(Error::InvalidInput(format!(
                "expected {} transformer ratios, got {}",
                self.tr_ratio.len(),
                ratio.len()
            )));
        }
        check_ratios(ratio)?;
        self.tr_ratio.copy_from_slice(ratio);
        self.touch_values();
        Ok(())
    }
    /// Replaces all gyration conductances (no new symbolic analysis).
    pub fn set_gyrator_conductances(&mut self, g: &[f64]) -> Result<()> {
        if g.len() != self.gy_g.len() {
            return Err(Error::InvalidInput(format!(
                "expected {} gyrator conductances, got {}",
                self.gy_g.len(),
                g.len()
            )));
        }
        check_finite(g, "gyrator conductance")?;
        self.gy_g.copy_from_slice(g);
        self.touch_values();
        Ok(())
    }

    /// The MNA structure (computed on first use, cached until the topology changes).
    pub fn mna_compiled(&self) -> Result<Arc<crate::mna::MnaCompiled>> {
        if let Some(c) = self.mna.get() {
            return Ok(c.clone());
        }
        let c = Arc::new(crate::mna::MnaCompiled::new(self, &*self.compiled()?)?);
        let _ = self.mna.set(c.clone());
        Ok(c)
    }

    /// The compiled structure (computed on first use, cached until the topology changes).
    pub fn compiled(&self) -> Result<Arc<Compiled>> {
        if let Some(c) = self.compiled.get() {
            return Ok(c.clone());
        }
        let c = Arc::new(Compiled::new(self)?);
        let _ = self.compiled.set(c.clone());
        Ok(c)
    }

    /// The cached factor values, if they were computed for the present values.
    pub(crate) fn cached_factor(&self) -> Option<Arc<Vec<f64>>> {
        let guard = self.factor_cache.lock().unwrap_or_else(|e| e.into_inner());
        match &*guard {
            Some((v, f)) if *v == self.values_version => Some(f.clone()),
            _ => None,
        }
    }

    /// Stores factor values computed for the present values.
    pub(crate) fn store_factor(&self, values: Arc<Vec<f64>>) {
        let mut guard = self.factor_cache.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Some((self.values_version, values));
    }

    /// Drops the cached numeric factor (frees its memory).
    pub fn clear_factor_cache(&self) {
        *self.factor_cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether a numeric factor for the present conductances is cached.
    pub fn has_cached_factor(&self) -> bool {
        self.cached_factor().is_some()
    }

    /// Whether a compiled structure is cached (for tests and diagnostics).
    pub fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }
}

#[cfg(test)]
#[path = "tests/network_tests.rs"]
mod tests;
