"""Study (b), sweep: test accuracy on the 8x8 digits against device asymmetry.

The device is aihwkit's linear step with slope γ (``gamma_up = gamma_down = γ``):
the up step ``Δw (1 − γ w / w_max)`` and the down step ``Δw (1 − γ w / w_min)``
differ by ``2 γ Δw w / w_max``, so γ = 0 is a constant (symmetric) step and
γ = 1 is soft bounds, the device of ``ohmflow study asymmetry``. Everything else
is :data:`ohmflow.study.ASYMMETRIC_DEVICE` (normalised range [−1, 1] over the
network's conductance range, 1000 steps, 10 % spreads). Each point trains the
same network (drn-digits-s), data, epochs and seed with analog SGD, Tiki-Taka
and SHD; ideal devices are the reference line.

Run: ``python examples/devices/study_asymmetry_sweep.py [--epochs 8]`` (about
2 min on 2 cores). Writes results/asymmetry_sweep.{json,png}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from ohmflow import study  # noqa: E402

OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gammas", default="0,0.25,0.5,1")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    gammas = [float(g) for g in args.gammas.split(",")]
    base = {k: v for k, v in study.ASYMMETRIC_DEVICE.items() if k != "model"}
    ideal = study.asymmetry("digits", epochs=args.epochs, seed=args.seed, arms=("ideal",),
                            log=print)
    rows = []
    for g in gammas:
        dev = {"model": "linear-step", **base, "gamma_up": g, "gamma_down": g,
               "gamma_up_dtod": 0.0, "gamma_down_dtod": 0.0}
        print(f"gamma = {g}")
        r = study.asymmetry("digits", epochs=args.epochs, seed=args.seed, device=dev,
                            arms=("sgd", "tiki-taka", "shd"), log=print)
        rows.append({"gamma": g, **{a: r[a] for a in ("sgd", "tiki-taka", "shd")}})
    res = {"epochs": args.epochs, "seed": args.seed, "model": "drn-digits-s",
           "device": {"model": "linear-step", **base}, "ideal": ideal["ideal"], "sweep": rows}
    (OUT / "asymmetry_sweep.json").write_text(json.dumps(res, indent=2))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.axhline(100 * ideal["ideal"], color="k", ls="--", label="ideal devices")
    for i, a in enumerate(("sgd", "tiki-taka", "shd")):
        ax.plot(gammas, [100 * r[a] for r in rows], "o-", color=f"C{i + 1}",
                label={"sgd": "analog SGD", "tiki-taka": "Tiki-Taka", "shd": "SHD"}[a])
    ax.set_xlabel("asymmetry γ (linear step; 1 = soft bounds)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"digits, drn-digits-s, {args.epochs} epochs, seed {args.seed}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "asymmetry_sweep.png", dpi=100)
    print(f"ideal {100 * ideal['ideal']:.2f}%")
    for r in rows:
        print(f"gamma {r['gamma']:<5} sgd {100 * r['sgd']:.2f}%  tiki-taka "
              f"{100 * r['tiki-taka']:.2f}%  shd {100 * r['shd']:.2f}%")


if __name__ == "__main__":
    main()
