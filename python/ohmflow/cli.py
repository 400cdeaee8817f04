"""Command line: ``ohmflow train`` (the default), ``ohmflow demo``, ``ohmflow solve NETLIST``
and ``ohmflow study asymmetry``.

``ohmflow train`` builds a deep resistive network, trains it with Equilibrium
Propagation on a data set (8x8 digits by default) and prints its test accuracy;
``--json`` writes the metrics and their history, ``--plot`` the learning curves.
``ohmflow study asymmetry`` trains the same network with ideal devices and with
analog SGD, Tiki-Taka and SHD on asymmetric soft-bounds devices.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    import ohmflow as of

    print("ohmflow demo: DC operating points of resistor-diode networks\n")
    # 1. A half-wave rectifier stage with a Shockley diode, batched over inputs.
    net = of.Network()
    vin, out = net.add_node("in"), net.add_node("out")
    net.add_input(vin)
    net.add_diode(vin, out, of.ShockleyDiode(i_s=1e-14, n=1.0), name="D1")
    net.add_resistor(out, of.GROUND, resistance=1e3, name="Rload")
    x = np.linspace(-2.0, 2.0, 9).reshape(-1, 1)
    sol = net.solve(x)
    print("rectifier (1N-like diode into 1 kΩ):")
    for xi, vo, i in zip(x[:, 0], sol.voltage("out"), sol.current("D1")):
        print(f"  v_in = {xi:+.2f} V   v_out = {vo:+.6f} V   i_D = {i:+.6e} A")
    print(f"  largest KCL residual: {np.max(sol.kcl_residual):.2e} A\n")

    # 2. A random 2D lattice with 10% of its edges given ideal diodes.
    n = args.size
    rng = np.random.default_rng(args.seed)
    lat = of.Network()
    idx = lat.add_nodes(n * n).reshape(n, n)
    src = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    dst = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    is_diode = rng.random(src.size) < 0.1
    lat.add_resistors(src, dst, rng.uniform(0.5e-3, 2e-3, src.size))
    lat.add_diodes(src[is_diode], dst[is_diode], of.IdealDiode(v_on=0.0))
    lat.add_voltage_source(int(idx[0, 0]), 1.0)
    lat.add_voltage_source(int(idx[-1, -1]), -1.0)
    t = time.perf_counter()
    s = lat.solve()
    dt = time.perf_counter() - t
    on = int(np.sum(s.diode_currents > 0))
    print(f"{n}x{n} lattice: {lat.n_resistors} resistors, {lat.n_diodes} ideal diodes")
    print(f"  solved in {dt:.3f} s ({s.iterations} Newton iterations, "
          f"{s.factorizations} factorizations)")
    print(f"  {on} diodes conduct; KCL residual {s.kcl_residual:.2e} A; "
          f"voltages in [{s.voltages.min():+.4f}, {s.voltages.max():+.4f}] V")
    return 0


def _solve(args: argparse.Namespace) -> int:
    import ohmflow as of

    net = of.read_spice(args.netlist)
    sol = net.solve(threads=args.threads)
    print(f"* operating point of {args.netlist}")
    for name, v in zip(net.node_names[1:], sol.voltages[1:]):
        print(f"v({name}) = {v:.15g}")
    for name, i in zip(net.voltage_source_names, np.atleast_1d(sol.source_currents)):
        print(f"i({name}) = {i:.15g}")
    return 0


def _floats(text: str) -> object:
    vals = [float(v) for v in text.split(",")]
    return vals[0] if len(vals) == 1 else vals


def _train(args: argparse.Namespace) -> int:
    import json

    from . import datasets, models
    from .train import TrainConfig, Trainer

    log = print if not args.quiet else (lambda s: None)
    data = datasets.load(args.dataset)
    if args.train_subset is not None or args.test_subset is not None:
        data = data.subset(args.train_subset, args.test_subset)
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "lr_decay": args.lr_decay, "rule": args.rule, "loss": args.loss, "beta": args.beta,
        "eta": args.eta, "seed": args.seed, "threads": args.threads, "solver": args.solver,
        "sweeps": args.sweeps,
    }.items() if v is not None}
    if args.no_eval_train:
        overrides["eval_train"] = False
    if args.optimizer is not None:
        overrides["optimizer"] = args.optimizer
    if args.device is not None:
        overrides["device"] = _json_arg(args.device)
    if args.resume and args.checkpoint and os.path.exists(args.checkpoint):
        trainer = Trainer.from_checkpoint(args.checkpoint, **overrides)
        log(f"resuming from {args.checkpoint} at epoch {trainer.state.epoch}")
    else:
        model_opts = {"input_gain": args.input_gain, "seed": args.model_seed,
                      "diode": args.diode, "outputs": args.outputs}
        if args.double_diode:
            model_opts["double_diode"] = True
        if args.rule == "coupled" and args.outputs is None:
            model_opts["outputs"] = "single"  # coupled learning clamps single nodes
        model = models.build(args.model, n_features=data.n_features,
                             n_classes=data.n_classes, **model_opts)
        cfg = TrainConfig(**models.training_defaults(args.model))
        trainer = Trainer(model, cfg, **overrides)
    model, cfg = trainer.model, trainer.config
    log(f"ohmflow train: {data!r}")
    log(f"  model {getattr(model, 'name', '')} {'-'.join(map(str, model.layer_sizes))}: "
        f"{model.network.n_resistors} resistors, {model.network.n_diodes} diodes, "
        f"input gain {model.input_gain:g}")
    log(f"  rule {cfg.rule}, loss {cfg.loss}, {cfg.epochs} epochs, batch {cfg.batch_size}, "
        f"lr {cfg.lr} (decay {cfg.lr_decay:g}), beta {cfg.beta:g}, seed {cfg.seed}")
    t0 = time.perf_counter()
    result = trainer.fit(data, checkpoint=args.checkpoint, resume=args.resume,
                         progress=not args.quiet and not args.no_progress, log=log)
    result["wall_seconds"] = time.perf_counter() - t0
    result["dataset"] = data.name
    print(f"test accuracy: {100 * result['test_accuracy']:.2f}% "
          f"(train {100 * result['train_accuracy']:.2f}%) after {result['epochs']} epochs, "
          f"{result['train_seconds']:.1f} s training, {result['seconds']:.1f} s in all")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        log(f"wrote {args.json}")
    if args.plot:
        _plot(result, args.plot)
        log(f"wrote {args.plot}")
    return 0


def _plot(result: dict, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SystemExit("ohmflow: --plot needs matplotlib (pip install 'ohmflow[plot]')") from e
    h = result["history"]
    ep = [e["epoch"] for e in h]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [100 * e["train_accuracy"] for e in h], "o-", label="train")
    a1.plot(ep, [100 * e["test_accuracy"] for e in h], "s-", label="test")
    a1.set_xlabel("epoch")
    a1.set_ylabel("accuracy (%)")
    a1.grid(alpha=0.3)
    a1.legend()
    a2.plot(ep, [e["loss"] for e in h], "o-", label="training loss (running)")
    a2.plot(ep, [e["test_loss"] for e in h], "s-", label="test loss")
    a2.set_xlabel("epoch")
    a2.set_ylabel("loss")
    a2.set_yscale("log")
    a2.grid(alpha=0.3)
    a2.legend()
    m, c = result["model"], result["config"]
    fig.suptitle(f"{result.get('dataset', '')}: {m.get('name', '')} "
                 f"{'-'.join(map(str, m['layer_sizes']))}, {c['rule']}, "
                 f"test {100 * result['test_accuracy']:.2f}%")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _json_arg(text: str) -> dict:
    """A JSON object given inline or as a file path."""
    import json

    try:
        if text.lstrip().startswith("{"):
            return json.loads(text)
        with open(text) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"ohmflow: cannot read JSON from {text!r}: {e}") from None


def _study(args: argparse.Namespace) -> int:
    import json

    from . import study

    log = print if not args.quiet else (lambda s: None)
    device = dict(study.ASYMMETRIC_DEVICE)
    if args.device:
        device = _json_arg(args.device)
    for key in ("dw_min", "up_down"):
        if getattr(args, key) is not None:
            device[key] = getattr(args, key)
    train = {k: v for k, v in {"rule": args.rule, "lr": args.lr, "batch_size": args.batch_size,
                               "threads": args.threads}.items() if v is not None}
    arms = tuple(a.strip() for a in args.arms.split(",")) if args.arms else study.ARMS
    log(f"ohmflow study asymmetry: {args.dataset}, {args.model}, {args.epochs} epochs, "
        f"seed {args.seed}; device {device}")
    model_options = dict(study.MODEL_OPTIONS)
    if args.g_max is not None:
        model_options["g_max"] = args.g_max
    res = study.asymmetry(args.dataset, model=args.model, epochs=args.epochs, seed=args.seed,
                          model_seed=args.model_seed, device=device, arms=arms,
                          model_options=model_options,
                          train_subset=args.train_subset, test_subset=args.test_subset,
                          log=log, **train)
    print("  ".join(f"{a} {100 * res[a]:.2f}%" for a in arms))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
        log(f"wrote {args.json}")
    if args.plot:
        _plot_study(res, arms, args.plot)
        log(f"wrote {args.plot}")
    return 0


def _plot_study(res: dict, arms: tuple, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SystemExit("ohmflow: --plot needs matplotlib (pip install 'ohmflow[plot]')") from e
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for a in arms:
        h = res["histories"][a]
        a1.plot(range(1, len(h) + 1), [100 * v for v in h], "o-", label=a)
    a1.set_xlabel("epoch")
    a1.set_ylabel("test accuracy (%)")
    a1.grid(alpha=0.3)
    a1.legend()
    a2.bar(list(arms), [100 * res[a] for a in arms], color=["C0", "C1", "C2", "C3"][:len(arms)])
    for i, a in enumerate(arms):
        a2.text(i, 100 * res[a] + 0.5, f"{100 * res[a]:.1f}", ha="center")
    a2.set_ylim(0, 105)
    a2.set_ylabel("final test accuracy (%)")
    d = res["device"]
    fig.suptitle(f"{res['dataset']}, {res['model']}: {d.get('model')} devices, "
                 f"dw_min {d.get('dw_min')}, up_down {d.get('up_down')}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _add_study_parser(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("study", help="studies with imperfect devices (ohmflow study asymmetry)")
    ss = st.add_subparsers(dest="study", required=True)
    a = ss.add_parser("asymmetry", help="ideal devices vs analog SGD, Tiki-Taka and SHD on "
                      "asymmetric soft-bounds devices",
                      description="Train the same deep resistive network (same data, epochs "
                      "and seed) with ideal devices and with analog SGD, Tiki-Taka and SHD on "
                      "asymmetric devices; report the test accuracy of each.")
    a.add_argument("--dataset", default="digits")
    a.add_argument("--model", default="drn-digits-s", help="preset or layer sizes "
                   "(default drn-digits-s, 128-64-10)")
    a.add_argument("--epochs", type=int, default=12)
    a.add_argument("--seed", type=int, default=0, help="minibatch and device seed")
    a.add_argument("--model-seed", type=int, default=0, help="seed of the initial weights")
    a.add_argument("--rule", choices=["ep", "centered-ep", "exact", "coupled"])
    a.add_argument("--lr", type=_floats)
    a.add_argument("--batch-size", type=int)
    a.add_argument("--threads", type=int)
    a.add_argument("--device", help="device settings as JSON (inline or a file); default "
                   "ohmflow.study.ASYMMETRIC_DEVICE")
    a.add_argument("--dw-min", type=float, help="override the device's dw_min")
    a.add_argument("--up-down", type=float, help="override the device's up_down")
    a.add_argument("--g-max", type=float, help="upper conductance bound of the network and "
                   "the devices, in units of g_ref (default 2)")
    a.add_argument("--arms", help="comma-separated subset of ideal,sgd,tiki-taka,shd")
    a.add_argument("--train-subset", type=int)
    a.add_argument("--test-subset", type=int)
    a.add_argument("--json", help="write the accuracies, device settings and histories here")
    a.add_argument("--plot", help="save a PNG of the test accuracies (matplotlib)")
    a.add_argument("-q", "--quiet", action="store_true")
    a.set_defaults(func=_study)


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a deep resistive network (the default command)",
                       description="Train a deep resistive network on a data set and report "
                       "its test accuracy. Unset options take the model's tuned defaults.")
    t.add_argument("--dataset", default="digits",
                   help="digits (default), fashion-mnist, mnist, or a directory of IDX files")
    t.add_argument("--model", default="drn-digits",
                   help="preset (drn-digits, drn-digits-s, drn-xs, drn-1h, drn-2h, drn-3h, "
                   "drn-xl) or layer sizes like 128-256-10; the input and output layers "
                   "adapt to the data")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=_floats, help="learning rate in units of g_ref^2, or one per "
                   "weight layer, comma-separated")
    t.add_argument("--lr-decay", type=float, help="multiply the rates by this every epoch")
    t.add_argument("--rule", choices=["ep", "centered-ep", "exact", "coupled"])
    t.add_argument("--loss", choices=["mse", "cross-entropy"])
    t.add_argument("--beta", type=float, help="EP nudging, in units of g_ref")
    t.add_argument("--eta", type=float, help="coupled learning's clamping factor")
    t.add_argument("--seed", type=int, help="seed of the minibatch order")
    t.add_argument("--model-seed", type=int, help="seed of the initial conductances")
    t.add_argument("--input-gain", type=float)
    t.add_argument("--diode", choices=["ideal", "relu", "shockley"])
    t.add_argument("--double-diode", action="store_true",
                   help="bound hidden nodes from both sides")
    t.add_argument("--outputs", choices=["single", "differential"])
    t.add_argument("--threads", type=int)
    t.add_argument("--solver", choices=["auto", "dense", "direct", "layered"],
                   help="auto: the dense fast path where it applies (default)")
    t.add_argument("--sweeps", type=int,
                   help="fixed coordinate-descent sweeps per phase (default: to tolerance)")
    t.add_argument("--optimizer", choices=["sgd", "analog-sgd", "tiki-taka", "shd"],
                   help="exact updates (sgd, default) or pulsed devices")
    t.add_argument("--device", help="device model of an analog optimizer as JSON (inline or "
                   "a file), e.g. '{\"model\": \"soft-bounds\", \"dw_min\": 0.002}'")
    t.add_argument("--train-subset", type=int, help="train on the first N samples only")
    t.add_argument("--test-subset", type=int, help="test on the first N samples only")
    t.add_argument("--no-eval-train", action="store_true",
                   help="report the running training accuracy instead of a clean pass")
    t.add_argument("--json", help="write metrics, config and history to this JSON file")
    t.add_argument("--plot", help="save learning curves to this PNG file (matplotlib)")
    t.add_argument("--checkpoint", help="write a checkpoint here after every epoch")
    t.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint if it exists")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("-q", "--quiet", action="store_true", help="print the final line only")
    t.set_defaults(func=_train)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ohmflow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    _add_train_parser(sub)
    _add_study_parser(sub)
    d = sub.add_parser("demo", help="build and solve example networks")
    d.add_argument("--size", type=int, default=300, help="lattice side (default 300)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_demo)
    s = sub.add_parser("solve", help="print the operating point of a SPICE netlist")
    s.add_argument("netlist")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=_solve)
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["train", *argv]
    args = parser.parse_args(argv)
    from ._core import OhmflowError

    try:
        return args.func(args)
    except OhmflowError as e:
        print(f"ohmflow: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ohmflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
