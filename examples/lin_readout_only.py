"""Study: training with voltage readout only at the output-adjacent resistors.

Lin, Desai, Barrows & Caravelli (2026, *How to Train Your Resistive Network*)
ask whether a resistive network can be trained when the voltage drops of only
some branches can be measured. With a local two-phase rule (Generalized
Equilibrium Propagation, :mod:`ohmflow.gep`) a resistor whose drop is not read
out gets no estimate, so it is not updated: ``gep_gradient(..., readout=mask)``
equals ``learn.gradient(..., trainable=mask)`` (checked below), and training
with readout only at some branches is ``learn.step(..., trainable=mask)``.

Setup (all seeds fixed):

* Task: regression y = 0.15 + 0.2 x1 − 0.1 x2 + 0.125 max(x1 + x2, 0) on
  x ∈ [−1, 1]², 64 training and 256 test samples.
* Network: inputs x1, x2, −x1, −x2 and a 1 V bias, all connected to H hidden
  nodes; each hidden node has a ReLU diode (g_on 5 mS, v_on 0.1 V), to ground
  on even nodes and from ground on odd ones, and a resistor to the output;
  the output also has resistors to the bias and to ground. Conductances are
  log-uniform in [0.1, 10] mS. H = 8 and H = 32.
* Readout: all resistors, or only the output-adjacent ones (those with an end
  at the output node: H + 2 of them).
* Rules: GEP with the current nudge (= ``rule="ep"``, β default), GEP with the
  clamp nudge (= ``rule="coupled"``, η default), and the exact gradient
  (``rule="exact"``) as a reference. 1000 full-batch steps of
  ``learn.step``, conductances clipped to [1e-5, 1e-2] S. The learning rate of
  each (rule, readout, H) is the one with the best final training loss among
  the stable runs (no step raises the loss by more than 1 %) over a grid of
  six (coupled learning's grid is 100x larger: it estimates the gradient
  weighted by the conductance seen at the output, tens of mS here).

Run ``python examples/lin_readout_only.py`` (about a minute on two cores); it
writes ``examples/results/lin_readout_only.png`` and ``.json``.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import ohmflow as of
from ohmflow.gep import gep_gradient

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
STEPS = 1000
WIDTHS = (8, 32)
G_MIN, G_MAX = 1e-5, 1e-2
LR_GRID = {"ep": (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3),
           "exact": (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3),
           "coupled": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)}
RULE_LABEL = {"ep": "GEP current nudge (EP)", "coupled": "GEP clamp nudge (coupled)",
              "exact": "exact gradient"}


def task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    y = 0.15 + 0.2 * x[:, :1] - 0.1 * x[:, 1:] + 0.125 * np.maximum(x[:, :1] + x[:, 1:], 0)
    return np.concatenate([x, -x], axis=1), y


def make_net(width: int, seed: int = 2) -> of.Network:
    rng = np.random.default_rng(seed)

    def g() -> float:
        return float(np.exp(rng.uniform(np.log(1e-4), np.log(1e-2))))

    net = of.Network()
    ins = [net.add_node(f"x{k}") for k in range(4)]
    for k in ins:
        net.add_input(k)
    bias = net.add_node("bias")
    net.add_voltage_source(bias, 1.0)
    hidden = [net.add_node(f"h{k}") for k in range(width)]
    out = net.add_node("out")
    for k, h in enumerate(hidden):
        for s in ins + [bias]:
            net.add_resistor(s, h, g())
        net.add_resistor(h, out, g())
        relu = of.ReluDiode(g_on=5e-3, v_on=0.1)
        if k % 2 == 0:
            net.add_diode(h, of.GROUND, relu)
        else:
            net.add_diode(of.GROUND, h, relu)
    net.add_resistor(bias, out, 1e-3)
    net.add_resistor(out, of.GROUND, 1e-3)
    return net


def output_adjacent(net: of.Network) -> np.ndarray:
    a, b = net.resistor_nodes
    o = net.node("out")
    return (a == o) | (b == o)


def mse(net: of.Network, X: np.ndarray, y: np.ndarray) -> float:
    v = net.solve(X).voltages[:, net.node("out")]
    return 0.5 * float(np.mean((v - y[:, 0]) ** 2))


def check_readout_is_trainable_mask(X: np.ndarray, y: np.ndarray) -> None:
    """GEP with readout only at a mask = learn.gradient with that trainable mask."""
    net = make_net(WIDTHS[0])
    mask = output_adjacent(net)
    for nudge, rule in (("current", "ep"), ("clamp", "coupled")):
        a = gep_gradient(net, y, outputs=["out"], inputs=X, nudge=nudge, readout=mask)
        b = of.learn.gradient(net, y, method=rule, outputs=["out"], inputs=X, trainable=mask)
        assert np.allclose(a, b, rtol=1e-12, atol=0), (nudge, np.max(np.abs(a - b)))
    print("check: gep_gradient(readout=mask) == learn.gradient(trainable=mask) for EP and CL")


def train(width: int, rule: str, lr: float, mask: np.ndarray | None, X, y) -> list[float]:
    net = make_net(width)
    history = []
    for _ in range(STEPS):
        history.append(of.learn.step(net, X, y, rule=rule, lr=lr, outputs=["out"],
                                     trainable=mask, g_min=G_MIN, g_max=G_MAX))
    history.append(mse(net, X, y))
    return history, net


def max_increase(history: list[float]) -> float:
    """The largest relative increase of the loss over one step."""
    h = np.asarray(history)
    return float(np.max(np.diff(h) / h[:-1]))


def stable(history: list[float]) -> bool:
    """No step raises the loss by more than 1 %."""
    return bool(np.all(np.isfinite(history))) and max_increase(history) <= 0.01


def main() -> dict:
    t_start = time.time()
    X, y = task(64, seed=0)
    Xt, yt = task(256, seed=1)
    check_readout_is_trainable_mask(X, y)
    results: dict = {"steps": STEPS, "widths": list(WIDTHS), "lr_grid": LR_GRID, "runs": []}
    for width in WIDTHS:
        net0 = make_net(width)
        adj = output_adjacent(net0)
        init_train, init_test = mse(net0, X, y), mse(net0, Xt, yt)
        for readout in ("all", "output-adjacent"):
            mask = None if readout == "all" else adj
            for rule in ("ep", "coupled", "exact"):
                trials = []
                for lr in LR_GRID[rule]:
                    hist, net = train(width, rule, lr, mask, X, y)
                    final = hist[-1] if np.isfinite(hist[-1]) else np.inf
                    trials.append((not stable(hist), final, lr, hist, net))
                # the stable run with the lowest final loss (an unstable one only
                # if no rate is stable)
                _, final, lr, hist, net = min(trials, key=lambda r: r[:3])
                grid = {str(r[2]): {"final_train_loss": r[1], "stable": not r[0]}
                        for r in trials}
                run = {
                    "width": width, "readout": readout, "rule": rule,
                    "n_resistors": int(net.n_resistors),
                    "n_measured": int(net.n_resistors if mask is None else mask.sum()),
                    "lr": lr, "by_lr": grid,
                    "initial_train_loss": init_train, "initial_test_loss": init_test,
                    "final_train_loss": final, "final_test_loss": mse(net, Xt, yt),
                    "stable": stable(hist),
                    "max_step_increase": max_increase(hist),
                    "history": [float(h) for h in hist],
                }
                results["runs"].append(run)
                print(f"H={width:2d} readout={readout:15s} {rule:7s} lr={lr:.0e}: "
                      f"train {init_train:.2e} -> {final:.2e}, test -> "
                      f"{run['final_test_loss']:.2e} ({run['n_measured']}/"
                      f"{run['n_resistors']} measured)")
    results["seconds"] = time.time() - t_start
    return results


def plot(results: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ep": "C0", "coupled": "C1", "exact": "k"}
    styles = {"all": "-", "output-adjacent": "--"}
    fig, axes = plt.subplots(1, len(results["widths"]), figsize=(11, 5.0), sharey=True)
    for ax, width in zip(axes, results["widths"]):
        for run in results["runs"]:
            if run["width"] != width:
                continue
            ax.semilogy(run["history"], color=colors[run["rule"]],
                        ls=styles[run["readout"]], lw=1.6 if run["rule"] != "exact" else 1.0,
                        label=f"{RULE_LABEL[run['rule']]}, {run['readout']}")
        n_all = max(r["n_resistors"] for r in results["runs"] if r["width"] == width)
        n_adj = min(r["n_measured"] for r in results["runs"] if r["width"] == width)
        ax.set_title(f"H = {width} hidden nodes: {n_adj} of {n_all} resistors "
                     "output-adjacent", fontsize=10)
        ax.set_xlabel("learning step (full batch)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("training loss ½ mean (v − y)²")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Readout at all resistors (solid) vs only output-adjacent ones (dashed); "
                 "EP and exact overlap", fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    RESULTS.mkdir(exist_ok=True)
    res = main()
    (RESULTS / "lin_readout_only.json").write_text(json.dumps(res, indent=1))
    plot(res, RESULTS / "lin_readout_only.png")
    print(f"wrote {RESULTS / 'lin_readout_only.png'} and .json ({res['seconds']:.0f} s)")
