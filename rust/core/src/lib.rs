//! # ohmflow-core
//!
//! Simulation of nonlinear resistive networks (resistors, ideal / ReLU / Shockley
//! diodes, voltage and current sources) as the unique minimiser of the co-content,
//! with sparse Cholesky factorizations whose symbolic analysis is computed once per
//! topology. Pure Rust: no Python here; the bindings live in `ohmflow-py`.

#![warn(missing_docs)]

pub mod adjoint;
pub mod compile;
pub mod dense;
pub mod error;
pub mod factor;
pub mod feasibility;
pub mod layered;
mod lowrank;
pub mod mna;
pub mod network;
mod predict;
mod simd;
pub mod solve;
pub mod spice;
pub mod spice_net;
mod trisolve;

pub use adjoint::{adjoint_batch, AdjointSolution};
pub use error::{Error, Result};
pub use factor::Parallelism;
pub use network::{DiodeModel, Network, SourceValue, GROUND};
pub use solve::{
    resistor_currents, solve_batch, BatchSolution, Injections, Method, SolveOptions, Warm,
};

#[cfg(test)]
#[path = "tests/util.rs"]
pub(crate) mod test_util;
