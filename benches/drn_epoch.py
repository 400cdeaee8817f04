"""One EP epoch of a deep resistive network: ohmflow against a plain NumPy baseline.

Issue 6's measurement: DRN-1H (1568-1024-10, differential outputs, ideal diodes)
trained for one epoch of Fashion-MNIST (60,000 samples) with equilibrium
propagation, by

- ``ohmflow train --dataset fashion-mnist --model drn-1h --epochs 1 --json PATH``
  (run as a subprocess exactly so, with the preset's batch size, then again with
  ``--batch-size`` set to the baseline's; its history records the training seconds
  of the epoch, evaluation excluded), and
- a plain NumPy implementation of exact block coordinate descent, written as a
  researcher would (as in Scellier's public code, but on the CPU): the input drive
  ``X W_0`` once per minibatch, then 20 sweeps per phase alternating the hidden
  layer (clipped weighted mean) and the output layer, the EP estimate from the
  branch voltages of the two phases, an SGD step with clipping, batch 256,
  float64, OpenBLAS for the products.

Both start from the same conductances; the second ohmflow run uses the baseline's
hyper-parameters exactly (the preset's, with the baseline's batch size), so its test
accuracy after the epoch must match the baseline's: a check that both ran the same
algorithm. The ratio of the two epoch times is
measured in one run, on whatever load the machine has.

Usage::

    python benches/drn_epoch.py [--model drn-1h] [--batch-size 256] [--sweeps 20]
                                [--subset N] [--json benches/results/drn_epoch.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import ohmflow as of


def numpy_epoch(model, X, y, *, batch, sweeps, beta, lr, rng, target_on=1.0, target_off=0.0):
    """One EP epoch of a one-hidden-layer DRN in plain NumPy; returns (seconds, params)."""
    g_ref = model.g_ref
    g = model.network.conductances
    w0 = g[model.weights[0]].copy()
    w1 = g[model.weights[1]].copy()
    (bp1, bn1), (bp2, bn2) = (g[b] for b in model.biases)
    bp1, bn1, bp2, bn2 = (a.copy() for a in (bp1, bn1, bp2, bn2))
    vb, lo = model.bias_voltage, model.clip[0]
    n_out = model.n_classes
    glo, ghi = model.g_min * g_ref, model.g_max * g_ref
    lr_w = [r * g_ref * g_ref for r in lr]
    order = rng.permutation(len(y))
    t0 = time.perf_counter()
    for start in range(0, len(y), batch):
        idx = order[start:start + batch]
        x = model.input_voltages(X[idx])
        b = len(idx)
        t = np.full((b, n_out), target_off)
        t[np.arange(b), y[idx]] = target_on
        s1 = w0.sum(0) + w1.sum(1) + bp1 + bn1
        s2 = w1.sum(0) + bp2 + bn2
        d1 = x @ w0 + (bp1 - bn1) * vb
        c2 = (bp2 - bn2) * vb
        h = np.zeros((b, w0.shape[1]))
        o = np.zeros((b, w1.shape[1]))
        for _ in range(sweeps):
            h = np.maximum((d1 + o @ w1.T) / s1, lo)
            o = (h @ w1 + c2) / s2
        dc = (o[:, :n_out] - o[:, n_out:]) - t
        inj = np.concatenate([-beta * dc, beta * dc], axis=1)
        hb, ob = h, o
        for _ in range(sweeps):
            hb = np.maximum((d1 + ob @ w1.T) / s1, lo)
            ob = (hb @ w1 + c2 + inj) / s2
        # EP: [(Δv^β)² − (Δv⁰)²] / (2β) per branch, averaged over the batch.
        k = 1.0 / (2 * beta * b)
        dh2 = (hb**2 - h**2).sum(0)
        do2 = (ob**2 - o**2).sum(0)
        g0 = dh2[None, :] - 2 * x.T @ (hb - h)
        g1 = dh2[:, None] + do2[None, :] - 2 * (hb.T @ ob - h.T @ o)
        gp1 = ((hb - vb) ** 2 - (h - vb) ** 2).sum(0)
        gn1 = ((hb + vb) ** 2 - (h + vb) ** 2).sum(0)
        gp2 = ((ob - vb) ** 2 - (o - vb) ** 2).sum(0)
        gn2 = ((ob + vb) ** 2 - (o + vb) ** 2).sum(0)
        for p, gr, r in ((w0, g0, lr_w[0]), (bp1, gp1, lr_w[0]), (bn1, gn1, lr_w[0]),
                         (w1, g1, lr_w[1]), (bp2, gp2, lr_w[1]), (bn2, gn2, lr_w[1])):
            p -= (r * k) * gr
            np.clip(p, glo, ghi, out=p)
    seconds = time.perf_counter() - t0
    return seconds, (w0, w1, bp1, bn1, bp2, bn2)


def numpy_accuracy(model, params, X, y, sweeps):
    w0, w1, bp1, bn1, bp2, bn2 = params
    vb, lo, n_out = model.bias_voltage, model.clip[0], model.n_classes
    s1 = w0.sum(0) + w1.sum(1) + bp1 + bn1
    s2 = w1.sum(0) + bp2 + bn2
    right = 0
    for start in range(0, len(y), 1000):
        x = model.input_voltages(X[start:start + 1000])
        d1 = x @ w0 + (bp1 - bn1) * vb
        o = np.zeros((len(x), w1.shape[1]))
        for _ in range(4 * sweeps):
            h = np.maximum((d1 + o @ w1.T) / s1, lo)
            o = (h @ w1 + (bp2 - bn2) * vb) / s2
        right += int(np.sum(np.argmax(o[:, :n_out] - o[:, n_out:], axis=1)
                            == y[start:start + 1000]))
    return right / len(y)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="drn-1h")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--sweeps", type=int, default=20, help="baseline sweeps per phase")
    ap.add_argument("--subset", type=int, help="train on the first N samples only")
    ap.add_argument("--json", default=None)
    ap.add_argument("--ohmflow-args", default="", help="extra arguments for ohmflow train")
    args = ap.parse_args()

    data = of.datasets.load(args.dataset)
    if args.subset:
        data = data.subset(args.subset, None)
    model = of.models.build(args.model, n_features=data.n_features, n_classes=data.n_classes)
    if len(model.layer_sizes) != 3:
        raise SystemExit("the NumPy baseline implements one hidden layer")
    cfg = dict(of.models.training_defaults(args.model))
    lr = cfg["lr"] if isinstance(cfg["lr"], list) else [cfg["lr"]] * 2
    beta = cfg["beta"] * model.g_ref

    # ohmflow, exactly the command (the preset's batch size), then the same
    # with the baseline's batch size (same algorithm and hyper-parameters as the
    # baseline: their accuracies after the epoch must agree).
    runs = {}
    for key, extra in (("default", []), ("same_batch", ["--batch-size", str(args.batch_size)])):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "run.json")
            cmd = [sys.executable, "-m", "ohmflow", "train", "--dataset", args.dataset,
                   "--model", args.model, "--epochs", "1", "--json", out, "--no-progress",
                   "-q", *extra]
            if args.subset:
                cmd += ["--train-subset", str(args.subset)]
            cmd += args.ohmflow_args.split()
            print("running:", " ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True)
            with open(out) as f:
                runs[key] = json.load(f)
    run = runs["same_batch"]
    of_seconds = run["history"][0]["seconds"]
    of_default = runs["default"]["history"][0]["seconds"]

    print("running the NumPy baseline ...", flush=True)
    np_seconds, params = numpy_epoch(model, data.X_train, data.y_train,
                                     batch=args.batch_size, sweeps=args.sweeps, beta=beta,
                                     lr=lr, rng=np.random.default_rng(0))
    np_acc = numpy_accuracy(model, params, data.X_test, data.y_test, args.sweeps)
    result = {
        "model": args.model, "dataset": args.dataset, "train_samples": len(data.y_train),
        "batch_size": args.batch_size, "baseline_sweeps_per_phase": args.sweeps,
        "numpy_epoch_seconds": np_seconds,
        "ohmflow_default_batch_size": runs["default"]["config"]["batch_size"],
        "ohmflow_default_epoch_seconds": of_default,
        "ratio_default": of_default / np_seconds,
        "ohmflow_test_accuracy_default": runs["default"]["test_accuracy"],
        "ohmflow_epoch_seconds": of_seconds,
        "ratio": of_seconds / np_seconds,
        "ohmflow_test_accuracy": run["test_accuracy"], "numpy_test_accuracy": np_acc,
        "ohmflow_config": run.get("config"), "load_average": os.getloadavg(),
    }
    print(f"ohmflow, the issue's command (batch {result['ohmflow_default_batch_size']}): "
          f"{of_default:.2f} s per epoch (test {runs['default']['test_accuracy']:.2%}); "
          f"ratio {result['ratio_default']:.2f}")
    print(f"ohmflow, batch {args.batch_size}: {of_seconds:.2f} s per epoch "
          f"(test {run['test_accuracy']:.2%}); ratio {result['ratio']:.2f}")
    print(f"NumPy baseline, batch {args.batch_size}: {np_seconds:.2f} s (test {np_acc:.2%})")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
