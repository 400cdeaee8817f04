//! Equilibrium solvers.
//!
//! The operating point minimises the co-content E(v) = Σ φ_b(Δv_b) − Σ I v over the
//! free node voltages, subject to the ideal-diode constraints Δv ≤ v_on. One loop
//! handles every element kind:
//!
//! * Newton's method on the smooth and piecewise-quadratic part (resistors, ReLU and
//!   Shockley diodes), with an exact line search along the Newton direction (the
//!   energy is convex, so the directional derivative is monotone and the search is
//!   a safeguarded root find; it never evaluates the energy itself, which would lose
//!   precision and overflow) and a limit on the step of every forward-biased
//!   Shockley junction (as SPICE's `pnjlim`). It converges on every well-posed
//!   network. Networks with Shockley junctions (and no ideal diodes) first run
//!   Newton with SPICE-style limiting of each junction separately
//!   ([`junction_phase`]): about 10 iterations on large lattices where the global cap
//!   alone takes 50 or more.
//! * Ideal diodes by the method of multipliers (Powell–Hestenes–Rockafellar
//!   augmented Lagrangian): a conducting diode adds a penalty conductance ρ to the
//!   fixed sparsity pattern, so an active-set change only changes values and the
//!   symbolic analysis is never repeated. Merging the nodes of conducting diodes
//!   instead would change the pattern (and the symbolic analysis) at every
//!   active-set change. The multipliers are the diode currents; at termination the
//!   conducting diodes hold Δv = v_on to `vtol` and complementarity is exact up to
//!   that tolerance. With ρ ten thousand times the conductance around each diode, a
//!   multiplier update reduces the constraint error about ten-thousandfold, and when
//!   the active set is unchanged it costs one triangular solve with the existing
//!   factor. A multiplier carries the rounding of Δv times ρ; the reported currents
//!   of conducting diodes are therefore taken from Kirchhoff's current law where
//!   their cluster is a tree (`predict::kcl_currents`).
//! * Networks of ideal diodes only, started cold: the first step solves with every
//!   diode open, and the conducting set it suggests is refined by a few sweeps of
//!   block relaxation (`predict`) before the second step factorises it.
//!
//! The Hessian (the conductance matrix at the operating point) is refactorised
//! only when its values change: for networks without Shockley junctions, only when
//! a ReLU or ideal diode switches.

use crate::compile::{stamp, Compiled};
use crate::error::{Error, Result};
use crate::factor::{Factor, Parallelism, Structure};
use crate::lowrank::{LowRank, MAX_RANK};
use crate::network::{thermal_voltage, DiodeModel, Network, NONE};
use crate::predict::Refiner;
use rayon::prelude::*;

/// Ideal-diode constraint treatments: inequality by PHR multipliers, a frozen
/// conducting diode (equality, current of any sign), a frozen open diode.
const PHR: u8 = 0;
const EQUALITY: u8 = 1;
const OPEN: u8 = 2;

/// Per-sample treatment of the ideal-diode constraints: mode and penalty of each.
#[derive(Clone, Debug)]
struct AlState {
    mode: Vec<u8>,
    rho: Vec<f64>,
}

/// Solver settings.
#[derive(Clone, Debug)]
pub struct SolveOptions {
    /// Convergence: KCL residual at every free node ≤ `rtol` × the largest branch current.
    pub rtol: f64,
    /// Ideal-diode constraints hold to `vtol` × the voltage scale of the network.
    pub vtol: f64,
    /// Maximum number of Newton iterations per sample (over all multiplier updates).
    pub max_iter: usize,
    /// Augmented-Lagrangian penalty, relative to the conductance around each ideal diode.
    pub rho: f64,
    /// Largest increase of a forward-biased Shockley junction voltage per Newton step,
    /// in units of n V_T beyond the critical voltage.
    pub step_limit: f64,
    /// Parallelism (samples in parallel; a single sample parallelises its factorization).
    pub par: Parallelism,
    /// Which solver runs.
    pub method: Method,
    /// Layered solver: a fixed number of sweeps (as in training, where a few sweeps
    /// per phase suffice), or `None` to sweep until the voltages settle to `vtol`.
    pub sweeps: Option<usize>,
}

/// The solver to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    /// The layered solver where it applies and pays (dense layers, large batches),
    /// the direct solver otherwise.
    #[default]
    Auto,
    /// Sparse Cholesky with Newton / augmented-Lagrangian iterations.
    Direct,
    /// Exact block coordinate descent over the two classes of a layered network.
    Layered,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            rtol: 1e-12,
            vtol: 1e-13,
            max_iter: 500,
            rho: 1e4,
            step_limit: 10.0,
            par: Parallelism::default(),
            method: Method::Auto,
            sweeps: None,
        }
    }
}

/// Solutions of a batch of samples (row-major: sample × item).
#[derive(Clone, Debug, Default)]
pub struct BatchSolution {
    /// Number of samples.
    pub batch: usize,
    /// Node voltages, batch × n_nodes (ground included, at 0).
    pub voltages: Vec<f64>,
    /// Diode currents (anode → cathode), batch × n_diodes.
    pub diode_currents: Vec<f64>,
    /// Voltage-source currents, batch × n_voltage_sources, in SPICE's convention: the
    /// current flowing into the source's + terminal from the circuit (negative when the
    /// source delivers current to its node).
    pub source_currents: Vec<f64>,
    /// Transformer currents i1 (into the + terminal of port 1), batch × n_transformers.
    pub transformer_currents: Vec<f64>,
    /// Newton iterations of each sample.
    pub iterations: Vec<u32>,
    /// Numeric factorizations of each sample (linear networks share one).
    pub factorizations: Vec<u32>,
    /// Newton steps of each sample solved by a low-rank correction of an earlier
    /// factor instead of a refactorization (a few diodes changed since).
    pub low_rank_solves: Vec<u32>,
    /// Largest KCL residual over the free nodes of each sample (amperes).
    pub kcl_residual: Vec<f64>,
}

/// A warm start: voltages (batch × n_nodes) and diode currents (batch × n_diodes).
#[derive(Clone, Copy, Debug)]
pub struct Warm<'a> {
    /// Node voltages of a previous solution.
    pub voltages: &'a [f64],
    /// Diode currents of a previous solution (the ideal-diode multipliers).
    pub diode_currents: &'a [f64],
}

/// What the solver needs of each diode beyond its law (`DiodeModel::law`).
#[derive(Clone, Copy)]
enum Kind {
    Ideal {
        v_on: f64,
    },
    Relu {
        v_on: f64,
    },
    /// n V_T and SPICE's critical voltage, for the junction step limit.
    Shockley {
        nvt: f64,
        v_crit: f64,
    },
}

/// Everything shared by the samples of one batch.
struct Prepared<'a> {
    net: &'a Network,
    c: &'a Compiled,
    /// Resistive part of the matrix values (pattern of `c`).
    base: Vec<f64>,
    kinds: Vec<Kind>,
    rho: Vec<f64>,
    n_ideal: usize,
    n_shockley: usize,
    n_switching: usize,
    /// Nodes receiving per-sample current injections (nudging).
    inj_nodes: &'a [u32],
    /// Resistive conductance at each node.
    diag: Vec<f64>,
}

impl<'a> Prepared<'a> {
    fn new(net: &'a Network, c: &'a Compiled, opts: &SolveOptions, inj_nodes: &'a [u32]) -> Self {
        let mut base = vec![0.0; c.nnz()];
        let mut diag = vec![0.0; net.n_nodes];
        for (k, s) in c.res_slots.iter().enumerate() {
            let g = net.res_g[k];
            stamp(&mut base, s, g);
            diag[net.res_a[k] as usize] += g;
            diag[net.res_b[k] as usize] += g;
        }
        let mut kinds = Vec::with_capacity(net.dio_model.len());
        let (mut n_ideal, mut n_shockley, mut n_switching) = (0, 0, 0);
        for m in &net.dio_model {
            kinds.push(match *m {
                DiodeModel::Ideal { v_on } => {
                    n_ideal += 1;
                    n_switching += 1;
                    Kind::Ideal { v_on }
                }
                DiodeModel::Relu { v_on, .. } => {
                    n_switching += 1;
                    Kind::Relu { v_on }
                }
                DiodeModel::Shockley {
                    i_s,
                    n,
                    temperature,
                    ..
                } => {
                    n_shockley += 1;
                    let nvt = n * thermal_voltage(temperature);
                    Kind::Shockley {
                        nvt,
                        v_crit: nvt * (nvt / (std::f64::consts::SQRT_2 * i_s)).ln(),
                    }
                }
            });
        }
        let mean_diag = {
            let s: f64 = diag.iter().sum();
            if s > 0.0 {
                s / diag.iter().filter(|&&x| x > 0.0).count().max(1) as f64
            } else {
                1.0
            }
        };
        let rho = net
            .dio_a
            .iter()
            .zip(&net.dio_b)
            .map(|(&a, &b)| {
                // The conductance around the diode's free ends (a clamped end, ground
                // included, can carry a huge total that says nothing about the diode).
                let free = |x: u32| {
                    if c.free_of_node[x as usize] != NONE {
                        diag[x as usize]
                    } else {
                        0.0
                    }
                };
                let local = free(a).max(free(b));
                opts.rho * if local > 0.0 { local } else { mean_diag }
            })
            .collect();
        Prepared {
            net,
            c,
            base,
            kinds,
            rho,
            n_ideal,
            n_shockley,
            n_switching,
            inj_nodes,
            diag,
        }
    }

    /// Current of diode `k` at branch voltage `dv` (ideal: the augmented-Lagrangian
    /// current for multiplier `mu`), and its conductance.
    #[inline]
    fn diode_law(&self, k: usize, dv: f64, mu: f64, al: Option<&AlState>) -> (f64, f64) {
        match self.kinds[k] {
            Kind::Ideal { v_on } => {
                let (mode, rho) = al.map_or((PHR, self.rho[k]), |a| (a.mode[k], a.rho[k]));
                let t = mu + rho * (dv - v_on);
                match mode {
                    EQUALITY => (t, rho),
                    OPEN => (0.0, 0.0),
                    _ if t > 0.0 => (t, rho),
                    _ => (0.0, 0.0),
                }
            }
            // Laws that are functions of the voltage: the model's own.
            Kind::Relu { .. } | Kind::Shockley { .. } => self.net.dio_model[k].law(dv),
        }
    }

    /// KCL residual at every node (currents leaving minus currents injected; only
    /// free entries are meaningful), diode currents and conductances, and the
    /// tolerance of each node: `rtol` × the largest current at the node plus the
    /// rounding floor of its currents (a branch current g (v_a − v_b) is known to
    /// about eps · g · max |v|). Tolerances are per node so that a huge
    /// current elsewhere in the network cannot hide an error. Returns the largest
    /// branch-current magnitude.
    #[allow(clippy::too_many_arguments)]
    fn residual(
        &self,
        v: &[f64],
        mu: &[f64],
        al: Option<&AlState>,
        inj: &[f64],
        rtol: f64,
        r: &mut [f64],
        tol: &mut [f64],
        id: &mut [f64],
        gd: &mut [f64],
    ) -> (f64, f64) {
        let net = self.net;
        r.iter_mut().for_each(|x| *x = 0.0);
        tol.iter_mut().for_each(|x| *x = 0.0);
        let fl = 64.0 * f64::EPSILON;
        // Solving for the voltages loses about eps of the largest voltage anywhere:
        // a branch's floor uses that scale, not only its own (possibly tiny) voltages.
        let vref = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let bump = |tol: &mut [f64], a: usize, b: usize, i: f64, g: f64| {
            let t = rtol * i.abs() + fl * g * vref;
            tol[a] = tol[a].max(t);
            tol[b] = tol[b].max(t);
        };
        let mut imax = 0.0f64;
        // Rounding floor: a branch current g (v_a − v_b) is known to ~eps · g max(|v_a|, |v_b|).
        let mut floor = 0.0f64;
        for k in 0..net.res_g.len() {
            let (a, b) = (net.res_a[k] as usize, net.res_b[k] as usize);
            let i = net.res_g[k] * (v[a] - v[b]);
            r[a] += i;
            r[b] -= i;
            imax = imax.max(i.abs());
            floor = floor.max(net.res_g[k] * v[a].abs().max(v[b].abs()));
            bump(tol, a, b, i, net.res_g[k]);
        }
        for k in 0..net.dio_model.len() {
            let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
            let (i, g) = self.diode_law(k, v[a] - v[b], mu[k], al);
            id[k] = i;
            gd[k] = g;
            r[a] += i;
            r[b] -= i;
            imax = imax.max(i.abs());
            floor = floor.max(g * v[a].abs().max(v[b].abs()));
            bump(tol, a, b, i, g);
        }
        for k in 0..net.is_value.len() {
            let (a, b) = (net.is_a[k] as usize, net.is_b[k] as usize);
            let i = net.is_value[k];
            r[a] += i;
            r[b] -= i;
            imax = imax.max(i.abs());
            bump(tol, a, b, i, 0.0);
        }
        for (&node, &i) in self.inj_nodes.iter().zip(inj) {
            let n = node as usize;
            r[n] -= i;
            imax = imax.max(i.abs());
            bump(tol, n, n, i, 0.0);
        }
        (imax, floor)
    }

    /// Directional derivative of the (augmented) energy at v + α d along d.
    fn dir_deriv(
        &self,
        v: &[f64],
        d: &[f64],
        alpha: f64,
        mu: &[f64],
        al: &AlState,
        inj: &[f64],
    ) -> f64 {
        let net = self.net;
        let mut s = 0.0;
        for k in 0..net.res_g.len() {
            let (a, b) = (net.res_a[k] as usize, net.res_b[k] as usize);
            let dd = d[a] - d[b];
            if dd != 0.0 {
                s += net.res_g[k] * (v[a] - v[b] + alpha * dd) * dd;
            }
        }
        for (k, &m) in mu.iter().enumerate() {
            let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
            let dd = d[a] - d[b];
            if dd != 0.0 {
                let (i, _) = self.diode_law(k, v[a] - v[b] + alpha * dd, m, Some(al));
                s += i * dd;
            }
        }
        for k in 0..net.is_value.len() {
            let (a, b) = (net.is_a[k] as usize, net.is_b[k] as usize);
            s += net.is_value[k] * (d[a] - d[b]);
        }
        for (&node, &i) in self.inj_nodes.iter().zip(inj) {
            s -= i * d[node as usize];
        }
        if s.is_nan() {
            f64::INFINITY
        } else {
            s
        }
    }

    /// Change of the augmented energy from v to v + α d, networks of resistors,
    /// ideal diodes and sources only (term by term, in difference form: no
    /// cancellation of the large totals).
    fn energy_change(
        &self,
        v: &[f64],
        d: &[f64],
        alpha: f64,
        mu: &[f64],
        al: &AlState,
        inj: &[f64],
    ) -> f64 {
        let net = self.net;
        let mut s = 0.0;
        for k in 0..net.res_g.len() {
            let (a, b) = (net.res_a[k] as usize, net.res_b[k] as usize);
            let dd = alpha * (d[a] - d[b]);
            if dd != 0.0 {
                s += net.res_g[k] * dd * (v[a] - v[b] + 0.5 * dd);
            }
        }
        for (k, &m) in mu.iter().enumerate() {
            let Kind::Ideal { v_on } = self.kinds[k] else {
                return f64::NAN;
            };
            let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
            let dd = alpha * (d[a] - d[b]);
            if dd == 0.0 {
                continue;
            }
            let rho = al.rho[k];
            let t0 = m + rho * (v[a] - v[b] - v_on);
            let t1 = t0 + rho * dd;
            s += match al.mode[k] {
                // (t1² − t0²) / 2ρ = dd (t0 + t1) / 2
                EQUALITY => dd * 0.5 * (t0 + t1),
                OPEN => 0.0,
                _ => {
                    let (p0, p1) = (t0.max(0.0), t1.max(0.0));
                    (p1 - p0) * (p1 + p0) / (2.0 * rho)
                }
            };
        }
        for k in 0..net.is_value.len() {
            let (a, b) = (net.is_a[k] as usize, net.is_b[k] as usize);
            s += net.is_value[k] * alpha * (d[a] - d[b]);
        }
        for (&node, &i) in self.inj_nodes.iter().zip(inj) {
            s -= i * alpha * d[node as usize];
        }
        s
    }

    /// Largest step (≤ 1) that keeps every forward-biased Shockley junction within
    /// `step_limit` n V_T beyond its critical voltage.
    fn step_cap(&self, v: &[f64], d: &[f64], step_limit: f64) -> f64 {
        if self.n_shockley == 0 {
            return 1.0;
        }
        let net = self.net;
        let mut alpha = 1.0f64;
        for k in 0..net.dio_model.len() {
            if let Kind::Shockley { nvt, v_crit, .. } = self.kinds[k] {
                let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
                let dd = d[a] - d[b];
                if dd > 0.0 {
                    let dv = v[a] - v[b];
                    let room = (v_crit - dv).max(0.0) + step_limit * nvt;
                    if dd > room {
                        alpha = alpha.min(room / dd);
                    }
                }
            }
        }
        alpha
    }
}

/// Largest KCL residual over the free nodes, and the largest ratio of a node's
/// residual to its tolerance (> 1: not converged).
fn residual_excess(c: &Compiled, r: &[f64], tol: &[f64]) -> (f64, f64) {
    let (mut res, mut excess) = (0.0f64, 0.0f64);
    for &n in &c.node_of_free {
        // Subnormal currents are zero for every purpose: an absolute floor.
        let (x, t) = (r[n as usize].abs(), tol[n as usize].max(f64::MIN_POSITIVE));
        if !x.is_finite() || t.is_nan() {
            // A non-finite current is never convergence.
            return (f64::INFINITY, f64::INFINITY);
        }
        res = res.max(x);
        if x > 0.0 {
            excess = excess.max(if t > 0.0 { x / t } else { f64::INFINITY });
        }
    }
    (res, excess)
}

/// Per-sample scratch.
struct Workspace<'a> {
    factor: Option<Factor<'a>>,
    values: Vec<f64>,
    r: Vec<f64>,
    d: Vec<f64>,
    rhs: Vec<f64>,
    id: Vec<f64>,
    gd: Vec<f64>,
    mu: Vec<f64>,
    inj: Vec<f64>,
    tol: Vec<f64>,
    node_g: Vec<f64>,
    /// Constraint violation of each ideal diode at the previous multiplier update.
    viol_k: Vec<f64>,
    /// How each ideal diode's constraint is treated, and its penalty.
    al: AlState,
    /// Diode conductances of the previous Newton step's matrix.
    prev_g: Vec<f64>,
    /// Diode conductances in the current factor.
    fact_g: Vec<f64>,
    /// Diodes whose conductance differs from the factor's, and the differences.
    diff: Vec<u32>,
    coef: Vec<f64>,
    /// Low-rank corrections of the factor (built on first use).
    low_rank: Option<LowRank>,
    /// The factor's layout (shared with it).
    structure: Option<std::sync::Arc<(Structure<'a>, crate::trisolve::Plan)>>,
    /// Ideal diodes whose penalty should grow at this multiplier update.
    grow: Vec<u32>,
    /// Diodes that switched at the last step (ascending), kept out of an early
    /// multiplier update.
    switched: Vec<u32>,
    /// Junction voltage at which each diode is linearised (junction-limited phase).
    x: Vec<f64>,
    has_factor: bool,
    /// Parallelism of this sample's work.
    par: Parallelism,
}

impl<'a> Workspace<'a> {
    /// [`Prepared::residual`] at `v` with this workspace's multipliers and
    /// injections (and its augmented-Lagrangian state when `with_al`), into its
    /// buffers; returns (largest branch current, rounding floor).
    fn residual(&mut self, p: &Prepared, v: &[f64], with_al: bool, rtol: f64) -> (f64, f64) {
        let al = with_al.then_some(&self.al);
        p.residual(
            v,
            &self.mu,
            al,
            &self.inj,
            rtol,
            &mut self.r,
            &mut self.tol,
            &mut self.id,
            &mut self.gd,
        )
    }

    /// Solves the Newton system whose diode conductances are `gd`, right-hand side in
    /// `rhs` (free entries), in place: with the factor as it is, with a low-rank
    /// correction of it (few diodes changed), or after a refactorization. A Shockley
    /// junction whose conductance moved by at most [`JUNCTION_IGNORE`] of the
    /// resistive conductance at its ends keeps its old value in the matrix (an
    /// inexact Newton step: the residual is exact, so is the answer). Returns whether
    /// a low-rank correction was used.
    fn newton_solve(
        &mut self,
        p: &Prepared,
        stats: &mut SampleStats,
        force_refactor: bool,
    ) -> Result<bool> {
        let (net, c) = (p.net, p.c);
        let nd = net.dio_model.len();
        let mut refactor = !self.has_factor || force_refactor;
        self.diff.clear();
        self.coef.clear();
        if !refactor {
            for k in 0..nd {
                let s = &c.dio_slots[k];
                let dg = self.gd[k] - self.fact_g[k];
                if dg == 0.0 || s.iter().all(|&x| x == NONE) {
                    continue;
                }
                if let Kind::Shockley { .. } = p.kinds[k] {
                    let free = |x: u32| {
                        if c.free_of_node[x as usize] != NONE {
                            p.diag[x as usize]
                        } else {
                            0.0
                        }
                    };
                    let local = free(net.dio_a[k]).max(free(net.dio_b[k]));
                    if dg.abs() <= JUNCTION_IGNORE * local {
                        continue;
                    }
                }
                self.diff.push(k as u32);
                self.coef.push(dg);
            }
        }
        let factor = self.factor.as_mut().expect("free nodes have a factor");
        if !self.diff.is_empty() {
            refactor = self.diff.len() > MAX_RANK;
            if !refactor {
                let st = &self.structure.get_or_insert_with(|| factor.layout()).0;
                let lr = self
                    .low_rank
                    .get_or_insert_with(|| LowRank::new(nd, c.n_free));
                let inv = factor.perm().1;
                let flops = lr.new_column_flops(st, &self.diff, |k, e| {
                    for x in [net.dio_a[k as usize], net.dio_b[k as usize]] {
                        let f = c.free_of_node[x as usize];
                        if f != NONE {
                            e.push(inv.map_or(f as usize, |p| p[f as usize] as usize));
                        }
                    }
                });
                let m = self.diff.len() as f64;
                refactor = COLUMN_FLOP_WEIGHT * flops + m * m * m / 3.0
                    > LOW_RANK_BUDGET * st.factor_flops;
            }
        }
        if refactor {
            restamp_and_factor(p, &mut self.values, &self.gd, &mut self.fact_g, factor)?;
            if let Some(lr) = self.low_rank.as_mut() {
                lr.clear();
            }
            self.has_factor = true;
            stats.factorizations += 1;
            self.diff.clear();
        }
        if self.diff.is_empty() {
            factor.solve_in_place(&mut self.rhs);
            return Ok(false);
        }
        let st = &self.structure.as_ref().expect("built above").0;
        let lr = self.low_rank.as_mut().expect("built above");
        let inv = factor.perm().1;
        let ok = lr.solve(
            factor,
            st,
            &self.diff,
            &self.coef,
            |k, e| {
                for (x, sign) in [(net.dio_a[k as usize], 1.0), (net.dio_b[k as usize], -1.0)] {
                    let f = c.free_of_node[x as usize];
                    if f != NONE {
                        e.push((inv.map_or(f as usize, |p| p[f as usize] as usize), sign));
                    }
                }
            },
            &mut self.rhs,
        );
        if ok {
            stats.low_rank_solves += 1;
            return Ok(true);
        }
        // Too ill-conditioned to trust: refactorise and solve afresh.
        restamp_and_factor(p, &mut self.values, &self.gd, &mut self.fact_g, factor)?;
        lr.clear();
        stats.factorizations += 1;
        for (f, &n) in c.node_of_free.iter().enumerate() {
            self.rhs[f] = -self.r[n as usize];
        }
        factor.solve_in_place(&mut self.rhs);
        Ok(false)
    }

    fn new(p: &Prepared<'a>, par: Parallelism) -> Self {
        let nd = p.net.dio_model.len();
        Workspace {
            factor: p.c.symbolic.as_ref().map(|_| Factor::new(p.c, par)),
            values: vec![0.0; p.c.nnz()],
            r: vec![0.0; p.net.n_nodes],
            d: vec![0.0; p.net.n_nodes],
            rhs: vec![0.0; p.c.n_free],
            id: vec![0.0; nd],
            gd: vec![0.0; nd],
            mu: vec![0.0; nd],
            inj: vec![0.0; p.inj_nodes.len()],
            node_g: vec![0.0; p.net.n_nodes],
            tol: vec![0.0; p.net.n_nodes],
            viol_k: vec![f64::INFINITY; nd],
            al: AlState {
                mode: vec![PHR; nd],
                rho: p.rho.clone(),
            },
            prev_g: vec![0.0; nd],
            fact_g: vec![0.0; nd],
            diff: Vec::new(),
            coef: Vec::new(),
            low_rank: None,
            structure: None,
            grow: Vec::new(),
            switched: Vec::new(),
            x: vec![0.0; nd],
            has_factor: false,
            par,
        }
    }
}

struct SampleStats {
    iterations: u32,
    factorizations: u32,
    /// Newton steps solved by a low-rank correction of an older factor.
    low_rank_solves: u32,
    residual: f64,
}

/// Weight of a flop of the sparse forward solves (a few columns at a time) against a
/// flop of the supernodal factorization (dense blocked kernels) when choosing between
/// a low-rank correction and a refactorization. Measured on the 180k-edge lattice:
/// the 305 columns of its third Newton step, estimated at 0.98 of a factorization with
/// this weight, took about as long as one. Since the columns are computed 32 at a time
/// in a compact scratch (`lowrank::GROUP`) they cost less: on the 1M-edge lattice 308
/// columns estimated at 0.41 of a factorization with this weight took 0.13 of one
/// (with their Gram matrix); the weight is kept, erring towards refactorising.
const COLUMN_FLOP_WEIGHT: f64 = 2.0;

/// The first Newton steps of a network without Shockley junctions are full steps (a
/// primal-dual active-set iteration). The energy is then piecewise quadratic, and a
/// full step lands on the minimiser of the current active set's quadratic; the exact
/// line search's damped steps instead leave many diodes barely forward-biased, and the
/// next active sets zigzag (1M-edge lattice: 1,553 diodes switched on, then 1,375 off,
/// each a refactorization; with full first steps 21 and then a low-rank correction).
/// A finite number of non-monotone steps leaves the global convergence of the damped
/// Newton iteration that follows intact.
const FULL_STEPS: u32 = 4;

/// A Shockley junction whose conductance moved by at most this fraction of the
/// resistive conductance at its ends since the factorization keeps its old value in
/// the matrix: a junction in reverse or weak forward bias (1e-14 S next to 1e-3 S
/// resistors) would otherwise force a refactorization at every Newton step, when only
/// the few junctions in strong forward bias matter. The Newton step is then inexact
/// by about this fraction, which costs no extra step at a KCL tolerance of 1e-12.
const JUNCTION_IGNORE: f64 = 1e-6;

/// A low-rank correction is chosen while its new columns and dense system cost less
/// than this fraction of a factorization (a fresh factor also makes the later steps'
/// corrections cheaper, so a tie goes to refactorising).
const LOW_RANK_BUDGET: f64 = 0.75;

/// Rounds of the active-set prediction (`predict`) and block SOR sweeps per round.
/// 1M-edge lattice, 2 threads: 4 rounds of 3 sweeps (about 60 ms, a fifth of a serial
/// factorization of ~300 ms) leave 217 of the 50,000 guesses wrong, against 3,100 for the linear
/// solution's guess, so the next step is a low-rank correction instead of a third
/// factorization. Each wrong guess costs about 0.5 ms in that correction and a round
/// about 13 ms: 3 rounds leave 282 wrong, 5 leave 189, 6 leave 155.
const PREDICT_ROUNDS: usize = 4;
const PREDICT_SWEEPS: usize = 3;

/// After a full low-rank step (not the predicted one) at which at most this fraction
/// of the diodes switched, the multipliers of the others are updated before the
/// inner Newton iteration has converged: the next step then corrects both the
/// switches (or the digits the correction lost) and the constraints. Lattices of
/// 5k to 1M edges: 5 Newton steps instead of 6 (one solve fewer).
const EARLY_UPDATE: f64 = 1e-3;
/// At most this many early updates per solve, each only after a step that at least
/// halved the residual (a low-rank step that lost digits refactorises instead).
const MAX_EARLY_UPDATES: usize = 4;

fn voltage_scale(p: &Prepared, v: &[f64]) -> f64 {
    let mut s = 1.0f64;
    for &node in &p.net.vs_node {
        s = s.max(v[node as usize].abs());
    }
    for k in &p.kinds {
        match *k {
            Kind::Ideal { v_on } | Kind::Relu { v_on } => s = s.max(v_on.abs()),
            Kind::Shockley { .. } => {}
        }
    }
    s
}

/// Solves one sample in place: `v` holds the warm start (free entries) and receives
/// the solution; `ws.mu` holds the warm multipliers.
fn solve_sample(
    p: &Prepared,
    v: &mut [f64],
    ws: &mut Workspace,
    opts: &SolveOptions,
) -> Result<SampleStats> {
    let net = p.net;
    let c = p.c;
    let nd = net.dio_model.len();
    let vscale = voltage_scale(p, v);
    let vtol = opts.vtol * vscale;
    // Ideal diodes whose ends are both clamped only need a feasibility check.
    for k in 0..nd {
        if let Kind::Ideal { v_on } = p.kinds[k] {
            let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
            if c.free_of_node[a] == NONE && c.free_of_node[b] == NONE {
                let h = v[a] - v[b] - v_on;
                if h > vtol {
                    return Err(Error::Infeasible {
                        diodes: vec![k],
                        detail: format!(
                            "diode {k} between clamped nodes {a} and {b} would need {:.6} V > v_on = {v_on}",
                            v[a] - v[b]
                        ),
                    });
                }
                ws.mu[k] = 0.0;
            }
        }
    }
    if p.n_ideal > 0 {
        crate::feasibility::check(p.net, v, vtol)?;
    }
    let mut stats = SampleStats {
        iterations: 0,
        factorizations: 0,
        low_rank_solves: 0,
        residual: 0.0,
    };
    if c.n_free == 0 {
        let _ = ws.residual(p, v, true, opts.rtol);
        for k in 0..nd {
            if let Kind::Ideal { .. } = p.kinds[k] {
                ws.id[k] = 0.0;
            }
        }
        return Ok(stats);
    }
    if p.n_shockley > 0 && p.n_ideal == 0 {
        junction_phase(p, v, ws, opts, &mut stats)?;
    }
    let mut outer = 0usize;
    let mut prev_viol = f64::INFINITY;
    let mut freeze_after = 3usize;
    let mut freeze_until = 0usize;
    let mut last_imax;
    // Networks of ideal diodes only, started cold: the active set of the second
    // Newton step is predicted by relaxation (`predict`).
    let predict_at_next =
        p.n_ideal == nd && nd > 0 && p.n_shockley == 0 && ws.mu.iter().all(|&m| m == 0.0);
    let mut predicted = false;
    // The iteration that took the predicted active set's step.
    let mut predicted_step = 0u32;
    let mut early_updates = 0usize;
    loop {
        // Whether the inner iteration ended other than by an early multiplier update
        // (see EARLY_UPDATE; the diodes in `ws.switched` keep their multipliers then).
        let mut kcl_ok = true;
        // Inner: Newton on the augmented energy for fixed multipliers.
        let mut prev_res = f64::INFINITY;
        let mut stalls = 0;
        let mut last_changed = true;
        let mut last_low_rank = false;
        let mut force_refactor = false;
        let mut last_alpha = 0.0;
        let mut force_step = true;
        let mut best_excess = f64::INFINITY;
        let mut best_at = 0u32;
        loop {
            let (imax, _) = ws.residual(p, v, true, opts.rtol);
            if predicted {
                predicted_step = stats.iterations + 1;
                // This step's matrix and residual hold the predicted active set
                // (frozen); from the next step on the constraints are free again.
                ws.al.mode.iter_mut().for_each(|x| *x = PHR);
                predicted = false;
            }
            let (res, excess) = residual_excess(c, &ws.r, &ws.tol);
            stats.residual = res;
            last_imax = imax;
            // After a multiplier update, one Newton step always follows: the update's
            // change of the residual can sit below the KCL tolerance, yet it is what
            // moves the constraints.
            if excess <= 1.0 && !(force_step && p.n_ideal > 0 && outer > 0) {
                break;
            }
            if p.n_ideal == nd
                && p.n_shockley == 0
                && !force_step
                && last_alpha == 1.0
                && last_low_rank
                && res < 0.5 * prev_res
                && early_updates < MAX_EARLY_UPDATES
                && stats.iterations != predicted_step
                && ws.al.mode.iter().all(|&m| m == PHR)
            {
                // A full low-rank step after which few diodes switched: the others'
                // multipliers are updated now (see EARLY_UPDATE).
                ws.switched.clear();
                ws.switched
                    .extend((0..nd as u32).filter(|&k| ws.prev_g[k as usize] != ws.gd[k as usize]));
                if ws.switched.len() as f64 <= EARLY_UPDATE * nd as f64 {
                    kcl_ok = false;
                    early_updates += 1;
                    break;
                }
            }
            if res >= 0.5 * prev_res && !last_changed && last_alpha == 1.0 && p.n_shockley == 0 {
                // A full step with an unchanged matrix solves the piecewise-linear
                // equations exactly: a residual that does not halve is the rounding floor
                // (of a fresh factor: a low-rank correction can lose a few digits).
                if last_low_rank {
                    force_refactor = true;
                } else {
                    stalls += 1;
                }
                if stalls >= 2 {
                    if excess <= 1e3 {
                        break;
                    }
                    return Err(Error::Convergence {
                        iterations: stats.iterations as usize,
                        residual: res,
                        detail: "KCL residual stalled (ill-conditioned conductances?)".into(),
                    });
                }
            } else {
                stalls = 0;
            }
            prev_res = res;
            // Semismooth Newton can zigzag around a kink at the solution (a ReLU or
            // weakly active ideal diode switching at every step) and creep towards the
            // rounding floor: accept once within 1000× the tolerance and no longer
            // improving.
            if excess < best_excess * 0.5 {
                best_excess = excess;
                best_at = stats.iterations;
            } else if stats.iterations >= best_at + 20 && excess <= 1e3 {
                break;
            }
            if stats.iterations as usize >= opts.max_iter {
                return Err(Error::Convergence {
                    iterations: stats.iterations as usize,
                    residual: res,
                    detail: format!(
                        "Newton iterations on the KCL equations (largest branch current {imax:.3e} A)"
                    ),
                });
            }
            stats.iterations += 1;
            // Matrix values: refactorise only when they change, and only when a
            // low-rank correction of the current factor would cost more.
            let mut changed = !ws.has_factor || p.n_shockley > 0;
            for k in 0..nd {
                if !matches!(p.kinds[k], Kind::Shockley { .. }) && ws.prev_g[k] != ws.gd[k] {
                    ws.prev_g[k] = ws.gd[k];
                    changed = true;
                }
            }
            for (f, &n) in c.node_of_free.iter().enumerate() {
                ws.rhs[f] = -ws.r[n as usize];
            }
            last_low_rank = ws.newton_solve(p, &mut stats, force_refactor)?;
            force_refactor = false;
            last_changed = changed;
            ws.d.iter_mut().for_each(|x| *x = 0.0);
            let mut dmax = 0.0f64;
            for (f, &n) in c.node_of_free.iter().enumerate() {
                ws.d[n as usize] = ws.rhs[f];
                dmax = dmax.max(ws.rhs[f].abs());
            }
            if dmax <= 4.0 * f64::EPSILON * vscale && excess <= 1e3 {
                // The Newton step is below the resolution of the voltages: done.
                break;
            }
            force_step = false;
            let alpha = if p.n_shockley == 0 && stats.iterations <= FULL_STEPS {
                1.0
            } else {
                line_search(p, v, &ws.d, &ws.mu, &ws.al, &ws.inj, opts)
            };
            last_alpha = alpha;
            for &n in &c.node_of_free {
                v[n as usize] += alpha * ws.d[n as usize];
            }
            if predict_at_next && stats.iterations == 1 && outer == 0 {
                // The step solved the network with (nearly) every diode open: refine
                // the conducting set it predicts before paying for its factorization.
                let mut on: Vec<bool> = (0..nd)
                    .map(|k| match p.kinds[k] {
                        Kind::Ideal { v_on } => {
                            v[net.dio_a[k] as usize] - v[net.dio_b[k] as usize] > v_on
                        }
                        _ => false,
                    })
                    .collect();
                let mut vr = v.to_vec();
                let mut refiner = Refiner::new(net, c, p.inj_nodes, &ws.inj, ws.par);
                refiner.refine(net, c, &mut vr, &mut on, PREDICT_ROUNDS, PREDICT_SWEEPS);
                for (mode, &on) in ws.al.mode.iter_mut().zip(&on) {
                    *mode = if on { EQUALITY } else { OPEN };
                }
                predicted = true;
            }
        }
        if p.n_ideal == 0 {
            break;
        }
        // Multiplier update: the augmented currents become the multipliers.
        // An early update leaves the multipliers of the diodes that just switched.
        ws.grow.clear();
        if kcl_ok {
            ws.switched.clear();
        }
        let mut skip = 0;
        let mut viol = 0.0f64;
        let mut most_negative = 0.0f64;
        for k in 0..nd {
            if let Kind::Ideal { v_on } = p.kinds[k] {
                let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
                if ws.switched.get(skip) == Some(&(k as u32)) {
                    skip += 1;
                    continue;
                }
                if c.free_of_node[a] == NONE && c.free_of_node[b] == NONE {
                    continue;
                }
                let h = v[a] - v[b] - v_on;
                let t = ws.mu[k] + ws.al.rho[k] * h;
                let m = match ws.al.mode[k] {
                    EQUALITY => {
                        viol = viol.max(h.abs());
                        most_negative = most_negative.min(t);
                        t
                    }
                    OPEN => {
                        viol = viol.max(h.max(0.0));
                        0.0
                    }
                    _ => {
                        let m = t.max(0.0);
                        viol = viol.max(if m > 0.0 { h.abs() } else { h.max(0.0) });
                        m
                    }
                };
                ws.mu[k] = m;
                // Per-constraint penalty growth (Bertsekas' rule): a violation that
                // did not fall fourfold means ρ is small against the conductance of
                // the whole path the constraint acts on (e.g. a junction in deep
                // forward bias in series with the diode).
                let vk = if m > 0.0 || ws.al.mode[k] == EQUALITY {
                    h.abs()
                } else {
                    h.max(0.0)
                };
                if vk > vtol && vk > 0.25 * ws.viol_k[k] && ws.al.rho[k] < 1e12 * p.rho[k] {
                    ws.grow.push(k as u32);
                }
                ws.viol_k[k] = vk;
            }
        }
        // A larger penalty costs a refactorization; a multiplier update with the
        // current factor costs one solve. Grow only while the largest violation
        // contracts by less than 100× per update (a few slow constraints among
        // many fast ones are left to the next updates until they dominate).
        if !ws.grow.is_empty() && viol > 1e-2 * prev_viol {
            // (The Newton step compares the conductances with the factor's.)
            for &k in &ws.grow {
                ws.al.rho[k as usize] *= 10.0;
            }
        }
        outer += 1;
        // The penalty follows the conductance around each diode at the current
        // point (junctions far in forward bias can dwarf the resistors): the
        // multipliers' contraction factor is about 1 / (1 + ρ R_local).
        if p.n_shockley + p.n_switching > p.n_ideal {
            ws.node_g.copy_from_slice(&p.diag);
            for k in 0..nd {
                if !matches!(p.kinds[k], Kind::Ideal { .. }) {
                    ws.node_g[net.dio_a[k] as usize] += ws.gd[k];
                    ws.node_g[net.dio_b[k] as usize] += ws.gd[k];
                }
            }
            for k in 0..nd {
                if matches!(p.kinds[k], Kind::Ideal { .. }) {
                    let free = |x: u32| {
                        if c.free_of_node[x as usize] != NONE {
                            ws.node_g[x as usize]
                        } else {
                            0.0
                        }
                    };
                    let local = free(net.dio_a[k]).max(free(net.dio_b[k]));
                    let r = (opts.rho * local).max(ws.al.rho[k]);
                    if r.is_finite() && r != ws.al.rho[k] {
                        ws.al.rho[k] = r;
                    }
                }
            }
        }
        let frozen = ws.al.mode.iter().any(|&m| m != PHR);
        if frozen {
            if viol <= vtol && kcl_ok {
                if most_negative >= -1e-9 * last_imax {
                    // The frozen active set is optimal: primal and dual feasible.
                    for m in ws.mu.iter_mut() {
                        *m = m.max(0.0);
                    }
                    break;
                }
                // A conducting diode would need a negative current: back to PHR.
                ws.al.mode.iter_mut().for_each(|x| *x = PHR);
                for m in ws.mu.iter_mut() {
                    *m = m.max(0.0);
                }
                freeze_after = outer + 20;
            } else if outer >= freeze_until {
                ws.al.mode.iter_mut().for_each(|x| *x = PHR);
                for m in ws.mu.iter_mut() {
                    *m = m.max(0.0);
                }
                freeze_after = outer + 20;
            }
        } else {
            if viol <= vtol && kcl_ok {
                break;
            }
            if viol > 0.1 * prev_viol && outer >= freeze_after {
                // Slow multipliers: some constraint is weakly active (zero current at
                // its threshold), which the PHR update approaches only slowly. Freeze
                // the active set (conducting diodes as equalities, the others open):
                // the multiplier iteration then converges at the fast linear rate, and
                // the result is kept only if it is primal and dual feasible.
                for k in 0..nd {
                    if let Kind::Ideal { .. } = p.kinds[k] {
                        ws.al.mode[k] = if ws.mu[k] > 0.0 { EQUALITY } else { OPEN };
                    }
                }
                freeze_until = outer + 30;
            }
        }
        prev_viol = viol;
        if outer > 1000 {
            return Err(Error::Convergence {
                iterations: stats.iterations as usize,
                residual: viol,
                detail: "ideal-diode constraints (augmented-Lagrangian multipliers)".into(),
            });
        }
    }
    Ok(stats)
}

/// The Hessian at the diodes' present conductances `gd` (the resistors' values plus
/// each diode's branch), factorised; `fact_g` records the conductances it holds.
fn restamp_and_factor(
    p: &Prepared,
    values: &mut [f64],
    gd: &[f64],
    fact_g: &mut [f64],
    factor: &mut Factor,
) -> Result<()> {
    values.copy_from_slice(&p.base);
    for (k, &g) in gd.iter().enumerate() {
        if g != 0.0 {
            stamp(values, &p.c.dio_slots[k], g);
        }
    }
    factor.factorize(values)?;
    fact_g.copy_from_slice(gd);
    Ok(())
}

/// SPICE's junction limiting (`pnjlim`), with its initial junction voltage: a
/// forward step of a Shockley junction beyond its critical voltage moves the point of
/// linearisation only to where the exponential's tangent at the old point predicts
/// the new voltage's current (`x + n V_T ln(1 + Δ / n V_T)`), and a junction that
/// crosses its critical voltage from below is linearised there first.
#[inline]
fn pn_limit(vnew: f64, xold: f64, nvt: f64, v_crit: f64) -> f64 {
    let step = vnew - xold;
    if step > 2.0 * nvt && vnew > v_crit {
        let lim = xold + nvt * (1.0 + step / nvt).ln();
        return lim.max(v_crit).min(vnew);
    }
    // Going down matters only where the junction conducts hard: within 8 n V_T of
    // the critical voltage (a conductance above e^-8 / √2 S).
    if step < 0.0 && xold > v_crit - 8.0 * nvt {
        if step > -nvt {
            // Going down: the junction voltage whose current the companion model predicts.
            return (xold + nvt * (1.0 + step / nvt).ln()).max(vnew - 20.0 * nvt);
        }
        // The companion model's current changed sign: restart from the critical voltage.
        return vnew.min(v_crit);
    }
    vnew
}

/// Junction voltage of diode `k` when the rest of the network, seen from the diode,
/// is an open-circuit voltage `voc` behind the conductance of the resistors at its
/// free ends (in series): the root of i(x) = g (voc − x), by bisection. A junction
/// that crosses its critical voltage is linearised there rather than at the critical
/// voltage itself, whose current can be orders of magnitude off.
fn thevenin_estimate(p: &Prepared, k: usize, voc: f64) -> f64 {
    let net = p.net;
    let end = |x: u32| {
        if p.c.free_of_node[x as usize] != NONE {
            1.0 / p.diag[x as usize]
        } else {
            0.0
        }
    };
    let r = end(net.dio_a[k]) + end(net.dio_b[k]);
    let Kind::Shockley { v_crit, .. } = p.kinds[k] else {
        return voc;
    };
    if !(r > 0.0 && r.is_finite()) {
        return v_crit.min(voc);
    }
    let g = 1.0 / r;
    let (mut lo, mut hi) = (0.0f64.min(voc), voc);
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if net.dio_model[k].law(mid).0 > g * (voc - mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Newton's method with SPICE-style junction limiting, from a cold or warm start: each
/// diode is linearised at its own junction voltage `x` (its companion model: current
/// i(x) + g(x)(Δv − x)), the linearised network is solved exactly, and each junction's
/// next point of linearisation is its new voltage, limited by [`pn_limit`]. A global
/// step cap (the damped Newton that follows) lets the most overdriven junction of the
/// whole network set the step of every node, which takes tens of iterations on large
/// networks; limiting each junction separately does not. The phase ends as soon as no
/// junction is limited: the last solve was then a full Newton step at the current
/// point, and the damped Newton of [`solve_sample`] (with its convergence test and
/// line search) finishes. If the phase fails (non-finite values, no settling within
/// its budget), the start point is restored and the damped Newton runs from there.
fn junction_phase(
    p: &Prepared,
    v: &mut [f64],
    ws: &mut Workspace,
    opts: &SolveOptions,
    stats: &mut SampleStats,
) -> Result<()> {
    let net = p.net;
    let c = p.c;
    let nd = net.dio_model.len();
    // Already converged (e.g. a warm start at the solution): nothing to do.
    ws.residual(p, v, false, opts.rtol);
    if residual_excess(c, &ws.r, &ws.tol).1 <= 1.0 {
        return Ok(());
    }
    let budget = 40usize.min(opts.max_iter / 2);
    let start: Vec<f64> = c.node_of_free.iter().map(|&n| v[n as usize]).collect();
    // The Thevenin estimate is used once per junction: its local resistance is a
    // guess, and a junction whose estimate falls below the critical voltage while the
    // network's solve puts it above would otherwise be re-estimated at every step
    // and never settle. On the 1M-edge lattice of benches/compare.py (d) the phase
    // then used its whole budget and the damped Newton ran ~58 more steps (98 in
    // all); with one estimate per junction it settles in 10.
    let mut estimated = vec![false; nd];
    for k in 0..nd {
        let dv = v[net.dio_a[k] as usize] - v[net.dio_b[k] as usize];
        ws.x[k] = match p.kinds[k] {
            // As SPICE: no junction starts above its critical voltage.
            Kind::Shockley { v_crit, .. } if dv > v_crit => {
                estimated[k] = true;
                thevenin_estimate(p, k, dv)
            }
            Kind::Shockley { .. } => dv,
            _ => dv,
        };
    }
    let mut ok = false;
    let mut used = 0u32;
    for _ in 0..budget {
        used += 1;
        // Companion models at x: conductances (the matrix), currents (the residual).
        ws.r.iter_mut().for_each(|z| *z = 0.0);
        for k in 0..net.res_g.len() {
            let (a, b) = (net.res_a[k] as usize, net.res_b[k] as usize);
            let i = net.res_g[k] * (v[a] - v[b]);
            ws.r[a] += i;
            ws.r[b] -= i;
        }
        for k in 0..nd {
            let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
            let dv = v[a] - v[b];
            let xk = match p.kinds[k] {
                Kind::Shockley { .. } => ws.x[k],
                _ => dv,
            };
            let (i0, g) = net.dio_model[k].law(xk);
            let i = i0 + g * (dv - xk);
            ws.r[a] += i;
            ws.r[b] -= i;
            ws.gd[k] = g;
        }
        for k in 0..net.is_value.len() {
            let (a, b) = (net.is_a[k] as usize, net.is_b[k] as usize);
            ws.r[a] += net.is_value[k];
            ws.r[b] -= net.is_value[k];
        }
        for (&node, &i) in p.inj_nodes.iter().zip(&ws.inj) {
            ws.r[node as usize] -= i;
        }
        for (f, &n) in c.node_of_free.iter().enumerate() {
            ws.rhs[f] = -ws.r[n as usize];
        }
        // Most junctions' conductances barely move between these steps (reverse or
        // weak forward bias): the factor is corrected for the few that do.
        if ws.newton_solve(p, stats, false).is_err() {
            break;
        }
        if ws.rhs.iter().any(|z| !z.is_finite()) {
            break;
        }
        for (f, &n) in c.node_of_free.iter().enumerate() {
            v[n as usize] += ws.rhs[f];
        }
        let mut limited = false;
        for k in 0..nd {
            if let Kind::Shockley { nvt, v_crit } = p.kinds[k] {
                let dv = v[net.dio_a[k] as usize] - v[net.dio_b[k] as usize];
                let xn = if ws.x[k] < v_crit && dv > v_crit && !estimated[k] {
                    estimated[k] = true;
                    thevenin_estimate(p, k, dv)
                } else {
                    pn_limit(dv, ws.x[k], nvt, v_crit)
                };
                // Near the solution the downward rule differs from Newton's step
                // only at second order: not a limit.
                limited |= (xn - dv).abs() > 1e-3 * nvt;
                ws.x[k] = xn;
            }
        }
        if !limited {
            ok = true;
            break;
        }
    }
    stats.iterations += used;
    if !ok {
        for (f, &n) in c.node_of_free.iter().enumerate() {
            v[n as usize] = start[f];
        }
    }
    // The factor holds the companion matrix at the junction voltages `x`, whose
    // conductances `fact_g` records: the Newton steps correct it like any other.
    Ok(())
}

/// Step along `d`: the largest step allowed by the junction limit if the energy still
/// decreases there, else the minimiser along the ray found by safeguarded regula falsi
/// on the (monotone) directional derivative.
fn line_search(
    p: &Prepared,
    v: &[f64],
    d: &[f64],
    mu: &[f64],
    al: &AlState,
    inj: &[f64],
    opts: &SolveOptions,
) -> f64 {
    let cap = p.step_cap(v, d, opts.step_limit);
    if p.n_shockley == 0 && p.n_switching == 0 {
        return 1.0;
    }
    let g0 = p.dir_deriv(v, d, 0.0, mu, al, inj);
    if g0 >= 0.0 {
        // Not a descent direction (rounding at the solution): take the Newton step.
        return cap;
    }
    let ghi = p.dir_deriv(v, d, cap, mu, al, inj);
    if ghi <= 0.0 {
        return cap;
    }
    if p.n_ideal == p.net.dio_model.len() && cap == 1.0 {
        // Ideal diodes only: the energy is piecewise quadratic, and the full Newton
        // step lands on the minimiser of the step's active set. A diode switching
        // just short of it makes the derivative there positive, and the exact search
        // would stop at that kink and leave the step unfinished (several damped steps
        // for one or two weakly active diodes). The full step is taken whenever it
        // decreases the energy enough (Armijo).
        let de = p.energy_change(v, d, 1.0, mu, al, inj);
        if de <= 1e-4 * g0 {
            return 1.0;
        }
    }
    let (mut lo, mut glo, mut hi, mut ghi) = (0.0f64, g0, cap, ghi);
    let mut side = 0i32;
    for _ in 0..100 {
        let t = if ghi.is_finite() {
            let t = lo + (hi - lo) * (-glo) / (ghi - glo);
            if t > lo && t < hi {
                t
            } else {
                0.5 * (lo + hi)
            }
        } else {
            0.5 * (lo + hi)
        };
        let gt = p.dir_deriv(v, d, t, mu, al, inj);
        if gt <= 0.0 && gt >= 0.1 * g0 {
            return t;
        }
        if gt > 0.0 {
            hi = t;
            ghi = gt;
            if side == 1 {
                glo *= 0.5;
            }
            side = 1;
        } else {
            lo = t;
            glo = gt;
            if side == -1 {
                ghi *= 0.5;
            }
            side = -1;
        }
        if hi - lo <= 1e-15 * hi {
            break;
        }
    }
    if lo > 0.0 {
        lo
    } else {
        hi
    }
}

/// Voltage-source currents from the KCL residual `r_at(node)` of each clamped node
/// (currents leaving through its branches minus injections: what the source delivers).
/// SPICE reports the current entering the + terminal from the circuit: its negative.
fn source_currents_from_kcl(net: &Network, r_at: impl Fn(usize) -> f64, out: &mut [f64]) {
    for (o, &node) in out.iter_mut().zip(&net.vs_node) {
        *o = -r_at(node as usize);
    }
}

/// Per-sample currents injected into nodes (e.g. the nudging of Equilibrium
/// Propagation): `values` is batch × `nodes.len()`, amperes flowing into each node.
#[derive(Clone, Copy, Debug)]
pub struct Injections<'a> {
    /// Nodes receiving the currents.
    pub nodes: &'a [u32],
    /// Currents, batch × nodes.len() (row-major).
    pub values: &'a [f64],
}

/// Solves a batch of samples. `inputs` is batch × n_inputs (row-major); with no
/// inputs, `batch` gives the number of (identical) samples.
pub fn solve_batch(
    net: &Network,
    inputs: &[f64],
    batch: usize,
    warm: Option<Warm>,
    injections: Option<Injections>,
    opts: &SolveOptions,
) -> Result<BatchSolution> {
    let ni = net.n_inputs;
    if inputs.len() != batch * ni {
        return Err(Error::InvalidInput(format!(
            "inputs: expected {batch} × {ni} values, got {}",
            inputs.len()
        )));
    }
    if let Some(i) = inputs.iter().position(|x| !x.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "inputs: sample {}, input {} is {} (must be finite)",
            i / ni.max(1),
            i % ni.max(1),
            inputs[i]
        )));
    }
    let (n, nd, nv) = (net.n_nodes, net.dio_model.len(), net.vs_node.len());
    if let Some(w) = warm {
        if w.voltages.len() != batch * n || w.diode_currents.len() != batch * nd {
            return Err(Error::InvalidInput("warm start: wrong shape".into()));
        }
    }
    let (inj_nodes, inj_values): (&[u32], &[f64]) = match injections {
        Some(j) => {
            if j.values.len() != batch * j.nodes.len() {
                return Err(Error::InvalidInput(format!(
                    "injections: expected {batch} × {} values, got {}",
                    j.nodes.len(),
                    j.values.len()
                )));
            }
            if let Some(&bad) = j.nodes.iter().find(|&&x| x as usize >= n) {
                return Err(Error::InvalidInput(format!(
                    "injections: unknown node {bad}"
                )));
            }
            if j.values.iter().any(|x| !x.is_finite()) {
                return Err(Error::InvalidInput("injections must be finite".into()));
            }
            (j.nodes, j.values)
        }
        None => (&[], &[]),
    };
    if net.has_two_ports() {
        return crate::mna::solve_batch(net, inputs, batch, warm, inj_nodes, inj_values, opts);
    }
    let compiled = net.compiled()?;
    let c = &*compiled;
    let p = Prepared::new(net, c, opts, inj_nodes);
    let mut sol = BatchSolution {
        batch,
        voltages: vec![0.0; batch * n],
        diode_currents: vec![0.0; batch * nd],
        source_currents: vec![0.0; batch * nv],
        transformer_currents: vec![],
        iterations: vec![0; batch],
        factorizations: vec![0; batch],
        low_rank_solves: vec![0; batch],
        kcl_residual: vec![0.0; batch],
    };
    if batch == 0 {
        return Ok(sol);
    }
    for s in 0..batch {
        let v = &mut sol.voltages[s * n..(s + 1) * n];
        if let Some(w) = warm {
            v.copy_from_slice(&w.voltages[s * n..(s + 1) * n]);
        }
        p.net.set_clamps(v, &inputs[s * ni..(s + 1) * ni]);
    }
    let layered = match opts.method {
        Method::Direct => false,
        Method::Layered => {
            if let Some(why) = crate::layered::layered_obstacle(net, c) {
                return Err(Error::InvalidInput(format!(
                    "method='layered' does not apply: {why}"
                )));
            }
            true
        }
        Method::Auto => {
            // Coordinate descent pays where factorizations are dense (all-to-all
            // layers): measured on the 128-256-10 digits network, 0.6 ms per sample
            // against 2.7 ms for the direct solver at batch 4, 0.25 vs 1.9 at 64.
            // Sparse graphs (lattices: bipartite too) keep the direct solver.
            let edges = c.nnz() - c.n_free;
            batch >= 1
                && c.n_free > 0
                && edges >= 16 * c.n_free
                && crate::layered::layered_obstacle(net, c).is_none()
        }
    };
    let run = |sol: &mut BatchSolution| -> Result<()> {
        if layered && c.n_free > 0 {
            solve_layered_batch(&p, sol, inj_values, opts)
        } else if nd == 0 && c.n_free > 0 {
            solve_linear_batch(&p, sol, inj_values, opts)
        } else {
            solve_nonlinear_batch(&p, sol, warm, inj_values, opts)
        }
    };
    crate::factor::with_threads(opts.par, || run(&mut sol))?;
    // Never hand back a non-finite operating point as if it were one.
    if let Some(s) = (0..batch).find(|&s| {
        !sol.kcl_residual[s].is_finite()
            || sol.voltages[s * n..(s + 1) * n]
                .iter()
                .any(|x| !x.is_finite())
            || sol.diode_currents[s * nd..(s + 1) * nd]
                .iter()
                .any(|x| !x.is_finite())
    }) {
        return Err(Error::Convergence {
            iterations: sol.iterations[s] as usize,
            residual: sol.kcl_residual[s],
            detail: format!("sample {s}: the solution is not finite (overflow?)"),
        });
    }
    Ok(sol)
}

fn finish_sample(
    p: &Prepared,
    v: &[f64],
    inj: &[f64],
    id: &mut [f64],
    src: &mut [f64],
    mu: Option<&[f64]>,
) -> f64 {
    // Physical currents at the solution; ideal diodes carry their multipliers.
    let nn = p.net.n_nodes;
    let nd = p.net.dio_model.len();
    let mut r = vec![0.0; nn];
    let mut gd = vec![0.0; nd];
    let zeros = vec![0.0; nd];
    let mut tmp = vec![0.0; nd];
    let mut tol = vec![0.0; nn];
    p.residual(
        v, &zeros, None, inj, 0.0, &mut r, &mut tol, &mut tmp, &mut gd,
    );
    if let Some(mu) = mu {
        if p.n_ideal > 0 {
            // Conducting ideal diodes: currents by KCL where that determines them
            // (exact to the rounding of the other branch currents; the multipliers
            // carry the rounding of Δv times the penalty).
            let mut outflow = r.clone();
            for k in 0..nd {
                if let Kind::Ideal { .. } = p.kinds[k] {
                    outflow[p.net.dio_a[k] as usize] -= tmp[k];
                    outflow[p.net.dio_b[k] as usize] += tmp[k];
                }
            }
            let mut cur = mu.to_vec();
            crate::predict::kcl_currents(
                p.net,
                p.c,
                |k| matches!(p.kinds[k], Kind::Ideal { .. }) && mu[k] > 0.0,
                &mut outflow,
                &mut cur,
            );
            for k in 0..nd {
                if let Kind::Ideal { .. } = p.kinds[k] {
                    id[k] = cur[k];
                }
            }
        }
    }
    for k in 0..nd {
        id[k] = match p.kinds[k] {
            Kind::Ideal { .. } => {
                if mu.is_some() {
                    id[k]
                } else {
                    0.0
                }
            }
            _ => tmp[k],
        };
        // The residual counted the penalty law for ideal diodes: put their
        // physical currents (the multipliers) in its place.
        let delta = id[k] - tmp[k];
        if delta != 0.0 {
            r[p.net.dio_a[k] as usize] += delta;
            r[p.net.dio_b[k] as usize] -= delta;
        }
    }
    source_currents_from_kcl(p.net, |x| r[x], src);
    p.c.node_of_free
        .iter()
        .map(|&n| r[n as usize].abs())
        .fold(0.0, f64::max)
}

fn solve_nonlinear_batch(
    p: &Prepared,
    sol: &mut BatchSolution,
    warm: Option<Warm>,
    inj: &[f64],
    opts: &SolveOptions,
) -> Result<()> {
    let k = p.inj_nodes.len();
    let (n, nd, nv) = (p.net.n_nodes, p.net.dio_model.len(), p.net.vs_node.len());
    let batch = sol.batch;
    // One sample: parallelise inside its factorization; many: across samples.
    let inner_par = if batch == 1 {
        opts.par
    } else {
        Parallelism::Serial
    };
    struct Out {
        v: Vec<f64>,
        id: Vec<f64>,
        src: Vec<f64>,
        stats: SampleStats,
        kcl: f64,
    }
    let start = &sol.voltages;
    let outs: Vec<Result<Out>> = (0..batch)
        .into_par_iter()
        .map_init(
            || Workspace::new(p, inner_par),
            |ws, s| {
                ws.has_factor = false;
                ws.al.mode.iter_mut().for_each(|x| *x = PHR);
                ws.al.rho.copy_from_slice(&p.rho);
                ws.viol_k.iter_mut().for_each(|x| *x = f64::INFINITY);
                ws.prev_g.iter_mut().for_each(|x| *x = 0.0);
                for k in 0..nd {
                    ws.mu[k] = match (p.kinds[k], warm) {
                        (Kind::Ideal { .. }, Some(w)) => w.diode_currents[s * nd + k].max(0.0),
                        _ => 0.0,
                    };
                }
                let mut v = start[s * n..(s + 1) * n].to_vec();
                ws.inj.copy_from_slice(&inj[s * k..(s + 1) * k]);
                let stats = solve_sample(p, &mut v, ws, opts).map_err(|e| e.in_sample(s, batch))?;
                let mut id = vec![0.0; nd];
                let mut src = vec![0.0; nv];
                let kcl = finish_sample(p, &v, &ws.inj, &mut id, &mut src, Some(&ws.mu));
                Ok(Out {
                    v,
                    id,
                    src,
                    stats,
                    kcl,
                })
            },
        )
        .collect();
    for (s, o) in outs.into_iter().enumerate() {
        let o = o?;
        sol.voltages[s * n..(s + 1) * n].copy_from_slice(&o.v);
        sol.diode_currents[s * nd..(s + 1) * nd].copy_from_slice(&o.id);
        sol.source_currents[s * nv..(s + 1) * nv].copy_from_slice(&o.src);
        sol.iterations[s] = o.stats.iterations;
        sol.factorizations[s] = o.stats.factorizations;
        sol.low_rank_solves[s] = o.stats.low_rank_solves;
        sol.kcl_residual[s] = o.kcl;
    }
    Ok(())
}

fn solve_linear_batch(
    p: &Prepared,
    sol: &mut BatchSolution,
    inj: &[f64],
    opts: &SolveOptions,
) -> Result<()> {
    let k = p.inj_nodes.len();
    let c = p.c;
    let n = p.net.n_nodes;
    let nv = p.net.vs_node.len();
    let batch = sol.batch;
    // One factorization for the batch (every allowed thread), kept in the network's
    // cache: an adjoint solve or a later solve with the same conductances reuses it.
    let values = match p.net.cached_factor() {
        Some(v) => {
            sol.factorizations.iter_mut().for_each(|x| *x = 0);
            v
        }
        None => {
            let mut f = Factor::new(c, opts.par);
            f.factorize(&p.base)?;
            let v = std::sync::Arc::new(f.take_values());
            p.net.store_factor(v.clone());
            if let Some(x) = sol.factorizations.first_mut() {
                *x = 1;
            }
            v
        }
    };
    let factor = crate::factor::SharedFactor::new(c, values);
    let nf = c.n_free;
    let threads = opts.par.n_threads().max(1);
    let chunk = batch.div_ceil(threads * 2).clamp(1, 64);
    let solve_par = if batch == 1 {
        opts.par.faer()
    } else {
        faer::Par::Seq
    };
    // A lone right-hand side may use every allowed thread (see `trisolve`).
    let one_threads = if batch == 1 { threads } else { 1 };
    let factor = &factor;
    let results: Vec<Result<Vec<f64>>> = sol
        .voltages
        .par_chunks_mut(n * chunk)
        .zip(sol.iterations.par_chunks_mut(chunk))
        .zip(sol.kcl_residual.par_chunks_mut(chunk))
        .enumerate()
        .map(|(ci, ((vblock, its), kcls))| {
            let m = its.len();
            let mut r = vec![0.0; n];
            let mut tol = vec![0.0; n];
            let mut rhs = vec![0.0; nf * m];
            let (mut e1, mut e2) = (vec![], vec![]);
            let mut done = vec![false; m];
            let mut prev = vec![f64::INFINITY; m];
            let mut src = vec![0.0; m * nv];
            for round in 0..4 {
                for j in 0..m {
                    let v = &vblock[j * n..(j + 1) * n];
                    let sample_inj = &inj[(ci * chunk + j) * k..(ci * chunk + j + 1) * k];
                    p.residual(v, &[], None, sample_inj, opts.rtol, &mut r, &mut tol, &mut e1, &mut e2);
                    let (res, excess) = residual_excess(c, &r, &tol);
                    kcls[j] = res;
                    done[j] = excess <= 1.0 || (round > 0 && res >= 0.5 * prev[j]);
                    prev[j] = res;
                    for (f, &x) in c.node_of_free.iter().enumerate() {
                        rhs[j * nf + f] = if done[j] { 0.0 } else { -r[x as usize] };
                    }
                }
                if done.iter().all(|&x| x) {
                    break;
                }
                if m == 1 {
                    factor.solve_one(&mut rhs, one_threads);
                } else {
                    factor.solve_block(&mut rhs, m, solve_par);
                }
                for j in 0..m {
                    if done[j] {
                        continue;
                    }
                    its[j] += 1;
                    let v = &mut vblock[j * n..(j + 1) * n];
                    for (f, &x) in c.node_of_free.iter().enumerate() {
                        v[x as usize] += rhs[j * nf + f];
                    }
                }
            }
            for j in 0..m {
                let v = &vblock[j * n..(j + 1) * n];
                let sample_inj = &inj[(ci * chunk + j) * k..(ci * chunk + j + 1) * k];
                // Accept the rounding floor; reject only a residual far above the
                // tolerance (4 refinement rounds did not reach it: ill-conditioning).
                let (imax, _) = p.residual(v, &[], None, sample_inj, 1e-10, &mut r, &mut tol, &mut e1, &mut e2);
                let (res, excess) = residual_excess(c, &r, &tol);
                kcls[j] = res;
                if excess > 1.0 {
                    return Err(Error::Convergence {
                        iterations: its[j] as usize,
                        residual: res,
                        detail: format!(
                            "linear solve of sample {}: KCL residual {:.3e} of the largest current {imax:.3e} (ill-conditioned conductances?)",
                            ci * chunk + j,
                            res / imax
                        ),
                    });
                }
                source_currents_from_kcl(p.net, |x| r[x], &mut src[j * nv..(j + 1) * nv]);
            }
            Ok(src)
        })
        .collect();
    let mut s0 = 0;
    for block in results {
        let block = block?;
        sol.source_currents[s0..s0 + block.len()].copy_from_slice(&block);
        s0 += block.len();
    }
    Ok(())
}

fn solve_layered_batch(
    p: &Prepared,
    sol: &mut BatchSolution,
    inj: &[f64],
    opts: &SolveOptions,
) -> Result<()> {
    let (net, c) = (p.net, p.c);
    let (n, nd, nv, batch) = (
        net.n_nodes,
        net.dio_model.len(),
        net.vs_node.len(),
        sol.batch,
    );
    let parts = crate::layered::bipartition(net, c).map_err(Error::InvalidInput)?;
    // Node-major copy: a node's update reads whole rows of its neighbours.
    let mut vt = vec![0.0; n * batch];
    for s in 0..batch {
        for x in 0..n {
            vt[x * batch + s] = sol.voltages[s * n + x];
        }
    }
    let vscale = (0..batch)
        .map(|s| voltage_scale(p, &sol.voltages[s * n..(s + 1) * n]))
        .fold(1.0f64, f64::max);
    let (tol, max_sweeps) = match opts.sweeps {
        Some(k) => (0.0, k.max(1)),
        None => (opts.vtol * vscale, 1_000_000),
    };
    let done = crate::layered::sweep(
        net,
        c,
        &parts,
        &mut vt,
        batch,
        p.inj_nodes,
        inj,
        tol,
        max_sweeps,
    );
    let sweeps = match (done, opts.sweeps) {
        (Ok(k), _) => k,
        (Err(Error::Convergence { iterations, .. }), Some(_)) => iterations,
        (Err(e), _) => return Err(e),
    };
    for s in 0..batch {
        for x in 0..n {
            sol.voltages[s * n + x] = vt[x * batch + s];
        }
    }
    // Currents from one node-major pass over the branches; an ideal diode (with a
    // fixed end) carries the imbalance of its free end when it sits at its bound.
    let mut r = crate::layered::node_residuals(net, &vt, batch, p.inj_nodes, inj);
    let mut taken = vec![false; n * batch];
    for kk in 0..nd {
        if let Kind::Ideal { v_on } = p.kinds[kk] {
            let (a, b) = (net.dio_a[kk] as usize, net.dio_b[kk] as usize);
            let (x, sign) = if c.free_of_node[a] != NONE {
                (a, -1.0)
            } else {
                (b, 1.0)
            };
            if c.free_of_node[x] == NONE {
                continue;
            }
            for s in 0..batch {
                let h = vt[a * batch + s] - vt[b * batch + s] - v_on;
                let i = sign * r[x * batch + s];
                if h.abs() <= 1e-12 * vscale && i > 0.0 && !taken[x * batch + s] {
                    taken[x * batch + s] = true;
                    sol.diode_currents[s * nd + kk] = i;
                    r[a * batch + s] += i;
                    r[b * batch + s] -= i;
                }
            }
        }
    }
    for s in 0..batch {
        for kk in 0..nd {
            if !matches!(p.kinds[kk], Kind::Ideal { .. }) {
                let (a, b) = (net.dio_a[kk] as usize, net.dio_b[kk] as usize);
                let dv = sol.voltages[s * n + a] - sol.voltages[s * n + b];
                sol.diode_currents[s * nd + kk] = p.diode_law(kk, dv, 0.0, None).0;
            }
        }
        source_currents_from_kcl(
            net,
            |x| r[x * batch + s],
            &mut sol.source_currents[s * nv..(s + 1) * nv],
        );
        sol.kcl_residual[s] = c
            .node_of_free
            .iter()
            .map(|&x| r[x as usize * batch + s].abs())
            .fold(0.0, f64::max);
        sol.iterations[s] = sweeps as u32;
        sol.factorizations[s] = 0;
    }
    Ok(())
}

/// Branch currents of the resistors (a → b) for each sample's voltages.
pub fn resistor_currents(net: &Network, voltages: &[f64], batch: usize) -> Vec<f64> {
    let (n, nr) = (net.n_nodes, net.res_g.len());
    let mut out = vec![0.0; batch * nr];
    out.par_chunks_mut(nr.max(1))
        .zip(voltages.par_chunks(n.max(1)))
        .for_each(|(o, v)| {
            for k in 0..nr {
                o[k] = net.res_g[k] * (v[net.res_a[k] as usize] - v[net.res_b[k] as usize]);
            }
        });
    out
}

#[cfg(test)]
#[path = "tests/solve_tests.rs"]
mod tests;
