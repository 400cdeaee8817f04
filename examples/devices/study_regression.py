"""Study (a): SGD on asymmetric devices settles towards the symmetry point;
Tiki-Taka and Stochastic Hamiltonian Descent reach the true minimum.

Two problems on soft-bounds devices whose symmetry point (+0.5) is away from the
optimum:

1. one parameter, f(w) = ½ (w − w*)² with w* = −0.5 and noisy gradients
   (w − w*) + ξ, ξ ~ N(0, 1);
2. linear regression y = W x + ε (4 inputs, 2 outputs, noise 1) on a 4 × 2
   crossbar trained by stochastic outer-product pulse updates.

The learning rate decays geometrically from 0.05 to 0.005 (and the Tiki-Taka /
SHD transfer rate with it). Writes PNGs and a JSON summary under
examples/devices/results/. Run: ``python examples/devices/study_regression.py``
(about a minute).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ohmflow import study  # noqa: E402

OUT = Path(__file__).parent / "results"
DEVICE = {"model": "soft-bounds", "dw_min": 0.01, "up_down": 2 / 3, "w_min": -1.0, "w_max": 1.0,
          "dw_min_dtod": 0.05, "dw_min_std": 0.1, "up_down_dtod": 0.02, "w_min_dtod": 0.02,
          "w_max_dtod": 0.02}
KINDS = {"analog-sgd": "analog SGD", "tiki-taka": "Tiki-Taka", "shd": "SHD"}
SEEDS = range(5)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    common = {"lr": 0.05, "lr_final": 0.005, "steps": 3000}
    quad = {k: [study.quadratic(k, DEVICE, w_star=-0.5, noise=1.0, seed=s, **common)
                for s in SEEDS] for k in KINDS}
    reg = {k: [study.regression(k, DEVICE, noise=1.0, seed=s, **common) for s in SEEDS]
           for k in KINDS}

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for i, (k, label) in enumerate(KINDS.items()):
        r = quad[k][0]
        ax.plot(r["w"], color=f"C{i}", lw=0.8, alpha=0.8,
                label=f"{label} (final {r['final']:+.2f})")
    ax.axhline(-0.5, color="k", ls="--", lw=1, label="optimum w* = −0.5")
    ax.axhline(quad["analog-sgd"][0]["symmetry_point"], color="r", ls=":", lw=1,
               label="device symmetry point")
    ax.set_xlabel("update")
    ax.set_ylabel("visible weight w")
    ax.set_title("one parameter, f = ½(w − w*)², gradient noise 1")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for i, (k, label) in enumerate(KINDS.items()):
        r = reg[k][0]
        steps = np.arange(r["distance"].size) * r["every"]
        ax.plot(steps, r["distance"], color=f"C{i}", lw=0.8,
                label=f"{label} (final {r['final_distance']:.3f})")
    ax.set_xlabel("update")
    ax.set_ylabel("RMS distance of W to least squares")
    ax.set_yscale("log")
    ax.set_title("4×2 crossbar regression, outer-product pulses")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle("soft-bounds devices, up_down 0.5 (symmetry point +0.5), dw_min 0.01")
    fig.tight_layout()
    fig.savefig(OUT / "study_regression.png", dpi=100)
    plt.close(fig)

    summary = {
        "device": DEVICE, **common, "seeds": list(SEEDS),
        "quadratic_final_error": {k: [abs(r["final"] + 0.5) for r in v] for k, v in quad.items()},
        "regression_final_distance": {k: [r["final_distance"] for r in v]
                                      for k, v in reg.items()},
        "regression_excess_loss": {k: [r["final_loss"] - r["optimal_loss"] for r in v]
                                   for k, v in reg.items()},
    }
    (OUT / "study_regression.json").write_text(json.dumps(summary, indent=2))
    print(f"{'':>12} {'|w − w*| (1 param)':>22} {'RMS dist. (regression)':>24}")
    for k, label in KINDS.items():
        e = summary["quadratic_final_error"][k]
        d = summary["regression_final_distance"][k]
        print(f"{label:>12} {np.mean(e):>10.3f} ± {np.std(e):.3f}      "
              f"{np.mean(d):>10.3f} ± {np.std(d):.3f}")
    print(f"wrote {OUT / 'study_regression.png'} and {OUT / 'study_regression.json'}")


if __name__ == "__main__":
    main()
