"""Plot the diode ReLU (ohmflow.activations.diode_relu) against the ReLU.

The activation a non-ideal diode from ground induces at a MON unit driven through
a unit conductance (see the ohmflow.activations docstring): a Shockley junction
(SPICE's default, and an "idealised" n = 0.05), with and without series resistance,
and a ReLU diode (a leaky ReLU). Writes examples/mon/results/diode_relu.png.

Run: ``python examples/mon/diode_relu.py`` (a second; needs matplotlib).
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import ohmflow as of  # noqa: E402
from ohmflow.activations import diode_relu, diode_relu_grad  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "results"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    x = np.linspace(-3, 3, 601)
    curves = [
        ("Shockley (i_s = 1e-14 A, n = 1)", dict(model=of.ShockleyDiode())),
        ("Shockley, R_s = 0.5 Ω", dict(model=of.ShockleyDiode(), series_resistance=0.5)),
        ("Shockley, n = 0.05", dict(model=of.ShockleyDiode(n=0.05))),
        ("ReLU diode (g_on = 3 S): leaky ReLU", dict(model=of.ReluDiode(3.0))),
    ]
    fig, (ax, axd) = plt.subplots(1, 2, figsize=(10, 4))
    ax.plot(x, np.maximum(x, 0), "k--", lw=1, label="ReLU")
    axd.plot(x, (x > 0).astype(float), "k--", lw=1, label="ReLU")
    for label, kw in curves:
        z, dz = diode_relu_grad(x, return_value=True, **kw)
        ax.plot(x, z, label=label)
        axd.plot(x, dz, label=label)
    ax.set(xlabel="drive x (V, through 1 S)", ylabel="unit voltage z (V)",
           title="diode ReLU")
    axd.set(xlabel="drive x (V)", ylabel="dz/dx (from the adjoint)", title="derivative")
    ax.legend(fontsize=7)
    axd.legend(fontsize=7)
    ax.grid(alpha=0.3)
    axd.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "diode_relu.png", dpi=120)
    print("wrote", OUT / "diode_relu.png")
    print("max |diode_relu - relu| on [-3, 3]:",
          {label: float(np.max(np.abs(diode_relu(x, **kw) - np.maximum(x, 0))))
           for label, kw in curves})


if __name__ == "__main__":
    main()
