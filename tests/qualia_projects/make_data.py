"""A tiny data set in the MNIST IDX format that qualia_core's ``MNIST`` loader reads (any image size, float32).

``write(directory, ...)`` writes ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``: images U(0, scale) as IDX float32 (type 0x0D) of
shape (n, height, width), labels uint8 in [0, classes) with every class present. The loader adds the channel
axis ((n, height, width, 1)); ``Reshape2DTo1D`` turns that into (n, height * width, 1) for 1-D models.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

FLOAT32, UINT8 = 0x0D, 0x08


def write_idx(path: Path, array: np.ndarray, code: int) -> None:
    a = np.ascontiguousarray(array)
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, code, a.ndim))
        f.write(struct.pack(">" + "I" * a.ndim, *a.shape))
        f.write(a.astype(a.dtype.newbyteorder(">")).tobytes())


def write(directory, *, height: int = 8, width: int = 8, n_train: int = 64, n_test: int = 16, classes: int = 4,
          scale: float = 2.0, seed: int = 0) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for part, n in (("train", n_train), ("t10k", n_test)):
        x = rng.random((n, height, width), dtype=np.float32) * np.float32(scale)
        y = rng.integers(0, classes, n).astype(np.uint8)
        y[:classes] = np.arange(classes, dtype=np.uint8)
        write_idx(d / f"{part}-images-idx3-ubyte", x, FLOAT32)
        write_idx(d / f"{part}-labels-idx1-ubyte", y, UINT8)
    return d
