"""The 2D lattice the small benches share."""

from __future__ import annotations

import numpy as np
import ohmflow as of


def lattice(side: int, seed: int = 0) -> tuple[of.Network, np.ndarray, np.ndarray,
                                                np.ndarray, np.ndarray]:
    """A side × side lattice of resistors with conductances uniform in [0.5, 2] S.

    Returns (network, node indices as a side × side array, src, dst, conductances).
    """
    rng = np.random.default_rng(seed)
    net = of.Network()
    idx = net.add_nodes(side * side).reshape(side, side)
    src = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    dst = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    g = rng.uniform(0.5, 2.0, src.size)
    net.add_resistors(src, dst, g)
    return net, idx, src, dst, g
