"""ohmflow: simulate and train nonlinear resistive networks.

Resistors (the weights), diodes (the nonlinearity), voltage sources (inputs,
biases) and current sources (nudging), solved exactly as the minimiser of the
circuit's co-content by a Rust core with sparse Cholesky factorizations.
"""

from . import activations, cascade, datasets, devices, gep, learn, models, mon, optim, study, train
from ._core import (
    ConvergenceError,
    FloatingNodeError,
    InfeasibleError,
    InvalidNetworkError,
    OhmflowError,
    SpiceParseError,
)
from .cascade import Cascade
from .diodes import IdealDiode, ReluDiode, ShockleyDiode
from .network import GROUND, Network, Solution
from .spice import read_spice, to_spice

__all__ = [
    "GROUND",
    "Cascade",
    "ConvergenceError",
    "FloatingNodeError",
    "IdealDiode",
    "InfeasibleError",
    "InvalidNetworkError",
    "Network",
    "OhmflowError",
    "ReluDiode",
    "ShockleyDiode",
    "Solution",
    "SpiceParseError",
    "activations",
    "cascade",
    "datasets",
    "devices",
    "gep",
    "learn",
    "models",
    "mon",
    "optim",
    "study",
    "train",
    "read_spice",
    "to_spice",
]

__version__ = "0.1.0"
