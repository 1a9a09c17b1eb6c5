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


def unit_sigma_var(eps: float = 1e-5) -> float:
    """A float32 running_var with float32(var + eps) == 1 exactly: the module's alpha is then its weight and its beta
    its bias (running_mean 0), bit for bit."""
    v = np.float32(1.0) - np.float32(eps)
    while np.float32(v + np.float32(eps)) != np.float32(1.0):
        v = np.nextafter(v, np.float32(2), dtype=np.float32)
    return float(v)


def run_batchnorm(layer, params: dict, values) -> np.ndarray:
    """Raw outputs (int64, (C, n)) of the released QuantizedBatchNorm1d in ``.eval()`` holding ``layer``'s raw alpha
    (``weight``) and beta (``bias``) exactly, on every raw input ``n`` in ``values`` (at ``layer.fmt_in``), each
    channel: the torch side of a proof of a float32 BatchNorm (``layer.float32_reproduced``), value by value.

    The module is built with forced q per tensor (input, w, bias, act) and the layer's roundtypes, running_var
    :func:`unit_sigma_var` and running_mean 0, so its fused alpha / beta are the layer's raw values times 2**-q;
    a bias on fmt_w's grid shares quantizer_w (Qualia's default), any other gets its own bias quantizer."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from qualia_core.learningmodel.pytorch.layers.quantized_layers1d import QuantizedBatchNorm1d
    except ImportError as e:  # pragma: no cover - the CI installs it
        raise QuantizerError(f"qualia-core is not importable ({e}): install the test extras") from None
    rnd = {k: QUALIA_ROUND[str(v)] for k, v in (("in", layer.round_in), ("out", layer.round_out))}
    fw, fb, fi, fo = layer.fmt_w, layer.fmt_b, layer.fmt_in, layer.fmt_out
    if fw.bits != fi.bits or fo.bits != fi.bits or (fb is not None and fb.bits != fi.bits):
        raise QuantizerError("run_batchnorm: Qualia's quantizers of one layer share bits; the formats differ")
    qp = {"quant_enable": True, "LSQ": False, "quantype": "fxp", "range_setting": "minmax", "is_asymmetric": False,
          "bits": fi.bits, "roundtype": rnd["out"], "force_q": fo.frac,
          "input": {"force_q": fi.frac, "roundtype": rnd["in"]}, "w": {"force_q": fw.frac, "roundtype": "nearest"}}
    if fb is not None and fb != fw:
        qp["bias"] = {"force_q": fb.frac, "roundtype": "nearest"}
    C = layer.num_features
    m = QuantizedBatchNorm1d(C, quant_params=qp)
    bias = np.zeros(C) if fb is None else np.ldexp(np.asarray(params["bias"], np.float64), -fb.frac)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.ldexp(np.asarray(params["weight"], np.float64), -fw.frac)
                                        .astype(np.float32)))
        m.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        m.running_mean.zero_()
        m.running_var.fill_(unit_sigma_var(m.eps))
    m.eval()
    values = np.asarray(values, np.int64)
    x = np.broadcast_to(values, (1, C, values.size))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = m(torch.from_numpy(np.ldexp(x.astype(np.float64), -fi.frac).astype(np.float32))).numpy()
    out = np.ldexp(y.astype(np.float64), fo.frac)[0]
    raw = np.rint(out)
    if not np.array_equal(raw, out):
        raise QuantizerError("run_batchnorm: the module returned a value off its output grid")
    return raw.astype(np.int64)
