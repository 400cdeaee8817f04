"""Train a MON circuit and a cascade on the 8x8 digits with hardware-linearization
gradients, and the same models in software with the same initialisation and batches.

MON: 32 hidden units, z* = relu(W z* + U x + b) with W = (1 − m) I − AᵀA + B − Bᵀ
(m = 0.5 fixed; A, B, U, b trained) and a digital linear readout of z* (10 scores,
softmax cross-entropy). Each step the circuit is realized from (A, B, U, b)
(``ohmflow.mon.realize``), solved for the batch, and its adjoint gives
(dW, dU, db) (``MonCircuit.gradient``); the software twin uses ``mon.solve`` and
``mon.gradient`` (NumPy implicit differentiation). dA = −A (dW + dWᵀ),
dB = dW − dWᵀ. Adam, batch 64.

Cascade: a feedforward 64-32-10 ReLU network as two ``relu_layer`` stages joined
by buffers (``ohmflow.cascade.feedforward``); the conductances are trained with
``Cascade.gradient`` (chained stage adjoints), and in software with a NumPy
forward pass / backprop of the same network. Adam on conductances, clipped to
[1e-3, 10] S.

Run: ``python examples/mon/train_digits.py`` (about a minute on 2 cores). Writes
examples/mon/results/train_digits.json.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import ohmflow as of
from ohmflow import mon

OUT = pathlib.Path(__file__).resolve().parent / "results"
SEED = 0
HIDDEN = 32
M = 0.5
EPOCHS_MON = 15
EPOCHS_CASCADE = 30
BATCH = 64
CE_SCALE = 40.0  # cascade outputs are normalised voltages of order 0.1 V


class Adam:
    def __init__(self, params: dict, lr: float) -> None:
        self.lr, self.t = lr, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict, grads: dict) -> None:
        self.t += 1
        for k in params:
            self.m[k] = 0.9 * self.m[k] + 0.1 * grads[k]
            self.v[k] = 0.999 * self.v[k] + 0.001 * grads[k] ** 2
            mh = self.m[k] / (1 - 0.9**self.t)
            vh = self.v[k] / (1 - 0.999**self.t)
            params[k] -= self.lr * mh / (np.sqrt(vh) + 1e-8)


def softmax_ce(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    s = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(len(y)), y] + 1e-300))
    p[np.arange(len(y)), y] -= 1
    return float(loss), p / len(y)


# ------------------------------------------------------------------- MON
def mon_init(n_in: int, n_cls: int) -> dict:
    rng = np.random.default_rng(SEED)
    return {"A": rng.normal(size=(HIDDEN, HIDDEN)) * 0.3 / np.sqrt(HIDDEN),
            "B": rng.normal(size=(HIDDEN, HIDDEN)) * 0.3 / np.sqrt(HIDDEN),
            "U": rng.normal(size=(HIDDEN, n_in)) / np.sqrt(n_in),
            "b": np.zeros(HIDDEN),
            "V": rng.normal(size=(n_cls, HIDDEN)) / np.sqrt(HIDDEN),
            "c": np.zeros(n_cls)}


def mon_forward(p: dict, X: np.ndarray, hardware: bool) -> tuple[np.ndarray, object]:
    sp = mon.Splitting(M, p["A"], p["B"])
    if hardware:
        circ = mon.realize(sp.W, p["U"], p["b"], splitting=sp)
        return circ(X), circ
    return mon.solve(sp.W, p["U"], p["b"], X), sp


def mon_step(p: dict, X: np.ndarray, y: np.ndarray, hardware: bool) -> tuple[float, dict]:
    z, model = mon_forward(p, X, hardware)
    loss, ds = softmax_ce(z @ p["V"].T + p["c"], y)
    dz = ds @ p["V"]
    if hardware:
        dW, dU, db = model.gradient(X, dz)
    else:
        dW, dU, db = mon.gradient(model.W, p["U"], p["b"], X, dz, z=z)
    grads = {"A": -p["A"] @ (dW + dW.T), "B": dW - dW.T, "U": dU, "b": db,
             "V": ds.T @ z, "c": ds.sum(axis=0)}
    return loss, grads


def mon_accuracy(p: dict, X: np.ndarray, y: np.ndarray, hardware: bool) -> float:
    z, _ = mon_forward(p, X, hardware)
    return float(np.mean(np.argmax(z @ p["V"].T + p["c"], axis=1) == y))


# --------------------------------------------------------------- cascade
def numpy_cascade(gs: list, X: np.ndarray, dscore=None):
    """Forward (and backward) of feedforward()'s stages from their conductances:
    stage s has G⁺, G⁻ (n_out, n_in), Gb⁺, Gb⁻ (n_out,), inputs ±x and ±1 V."""
    acts, pres, tots = [X], [], []
    h = X
    for s, (gp, gn, bp, bn) in enumerate(gs):
        T = gp.sum(1) + gn.sum(1) + bp + bn
        pre = (h @ (gp - gn).T + (bp - bn)) / T
        h = np.maximum(pre, 0) if s + 1 < len(gs) else pre
        pres.append(pre)
        tots.append(T)
        acts.append(h)
    if dscore is None:
        return h
    grads = [None] * len(gs)
    d = dscore
    for s in range(len(gs) - 1, -1, -1):
        gp, gn, bp, bn = gs[s]
        dpre = d * (pres[s] > 0) if s + 1 < len(gs) else d
        x, T, pre = acts[s], tots[s], pres[s]
        # pre_k = Σ_j g_kj u_j / T_k: ∂/∂g_kj = (u_j − pre_k) / T_k
        w = dpre / T
        grads[s] = (w.T @ x - (w * pre).sum(0)[:, None],
                    -(w.T @ x) - (w * pre).sum(0)[:, None],
                    (w * (1 - pre)).sum(0), (w * (-1 - pre)).sum(0))
        d = dpre @ ((gp - gn) / T[:, None])
    return h, grads


def stage_params(net: of.Network, n_in: int, n_out: int) -> tuple:
    g = net.conductances
    k = n_out * n_in
    return (g[:k].reshape(n_out, n_in), g[k:2 * k].reshape(n_out, n_in),
            g[2 * k:2 * k + n_out], g[2 * k + n_out:])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    ds = of.datasets.load("digits")
    Xtr, ytr, Xte, yte = ds.X_train, ds.y_train, ds.X_test, ds.y_test
    results: dict = {"dataset": "digits (1438 train / 359 test)", "seed": SEED}

    # ---- MON: hardware vs software
    for mode in ("hardware", "software"):
        p = mon_init(ds.n_features, ds.n_classes)
        opt = Adam(p, 3e-3)
        rng = np.random.default_rng(SEED + 1)
        t0 = time.time()
        losses = []
        for _ in range(EPOCHS_MON):
            order = rng.permutation(len(ytr))
            ep = []
            for i in range(0, len(order), BATCH):
                idx = order[i:i + BATCH]
                loss, grads = mon_step(p, Xtr[idx], ytr[idx], mode == "hardware")
                opt.step(p, grads)
                ep.append(loss)
            losses.append(float(np.mean(ep)))
        results[f"mon_{mode}"] = {
            "train_accuracy": mon_accuracy(p, Xtr, ytr, mode == "hardware"),
            "test_accuracy": mon_accuracy(p, Xte, yte, mode == "hardware"),
            "epoch_loss": losses, "seconds": round(time.time() - t0, 1),
            "monotonicity_m": M, "hidden": HIDDEN, "epochs": EPOCHS_MON}
        results[f"_mon_{mode}_params"] = p
        print(f"MON {mode}: test acc {results[f'mon_{mode}']['test_accuracy']:.4f} "
              f"({results[f'mon_{mode}']['seconds']} s)")
    ph, ps = results.pop("_mon_hardware_params"), results.pop("_mon_software_params")
    results["mon_param_max_abs_difference"] = float(max(np.max(np.abs(ph[k] - ps[k]))
                                                        for k in ph))
    # the trained circuit, checked against the software MON on the test set
    sp = mon.Splitting(M, ph["A"], ph["B"])
    circ = mon.realize(sp.W, ph["U"], ph["b"], splitting=sp)
    results["mon_circuit_vs_software_z_max_abs"] = float(np.max(np.abs(
        circ(Xte) - mon.solve(sp.W, ph["U"], ph["b"], Xte))))

    # ---- cascade: hardware vs software
    sizes = [ds.n_features, HIDDEN, ds.n_classes]
    for mode in ("hardware", "software"):
        casc = of.cascade.feedforward(sizes, seed=SEED)
        nets = casc.stages
        params = {f"g{s}": nets[s].conductances for s in range(len(nets))}
        opt = Adam(params, 0.01)
        rng = np.random.default_rng(SEED + 1)
        t0 = time.time()
        losses = []
        for _ in range(EPOCHS_CASCADE):
            order = rng.permutation(len(ytr))
            ep = []
            for i in range(0, len(order), BATCH):
                idx = order[i:i + BATCH]
                X, y = Xtr[idx], ytr[idx]
                if mode == "hardware":
                    dg, loss = casc.gradient(X, y, loss=of.learn.CrossEntropy(CE_SCALE),
                                             return_loss=True)
                else:
                    gs = [stage_params(nets[s], sizes[s], sizes[s + 1])
                          for s in range(len(nets))]
                    scores = numpy_cascade(gs, X)
                    loss, dsc = softmax_ce(CE_SCALE * scores, y)
                    _, gr = numpy_cascade(gs, X, CE_SCALE * dsc)
                    dg = [np.concatenate([a.reshape(-1) for a in g]) for g in gr]
                opt.step(params, {f"g{s}": dg[s] for s in range(len(nets))})
                for s in range(len(nets)):
                    params[f"g{s}"] = np.clip(params[f"g{s}"], 1e-3, 10.0)
                    nets[s].conductances = params[f"g{s}"]
                ep.append(loss)
            losses.append(float(np.mean(ep)))

        def acc(X, y, casc=casc, nets=nets, mode=mode):
            if mode == "hardware":
                out = casc(X)
            else:
                out = numpy_cascade([stage_params(nets[s], sizes[s], sizes[s + 1])
                                     for s in range(len(nets))], X)
            return float(np.mean(np.argmax(out, axis=1) == y))

        results[f"cascade_{mode}"] = {
            "train_accuracy": acc(Xtr, ytr), "test_accuracy": acc(Xte, yte),
            "epoch_loss": losses, "seconds": round(time.time() - t0, 1),
            "sizes": sizes, "epochs": EPOCHS_CASCADE}
        results[f"_cascade_{mode}_g"] = [n.conductances for n in nets]
        print(f"cascade {mode}: test acc {results[f'cascade_{mode}']['test_accuracy']:.4f} "
              f"({results[f'cascade_{mode}']['seconds']} s)")
    gh, gsw = results.pop("_cascade_hardware_g"), results.pop("_cascade_software_g")
    results["cascade_conductance_max_abs_difference"] = float(
        max(np.max(np.abs(a - b)) for a, b in zip(gh, gsw)))
    (OUT / "train_digits.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, dict)}, indent=1))


if __name__ == "__main__":
    main()
