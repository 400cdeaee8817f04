//! Modified nodal analysis (MNA) for networks with ideal transformers and gyrators.
//!
//! Gyrators are lossless but not reciprocal: a network holding one is still
//! strongly monotone (its equilibrium is unique) but is no longer the minimiser
//! of an energy, so the Cholesky path of [`crate::solve`] does not apply. This
//! module solves such networks (and, for simplicity, every network holding a
//! transformer) with a nonsymmetric sparse LU (faer; COLAMD ordering, partial
//! pivoting). The symbolic analysis depends only on the topology and is cached on
//! the network; each Newton / active-set step costs one numeric refactorization,
//! skipped when the matrix values did not change.
//!
//! # Unknowns and conventions
//!
//! * the voltage of every free node;
//! * one current `j` per ideal transformer: the current flowing *into* the +
//!   terminal p2 of port 2 from the circuit (and out of n2). The transformer law is
//!   v2 = a v1 and i1 = −a i2 (i = current into each port's + terminal), so that
//!   v1 i1 + v2 i2 = 0. [`crate::BatchSolution::transformer_currents`] reports
//!   i1 = −a j, the current into p1;
//! * one current `μ` (anode → cathode) per ideal or ReLU diode. Both are
//!   complementarity constraints: μ ≥ 0, w = v_on − Δv + μ / g_on ≥ 0, μ w = 0
//!   (1 / g_on = 0 for an ideal diode).
//!
//! Gyrators stamp the nonsymmetric conductances i1 = g v2, i2 = −g v1 (currents
//! into the + terminals). Shockley junctions are smooth terms of the KCL rows.
//!
//! # Method
//!
//! The complementarity rows are written with an NCP function φ(μ, c w) (c the
//! conductance around the diode, so every row is in amperes) and the whole system
//! is solved by (semismooth) Newton:
//!
//! 1. φ = min (the primal-dual active-set method): for piecewise-linear networks it
//!    terminates in a few steps with exact complementarity. Active sets are
//!    remembered; a repeated active set without progress (cycling, possible when
//!    the Schur complement is not an M-matrix) switches to 2.
//! 2. φ = Fischer–Burmeister, with an Armijo line search on ½‖F‖²: globally
//!    convergent for monotone complementarity problems. At convergence the active
//!    set is read off and polished by step 1 again, which makes complementarity
//!    exact (inactive diodes carry exactly zero current).
//!
//! Steps are damped by an Armijo search on ½‖W F‖², W the inverse of each row's
//! tolerance (rows of very different current scales count by how far each is
//! from converged); Shockley junctions limit their forward step as SPICE's
//! `pnjlim` does. The Jacobian row of a conducting ideal diode carries a small
//! diagonal term, so that the row acts as a conductance 1e9 times the conductance
//! around the diode (junctions included): the residual is exact, so the solution
//! is too, but a degenerate set of conducting diodes (two antiparallel ideal
//! diodes, as `Network.linearize` writes a short) does not make the matrix
//! singular.
//!
//! Infeasibility: the sources' difference constraints on the ideal diodes are
//! checked first ([`crate::feasibility`], an `Infeasible` error as on the Cholesky
//! path). Constraints made infeasible only through transformers are not detected
//! up front: the iteration then fails with a `Convergence` error saying so.
//!
//! Known limit: a bare junction forced far into forward bias (so that it carries
//! astronomically large currents) through transformers can exhaust the Newton
//! iterations; a series resistance (SPICE's RS) avoids it.
//!
//! Floating nodes: transformers and gyrators do not connect their two sides
//! galvanically. For the floating-node check each port joins its own two
//! terminals (the port fixes their difference), never one side to the other: a
//! secondary loop with no other path to ground or a source has an undefined
//! common mode and is reported as floating; a port with a grounded terminal
//! anchors the other. (A configuration that passes this check and is still
//! singular, e.g. a zero-conductance gyrator as a node's only connection, is
//! reported by the LU as a singular matrix.)

use crate::adjoint::AdjointSolution;
use crate::compile::Compiled;
use crate::error::{Error, Result};
use crate::factor::Parallelism;
use crate::network::{thermal_voltage, DiodeModel, Network, NONE};
use crate::solve::{BatchSolution, Method, SolveOptions, Warm};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::sparse::linalg::lu::{factorize_symbolic_lu, LuRef, NumericLu, SymbolicLu};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, MatMut, Par};
use rayon::prelude::*;
use std::collections::HashSet;

/// Regularization of the Jacobian rows of conducting ideal diodes (relative).
const REG: f64 = 1e-9;

/// The per-topology MNA analysis: unknown numbering, sparsity pattern with the
/// slots of every element, and the symbolic LU factorization.
#[derive(Debug)]
pub struct MnaCompiled {
    /// Number of free node voltages (the first unknowns).
    pub n_free: usize,
    /// Number of transformer currents (the next unknowns).
    pub n_tr: usize,
    /// Complementarity index of each diode (ideal and ReLU), `NONE` for junctions.
    pub comp_of_diode: Vec<u32>,
    /// Diode of each complementarity unknown (the last unknowns).
    pub diode_of_comp: Vec<u32>,
    /// Number of unknowns.
    pub dim: usize,
    col_ptr: Vec<u32>,
    row_idx: Vec<u32>,
    /// Resistors and junctions: (a,a), (b,b), (a,b), (b,a).
    res_slots: Vec<[u32; 4]>,
    dio_slots: Vec<[u32; 4]>,
    /// Complementarity diodes: (a,μ), (b,μ), (μ,a), (μ,b), (μ,μ).
    comp_slots: Vec<[u32; 5]>,
    /// Transformers: (p1,j), (n1,j), (p2,j), (n2,j), (j,p1), (j,n1), (j,p2), (j,n2).
    tr_slots: Vec<[u32; 8]>,
    /// Gyrators: rows p1, n1 × cols p2, n2, then rows p2, n2 × cols p1, n1.
    gy_slots: Vec<[u32; 8]>,
    symbolic: Option<SymbolicLu<u32>>,
}

impl MnaCompiled {
    /// Builds the pattern for `net`; `c` gives the free nodes (and has checked
    /// that none floats).
    pub fn new(net: &Network, c: &Compiled) -> Result<Self> {
        let n_free = c.n_free;
        let n_tr = net.tr_ratio.len();
        let mut comp_of_diode = vec![NONE; net.dio_model.len()];
        let mut diode_of_comp = Vec::new();
        for (k, m) in net.dio_model.iter().enumerate() {
            if !matches!(m, DiodeModel::Shockley { .. }) {
                comp_of_diode[k] = diode_of_comp.len() as u32;
                diode_of_comp.push(k as u32);
            }
        }
        let dim = n_free + n_tr + diode_of_comp.len();
        if dim >= NONE as usize {
            return Err(Error::InvalidInput(
                "network too large for 32-bit indices".into(),
            ));
        }
        let f = |x: u32| c.free_of_node[x as usize];
        let mut ent: Vec<(u32, u32)> = (0..dim as u32).map(|i| (i, i)).collect(); // (col, row)
        let mut push = |r: u32, col: u32| {
            if r != NONE && col != NONE {
                ent.push((col, r));
            }
        };
        let branch = |push: &mut dyn FnMut(u32, u32), a: u32, b: u32| {
            let (fa, fb) = (f(a), f(b));
            push(fa, fa);
            push(fb, fb);
            push(fa, fb);
            push(fb, fa);
        };
        for (&a, &b) in net.res_a.iter().zip(&net.res_b) {
            branch(&mut push, a, b);
        }
        for (k, (&a, &b)) in net.dio_a.iter().zip(&net.dio_b).enumerate() {
            if comp_of_diode[k] == NONE {
                branch(&mut push, a, b);
            } else {
                let m = (n_free + n_tr) as u32 + comp_of_diode[k];
                for x in [f(a), f(b)] {
                    push(x, m);
                    push(m, x);
                }
            }
        }
        for (t, q) in net.tr_nodes.iter().enumerate() {
            let j = (n_free + t) as u32;
            for &x in q {
                push(f(x), j);
                push(j, f(x));
            }
        }
        for q in &net.gy_nodes {
            for &r in &q[0..2] {
                for &col in &q[2..4] {
                    push(f(r), f(col));
                    push(f(col), f(r));
                }
            }
        }
        ent.sort_unstable();
        ent.dedup();
        let mut col_ptr = vec![0u32; dim + 1];
        for &(col, _) in &ent {
            col_ptr[col as usize + 1] += 1;
        }
        for i in 0..dim {
            col_ptr[i + 1] += col_ptr[i];
        }
        let row_idx: Vec<u32> = ent.iter().map(|&(_, r)| r).collect();
        let slot = |r: u32, col: u32| -> u32 {
            if r == NONE || col == NONE {
                return NONE;
            }
            let (s, e) = (
                col_ptr[col as usize] as usize,
                col_ptr[col as usize + 1] as usize,
            );
            let pos = row_idx[s..e]
                .binary_search(&r)
                .expect("the pattern holds every stamp");
            (s + pos) as u32
        };
        let bslots = |a: u32, b: u32| {
            let (fa, fb) = (f(a), f(b));
            [slot(fa, fa), slot(fb, fb), slot(fa, fb), slot(fb, fa)]
        };
        let res_slots = net
            .res_a
            .iter()
            .zip(&net.res_b)
            .map(|(&a, &b)| bslots(a, b))
            .collect();
        let mut dio_slots = vec![[NONE; 4]; net.dio_model.len()];
        let mut comp_slots = vec![[NONE; 5]; diode_of_comp.len()];
        for (k, (&a, &b)) in net.dio_a.iter().zip(&net.dio_b).enumerate() {
            if comp_of_diode[k] == NONE {
                dio_slots[k] = bslots(a, b);
            } else {
                let m = (n_free + n_tr) as u32 + comp_of_diode[k];
                comp_slots[comp_of_diode[k] as usize] = [
                    slot(f(a), m),
                    slot(f(b), m),
                    slot(m, f(a)),
                    slot(m, f(b)),
                    slot(m, m),
                ];
            }
        }
        let tr_slots = net
            .tr_nodes
            .iter()
            .enumerate()
            .map(|(t, q)| {
                let j = (n_free + t) as u32;
                [
                    slot(f(q[0]), j),
                    slot(f(q[1]), j),
                    slot(f(q[2]), j),
                    slot(f(q[3]), j),
                    slot(j, f(q[0])),
                    slot(j, f(q[1])),
                    slot(j, f(q[2])),
                    slot(j, f(q[3])),
                ]
            })
            .collect();
        let gy_slots = net
            .gy_nodes
            .iter()
            .map(|q| {
                let [p1, n1, p2, n2] = q.map(f);
                [
                    slot(p1, p2),
                    slot(p1, n2),
                    slot(n1, p2),
                    slot(n1, n2),
                    slot(p2, p1),
                    slot(p2, n1),
                    slot(n2, p1),
                    slot(n2, n1),
                ]
            })
            .collect();
        let symbolic = if dim == 0 {
            None
        } else {
            let pattern = SymbolicSparseColMatRef::new_checked(dim, dim, &col_ptr, None, &row_idx);
            Some(
                factorize_symbolic_lu(pattern, Default::default())
                    .map_err(|e| Error::Numerical(format!("symbolic LU failed: {e:?}")))?,
            )
        };
        Ok(MnaCompiled {
            n_free,
            n_tr,
            comp_of_diode,
            diode_of_comp,
            dim,
            col_ptr,
            row_idx,
            res_slots,
            dio_slots,
            comp_slots,
            tr_slots,
            gy_slots,
            symbolic,
        })
    }

    /// Number of stored entries of the MNA matrix.
    pub fn nnz(&self) -> usize {
        self.row_idx.len()
    }
}

#[inline]
fn add(values: &mut [f64], s: u32, x: f64) {
    if s != NONE {
        values[s as usize] += x;
    }
}

/// A numeric LU factorization with its scratch.
struct Lu<'a> {
    m: &'a MnaCompiled,
    symbolic: &'a SymbolicLu<u32>,
    numeric: NumericLu<u32, f64>,
    mem: MemBuffer,
    par: Par,
    /// Values of the last factorization (refactorise only on change).
    last: Vec<f64>,
    valid: bool,
}

impl<'a> Lu<'a> {
    fn new(m: &'a MnaCompiled, par: Parallelism) -> Self {
        let symbolic = m.symbolic.as_ref().expect("an LU needs unknowns");
        let par = par.faer();
        let req = symbolic
            .factorize_numeric_lu_scratch::<f64>(par, Default::default())
            .or(symbolic.solve_in_place_scratch::<f64>(1, par))
            .or(symbolic.solve_transpose_in_place_scratch::<f64>(1, par));
        Lu {
            m,
            symbolic,
            numeric: NumericLu::new(),
            mem: MemBuffer::new(req),
            par,
            last: vec![],
            valid: false,
        }
    }

    /// Factorises the matrix with these values; returns whether it refactorised.
    fn factorize(&mut self, values: &[f64]) -> Result<bool> {
        if self.valid && self.last == values {
            return Ok(false);
        }
        let d = self.m.dim;
        let pattern =
            SymbolicSparseColMatRef::new_checked(d, d, &self.m.col_ptr, None, &self.m.row_idx);
        let a = SparseColMatRef::new(pattern, values);
        self.valid = false;
        self.symbolic
            .factorize_numeric_lu(
                &mut self.numeric,
                a,
                self.par,
                MemStack::new(&mut self.mem),
                Default::default(),
            )
            .map_err(|e| Error::Numerical(format!("sparse LU failed ({e:?})")))?;
        self.last.clear();
        self.last.extend_from_slice(values);
        self.valid = true;
        Ok(true)
    }

    fn solve(&mut self, rhs: &mut [f64], transpose: bool) {
        let lu = LuRef::<'_, u32, f64>::new_unchecked(self.symbolic, &self.numeric);
        let n = rhs.len();
        let mat = MatMut::from_column_major_slice_mut(rhs, n, 1);
        if transpose {
            lu.solve_transpose_in_place_with_conj(
                Conj::No,
                mat,
                self.par,
                MemStack::new(&mut self.mem),
            );
        } else {
            lu.solve_in_place_with_conj(Conj::No, mat, self.par, MemStack::new(&mut self.mem));
        }
    }
}

/// Complementarity functions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ncp {
    Min,
    FischerBurmeister,
}

/// φ(a, b) and its (generalized) partial derivatives.
#[inline]
fn ncp(kind: Ncp, a: f64, b: f64) -> (f64, f64, f64) {
    match kind {
        Ncp::Min => {
            if a <= b {
                (a, 1.0, 0.0)
            } else {
                (b, 0.0, 1.0)
            }
        }
        Ncp::FischerBurmeister => {
            let r = a.hypot(b);
            if r == 0.0 {
                let s = 1.0 - std::f64::consts::FRAC_1_SQRT_2;
                (0.0, s, s)
            } else {
                (a + b - r, 1.0 - a / r, 1.0 - b / r)
            }
        }
    }
}

/// Everything shared by the samples of a batch.
struct Prep<'a> {
    net: &'a Network,
    c: &'a Compiled,
    m: &'a MnaCompiled,
    /// Constant matrix values: resistors, gyrators, transformers.
    base: Vec<f64>,
    /// Row scale of each transformer constraint and complementarity row (siemens).
    s_tr: Vec<f64>,
    c_comp: Vec<f64>,
    /// 1 / g_on of each complementarity diode (0: ideal), and its threshold.
    inv_gon: Vec<f64>,
    v_on: Vec<f64>,
    /// Ideal diodes with both ends clamped: only a feasibility check.
    pinned: Vec<bool>,
    /// n V_T and critical voltage of each junction (0 for the others).
    nvt: Vec<f64>,
    v_crit: Vec<f64>,
    n_shockley: usize,
    n_ideal: usize,
    inj_nodes: &'a [u32],
}

impl<'a> Prep<'a> {
    fn new(net: &'a Network, c: &'a Compiled, m: &'a MnaCompiled, inj_nodes: &'a [u32]) -> Self {
        let n = net.n_nodes;
        let mut base = vec![0.0; m.nnz()];
        let mut diag = vec![0.0; n];
        for (k, s) in m.res_slots.iter().enumerate() {
            let g = net.res_g[k];
            add(&mut base, s[0], g);
            add(&mut base, s[1], g);
            add(&mut base, s[2], -g);
            add(&mut base, s[3], -g);
            diag[net.res_a[k] as usize] += g;
            diag[net.res_b[k] as usize] += g;
        }
        for (k, s) in m.gy_slots.iter().enumerate() {
            let g = net.gy_g[k];
            // Rows p1, n1: i1 = g v2 leaves p1 and enters n1.
            add(&mut base, s[0], g);
            add(&mut base, s[1], -g);
            add(&mut base, s[2], -g);
            add(&mut base, s[3], g);
            // Rows p2, n2: i2 = −g v1.
            add(&mut base, s[4], -g);
            add(&mut base, s[5], g);
            add(&mut base, s[6], g);
            add(&mut base, s[7], -g);
            for &x in &net.gy_nodes[k] {
                diag[x as usize] += g.abs();
            }
        }
        let free = |x: u32| c.free_of_node[x as usize] != NONE;
        let mean = {
            let (s, k) = (0..n)
                .filter(|&x| free(x as u32) && diag[x] > 0.0)
                .fold((0.0, 0usize), |(s, k), x| (s + diag[x], k + 1));
            if k > 0 {
                s / k as f64
            } else {
                1.0
            }
        };
        let local = |nodes: &[u32]| {
            let g = nodes
                .iter()
                .filter(|&&x| free(x))
                .fold(0.0f64, |a, &x| a.max(diag[x as usize]));
            if g > 0.0 {
                g
            } else {
                mean
            }
        };
        let s_tr: Vec<f64> = net.tr_nodes.iter().map(|q| local(q)).collect();
        for (t, s) in m.tr_slots.iter().enumerate() {
            let a = net.tr_ratio[t];
            // KCL: j enters the circuit... leaves p2 (into the port), −a j leaves p1.
            add(&mut base, s[0], -a);
            add(&mut base, s[1], a);
            add(&mut base, s[2], 1.0);
            add(&mut base, s[3], -1.0);
            let st = s_tr[t];
            add(&mut base, s[4], -a * st);
            add(&mut base, s[5], a * st);
            add(&mut base, s[6], st);
            add(&mut base, s[7], -st);
        }
        let nc = m.diode_of_comp.len();
        let mut c_comp = vec![0.0; nc];
        let mut inv_gon = vec![0.0; nc];
        let mut v_on = vec![0.0; nc];
        let mut pinned = vec![false; nc];
        let mut n_ideal = 0;
        for (q, &k) in m.diode_of_comp.iter().enumerate() {
            let k = k as usize;
            let (a, b) = (net.dio_a[k], net.dio_b[k]);
            c_comp[q] = local(&[a, b]);
            match net.dio_model[k] {
                DiodeModel::Ideal { v_on: x } => {
                    v_on[q] = x;
                    n_ideal += 1;
                    pinned[q] = !free(a) && !free(b);
                }
                DiodeModel::Relu { g_on, v_on: x } => {
                    v_on[q] = x;
                    inv_gon[q] = 1.0 / g_on;
                }
                DiodeModel::Shockley { .. } => unreachable!(),
            }
        }
        let nd = net.dio_model.len();
        let (mut nvt, mut v_crit) = (vec![0.0; nd], vec![0.0; nd]);
        let mut n_shockley = 0;
        for (k, md) in net.dio_model.iter().enumerate() {
            if let DiodeModel::Shockley {
                i_s,
                n,
                temperature,
                ..
            } = *md
            {
                n_shockley += 1;
                nvt[k] = n * thermal_voltage(temperature);
                v_crit[k] = nvt[k] * (nvt[k] / (std::f64::consts::SQRT_2 * i_s)).ln();
            }
        }
        Prep {
            net,
            c,
            m,
            base,
            s_tr,
            c_comp,
            inv_gon,
            v_on,
            pinned,
            nvt,
            v_crit,
            n_shockley,
            n_ideal,
            inj_nodes,
        }
    }

    fn voltage_scale(&self, v: &[f64]) -> f64 {
        let mut s = 1.0f64;
        for &node in &self.net.vs_node {
            s = s.max(v[node as usize].abs());
        }
        for &x in &self.v_on {
            s = s.max(x.abs());
        }
        s
    }
}

/// The state of one sample: node voltages (clamped entries fixed), transformer
/// currents j, complementarity currents μ.
#[derive(Clone)]
struct State {
    v: Vec<f64>,
    j: Vec<f64>,
    mu: Vec<f64>,
}

/// Residuals of one sample.
struct Eval {
    /// KCL residual at every node (currents leaving minus injected).
    r: Vec<f64>,
    /// Per-node tolerance.
    tol: Vec<f64>,
    /// Residual of every unknown's row.
    f: Vec<f64>,
    /// Tolerance of every row.
    ftol: Vec<f64>,
    /// ∂φ/∂μ and ∂φ/∂(c w) of each complementarity row.
    dphi: Vec<(f64, f64)>,
    /// Differential conductance of each junction.
    gd: Vec<f64>,
    /// Whether every complementarity condition holds (set by `eval`).
    comp_ok: bool,
}

impl Eval {
    fn new(p: &Prep) -> Self {
        let n = p.net.n_nodes;
        Eval {
            r: vec![0.0; n],
            tol: vec![0.0; n],
            f: vec![0.0; p.m.dim],
            ftol: vec![0.0; p.m.dim],
            dphi: vec![(0.0, 0.0); p.m.diode_of_comp.len()],
            gd: vec![0.0; p.net.dio_model.len()],
            comp_ok: true,
        }
    }
}

impl Prep<'_> {
    /// Evaluates every row at `st`; returns ½‖F‖² and whether every row is within
    /// its tolerance.
    fn eval(
        &self,
        st: &State,
        inj: &[f64],
        kind: Ncp,
        opts: &SolveOptions,
        vtol: f64,
        e: &mut Eval,
    ) -> (f64, bool) {
        let net = self.net;
        let v = &st.v;
        let (r, tol) = (&mut e.r, &mut e.tol);
        r.iter_mut().for_each(|x| *x = 0.0);
        tol.iter_mut().for_each(|x| *x = 0.0);
        let fl = 64.0 * f64::EPSILON;
        let vref = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let rtol = opts.rtol;
        let bump = |tol: &mut [f64], a: usize, b: usize, i: f64, g: f64| {
            let t = rtol * i.abs() + fl * g * vref;
            tol[a] = tol[a].max(t);
            tol[b] = tol[b].max(t);
        };
        for k in 0..net.res_g.len() {
            let (a, b) = (net.res_a[k] as usize, net.res_b[k] as usize);
            let i = net.res_g[k] * (v[a] - v[b]);
            r[a] += i;
            r[b] -= i;
            bump(tol, a, b, i, net.res_g[k]);
        }
        for k in 0..net.dio_model.len() {
            let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
            let q = self.m.comp_of_diode[k];
            let (i, g) = if q == NONE {
                net.dio_model[k].law(v[a] - v[b])
            } else {
                (st.mu[q as usize], self.c_comp[q as usize])
            };
            e.gd[k] = if q == NONE { g } else { 0.0 };
            r[a] += i;
            r[b] -= i;
            bump(tol, a, b, i, g);
        }
        for k in 0..net.is_value.len() {
            let (a, b) = (net.is_a[k] as usize, net.is_b[k] as usize);
            let i = net.is_value[k];
            r[a] += i;
            r[b] -= i;
            bump(tol, a, b, i, 0.0);
        }
        for (&node, &i) in self.inj_nodes.iter().zip(inj) {
            let x = node as usize;
            r[x] -= i;
            bump(tol, x, x, i, 0.0);
        }
        for (t, q) in net.tr_nodes.iter().enumerate() {
            let [p1, n1, p2, n2] = q.map(|x| x as usize);
            let (a, j) = (net.tr_ratio[t], st.j[t]);
            r[p2] += j;
            r[n2] -= j;
            r[p1] -= a * j;
            r[n1] += a * j;
            bump(tol, p2, n2, j, self.s_tr[t]);
            bump(tol, p1, n1, a * j, self.s_tr[t] * a.abs());
        }
        for (k, q) in net.gy_nodes.iter().enumerate() {
            let [p1, n1, p2, n2] = q.map(|x| x as usize);
            let g = net.gy_g[k];
            let i1 = g * (v[p2] - v[n2]);
            let i2 = -g * (v[p1] - v[n1]);
            r[p1] += i1;
            r[n1] -= i1;
            r[p2] += i2;
            r[n2] -= i2;
            bump(tol, p1, n1, i1, g.abs());
            bump(tol, p2, n2, i2, g.abs());
        }
        let mut ok = true;
        let mut comp_ok = true;
        let mut psi = 0.0;
        let m = self.m;
        for (fi, &node) in self.c.node_of_free.iter().enumerate() {
            let x = node as usize;
            e.f[fi] = r[x];
            e.ftol[fi] = tol[x].max(f64::MIN_POSITIVE);
            psi += r[x] * r[x];
            if r[x].abs() > e.ftol[fi] || r[x].is_nan() {
                ok = false;
            }
        }
        for (t, q) in net.tr_nodes.iter().enumerate() {
            let [p1, n1, p2, n2] = q.map(|x| v[x as usize]);
            let a = net.tr_ratio[t];
            let h = (p2 - n2) - a * (p1 - n1);
            let row = m.n_free + t;
            let s = self.s_tr[t];
            e.f[row] = s * h;
            e.ftol[row] = s * (vtol + fl * ((p2 - n2).abs() + (a * (p1 - n1)).abs()));
            psi += e.f[row] * e.f[row];
            if e.f[row].abs() > e.ftol[row] || e.f[row].is_nan() {
                ok = false;
            }
        }
        for (q, &k) in m.diode_of_comp.iter().enumerate() {
            let k = k as usize;
            let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
            let row = m.n_free + m.n_tr + q;
            let mu = st.mu[q];
            let c = self.c_comp[q];
            let y = c * (self.v_on[q] - (v[a] - v[b]) + mu * self.inv_gon[q]);
            // Amperes for the current, volts for the voltage condition (a huge
            // current elsewhere must not excuse a diode beyond its threshold).
            let t = tol[a].max(tol[b]).max(f64::MIN_POSITIVE);
            let wv = y / c;
            let tv = vtol + fl * vref;
            e.ftol[row] = t.max(c * tv);
            let on_ok = mu >= -t && wv.abs() <= tv;
            let off_ok = mu.abs() <= t && wv >= -tv;
            if !(on_ok || off_ok) {
                ok = false;
                comp_ok = false;
            }
            let (phi, da, db) = if self.pinned[q] {
                (mu, 1.0, 0.0)
            } else {
                ncp(kind, mu, y)
            };
            e.f[row] = phi;
            e.dphi[q] = (da, db);
            psi += phi * phi;
        }
        e.comp_ok = comp_ok;
        (0.5 * psi, ok)
    }

    /// Jacobian values at the state evaluated in `e`.
    fn jacobian(&self, e: &Eval, values: &mut [f64], regularize: bool, jg: &mut [f64]) {
        values.copy_from_slice(&self.base);
        let m = self.m;
        let net = self.net;
        jg.iter_mut().for_each(|x| *x = 0.0);
        for (k, s) in m.dio_slots.iter().enumerate() {
            let g = e.gd[k];
            if m.comp_of_diode[k] == NONE && g != 0.0 {
                add(values, s[0], g);
                add(values, s[1], g);
                add(values, s[2], -g);
                add(values, s[3], -g);
                jg[net.dio_a[k] as usize] += g;
                jg[net.dio_b[k] as usize] += g;
            }
        }
        let free = |x: u32| self.c.free_of_node[x as usize] != NONE;
        for (q, s) in m.comp_slots.iter().enumerate() {
            // KCL columns: μ leaves the anode, enters the cathode.
            add(values, s[0], 1.0);
            add(values, s[1], -1.0);
            let (da, db) = e.dphi[q];
            let c = self.c_comp[q];
            // y = c (v_on − v_a + v_b + μ / g_on).
            add(values, s[2], -db * c);
            add(values, s[3], db * c);
            // The regularized row acts as a conductance c / reg: keep it REG⁻¹
            // times the conductance around the diode, junctions included.
            let reg = if regularize && self.inv_gon[q] == 0.0 {
                let k = m.diode_of_comp[q];
                let (a, b) = (net.dio_a[k as usize], net.dio_b[k as usize]);
                let j = |x: u32| if free(x) { jg[x as usize] } else { 0.0 };
                REG * c / (c + j(a).max(j(b)))
            } else {
                0.0
            };
            add(values, s[4], da + db * (c * self.inv_gon[q] + reg));
        }
    }

    /// Largest step ≤ 1 keeping forward-biased junctions within the step limit.
    fn step_cap(&self, v: &[f64], d: &[f64], step_limit: f64) -> f64 {
        if self.n_shockley == 0 {
            return 1.0;
        }
        let net = self.net;
        let mut alpha = 1.0f64;
        for k in 0..net.dio_model.len() {
            if self.nvt[k] > 0.0 {
                let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
                let dd = d[a] - d[b];
                if dd > 0.0 {
                    let room = (self.v_crit[k] - (v[a] - v[b])).max(0.0) + step_limit * self.nvt[k];
                    if dd > room {
                        alpha = alpha.min(room / dd);
                    }
                }
            }
        }
        alpha
    }

    /// Newton direction in node / current form from the solved vector `x`.
    fn apply(&self, st: &State, x: &[f64], alpha: f64, out: &mut State) {
        out.v.copy_from_slice(&st.v);
        for (fi, &node) in self.c.node_of_free.iter().enumerate() {
            out.v[node as usize] += alpha * x[fi];
        }
        let m = self.m;
        for t in 0..m.n_tr {
            out.j[t] = st.j[t] + alpha * x[m.n_free + t];
        }
        for q in 0..m.diode_of_comp.len() {
            out.mu[q] = st.mu[q] + alpha * x[m.n_free + m.n_tr + q];
        }
    }
}

fn res_max(f: &[f64]) -> f64 {
    f.iter().fold(0.0f64, |a, x| a.max(x.abs()))
}

/// ½ Σ (w_i f_i)².
fn merit(f: &[f64], w: &[f64]) -> f64 {
    0.5 * f.iter().zip(w).map(|(x, y)| (x * y) * (x * y)).sum::<f64>()
}

struct Work<'a> {
    lu: Option<Lu<'a>>,
    wts: Vec<f64>,
    values: Vec<f64>,
    x: Vec<f64>,
    dnode: Vec<f64>,
    e: Eval,
    e2: Eval,
    trial: State,
}

struct Stats {
    iterations: u32,
    factorizations: u32,
}

/// Solves one sample in place (`st` holds the start and receives the solution).
fn solve_sample(
    p: &Prep,
    st: &mut State,
    inj: &[f64],
    w: &mut Work,
    opts: &SolveOptions,
) -> Result<Stats> {
    let net = p.net;
    let m = p.m;
    let vscale = p.voltage_scale(&st.v);
    let vtol = opts.vtol * vscale;
    if p.n_ideal > 0 {
        crate::feasibility::check(net, &st.v, vtol)?;
    }
    for q in 0..m.diode_of_comp.len() {
        if p.pinned[q] {
            st.mu[q] = 0.0;
        }
    }
    let mut stats = Stats {
        iterations: 0,
        factorizations: 0,
    };
    if m.dim == 0 {
        return Ok(stats);
    }
    let mut kind = Ncp::Min;
    let mut seen: HashSet<Vec<bool>> = HashSet::new();
    let mut best_psi = f64::INFINITY;
    let mut fb_point: Option<State> = None;
    let mut polish_left = 0usize;
    let mut stall = 0usize;
    loop {
        let (_, ok) = p.eval(st, inj, kind, opts, vtol, &mut w.e);
        // Merit ½‖W F‖² with W = 1 / (each row's tolerance): rows in amperes of very
        // different scales (a junction carrying kiloamperes next to a diode
        // constraint held to 1e-13 V) count by how far each is from converged.
        let tmax = w.e.ftol.iter().fold(0.0f64, |a, &t| a.max(t));
        for (wi, &t) in w.wts.iter_mut().zip(&w.e.ftol) {
            *wi = 1.0 / t.max(1e-12 * tmax).max(f64::MIN_POSITIVE);
        }
        let psi = merit(&w.e.f, &w.wts);
        if ok {
            if kind == Ncp::FischerBurmeister
                && fb_point.is_none()
                && m.diode_of_comp.len() > p.pinned.iter().filter(|&&x| x).count()
            {
                // Polish: the min function from here identifies the active set
                // and makes complementarity exact.
                fb_point = Some(st.clone());
                kind = Ncp::Min;
                polish_left = 3;
                continue;
            }
            break;
        }
        if fb_point.is_some() {
            if polish_left == 0 {
                // The polish did not meet the tolerances: keep the FB solution.
                *st = fb_point.take().expect("checked");
                break;
            }
            polish_left -= 1;
        }
        if stats.iterations as usize >= opts.max_iter {
            let worst =
                w.e.f
                    .iter()
                    .zip(&w.e.ftol)
                    .map(|(f, t)| f.abs() / t)
                    .fold(0.0f64, f64::max);
            let res = w.e.f.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            return Err(Error::Convergence {
                iterations: stats.iterations as usize,
                residual: res,
                detail: format!(
                    "MNA Newton iterations (worst row at {worst:.3e} × its tolerance{})",
                    if p.n_ideal > 0 {
                        "; infeasible ideal-diode constraints?"
                    } else {
                        ""
                    }
                ),
            });
        }
        stats.iterations += 1;
        p.jacobian(&w.e, &mut w.values, true, &mut w.dnode);
        let lu = w.lu.as_mut().expect("unknowns have an LU");
        if lu.factorize(&w.values)? {
            stats.factorizations += 1;
        }
        for (xi, fi) in w.x.iter_mut().zip(&w.e.f) {
            *xi = -fi;
        }
        lu.solve(&mut w.x, false);
        if w.x.iter().any(|x| !x.is_finite()) {
            return Err(Error::Numerical(
                "the MNA matrix is singular (conflicting transformer or source constraints, or transformers / gyrators without a conductance to act on)".into(),
            ));
        }
        w.dnode.iter_mut().for_each(|x| *x = 0.0);
        for (fi, &node) in p.c.node_of_free.iter().enumerate() {
            w.dnode[node as usize] = w.x[fi];
        }
        let cap = p.step_cap(&st.v, &w.dnode, opts.step_limit);
        if kind == Ncp::Min && p.n_shockley == 0 {
            // Piecewise linear: full active-set steps; a repeated active set
            // without progress is a cycle.
            let key: Vec<bool> = w.e.dphi.iter().map(|d| d.1 > 0.0).collect();
            if psi < best_psi {
                best_psi = psi;
                stall = 0;
            } else {
                stall += 1;
            }
            if (!seen.insert(key) && stall > 0) || stall > 10 {
                if fb_point.is_some() {
                    *st = fb_point.take().expect("checked");
                    break;
                }
                kind = Ncp::FischerBurmeister;
                continue;
            }
            p.apply(st, &w.x, 1.0, &mut w.trial);
            std::mem::swap(st, &mut w.trial);
            continue;
        }
        if cap < 1.0 {
            // A limited junction step is taken as it is (as SPICE does).
            p.apply(st, &w.x, cap, &mut w.trial);
            std::mem::swap(st, &mut w.trial);
            continue;
        }
        // Armijo backtracking on ½‖F‖².
        let mut alpha = 1.0;
        let mut accepted = false;
        while alpha > 1e-12 {
            p.apply(st, &w.x, alpha, &mut w.trial);
            let _ = p.eval(&w.trial, inj, kind, opts, vtol, &mut w.e2);
            let psi_t = merit(&w.e2.f, &w.wts);
            if psi_t.is_finite() && psi_t <= (1.0 - 1e-4 * alpha) * psi {
                accepted = true;
                break;
            }
            alpha *= 0.5;
        }
        if accepted {
            std::mem::swap(st, &mut w.trial);
            continue;
        }
        match kind {
            Ncp::Min if fb_point.is_none() => kind = Ncp::FischerBurmeister,
            _ => {
                if let Some(fbp) = fb_point.take() {
                    *st = fbp;
                    break;
                }
                // No descent at the rounding floor: accept if close to tolerance
                // (KCL and transformer rows) with every diode condition met.
                let rows = m.n_free + m.n_tr;
                let worst = w.e.f[..rows]
                    .iter()
                    .zip(&w.e.ftol[..rows])
                    .map(|(f, t)| f.abs() / t)
                    .fold(0.0f64, f64::max);
                if worst <= 1e3 && w.e.comp_ok {
                    break;
                }
                if !w.e.comp_ok && p.n_ideal > 0 {
                    return Err(Error::Convergence {
                        iterations: stats.iterations as usize,
                        residual: res_max(&w.e.f),
                        detail: "no operating point found: ideal diodes stay beyond their thresholds (do the sources and transformers force them there? the constraints are then infeasible)".into(),
                    });
                }
                return Err(Error::Convergence {
                    iterations: stats.iterations as usize,
                    residual: res_max(&w.e.f),
                    detail: format!(
                        "MNA Newton line search failed (worst row at {worst:.3e} × its tolerance)"
                    ),
                });
            }
        }
    }
    // Exact complementarity: diodes off by the min test carry no current.
    let _ = p.eval(st, inj, Ncp::Min, opts, vtol, &mut w.e);
    for q in 0..m.diode_of_comp.len() {
        let (da, _) = w.e.dphi[q];
        let k = m.diode_of_comp[q] as usize;
        let t = w.e.tol[net.dio_a[k] as usize].max(w.e.tol[net.dio_b[k] as usize]);
        if da > 0.0 && st.mu[q].abs() <= t {
            st.mu[q] = 0.0;
        }
    }
    Ok(stats)
}

/// Solves a batch of a network holding transformers or gyrators (see the module
/// documentation). Arguments as [`crate::solve_batch`], already validated.
pub(crate) fn solve_batch(
    net: &Network,
    inputs: &[f64],
    batch: usize,
    warm: Option<Warm>,
    inj_nodes: &[u32],
    inj_values: &[f64],
    opts: &SolveOptions,
) -> Result<BatchSolution> {
    if opts.method == Method::Layered {
        return Err(Error::InvalidInput(
            "method='layered' does not apply: the network has transformers or gyrators".into(),
        ));
    }
    let compiled = net.compiled()?;
    let c = &*compiled;
    let mna = net.mna_compiled()?;
    let m = &*mna;
    let p = Prep::new(net, c, m, inj_nodes);
    let (n, nd, nv, nt, ni) = (
        net.n_nodes,
        net.dio_model.len(),
        net.vs_node.len(),
        net.tr_ratio.len(),
        net.n_inputs,
    );
    let k = inj_nodes.len();
    let mut sol = BatchSolution {
        batch,
        voltages: vec![0.0; batch * n],
        diode_currents: vec![0.0; batch * nd],
        source_currents: vec![0.0; batch * nv],
        transformer_currents: vec![0.0; batch * nt],
        iterations: vec![0; batch],
        factorizations: vec![0; batch],
        low_rank_solves: vec![0; batch],
        kcl_residual: vec![0.0; batch],
    };
    if batch == 0 {
        return Ok(sol);
    }
    let inner = if batch == 1 {
        opts.par
    } else {
        Parallelism::Serial
    };
    let nc = m.diode_of_comp.len();
    struct Out {
        st: State,
        id: Vec<f64>,
        src: Vec<f64>,
        stats: Stats,
        kcl: f64,
    }
    let run = || -> Vec<Result<Out>> {
        (0..batch)
            .into_par_iter()
            .map_init(
                || Work {
                    lu: m.symbolic.as_ref().map(|_| Lu::new(m, inner)),
                    wts: vec![0.0; m.dim],
                    values: vec![0.0; m.nnz()],
                    x: vec![0.0; m.dim],
                    dnode: vec![0.0; n],
                    e: Eval::new(&p),
                    e2: Eval::new(&p),
                    trial: State {
                        v: vec![0.0; n],
                        j: vec![0.0; nt],
                        mu: vec![0.0; nc],
                    },
                },
                |w, s| {
                    let mut st = State {
                        v: vec![0.0; n],
                        j: vec![0.0; nt],
                        mu: vec![0.0; nc],
                    };
                    if let Some(wm) = warm {
                        st.v.copy_from_slice(&wm.voltages[s * n..(s + 1) * n]);
                        for (q, &kd) in m.diode_of_comp.iter().enumerate() {
                            st.mu[q] = wm.diode_currents[s * nd + kd as usize].max(0.0);
                        }
                    }
                    p.net.set_clamps(&mut st.v, &inputs[s * ni..(s + 1) * ni]);
                    let inj = &inj_values[s * k..(s + 1) * k];
                    let stats = solve_sample(&p, &mut st, inj, w, opts)
                        .map_err(|e| e.in_sample(s, batch))?;
                    let vscale = p.voltage_scale(&st.v);
                    let _ = p.eval(&st, inj, Ncp::Min, opts, opts.vtol * vscale, &mut w.e);
                    let mut id = vec![0.0; nd];
                    for (kd, idk) in id.iter_mut().enumerate() {
                        let q = m.comp_of_diode[kd];
                        *idk = if q == NONE {
                            let (a, b) = (net.dio_a[kd] as usize, net.dio_b[kd] as usize);
                            net.dio_model[kd].law(st.v[a] - st.v[b]).0
                        } else {
                            st.mu[q as usize]
                        };
                    }
                    let src: Vec<f64> = net.vs_node.iter().map(|&x| -w.e.r[x as usize]).collect();
                    let kcl = c
                        .node_of_free
                        .iter()
                        .map(|&x| w.e.r[x as usize].abs())
                        .fold(0.0, f64::max);
                    Ok(Out {
                        st,
                        id,
                        src,
                        stats,
                        kcl,
                    })
                },
            )
            .collect()
    };
    let outs = crate::factor::with_threads(opts.par, || Ok(run()))?;
    for (s, o) in outs.into_iter().enumerate() {
        let o = o?;
        sol.voltages[s * n..(s + 1) * n].copy_from_slice(&o.st.v);
        sol.diode_currents[s * nd..(s + 1) * nd].copy_from_slice(&o.id);
        sol.source_currents[s * nv..(s + 1) * nv].copy_from_slice(&o.src);
        for t in 0..nt {
            sol.transformer_currents[s * nt + t] = -net.tr_ratio[t] * o.st.j[t];
        }
        sol.iterations[s] = o.stats.iterations;
        sol.factorizations[s] = o.stats.factorizations;
        sol.kcl_residual[s] = o.kcl;
        if !o.kcl.is_finite()
            || o.st
                .v
                .iter()
                .chain(&o.st.j)
                .chain(&o.id)
                .any(|x| !x.is_finite())
        {
            return Err(Error::Convergence {
                iterations: o.stats.iterations as usize,
                residual: o.kcl,
                detail: format!("sample {s}: the solution is not finite (overflow?)"),
            });
        }
    }
    Ok(sol)
}

/// λ at the nodes, ν of the diodes, multipliers of the transformer constraints.
type AdjOut = (Vec<f64>, Vec<f64>, Vec<f64>);

/// The adjoint at each sample's operating point: solves Jᵀ λ = ∂C/∂v with J the
/// MNA Jacobian (conducting ideal diodes held as constraints, off ones open; ReLU
/// and Shockley diodes at their differential conductance; transformers as
/// constraints; gyrators transposed). Fills λ at the nodes, ν of the conducting
/// ideal diodes and the multiplier of each transformer constraint v2 − a v1 = 0.
pub(crate) fn adjoint_batch(
    net: &Network,
    sol: &BatchSolution,
    rhs: &[f64],
    opts: &SolveOptions,
    out: &mut AdjointSolution,
) -> Result<()> {
    let compiled = net.compiled()?;
    let c = &*compiled;
    let mna = net.mna_compiled()?;
    let m = &*mna;
    let p = Prep::new(net, c, m, &[]);
    let (n, nd, nt, batch) = (net.n_nodes, net.dio_model.len(), m.n_tr, sol.batch);
    if m.dim == 0 || batch == 0 {
        return Ok(());
    }
    let inner = if batch == 1 {
        opts.par
    } else {
        Parallelism::Serial
    };
    let nc = m.diode_of_comp.len();
    let run = || -> Vec<Result<AdjOut>> {
        (0..batch)
            .into_par_iter()
            .map_init(
                || (Lu::new(m, inner), vec![0.0; m.nnz()], Eval::new(&p)),
                |(lu, values, e), s| {
                    let mut jg = vec![0.0; n];
                    let v = &sol.voltages[s * n..(s + 1) * n];
                    let mu = &sol.diode_currents[s * nd..(s + 1) * nd];
                    // Jacobian at the operating point with the exact active set.
                    for k in 0..nd {
                        let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
                        e.gd[k] = if m.comp_of_diode[k] == NONE {
                            net.dio_model[k].law(v[a] - v[b]).1
                        } else {
                            0.0
                        };
                    }
                    for (q, &k) in m.diode_of_comp.iter().enumerate() {
                        let k = k as usize;
                        let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
                        let on = match net.dio_model[k] {
                            DiodeModel::Ideal { .. } => !p.pinned[q] && mu[k] > 0.0,
                            DiodeModel::Relu { v_on, .. } => v[a] - v[b] > v_on,
                            DiodeModel::Shockley { .. } => false,
                        };
                        e.dphi[q] = if on { (0.0, 1.0) } else { (1.0, 0.0) };
                    }
                    // No regularization in the adjoint.
                    p.jacobian(e, values, false, &mut jg);
                    lu.factorize(values)?;
                    let mut x = vec![0.0; m.dim];
                    let r = &rhs[s * n..(s + 1) * n];
                    for (fi, &node) in c.node_of_free.iter().enumerate() {
                        x[fi] = r[node as usize];
                    }
                    lu.solve(&mut x, true);
                    if x.iter().any(|y| !y.is_finite()) {
                        return Err(Error::Numerical(format!(
                            "sample {s}: the adjoint MNA system is singular (degenerate set of conducting ideal diodes?)"
                        )));
                    }
                    let mut lam = vec![0.0; n];
                    for (fi, &node) in c.node_of_free.iter().enumerate() {
                        lam[node as usize] = x[fi];
                    }
                    let mut nu = vec![0.0; nd];
                    for (q, &k) in m.diode_of_comp.iter().enumerate() {
                        if matches!(net.dio_model[k as usize], DiodeModel::Ideal { .. })
                            && e.dphi[q].1 > 0.0
                        {
                            // Row −c (Δv − v_on): the multiplier of Δv − v_on is −c λ.
                            nu[k as usize] = -p.c_comp[q] * x[m.n_free + m.n_tr + q];
                        }
                    }
                    let lt: Vec<f64> = (0..nt).map(|t| p.s_tr[t] * x[m.n_free + t]).collect();
                    let _ = nc;
                    Ok((lam, nu, lt))
                },
            )
            .collect()
    };
    let res = crate::factor::with_threads(opts.par, || Ok(run()))?;
    for (s, r) in res.into_iter().enumerate() {
        let (lam, nu, lt) = r?;
        out.lambda[s * n..(s + 1) * n].copy_from_slice(&lam);
        out.nu[s * nd..(s + 1) * nd].copy_from_slice(&nu);
        out.transformer_lambda[s * nt..(s + 1) * nt].copy_from_slice(&lt);
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests/mna_tests.rs"]
mod tests;
