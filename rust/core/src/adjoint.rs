//! Adjoint (hardware-linearization) solves for exact gradients.
//!
//! At an operating point v*, the sensitivity of a loss C(v) to any parameter p
//! of the energy is dC/dp = −λᵀ ∂²E/∂v∂p − νᵀ ∂h/∂p, where λ and ν solve the
//! linearized KKT system
//!
//! ```text
//! H λ + D_Aᵀ ν = ∂C/∂v,    D_A λ = 0,
//! ```
//!
//! H is the Hessian of the co-content at v* (the conductance matrix of the network
//! linearized at its operating point: resistors, differential conductances of ReLU
//! and Shockley diodes), D_A the incidence rows of the conducting ideal diodes
//! (held as constraints; the others are open). For a resistor this gives
//! dC/dg = −(Δλ)(Δv*). The constraints are imposed, as in the forward solve, by the
//! method of multipliers on the fixed sparsity pattern. A network without diodes
//! reuses the factor of its last solve (cached in the network).

use crate::compile::stamp;
use crate::error::{Error, Result};
use crate::factor::{Factor, Parallelism, SharedFactor};
use crate::network::{DiodeModel, Network, NONE};
use crate::solve::{BatchSolution, SolveOptions};
use rayon::prelude::*;
use std::sync::Arc;

/// The adjoint of a batch: λ (batch × n_nodes, zero at clamped nodes), the
/// multipliers ν of the conducting ideal diodes and the differential conductance
/// of every diode at the operating point (batch × n_diodes each).
#[derive(Clone, Debug, Default)]
pub struct AdjointSolution {
    /// λ, batch × n_nodes.
    pub lambda: Vec<f64>,
    /// ν of each ideal diode (0 for the others and for open ones), batch × n_diodes.
    pub nu: Vec<f64>,
    /// Differential conductance of each diode (ideal: 0), batch × n_diodes.
    pub g_diff: Vec<f64>,
    /// Multiplier of each transformer constraint v2 − a v1 = 0, batch × n_transformers
    /// (networks with two-ports only; see [`crate::mna`]).
    pub transformer_lambda: Vec<f64>,
}

/// Differential conductance of a diode at branch voltage `dv` (ideal diodes: 0).
pub fn diode_conductance(m: &DiodeModel, dv: f64) -> f64 {
    m.law(dv).1
}

/// Solves the linearized KKT system at each sample's operating point (`rhs`:
/// batch × n_nodes, only free-node entries are used).
pub fn adjoint_batch(
    net: &Network,
    sol: &BatchSolution,
    rhs: &[f64],
    opts: &SolveOptions,
) -> Result<AdjointSolution> {
    let n = net.n_nodes;
    let nd = net.n_diodes();
    let batch = sol.batch;
    if rhs.len() != batch * n || sol.voltages.len() != batch * n {
        return Err(Error::InvalidInput(format!(
            "adjoint: expected {batch} × {n} right-hand sides and voltages"
        )));
    }
    if sol.diode_currents.len() != batch * nd {
        return Err(Error::InvalidInput(format!(
            "adjoint: expected {batch} × {nd} diode currents"
        )));
    }
    if rhs.iter().any(|x| !x.is_finite()) {
        return Err(Error::InvalidInput(
            "adjoint: right-hand side must be finite".into(),
        ));
    }
    let c = net.compiled()?;
    let c = &*c;
    let mut out = AdjointSolution {
        lambda: vec![0.0; batch * n],
        nu: vec![0.0; batch * nd],
        g_diff: vec![0.0; batch * nd],
        transformer_lambda: vec![0.0; batch * net.n_transformers()],
    };
    for s in 0..batch {
        let v = &sol.voltages[s * n..(s + 1) * n];
        for k in 0..nd {
            let dv = v[net.dio_a[k] as usize] - v[net.dio_b[k] as usize];
            out.g_diff[s * nd + k] = diode_conductance(&net.dio_model[k], dv);
        }
    }
    if net.has_two_ports() {
        crate::mna::adjoint_batch(net, sol, rhs, opts, &mut out)?;
        return Ok(out);
    }
    if c.n_free == 0 || batch == 0 {
        return Ok(out);
    }
    let mut base = vec![0.0; c.nnz()];
    let mut diag = vec![0.0; n];
    for (k, s) in c.res_slots.iter().enumerate() {
        stamp(&mut base, s, net.res_g[k]);
        diag[net.res_a[k] as usize] += net.res_g[k];
        diag[net.res_b[k] as usize] += net.res_g[k];
    }
    crate::factor::with_threads(opts.par, || {
        if nd == 0 {
            linear_adjoint(net, &base, rhs, batch, &mut out.lambda, opts)
        } else {
            diode_adjoint(net, sol, &base, &diag, rhs, &mut out, opts)
        }
    })?;
    Ok(out)
}

/// Without diodes H is the Laplacian itself: one (cached) factor for every sample.
fn linear_adjoint(
    net: &Network,
    base: &[f64],
    rhs: &[f64],
    batch: usize,
    lambda: &mut [f64],
    opts: &SolveOptions,
) -> Result<()> {
    let c = net.compiled()?;
    let c = &*c;
    let n = net.n_nodes;
    let nf = c.n_free;
    let values = match net.cached_factor() {
        Some(v) => v,
        None => {
            let mut f = Factor::new(c, opts.par);
            f.factorize(base)?;
            let v = Arc::new(f.take_values());
            net.store_factor(v.clone());
            v
        }
    };
    let factor = SharedFactor::new(c, values);
    let threads = opts.par.n_threads().max(1);
    let chunk = batch.div_ceil(threads * 2).clamp(1, 64);
    let par = if batch == 1 {
        opts.par.faer()
    } else {
        faer::Par::Seq
    };
    // A lone right-hand side may use every allowed thread (see `trisolve`).
    let one_threads = if batch == 1 { threads } else { 1 };
    lambda
        .par_chunks_mut(n * chunk)
        .enumerate()
        .for_each(|(ci, block)| {
            let m = block.len() / n;
            let mut x = vec![0.0; nf * m];
            for j in 0..m {
                let r = &rhs[(ci * chunk + j) * n..(ci * chunk + j + 1) * n];
                for (f, &node) in c.node_of_free.iter().enumerate() {
                    x[j * nf + f] = r[node as usize];
                }
            }
            if m == 1 {
                factor.solve_one(&mut x, one_threads);
            } else {
                factor.solve_block(&mut x, m, par);
            }
            for j in 0..m {
                for (f, &node) in c.node_of_free.iter().enumerate() {
                    block[j * n + node as usize] = x[j * nf + f];
                }
            }
        });
    Ok(())
}

fn diode_adjoint(
    net: &Network,
    sol: &BatchSolution,
    base: &[f64],
    diag: &[f64],
    rhs: &[f64],
    out: &mut AdjointSolution,
    opts: &SolveOptions,
) -> Result<()> {
    let c = net.compiled()?;
    let c = &*c;
    let (n, nd, batch) = (net.n_nodes, net.n_diodes(), sol.batch);
    let inner_par = if batch == 1 {
        opts.par
    } else {
        Parallelism::Serial
    };
    let free_g = |x: u32| {
        if c.free_of_node[x as usize] != NONE {
            diag[x as usize]
        } else {
            0.0
        }
    };
    let g_diff = &out.g_diff;
    let results: Vec<Result<()>> = out
        .lambda
        .par_chunks_mut(n)
        .zip(out.nu.par_chunks_mut(nd))
        .enumerate()
        .map_init(
            || {
                (
                    Factor::new(c, inner_par),
                    vec![0.0; c.nnz()],
                    vec![0.0; c.n_free],
                    vec![0.0; n],
                )
            },
            |(factor, values, x, node_g), (s, (lam, nu_out))| -> Result<()> {
                let mu = &sol.diode_currents[s * nd..(s + 1) * nd];
                let gd = &g_diff[s * nd..(s + 1) * nd];
                values.copy_from_slice(base);
                node_g.copy_from_slice(diag);
                for k in 0..nd {
                    if gd[k] != 0.0 {
                        stamp(values, &c.dio_slots[k], gd[k]);
                        node_g[net.dio_a[k] as usize] += gd[k];
                        node_g[net.dio_b[k] as usize] += gd[k];
                    }
                }
                // Conducting ideal diodes: constraints with a penalty scaled to the
                // conductance around them (junctions included).
                let mut active: Vec<(usize, f64)> = Vec::new();
                for (k, &m) in mu.iter().enumerate() {
                    if matches!(net.dio_model[k], DiodeModel::Ideal { .. }) && m > 0.0 {
                        let local = {
                            let f = |x: u32| {
                                if c.free_of_node[x as usize] != NONE {
                                    node_g[x as usize]
                                } else {
                                    0.0
                                }
                            };
                            f(net.dio_a[k]).max(f(net.dio_b[k]))
                        };
                        let local = if local > 0.0 {
                            local
                        } else {
                            free_g(net.dio_a[k]).max(free_g(net.dio_b[k])).max(1.0)
                        };
                        let rho = opts.rho * local;
                        stamp(values, &c.dio_slots[k], rho);
                        active.push((k, rho));
                    }
                }
                factor.factorize(values)?;
                let r = &rhs[s * n..(s + 1) * n];
                let mut nu = vec![0.0; active.len()];
                let fidx = |node: u32| c.free_of_node[node as usize];
                let (mut scale0, mut prev_viol, mut last_viol) = (0.0f64, f64::INFINITY, 0.0f64);
                for it in 0..200 {
                    for (f, &node) in c.node_of_free.iter().enumerate() {
                        x[f] = r[node as usize];
                    }
                    for (j, &(k, _)) in active.iter().enumerate() {
                        let (fa, fb) = (fidx(net.dio_a[k]), fidx(net.dio_b[k]));
                        if fa != NONE {
                            x[fa as usize] -= nu[j];
                        }
                        if fb != NONE {
                            x[fb as usize] += nu[j];
                        }
                    }
                    factor.solve_in_place(x);
                    // Scale: the response before any constraint force acts (the
                    // constrained λ may vanish where the diodes pin every node).
                    let scale = x.iter().fold(0.0f64, |m, y| m.max(y.abs()));
                    if it == 0 {
                        scale0 = scale;
                    }
                    let mut viol = 0.0f64;
                    for (j, &(k, rho)) in active.iter().enumerate() {
                        let (fa, fb) = (fidx(net.dio_a[k]), fidx(net.dio_b[k]));
                        let la = if fa != NONE { x[fa as usize] } else { 0.0 };
                        let lb = if fb != NONE { x[fb as usize] } else { 0.0 };
                        viol = viol.max((la - lb).abs());
                        nu[j] += rho * (la - lb);
                    }
                    let done = viol <= 1e-15 * scale0.max(scale)
                        || (viol >= 0.5 * prev_viol && viol <= 1e-11 * scale0.max(scale));
                    prev_viol = viol;
                    last_viol = viol;
                    if done || active.is_empty() || scale0 == 0.0 {
                        for (f, &node) in c.node_of_free.iter().enumerate() {
                            lam[node as usize] = x[f];
                        }
                        for (j, &(k, _)) in active.iter().enumerate() {
                            nu_out[k] = nu[j];
                        }
                        return Ok(());
                    }
                }
                Err(Error::Convergence {
                    iterations: 200,
                    residual: last_viol,
                    detail: format!("sample {s}: adjoint constraints of conducting ideal diodes"),
                })
            },
        )
        .collect();
    results.into_iter().collect()
}
