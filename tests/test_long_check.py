"""The deployment check (issue 19 item 4): whether a layer's LONG accumulator can wrap on some input of its format,
worst case from its real weights, and the smallest safe LONG width; shown by ``Network.describe()``.

Held to the simulator on EVERY input of a small layer's format: at the width ``long_bits`` says, no input wraps;
one bit narrower, some input does (the extremes are reached, so the check is tight, not just safe)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.network import Network, Node, load
from golden.network.layers import Conv, Linear
from golden.spec import QFormat

NETS = "vectors/networks"


def _every_input(fmt: QFormat, n: int) -> np.ndarray:
    vals = range(fmt.min, fmt.max + 1)
    return np.array(list(itertools.product(vals, repeat=n)), np.int64)


def _acc_wraps(net: Network, x: np.ndarray) -> int:
    tr = net.simulate(x.reshape(x.shape[0], 1, *net.input_shape))
    return sum(lt.overflow.get("acc", 0) for lt in tr.layers.values())


@st.composite
def linears(draw):
    n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    fin = QFormat(draw(st.integers(2, 4)), draw(st.integers(0, 3)))
    fw = QFormat(8, draw(st.integers(0, 6)))
    bias = draw(st.booleans())
    fb = QFormat(8, draw(st.integers(0, 8))) if bias else None
    tmp = draw(st.one_of(st.none(), st.integers(fw.frac, fw.frac + 3)))
    if tmp is not None and bias:
        tmp = max(tmp, fb.frac - fin.frac)
    w = np.array(draw(st.lists(st.integers(fw.min, fw.max), min_size=n_in * n_out, max_size=n_in * n_out)),
                 np.int64).reshape(n_out, n_in)
    params = {"weight": w}
    if bias:
        params["bias"] = np.array(draw(st.lists(st.integers(fb.min, fb.max), min_size=n_out, max_size=n_out)),
                                  np.int64)
    return fin, fw, fb, tmp, params


def _linear_net(fin, fw, fb, tmp, params, acc_bits):
    n_out, n_in = params["weight"].shape
    layer = Linear(in_shape=(n_in,), fmt_src=fin, fmt_in=fin, fmt_out=QFormat(8, 0), fmt_w=fw, fmt_b=fb,
                   tmp_frac=tmp, in_features=n_in, out_features=n_out, acc_bits=acc_bits, acc_overflow="wrap")
    return Network((n_in,), fin, [Node("fc", layer)], {"fc": params})


@settings(max_examples=60, deadline=None)
@given(linears())
def test_the_extremes_are_exact_and_long_bits_never_wraps(case):
    """Over every input of the format: the extremes are the exact accumulator's (plus the rounding addend), and a
    LONG of ``long_bits`` gives every output exactly as an unbounded accumulator does, with no wrap."""
    fin, fw, fb, tmp, params = case
    exact = _linear_net(fin, fw, fb, tmp, params, 64)
    layer = exact["fc"].layer
    x = _every_input(fin, params["weight"].shape[1])
    F = layer.acc_frac
    acc = (x @ params["weight"].T) << (F - fin.frac - fw.frac)
    if fb is not None:
        acc = acc + (params["bias"] << (F - fb.frac))  # F >= q_b here: the bias shifts left, exactly
    assert layer.acc_extremes(params) == (int(acc.min()), int(acc.max()) + layer.half_lsb())
    bits = max(layer.long_bits(params), 2)
    tight = _linear_net(fin, fw, fb, tmp, params, bits)
    assert _acc_wraps(tight, x) == 0
    shaped = x.reshape(x.shape[0], 1, -1)
    assert np.array_equal(tight.simulate(shaped).out, exact.simulate(shaped).out)


def test_a_conv_layer_is_bounded_by_its_full_kernel():
    fin, fw = QFormat(3, 0), QFormat(4, 2)
    w = np.array([[[[3, -4], [7, -8]]]], np.int64)  # (O=1, I=1, 2, 2)
    conv = Conv(in_shape=(1, 2, 2), fmt_src=fin, fmt_in=fin, fmt_out=QFormat(8, 2), fmt_w=fw, dims=2,
                in_channels=1, out_channels=1, kernel=(2, 2), stride=(1, 1), padding=(0, 0), acc_bits=64)
    lo, hi = conv.acc_extremes({"weight": w})
    # over every input of Q3.0 (at F = q_out: no rounding addend): the largest sum is 3*3 + (-4)(-4) + 7*3 +
    # (-8)(-4) = 78, the least 3(-4) + (-4)3 + 7(-4) + (-8)3 = -76
    x = _every_input(fin, 4).reshape(-1, 1, 2, 2)
    sums = np.einsum("nchw,ochw->no", x, w)
    assert (lo, hi) == (int(sums.min()), int(sums.max())) == (-76, 78)


@pytest.mark.parametrize("name, wraps", [
    ("codegen-smlp-lif8", {"layers.fc1"}),
    ("codegen-scnn2d-lif8", {"layers.conv1", "layers.conv2", "layers.fc1"}),
    ("codegen-sresnet1d-if16", {"conv1", "layers.0.0.conv1", "layers.0.0.conv2"}),
])
def test_the_corpus_networks_name_the_layers_whose_long_can_wrap(name, wraps):
    net = load(f"{NETS}/{name}/network")
    checks = net.long_check()
    assert {c.name for c in checks if c.wraps} == wraps
    assert all(c.safe_width >= c.bits and c.safe_width in (16, 32, 64) for c in checks)
    text = net.describe()
    for c in checks:
        assert (f"MAY WRAP on inputs of its format (worst case needs {c.bits} bits)" in text) == c.wraps
    assert text.count("never wraps") == sum(not c.wraps for c in checks)


def test_a_torch_eval_network_has_no_long_to_check():
    net = load("golden/data/scnn1d_lif8")  # torch sums in float32: golden's accumulator is exact (64 bits)
    assert net.long_check() == [] and "LONG" not in net.describe()
