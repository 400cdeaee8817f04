"""Deep resistive networks (DRNs): layered resistor-diode classifiers.

:class:`DeepResistiveNetwork` builds, as an ordinary :class:`~ohmflow.Network`, the
architecture of Kendall et al. (2020) and Scellier (2024):

- **inputs**: each feature ``x_k`` drives a pair of voltage sources, ``+a·x_k`` and
  ``−a·x_k`` (``a`` the *input gain*), so that a passive network with positive
  conductances realises signed weights: the net effect of feature ``k`` on a node is
  proportional to ``g⁺ − g⁻``. ``layer_sizes[0]`` counts these input *nodes*
  (twice the features), as in the papers' "1568-1024-10" for 784 MNIST pixels;
- **weights**: dense programmable resistors between successive layers, initialised
  uniformly in ``g_init`` and kept in ``[g_min, g_max]`` by the trainer;
- **nonlinearity**: each hidden node has a diode from a bias source at ``clip[0]``
  (anode) to the node (cathode), so the node cannot fall below ``clip[0]`` — a
  ReLU-like unit; with ``double_diode=True`` a second diode from the node to a
  source at ``clip[1]`` also bounds it from above (a hard sigmoid). The diodes
  are ideal (default, the setting of Scellier's exact simulator), ReLU diodes
  (ideal + on-conductance) or Shockley junctions;
- **biases**: every hidden and output node has a bias resistor to a source at
  ``+bias_voltage`` and another to ``−bias_voltage`` (signed biases from positive
  conductances, as for the inputs);
- **amplification** (optional, ``layer_gain``): each hidden node drives the next
  weight layer through an ideal transformer of ratio ``a`` (its secondary sits at
  ``a·v``; the primary draws ``a`` times the secondary's current), so signals are
  amplified forward and error currents backward, as Kendall et al.'s bidirectional
  amplifiers are meant to, while the network stays reciprocal and its equilibrium
  the minimiser of the co-content ``½ Σ g (a v_i − v_j)² + …``;
- **outputs**: the last layer's nodes (no diodes) read against ground, or
  differential pairs ``(v⁺, v⁻)`` with ``outputs="differential"``; their voltages are
  the class scores.

At equilibrium each free node sits at the conductance-weighted mean of its
neighbours' voltages (clipped by its diodes), so signals are bounded by the input
voltages; the input gain sets the voltage scale of the whole network.

Initialisation
--------------
Conductances are drawn uniformly from ``g_init = (lo, hi)``; the default
``(0.1, 1.0) × g_ref`` keeps every conductance well inside the trainable range
``[g_min, g_max] = (1e-3, 10) × g_ref`` and makes ``g⁺ − g⁻`` a zero-mean signed
weight. Because a node's voltage is a *normalised* weighted sum (divided by the
node's total conductance, about ``fan_in × mean(g)``), the effective weight of an
input is ``≈ (g⁺ − g⁻) / (fan_in · 0.55 hi)``, of order ``1/fan_in``; summed over
``n`` features of random sign this gives hidden voltages of order ``gain / √n``
times a small constant (measured: std 0.37 V at gain 30 on the 8x8 digits), so
the default input gain grows as ``√n`` (``3.75 √n``: 30 for 64 features, 105 for
784) and hidden units start at a few tenths of a volt, about half of them
conducting, whatever the input size. The unit
``g_ref`` (default 1 mS, i.e. resistances of 1-10 kΩ) only sets the physical
scale: with ideal diodes the operating point is unchanged if every conductance
is scaled, and :class:`ohmflow.train.Trainer` expresses its learning rate and
nudging strength in units of ``g_ref``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._core import InvalidNetworkError
from .diodes import IdealDiode, ReluDiode, ShockleyDiode
from .network import GROUND, Network

__all__ = ["DeepResistiveNetwork", "PRESETS", "Preset", "build", "presets",
           "training_defaults"]


@dataclass(frozen=True)
class Preset:
    """A named architecture with the builder options that go with it."""

    layer_sizes: tuple[int, ...]
    options: dict = field(default_factory=dict)
    description: str = ""
    train: dict = field(default_factory=dict)
    """Training options tuned for this preset (:class:`ohmflow.train.TrainConfig` fields)."""


# Tuned on the digits (see ohmflow.train): EP, squared error, batch 4, lr 20 g_ref²
# decaying 0.9 per epoch, beta 0.1 g_ref, 12 epochs.
_DIGITS_TRAIN = {"epochs": 12, "batch_size": 4, "lr": 20.0, "lr_decay": 0.9, "beta": 0.1}


def _mnist_train(hidden: Sequence[int]) -> dict:
    """Training options for MNIST-size presets. Tuned for DRN-1H on Fashion-MNIST
    (88.58 % test after 30 epochs, see the README): per-layer rates proportional to
    the width (measured exact-gradient magnitudes scale as 1/width), batch 128,
    decay 0.95 per epoch. Batch 32 with half the rates reached 88.49 % in 20 epochs
    at 1.4 times the cost per epoch (the update of the 1.6M input conductances is
    paid once per step); batch 256 with twice these rates, 88.31 % after 40. Other
    widths are scaled, not tuned."""
    h = hidden[0]
    lr = [round(0.9 * h, 6)] + [round(0.45 * h, 6)] * (len(hidden) - 1) \
        + [round(0.21 * h, 6)]
    return {"epochs": 30, "batch_size": 128, "lr": lr, "lr_decay": 0.95, "beta": 0.1,
            "eval_train": False}


_DIFF = {"outputs": "differential"}

PRESETS: dict[str, Preset] = {
    # The default for scikit-learn's 8x8 digits: 64 pixels as 128 ± input nodes.
    "drn-digits": Preset((128, 256, 10), _DIFF,
                         "8x8 digits: 64 features (128 ± inputs), 256 ideal-diode units, "
                         "10 differential outputs", _DIGITS_TRAIN),
    "drn-digits-s": Preset((128, 64, 10), _DIFF,
                           "small 8x8 digits network (tests, quick runs)",
                           {**_DIGITS_TRAIN, "lr": 5.0}),
    # Scellier (2024), MNIST-size inputs (784 pixels as 1568 ± inputs).
    "drn-xs": Preset((1568, 100, 10), _DIFF,
                     "Scellier's DRN-XS, the size of Kendall et al.'s network",
                     _mnist_train([100])),
    "drn-1h": Preset((1568, 1024, 10), _DIFF, "Scellier's DRN-1H", _mnist_train([1024])),
    "drn-2h": Preset((1568, 1024, 1024, 10), _DIFF, "Scellier's DRN-2H",
                     _mnist_train([1024, 1024])),
    "drn-3h": Preset((1568, 1024, 1024, 1024, 10), _DIFF, "Scellier's DRN-3H",
                     _mnist_train([1024, 1024, 1024])),
    "drn-xl": Preset((1568, 32768, 10), _DIFF, "Scellier's DRN-XL", _mnist_train([32768])),
}
"""Named architectures; ``build(name, **overrides)`` makes one."""


def presets() -> list[str]:
    """Names of the presets."""
    return sorted(PRESETS)


def training_defaults(name: str) -> dict:
    """The tuned training options of a preset (empty for layer sizes or unknown names)."""
    p = PRESETS.get(name.lower())
    return dict(p.train) if p is not None else {}


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.replace("x", "-").split("-"))
    except ValueError:
        raise InvalidNetworkError(f"bad layer sizes {text!r}: expected e.g. '128-256-10'") from None
    return sizes


def build(name: str, n_features: int | None = None, n_classes: int | None = None,
          **overrides: Any) -> DeepResistiveNetwork:
    """A DRN from a preset name, or from layer sizes ``"128-256-10"`` / ``"drn:128-256-10"``.

    With ``n_features`` / ``n_classes`` given, the first and last layer sizes are
    adapted to the data (``2 × n_features`` input nodes, ``n_classes`` outputs),
    so e.g. ``drn-1h`` can be built for 8x8 digits.
    """
    key = name.lower()
    if key in PRESETS:
        p = PRESETS[key]
        sizes, opts = list(p.layer_sizes), dict(p.options)
    elif key[:1].isdigit() or key.startswith("drn:"):
        sizes, opts = list(_parse_sizes(key.split(":", 1)[-1])), {}
    else:
        raise InvalidNetworkError(f"unknown model {name!r}: choose one of {presets()} "
                                  "or give layer sizes like '128-256-10'")
    if n_features is not None:
        sizes[0] = 2 * int(n_features)
    if n_classes is not None:
        sizes[-1] = int(n_classes)
    opts.update({k: v for k, v in overrides.items() if v is not None})
    model = DeepResistiveNetwork(sizes, **opts)
    model.name = key
    return model


class DeepResistiveNetwork:
    """A layered resistor-diode network (see the module docstring).

    Parameters
    ----------
    layer_sizes : sequence of int
        Input nodes (even: a ± pair per feature), hidden layer sizes, outputs.
    input_gain : float, optional
        Input voltages are ``±input_gain × x``. Default ``3.75 √n_features`` (30 V
        for 64 features, 105 V for 784): hidden voltages then start at a few tenths
        of a volt (see the module docstring) whatever the input size.
    g_init : (lo, hi)
        Uniform initialisation range of every conductance, in units of ``g_ref``.
    g_min, g_max : float
        Bounds of the conductances, in units of ``g_ref`` (used by the trainer).
    g_ref : float
        Conductance unit in siemens.
    diode : {"ideal", "relu", "shockley"} or a diode model
        Hidden-layer nonlinearity. ``"relu"`` uses ``ReluDiode(g_on)`` with
        ``g_on = diode_g_on × g_ref``; ``"shockley"`` a ``ShockleyDiode()`` (its
        knee, about 0.6-0.7 V at these currents, shifts the clip levels by that much).
    double_diode : bool
        Bound hidden nodes from both sides, to ``clip = (lo, hi)`` volts.
    clip : (lo, hi)
        Voltages of the diode bias sources (``hi`` only with ``double_diode``).
    bias_voltage : float
        Bias resistors go to sources at ``±bias_voltage`` (0 disables biases).
    outputs : {"single", "differential"}
        Output nodes read against ground, or pairs read as ``v⁺ − v⁻``.
    layer_gain : float or sequence of float
        Transformer ratio between each hidden layer and the weights it drives (one
        value for all hidden layers, or one per hidden layer); 1 adds no transformer.
    signed_hidden : bool
        Each hidden node also drives the next weight layer through an inverting
        transformer (ratio ``−a``), so hidden-to-hidden weights are signed
        (``g⁺ − g⁻``) as the input weights are; its weight matrix then has
        ``2 n_l`` rows (the ``+a v`` copies first).
    seed : int
        Seed of the initial conductances.

    Attributes
    ----------
    network : Network
        The circuit; its inputs are the ``2 × n_features`` input voltages
        (:meth:`input_voltages` makes them from features).
    layers : list of numpy.ndarray
        Node indices of each layer (input nodes first; a differential output layer
        holds ``[plus..., minus...]``).
    weights : list of numpy.ndarray
        Resistor indices between layer ``l`` and ``l+1``, shape ``(n_l, n_{l+1})``.
    gains : list of float
        Voltage gain of each weight layer (1 for the input layer).
    secondaries : list of numpy.ndarray
        Per weight layer, the nodes its resistors start from: the layer's own nodes,
        or the transformer secondaries where its gain is not 1.
    biases : list of numpy.ndarray
        Bias resistor indices of layer ``l+1`` (to ``+V_b`` and to ``−V_b``),
        shape ``(2, n_{l+1})``; empty if ``bias_voltage == 0``.
    input_nodes : numpy.ndarray
        Shape ``(n_features, 2)``: the (+x, −x) nodes of each feature.
    output_nodes : list
        Output nodes, or ``(plus, minus)`` pairs: the ``outputs=`` of
        :func:`ohmflow.learn.gradient`.
    """

    def __init__(self, layer_sizes: Sequence[int], *, input_gain: float | None = None,
                 g_init: tuple[float, float] = (0.1, 1.0), g_min: float = 1e-3,
                 g_max: float = 10.0, g_ref: float = 1e-3, diode: Any = "ideal",
                 diode_g_on: float = 1000.0, double_diode: bool = False,
                 clip: tuple[float, float] = (0.0, 1.0), bias_voltage: float = 1.0,
                 outputs: str = "single", layer_gain: Any = 1.0,
                 signed_hidden: bool = False, seed: int = 0) -> None:
        sizes = [int(s) for s in layer_sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise InvalidNetworkError(f"layer_sizes needs >= 2 positive sizes, got {sizes}")
        if sizes[0] % 2:
            raise InvalidNetworkError(f"the input layer holds ± pairs: its size must be even, "
                                      f"got {sizes[0]}")
        lo, hi = (float(g) for g in g_init)
        if not (0 < lo <= hi):
            raise InvalidNetworkError(f"g_init must satisfy 0 < lo <= hi, got {g_init}")
        if not (0 < g_min <= lo and hi <= g_max):
            raise InvalidNetworkError(f"need 0 < g_min <= g_init <= g_max, got g_min={g_min}, "
                                      f"g_init={g_init}, g_max={g_max}")
        if outputs not in ("single", "differential"):
            raise InvalidNetworkError("outputs must be 'single' or 'differential'")
        if double_diode and not clip[0] < clip[1]:
            raise InvalidNetworkError(f"clip must be (lo, hi) with lo < hi, got {clip}")
        n_hidden = len(sizes) - 2
        gains = np.asarray(layer_gain, dtype=float).ravel()
        if gains.size == 1:
            gains = np.full(n_hidden, gains[0])
        if gains.size != n_hidden or not np.all(np.isfinite(gains) & (gains != 0)):
            raise InvalidNetworkError(f"layer_gain must be one finite nonzero value or one "
                                      f"per hidden layer ({n_hidden}), got {layer_gain!r}")
        self.gains = [1.0] + [float(a) for a in gains]
        self.signed = [False] + [bool(signed_hidden)] * n_hidden
        self.layer_sizes = tuple(sizes)
        if input_gain is None:
            input_gain = 3.75 * np.sqrt(sizes[0] // 2)
        self.input_gain = float(input_gain)
        self.g_init = (lo, hi)
        self.g_min, self.g_max, self.g_ref = float(g_min), float(g_max), float(g_ref)
        self.double_diode = bool(double_diode)
        self.clip = (float(clip[0]), float(clip[1]))
        self.bias_voltage = float(bias_voltage)
        self.differential = outputs == "differential"
        self.seed = int(seed)
        self.name = "drn:" + "-".join(map(str, sizes))
        self.diode_model = self._diode_model(diode, diode_g_on)
        self._options = {
            "input_gain": self.input_gain, "g_init": list(self.g_init), "g_min": self.g_min,
            "g_max": self.g_max, "g_ref": self.g_ref,
            "diode": diode if isinstance(diode, str) else repr(diode),
            "diode_g_on": float(diode_g_on), "double_diode": self.double_diode,
            "clip": list(self.clip), "bias_voltage": self.bias_voltage, "outputs": outputs,
            "layer_gain": self.gains[1:], "signed_hidden": bool(signed_hidden),
            "seed": self.seed,
        }
        self._build(np.random.default_rng(self.seed))

    # ------------------------------------------------------------ building
    def _diode_model(self, diode: Any, g_on: float) -> Any:
        if isinstance(diode, (IdealDiode, ReluDiode, ShockleyDiode)):
            return diode
        if diode == "ideal":
            return IdealDiode(v_on=0.0)
        if diode == "relu":
            return ReluDiode(g_on=float(g_on) * self.g_ref, v_on=0.0)
        if diode == "shockley":
            return ShockleyDiode()
        raise InvalidNetworkError(f"diode must be 'ideal', 'relu', 'shockley' or a diode "
                                  f"model, got {diode!r}")

    def _source(self, net: Network, volts: float, name: str) -> int:
        if volts == 0.0:
            return GROUND
        node = net.add_node(name)
        net.add_voltage_source(node, volts, name="V" + name)
        return node

    def _build(self, rng: np.random.Generator) -> None:
        sizes = self.layer_sizes
        net = Network()
        nf = sizes[0] // 2
        names = [f"x{k}{s}" for k in range(nf) for s in "+-"]
        inp = net.add_nodes(sizes[0], names)
        for node in inp:
            net.add_input(int(node))
        self.input_nodes = inp.reshape(nf, 2)
        layers = [inp]
        for li, n in enumerate(sizes[1:-1], start=1):
            layers.append(net.add_nodes(n, [f"h{li}_{j}" for j in range(n)]))
        n_out = sizes[-1]
        if self.differential:
            out = net.add_nodes(2 * n_out, [f"o{j}{s}" for s in "+-" for j in range(n_out)])
            self.output_nodes = [(int(out[j]), int(out[n_out + j])) for j in range(n_out)]
        else:
            out = net.add_nodes(n_out, [f"o{j}" for j in range(n_out)])
            self.output_nodes = [int(o) for o in out]
        layers.append(out)
        self.layers = layers

        # Amplifiers: an ideal transformer from each node of a hidden layer (primary,
        # to ground) to a new node (secondary, to ground) that drives the weights.
        self.secondaries = [layers[0]]
        for li, a in enumerate(self.gains[1:], start=1):
            layer = layers[li]
            zeros = np.full(layer.size, GROUND)
            sides = []
            for sign, tag in ((1.0, "'"), (-1.0, "~")):
                if sign < 0 and not self.signed[li]:
                    continue
                if sign * a == 1.0:
                    sides.append(layer)
                    continue
                sec = net.add_nodes(layer.size, [f"h{li}_{j}{tag}" for j in range(layer.size)])
                net.add_transformers(layer, zeros, sec, zeros, np.full(layer.size, sign * a))
                sides.append(sec)
            self.secondaries.append(np.concatenate(sides))

        lo, hi = self.g_init
        self.weights = []
        for a, b in zip(self.secondaries, layers[1:]):
            src = np.repeat(a, b.size)
            dst = np.tile(b, a.size)
            g = rng.uniform(lo, hi, src.size) * self.g_ref
            self.weights.append(net.add_resistors(src, dst, g).reshape(a.size, b.size))

        self.biases = []
        if self.bias_voltage != 0.0:
            vp = self._source(net, self.bias_voltage, "bias+")
            vm = self._source(net, -self.bias_voltage, "bias-")
            for layer in layers[1:]:
                src = np.concatenate([np.full(layer.size, vp), np.full(layer.size, vm)])
                dst = np.concatenate([layer, layer])
                g = rng.uniform(lo, hi, src.size) * self.g_ref
                self.biases.append(net.add_resistors(src, dst, g).reshape(2, layer.size))
        else:
            self.biases = [np.zeros((2, 0), dtype=np.int64) for _ in layers[1:]]

        hidden = np.concatenate(layers[1:-1]) if len(layers) > 2 else np.zeros(0, np.int64)
        self.diodes = np.zeros(0, dtype=np.int64)
        if hidden.size:
            low = self._source(net, self.clip[0], "clip-lo")
            d = [net.add_diodes(np.full(hidden.size, low), hidden, self.diode_model)]
            if self.double_diode:
                high = self._source(net, self.clip[1], "clip-hi")
                d.append(net.add_diodes(hidden, np.full(hidden.size, high), self.diode_model))
            self.diodes = np.concatenate(d)
        self.network = net

    # ------------------------------------------------------------- groups
    @property
    def n_features(self) -> int:
        return self.layer_sizes[0] // 2

    @property
    def n_classes(self) -> int:
        return self.layer_sizes[-1]

    @property
    def options(self) -> dict:
        """The builder options (JSON-serialisable)."""
        return dict(self._options)

    def parameter_groups(self) -> list[np.ndarray]:
        """Resistor indices trained together: layer ``l``'s weights and the biases of
        layer ``l+1``, one group per weight layer (for per-layer learning rates)."""
        return [np.concatenate([w.ravel(), b.ravel()])
                for w, b in zip(self.weights, self.biases)]

    @property
    def conductances(self) -> np.ndarray:
        return self.network.conductances

    @conductances.setter
    def conductances(self, g: Any) -> None:
        self.network.conductances = g

    def weight_matrix(self, layer: int) -> np.ndarray:
        """Conductances between layer ``layer`` and ``layer + 1``, shape (n_l, n_{l+1})."""
        return self.network.conductances[self.weights[layer]]

    # ----------------------------------------------------------- inference
    def input_voltages(self, X: Any) -> np.ndarray:
        """Input source voltages ``(+a x, −a x)`` per feature, shape (batch, 2 n_features)."""
        x = np.asarray(X, dtype=float)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InvalidNetworkError(f"expected features of shape (batch, {self.n_features}), "
                                      f"got {np.shape(X)}")
        v = np.empty((x.shape[0], 2 * x.shape[1]))
        v[:, 0::2] = self.input_gain * x
        v[:, 1::2] = -self.input_gain * x
        return v

    def output_voltages(self, voltages: np.ndarray) -> np.ndarray:
        """Class scores from node voltages (batch, n_nodes): v_o, or v⁺ − v⁻."""
        v = np.atleast_2d(voltages)
        out = self.layers[-1]
        if self.differential:
            n = self.n_classes
            return v[:, out[:n]] - v[:, out[n:]]
        return v[:, out]

    def dense(self) -> Any:
        """The dense fast path (:class:`ohmflow._dense.DenseDRN`) synced with the present
        conductances, or None if the network was changed after it was built."""
        from ._dense import DenseDRN

        view = getattr(self, "_dense_view", None)
        try:
            if view is None:
                view = self._dense_view = DenseDRN(self)
            else:
                view.sync()
        except InvalidNetworkError:
            return None
        return view

    def _use_dense(self, solve_kwargs: dict) -> Any:
        keys = set(solve_kwargs) - {"threads"}
        if keys - {"method"} or solve_kwargs.get("method", "auto") not in ("auto", "dense"):
            return None
        return self.dense()

    def solve(self, X: Any, *, batch_size: int = 4096, **solve_kwargs: Any) -> np.ndarray:
        """Node voltages for features X (batch, n_features), solved in chunks."""
        x = np.atleast_2d(np.asarray(X, dtype=float))
        parts = []
        for s in range(0, x.shape[0], batch_size):
            sol = self.network.solve(self.input_voltages(x[s:s + batch_size]), **solve_kwargs)
            parts.append(np.atleast_2d(sol.voltages))
        if not parts:
            return np.zeros((0, self.network.n_nodes))
        return np.concatenate(parts)

    def predict(self, X: Any, *, batch_size: int = 4096, **solve_kwargs: Any) -> np.ndarray:
        """Class scores (batch, n_classes): the output voltages at equilibrium.

        ``solve_kwargs`` go to :meth:`Network.solve` (``method=``, ``threads=``);
        with ``method="auto"`` (default) the dense fast path (:meth:`dense`) solves
        the same equations as matrix products.
        """
        x = np.atleast_2d(np.asarray(X, dtype=float))
        parts = []
        dense = self._use_dense(solve_kwargs)
        for s in range(0, x.shape[0], batch_size):
            xin = self.input_voltages(x[s:s + batch_size])
            if dense is not None:
                parts.append(dense.readout(dense.solve(xin, threads=solve_kwargs.get("threads"))))
                continue
            sol = self.network.solve(xin, **solve_kwargs)
            parts.append(self.output_voltages(sol.voltages))
        if not parts:
            return np.zeros((0, self.n_classes))
        return np.concatenate(parts)

    def accuracy(self, X: Any, y: Any, **kwargs: Any) -> float:
        """Fraction of samples whose highest output voltage is their label."""
        y = np.asarray(y).reshape(-1)
        if y.size == 0:
            return float("nan")
        return float(np.mean(np.argmax(self.predict(X, **kwargs), axis=1) == y))

    def __repr__(self) -> str:
        return (f"DeepResistiveNetwork({'-'.join(map(str, self.layer_sizes))}, "
                f"input_gain={self.input_gain}, diode={self.diode_model}, "
                f"resistors={self.network.n_resistors})")
