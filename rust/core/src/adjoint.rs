//! Adjoint (hardware-linearization) solves for exact gradients.
//!
//! At an operating point v*, the sensitivity of a loss C(v) to any parameter p
//! of the energy is dC/dp = −λᵀ ∂²E/∂v∂p, where λ solves H λ = ∂C/∂v with H the
//! Hessian of the co-content at v* (the conductance matrix of the network
//! linearized at its operating point: resistors, differential conductances of
//! ReLU and Shockley diodes), conducting ideal diodes held as constraints
//! (Δλ = 0 across them) and non-conducting ones open. For a resistor this gives
//! dC/dg = −(Δλ)(Δv*). The constraints are imposed, as in the forward solve, by
//! the method of multipliers on the fixed sparsity pattern.

use crate::compile::stamp;
use crate::error::{Error, Result};
use crate::factor::{Factor, Parallelism};
use crate::network::{DiodeModel, Network, NONE};
use crate::solve::{BatchSolution, SolveOptions};
use rayon::prelude::*;

/// Solves H λ = rhs at each sample's operating point (`rhs`: batch × n_nodes, only
/// free-node entries are used). Returns λ (batch × n_nodes, zero at clamped nodes).
pub fn adjoint_batch(
    net: &Network,
    sol: &BatchSolution,
    rhs: &[f64],
    opts: &SolveOptions,
) -> Result<Vec<f64>> {
    let n = net.n_nodes;
    let batch = sol.batch;
    if rhs.len() != batch * n || sol.voltages.len() != batch * n {
        return Err(Error::InvalidInput(format!(
            "adjoint: expected {batch} × {n} right-hand sides"
        )));
    }
    if rhs.iter().any(|x| !x.is_finite()) {
        return Err(Error::InvalidInput(
            "adjoint: right-hand side must be finite".into(),
        ));
    }
    let c = net.compiled()?;
    let c = &*c;
    let nd = net.n_diodes();
    let mut out = vec![0.0; batch * n];
    if c.n_free == 0 || batch == 0 {
        return Ok(out);
    }
    // Resistive part of H and the penalty scale around each diode.
    let mut base = vec![0.0; c.nnz()];
    let mut diag = vec![0.0; n];
    for (k, s) in c.res_slots.iter().enumerate() {
        stamp(&mut base, s, net.res_g[k]);
        diag[net.res_a[k] as usize] += net.res_g[k];
        diag[net.res_b[k] as usize] += net.res_g[k];
    }
    let rho: Vec<f64> = (0..nd)
        .map(|k| {
            let free = |x: u32| {
                if c.free_of_node[x as usize] != NONE {
                    diag[x as usize]
                } else {
                    0.0
                }
            };
            let local = free(net.dio_a[k]).max(free(net.dio_b[k]));
            opts.rho * if local > 0.0 { local } else { 1.0 }
        })
        .collect();
    let inner_par = if batch == 1 {
        opts.par
    } else {
        Parallelism::Serial
    };
    crate::factor::with_threads(opts.par, || {
        let results: Vec<Result<()>> = out
            .par_chunks_mut(n)
            .enumerate()
            .map_init(
                || {
                    (
                        Factor::new(c, inner_par),
                        vec![0.0; c.nnz()],
                        vec![0.0; c.n_free],
                    )
                },
                |(factor, values, x), (s, lam)| -> Result<()> {
                    let v = &sol.voltages[s * n..(s + 1) * n];
                    let mu = &sol.diode_currents[s * nd..(s + 1) * nd];
                    values.copy_from_slice(&base);
                    let mut active: Vec<usize> = Vec::new();
                    for k in 0..nd {
                        let dv = v[net.dio_a[k] as usize] - v[net.dio_b[k] as usize];
                        let g = match net.dio_model[k] {
                            DiodeModel::Ideal { .. } => {
                                if mu[k] > 0.0 {
                                    active.push(k);
                                    rho[k]
                                } else {
                                    0.0
                                }
                            }
                            DiodeModel::Relu { g_on, v_on } => {
                                if dv > v_on {
                                    g_on
                                } else {
                                    0.0
                                }
                            }
                            DiodeModel::Shockley {
                                i_s,
                                n: ne,
                                temperature,
                                gmin,
                            } => {
                                let nvt = ne * crate::network::thermal_voltage(temperature);
                                i_s / nvt * (dv / nvt).exp() + gmin
                            }
                        };
                        if g != 0.0 {
                            stamp(values, &c.dio_slots[k], g);
                        }
                    }
                    factor.factorize(values)?;
                    let r = &rhs[s * n..(s + 1) * n];
                    let mut nu = vec![0.0; active.len()];
                    let fidx = |node: u32| c.free_of_node[node as usize];
                    let (mut scale0, mut prev_viol, mut last_viol) =
                        (0.0f64, f64::INFINITY, 0.0f64);
                    for it in 0..100 {
                        for (f, &node) in c.node_of_free.iter().enumerate() {
                            x[f] = r[node as usize];
                        }
                        for (j, &k) in active.iter().enumerate() {
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
                        for (j, &k) in active.iter().enumerate() {
                            let (fa, fb) = (fidx(net.dio_a[k]), fidx(net.dio_b[k]));
                            let la = if fa != NONE { x[fa as usize] } else { 0.0 };
                            let lb = if fb != NONE { x[fb as usize] } else { 0.0 };
                            viol = viol.max((la - lb).abs());
                            nu[j] += rho[k] * (la - lb);
                        }
                        let done = viol <= 1e-15 * scale0.max(scale)
                            || (viol >= 0.5 * prev_viol && viol <= 1e-11 * scale0.max(scale));
                        prev_viol = viol;
                        last_viol = viol;
                        if done || active.is_empty() || scale0 == 0.0 {
                            for (f, &node) in c.node_of_free.iter().enumerate() {
                                lam[node as usize] = x[f];
                            }
                            return Ok(());
                        }
                    }
                    Err(Error::Convergence {
                        iterations: 100,
                        residual: last_viol,
                        detail: format!(
                            "sample {s}: adjoint constraints of conducting ideal diodes"
                        ),
                    })
                },
            )
            .collect();
        results.into_iter().collect::<Result<Vec<()>>>()
    })?;
    Ok(out)
}
