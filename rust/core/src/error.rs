//! Typed errors of the core. Every fallible public function returns [`Error`];
//! nothing in the core panics on user input.

use crate::spice::SpiceParseError;

/// Everything that can go wrong when building or solving a network.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Invalid construction input (bad conductance, NaN, unknown node, self-loop, shape).
    #[error("{0}")]
    InvalidInput(String),
    /// Free nodes without a resistive path to a clamped node: the equilibrium is not unique.
    #[error("floating nodes (no resistive path to a voltage source or ground): {}", format_nodes(.nodes))]
    FloatingNodes {
        /// The offending node indices (at most the first few hundred are listed).
        nodes: Vec<usize>,
    },
    /// Ideal diodes forced beyond their threshold by sources: no feasible operating point.
    #[error("infeasible: ideal diodes {diodes:?} are forced beyond their threshold by the sources ({detail})")]
    Infeasible {
        /// Indices of the ideal diodes on the offending cycle of constraints.
        diodes: Vec<usize>,
        /// Human-readable explanation.
        detail: String,
    },
    /// An iterative solver did not reach its tolerance.
    #[error("did not converge after {iterations} iterations (residual {residual:.3e}): {detail}")]
    Convergence {
        /// Iterations performed.
        iterations: usize,
        /// Final residual (amperes or volts, see `detail`).
        residual: f64,
        /// What did not converge.
        detail: String,
    },
    /// The numeric factorization failed (matrix not positive definite).
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// A SPICE netlist could not be read.
    #[error(transparent)]
    SpiceParse(#[from] SpiceParseError),
}

impl Error {
    /// The error of sample `s` of a batch: convergence and infeasibility details
    /// name the sample (batches of one are left as they are).
    pub fn in_sample(self, s: usize, batch: usize) -> Error {
        if batch <= 1 {
            return self;
        }
        match self {
            Error::Convergence {
                iterations,
                residual,
                detail,
            } => Error::Convergence {
                iterations,
                residual,
                detail: format!("sample {s}: {detail}"),
            },
            Error::Infeasible { diodes, detail } => Error::Infeasible {
                diodes,
                detail: format!("sample {s}: {detail}"),
            },
            other => other,
        }
    }
}

fn format_nodes(nodes: &[usize]) -> String {
    let shown: Vec<String> = nodes.iter().take(20).map(|n| n.to_string()).collect();
    if nodes.len() > 20 {
        format!("{} ... ({} in all)", shown.join(", "), nodes.len())
    } else {
        shown.join(", ")
    }
}

/// Result alias of the core.
pub type Result<T> = std::result::Result<T, Error>;
