"""The real Qualia ``Quantizer`` on every value of a range: the torch side of a whole-network proof.

A torch-eval layer quantizes float32 values with qualia-core's ``Quantizer`` (quantype ``fxp``, not LSQ,
symmetric): ``clamp(round(y / 2**-q))``. :func:`run_quantizer` builds the released class with the layer's
bits, ``force_q`` and roundtype, in ``.eval()`` (its running range is then never updated), and applies it to
``float32(n * 2**-frac)`` for every integer ``n`` given; those floats are exact (``|n| <= 2**24``,
checked). It returns the raw results, ``out * 2**q``, checked to be integers.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import QuantizerError

QUALIA_ROUND = {"RND": "nearest", "TRN": "floor", "TRN_INF": "ceil"}  # golden -> Qualia roundtype
CHUNK = 1 << 22
F32_EXACT = 1 << 24



def quantizer(bits: int, q: int, mode: str):
    """The released ``qualia_core`` Quantizer with ``bits``, ``force_q = q`` and golden's rounding ``mode``."""
    if mode not in QUALIA_ROUND:
        raise QuantizerError(f"round: {mode} is not a Qualia roundtype (nearest=RND, floor=TRN, ceil=TRN_INF)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from qualia_core.learningmodel.pytorch.layers.Quantizer import Quantizer
    except ImportError as e:  # pragma: no cover - the CI installs it
        raise QuantizerError(f"qualia-core is not importable ({e}): install the test extras") from None
    qz = Quantizer(quant_enable=True, LSQ=False, bits=int(bits), force_q=int(q), range_setting="minmax",
                   roundtype=QUALIA_ROUND[mode], tensor_type="act", quantype="fxp", is_asymmetric=False)
    return qz.eval()


def run_quantizer(*, frac: int, bits: int, q: int, mode: str, values) -> np.ndarray:
    """Raw outputs (int64) of the real Quantizer(bits, force_q=q, mode) on ``float32(n * 2**-frac)``, n in values."""
    import torch

    values = np.asarray(values, np.int64)
    if values.size and np.abs(values).max() > F32_EXACT:
        raise QuantizerError("values: some are integers float32 cannot represent exactly (|n| > 2**24)")
    qz = quantizer(bits, q, mode)
    parts = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Quantizer calls torch.tensor(tensor): a UserWarning
        for a in range(0, len(values), CHUNK):
            n = values[a: a + CHUNK]
            x = torch.from_numpy(np.ldexp(n.astype(np.float64), -frac).astype(np.float32))
            y = np.ldexp(qz(x).numpy().astype(np.float64), q)
            raw = np.rint(y)
            if not np.array_equal(raw, y):
                raise QuantizerError(f"the Quantizer returned a value off its 2**-{q} grid")
            parts.append(raw.astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
