"""Study: training only a random subset of the resistors.

Lin, Desai, Barrows & Caravelli (2026, *How to Train Your Resistive Network*)
report that updating only a subset of the resistances does not degrade
performance strongly. Here a random fraction f of the resistors is trainable
(``learn.step(..., trainable=subset)``), the rest keep their initial values.

Setup (all seeds fixed):

* Task: two classes in x ∈ [−1, 1]², class 1 above the parabola
  x2 = x1² − 0.4 (59 % of the training set); 128 training and 512 test
  samples. Targets: 0.35 V on the output of the class, 0.15 V on the other;
  prediction = the output with the higher voltage.
* Network: inputs x1, x2, −x1, −x2 and a 1 V bias, all connected to 16 hidden
  nodes; each hidden node has a ReLU diode (g_on 5 mS, v_on 0.1 V), to ground
  on even nodes and from ground on odd ones, and a resistor to each of the two
  outputs; each output has resistors to the bias and to ground. 116 resistors,
  conductances log-uniform in [0.1, 10] mS (one fixed initialisation).
* f in {0.1, 0.25, 0.5, 1.0}; five random subsets per f < 1 (f = 1 has one);
  f = 0 is the untrained network.
* Rules: the exact gradient (the paper's analytical learning), 1000 full-batch
  steps, conductances clipped to [1e-5, 1e-2] S; the learning rate of each f
  is the one of {3e-4, 1e-3, 3e-3, 1e-2} with the lowest mean final training
  loss among those stable for every subset (no step raises the loss by > 1 %).
  Then GEP with the current nudge (= ``rule="ep"``, β default) on the same
  subsets at the same rate, to show the local rule does the same.

Run ``python examples/lin_subset_training.py`` (about three minutes on two
cores); it writes ``examples/results/lin_subset_training.png`` and ``.json``.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import ohmflow as of

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
STEPS = 1000
FRACTIONS = (0.1, 0.25, 0.5, 1.0)
SUBSETS = 5
RULES = ("exact", "ep")
LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2)
G_MIN, G_MAX = 1e-5, 1e-2
HI, LO = 0.35, 0.15
OUTPUTS = ["o0", "o1"]
RULE_LABEL = {"exact": "exact gradient", "ep": "GEP current nudge (EP)"}


def task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    labels = (x[:, 1] > x[:, 0] ** 2 - 0.4).astype(int)
    targets = np.where(np.eye(2)[labels] > 0, HI, LO)
    return np.concatenate([x, -x], axis=1), targets, labels


def make_net(hidden: int = 16, seed: int = 7) -> of.Network:
    rng = np.random.default_rng(seed)

    def g() -> float:
        return float(np.exp(rng.uniform(np.log(1e-4), np.log(1e-2))))

    net = of.Network()
    ins = [net.add_node(f"x{k}") for k in range(4)]
    for k in ins:
        net.add_input(k)
    bias = net.add_node("bias")
    net.add_voltage_source(bias, 1.0)
    hid = [net.add_node(f"h{k}") for k in range(hidden)]
    outs = [net.add_node(o) for o in OUTPUTS]
    for k, h in enumerate(hid):
        for s in ins + [bias]:
            net.add_resistor(s, h, g())
        for o in outs:
            net.add_resistor(h, o, g())
        relu = of.ReluDiode(g_on=5e-3, v_on=0.1)
        if k % 2 == 0:
            net.add_diode(h, of.GROUND, relu)
        else:
            net.add_diode(of.GROUND, h, relu)
    for o in outs:
        net.add_resistor(bias, o, 1e-3)
        net.add_resistor(o, of.GROUND, 1e-3)
    return net


def evaluate(net: of.Network, X: np.ndarray, T: np.ndarray, labels: np.ndarray):
    v = net.solve(X).voltages[:, [net.node(o) for o in OUTPUTS]]
    loss = 0.5 * float(np.mean(np.sum((v - T) ** 2, axis=1)))
    return loss, float(np.mean(np.argmax(v, axis=1) == labels))


def stable(history: list[float]) -> bool:
    h = np.asarray(history)
    return bool(np.all(np.isfinite(h))) and bool(np.all(np.diff(h) <= 0.01 * h[:-1]))


def subsets(n: int, f: float) -> list[np.ndarray]:
    if f >= 1.0:
        return [np.arange(n)]
    k = int(round(f * n))
    return [np.sort(np.random.default_rng(1000 + s).choice(n, k, replace=False))
            for s in range(SUBSETS)]


def train(rule: str, lr: float, subset: np.ndarray, data) -> dict:
    X, T, c, Xt, Tt, ct = data
    net = make_net()
    history = []
    for _ in range(STEPS):
        history.append(of.learn.step(net, X, T, rule=rule, lr=lr, outputs=OUTPUTS,
                                     trainable=subset, g_min=G_MIN, g_max=G_MAX))
    train_loss, train_acc = evaluate(net, X, T, c)
    history.append(train_loss)
    test_loss, test_acc = evaluate(net, Xt, Tt, ct)
    return {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss,
            "test_acc": test_acc, "stable": stable(history),
            "history": [float(h) for h in history[::10]] + [float(history[-1])]}


def main() -> dict:
    t_start = time.time()
    X, T, c = task(128, seed=0)
    Xt, Tt, ct = task(512, seed=1)
    data = (X, T, c, Xt, Tt, ct)
    net0 = make_net()
    n = net0.n_resistors
    l0, a0 = evaluate(net0, X, T, c)
    lt0, at0 = evaluate(net0, Xt, Tt, ct)
    results: dict = {
        "steps": STEPS, "n_resistors": n, "lr_grid": list(LR_GRID),
        "class_balance_train": float(np.mean(c)), "class_balance_test": float(np.mean(ct)),
        "majority_class_test_acc": float(max(np.mean(ct), 1 - np.mean(ct))),
        "untrained": {"train_loss": l0, "train_acc": a0, "test_loss": lt0, "test_acc": at0},
        "runs": [],
    }
    print(f"{n} resistors; untrained: train loss {l0:.2e} acc {a0:.3f}, "
          f"test loss {lt0:.2e} acc {at0:.3f}")
    chosen: dict = {}
    for rule in RULES:
        for f in FRACTIONS:
            subs = subsets(n, f)
            # the grid for the exact gradient; GEP reuses its rate
            grid = LR_GRID if rule == "exact" else (chosen[f],)
            by_lr = {}
            for lr in grid:
                by_lr[lr] = [train(rule, lr, s, data) for s in subs]
            ok = [lr for lr in grid if all(r["stable"] for r in by_lr[lr])] or list(grid)
            lr = min(ok, key=lambda a: np.mean([r["train_loss"] for r in by_lr[a]]))
            chosen[f] = lr
            runs = by_lr[lr]
            summary = {k: [r[k] for r in runs]
                       for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
            entry = {
                "rule": rule, "fraction": f, "n_trainable": int(len(subs[0])), "lr": lr,
                "all_stable": all(r["stable"] for r in runs),
                "mean_final_train_loss_by_lr": {
                    str(a): float(np.mean([r["train_loss"] for r in by_lr[a]]))
                    for a in grid},
                **{k: v for k, v in summary.items()},
                **{f"{k}_mean": float(np.mean(v)) for k, v in summary.items()},
                **{f"{k}_std": float(np.std(v)) for k, v in summary.items()},
                "history_mean": np.mean([r["history"] for r in runs], axis=0).tolist(),
            }
            results["runs"].append(entry)
            print(f"{rule:5s} f={f:4.2f} ({entry['n_trainable']:3d} trainable, lr {lr:.0e}): "
                  f"train loss {entry['train_loss_mean']:.2e} acc {entry['train_acc_mean']:.3f}"
                  f" | test loss {entry['test_loss_mean']:.2e} "
                  f"± {entry['test_loss_std']:.1e}, acc {entry['test_acc_mean']:.3f} "
                  f"± {entry['test_acc_std']:.3f}")
    results["seconds"] = time.time() - t_start
    return results


def plot(results: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    colors = {"exact": "k", "ep": "C0"}
    markers = {"exact": "o", "ep": "s"}
    u = results["untrained"]
    for rule in RULES:
        runs = [r for r in results["runs"] if r["rule"] == rule]
        f = np.array([0.0] + [r["fraction"] for r in runs])
        for ax, key, base in ((axes[0], "test_loss", u["test_loss"]),
                              (axes[1], "test_acc", u["test_acc"])):
            m = np.array([base] + [r[f"{key}_mean"] for r in runs])
            s = np.array([0.0] + [r[f"{key}_std"] for r in runs])
            ax.errorbar(f, m, yerr=s, color=colors[rule], marker=markers[rule], capsize=3,
                        label=RULE_LABEL[rule], ls="-" if rule == "exact" else ":")
            for r in runs:  # every subset
                ax.plot([r["fraction"]] * len(r[key]), r[key], ".", color=colors[rule],
                        alpha=0.35)
        for r in runs:
            steps = np.arange(len(r["history_mean"])) * 10
            steps[-1] = results["steps"]
            axes[2].semilogy(steps, r["history_mean"], color=colors[rule],
                             alpha=0.3 + 0.7 * r["fraction"],
                             label=f"{rule}, f = {r['fraction']}")
    axes[1].axhline(results["majority_class_test_acc"], color="gray", ls="--", lw=1,
                    label="majority class")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("test loss ½ mean Σ (v − t)²")
    axes[1].set_ylabel("test accuracy")
    for ax in axes[:2]:
        ax.set_xlabel("fraction f of resistors trained (f = 0: untrained)")
        ax.set_xticks([0.0, *FRACTIONS])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[2].set_xlabel("learning step")
    axes[2].set_ylabel("training loss (mean over subsets)")
    axes[2].grid(alpha=0.3, which="both")
    axes[2].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Training a random subset of the {results['n_resistors']} resistors "
                 f"(mean ± std over {SUBSETS} subsets; dots: each subset)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    RESULTS.mkdir(exist_ok=True)
    res = main()
    (RESULTS / "lin_subset_training.json").write_text(json.dumps(res, indent=1))
    plot(res, RESULTS / "lin_subset_training.png")
    print(f"wrote {RESULTS / 'lin_subset_training.png'} and .json ({res['seconds']:.0f} s)")
