"""Each layer type's Numba kernel equals its plain-Python reference, for arbitrary specs, weights and inputs.

Formats, roundings, overflow policies, accumulator widths (wrapping), strides and
paddings are drawn; the inputs aim at full scale so that saturation and wrap are hit.
"""

import numpy as np
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from golden.network import kernels, ops, reference
from golden.network.layers import (
    ROUNDS,
    Add,
    BatchNorm,
    Conv,
    Flatten,
    GlobalSumPool,
    Identity,
    Linear,
    MaxPool,
    NetworkError,
    Weighted,
)
from golden.spec import Overflow, QFormat, Round

fmts = st.builds(QFormat, st.integers(2, 16), st.integers(-4, 20))
rounds = st.sampled_from(ROUNDS)


def _raw(draw, fmt, shape):
    edge = st.sampled_from([fmt.min, fmt.max, 0, -1, 1])
    vals = draw(st.lists(st.one_of(st.integers(fmt.min, fmt.max), edge), min_size=int(np.prod(shape)),
                         max_size=int(np.prod(shape))))
    return np.array(vals, np.int64).reshape(shape)


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["Linear", "Conv1d", "Conv2d", "BatchNorm", "MaxPool1d", "MaxPool2d", "Add",
                                 "GlobalSumPool", "Flatten", "Identity"]))
    src, fin, fout = draw(fmts), draw(fmts), draw(fmts)
    common = {"fmt_src": src, "fmt_in": fin, "fmt_out": fout, "round_in": draw(rounds), "round_out": draw(rounds),
                  "out_overflow": draw(st.sampled_from(["saturate", "wrap"]))}
    weighted = {"fmt_w": draw(fmts), "fmt_b": draw(st.one_of(st.none(), fmts)), "acc_bits": draw(st.integers(8, 64))}
    c = draw(st.integers(1, 3))
    params = {}
    if kind == "Linear":
        i, o = draw(st.integers(1, 6)), draw(st.integers(1, 4))
        layer = Linear(in_shape=(i,), in_features=i, out_features=o, **common, **weighted)
    elif kind.startswith("Conv"):
        dims = int(kind[4])
        k = tuple(draw(st.integers(1, 3)) for _ in range(dims))
        pad = tuple(draw(st.integers(0, 2)) for _ in range(dims))
        sp = tuple(draw(st.integers(max(1, kk - 2 * p), 5)) for kk, p in zip(k, pad))
        g = draw(st.sampled_from([1, 1, 2, 3]))  # groups: each group an independent conv on its channel block
        ci, co = (c, draw(st.integers(1, 3))) if g == 1 else (g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2)))
        layer = Conv(in_shape=(ci, *sp), dims=dims, in_channels=ci, out_channels=co, kernel=k, groups=g,
                     stride=tuple(draw(st.integers(1, 2)) for _ in range(dims)), padding=pad, **common, **weighted)
    elif kind == "BatchNorm":
        dims = draw(st.integers(1, 2))
        layer = BatchNorm(in_shape=(c, *[draw(st.integers(1, 4)) for _ in range(dims)]), dims=dims, num_features=c,
                          **common, **weighted)
    elif kind.startswith("MaxPool"):
        dims = int(kind[7])
        k = tuple(draw(st.integers(1, 3)) for _ in range(dims))
        pad = tuple(draw(st.integers(0, kk // 2)) for kk in k)
        sp = tuple(draw(st.integers(max(1, kk - 2 * p), 5)) for kk, p in zip(k, pad))
        layer = MaxPool(in_shape=(c, *sp), dims=dims, kernel=k, stride=tuple(draw(st.integers(1, 2)) for _ in k),
                        padding=pad, **common)
    elif kind == "Add":
        layer = Add(in_shape=(c, draw(st.integers(1, 4))), fmt_src_b=draw(fmts), fmt_in_b=draw(fmts), **common)
    elif kind == "GlobalSumPool":
        dims = draw(st.integers(1, 2))
        layer = GlobalSumPool(in_shape=(c, *[draw(st.integers(1, 4)) for _ in range(dims)]), dims=dims, **common)
    elif kind == "Flatten":
        layer = Flatten(in_shape=(c, draw(st.integers(1, 4))), fmt_src=src, fmt_in=src, fmt_out=src)
    else:
        layer = Identity(in_shape=(c, draw(st.integers(1, 4))), fmt_src=src, fmt_in=fout, fmt_out=fout,
                         round_in=common["round_out"], round_out=common["round_out"])
    for key, (shape, fmt) in layer.param_specs().items():
        params[key] = _raw(draw, fmt, shape)
    rows = draw(st.integers(1, 3))
    xs = [_raw(draw, layer.fmt_src, (rows, *layer.in_shape))]
    if kind == "Add":
        xs.append(_raw(draw, layer.fmt_src_b, (rows, *layer.in_shape)))
    return layer, params, xs


@given(cases())
def test_kernel_equals_reference(case):
    layer, params, xs = case
    got = ops.run(kernels, layer, params, xs, bounds=True)
    want = ops.run(reference, layer, params, xs, bounds=True)
    assert got["out"].shape == (xs[0].shape[0], *layer.out_shape)
    np.testing.assert_array_equal(got["out"], want["out"])
    assert got["overflow"] == want["overflow"]
    if want["f32_exact"] is None:
        assert got["f32_exact"] is None
    else:
        np.testing.assert_array_equal(got["f32_exact"], want["f32_exact"])


def test_reference_rounding_by_hand():
    """The three Qualia roundings and both narrowings, worked out by hand."""
    # -5 / 4 = -1.25: floor -2, ceil -1, floor(-1.25 + 0.5) = -1; 6 / 4 = 1.5 -> 2 (half up); -6 / 4 -> -1
    for impl in (reference, kernels):
        x = np.array([-5, 6, -6, 127], np.int64)
        sat, wrap = Overflow.SATURATE.code, Overflow.WRAP.code
        assert impl.requant(x, 2, Round.TRN.code, 8, sat)[0].tolist() == [-2, 1, -2, 31]
        assert impl.requant(x, 2, Round.TRN_INF.code, 8, sat)[0].tolist() == [-1, 2, -1, 32]
        assert impl.requant(x, 2, Round.RND.code, 8, sat)[0].tolist() == [-1, 2, -1, 32]
        assert impl.requant(x, -1, Round.RND.code, 8, sat)[0].tolist() == [-10, 12, -12, 127]  # saturates 254
        assert impl.requant(x, -1, Round.RND.code, 8, wrap)[0].tolist() == [-10, 12, -12, -2]  # wraps 254


def test_conv_by_hand():
    """A 1-D convolution with padding, stride and bias, against numpy's correlate."""
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (2, 3, 9))
    w = rng.integers(-128, 128, (4, 3, 3))
    b = rng.integers(-128, 128, 4)
    layer = Conv(in_shape=(3, 9), dims=1, in_channels=3, out_channels=4, kernel=(3,), stride=(2,), padding=(1,),
                 fmt_src=QFormat(8, 4), fmt_in=QFormat(8, 4), fmt_out=QFormat(24, 11), fmt_w=QFormat(8, 7),
                 fmt_b=QFormat(8, 7))
    out = ops.run(kernels, layer, {"weight": w, "bias": b}, [x])["out"]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    want = np.zeros((2, 4, 5), np.int64)
    for r in range(2):
        for o in range(4):
            full = sum(np.correlate(xp[r, c], w[o, c], "valid") for c in range(3))
            want[r, o] = full[::2] + (b[o] << 4)
    np.testing.assert_array_equal(out, want)  # F = 11 = q_out: no rounding


@st.composite
def networks(draw):
    """A random small chain: Identity -> Conv1d -> LIF/IF -> MaxPool1d -> Flatten -> Linear, random formats."""
    import golden
    from golden.network import Network, Neuron, Node

    def f():
        return QFormat(draw(st.integers(4, 12)), draw(st.integers(0, 8)))

    c, length, o = draw(st.integers(1, 3)), draw(st.integers(3, 6)), draw(st.integers(1, 3))
    fin, fc, fw = f(), f(), f()
    conv = Conv(in_shape=(c, length), fmt_src=fin, fmt_in=fin, fmt_out=fc, fmt_w=fw, fmt_b=draw(st.one_of(st.none(),
                st.just(fw))), dims=1, in_channels=c, out_channels=o, kernel=(3,), stride=(1,), padding=(1,),
                round_in=draw(rounds), round_out=draw(rounds))
    q_v = draw(st.integers(2, 6))
    spec = golden.torch_eval(draw(st.sampled_from(["LIF", "IF"])), bits=8, q_v=q_v, q_in=fc.frac, bits_in=fc.bits,
                             tau=2.0, v_threshold=1.0, v_reset=draw(st.sampled_from([None, 0.0])))
    neuron = Neuron.of(spec, (o, length), fc)
    pool = MaxPool(in_shape=(o, length), fmt_src=spec.fmt_out, fmt_in=spec.fmt_out, fmt_out=spec.fmt_out, dims=1,
                   kernel=(2,), stride=(2,), padding=(0,))
    n = o * (length // 2)
    flat = Flatten(in_shape=(o, length // 2), fmt_src=spec.fmt_out, fmt_in=spec.fmt_out, fmt_out=spec.fmt_out)
    lin = Linear(in_shape=(n,), in_features=n, out_features=2, fmt_src=spec.fmt_out, fmt_in=f(), fmt_out=f(),
                 fmt_w=f(), fmt_b=f())
    layers = [("id", Identity(in_shape=(c, length), fmt_src=fin, fmt_in=fin, fmt_out=fin)), ("conv", conv),
              ("neuron", neuron), ("pool", pool), ("flat", flat), ("fc", lin)]
    nodes = [Node(name, layer, ("input",) if i == 0 else (layers[i - 1][0],)) for i, (name, layer) in
             enumerate(layers)]
    params = {name: {k: _raw(draw, fmt, shape) for k, (shape, fmt) in layer.param_specs().items()}
              for name, layer in layers if layer.param_specs()}
    net = Network((c, length), fin, nodes, params)
    x = _raw(draw, fin, (2, draw(st.integers(1, 4)), c, length))
    return net, x


@settings(max_examples=25)
@given(networks())
def test_network_kernels_equal_references_and_survive_save_load(case):
    import tempfile
    from pathlib import Path

    from golden.network import Network, reference

    net, x = case
    fast = net.simulate(x, bounds=True)
    slow = net.simulate(x, bounds=True, impl=reference)
    with tempfile.TemporaryDirectory() as tmp:
        back = Network.load(net.save(Path(tmp) / "n")).simulate(x)
    assert back.network.digest() == net.digest()
    for name, lt in fast.layers.items():
        np.testing.assert_array_equal(lt.out, slow.layers[name].out)
        np.testing.assert_array_equal(lt.out, back.layers[name].out)
        assert lt.out.shape == (*x.shape[:2], *lt.layer.out_shape)
    # one sample alone gives the same trace as inside the batch (state reset between samples)
    alone = net.simulate(x[1:2])
    np.testing.assert_array_equal(alone.out, fast.out[1:2])


@st.composite
def _valid_cases(draw):
    """test_network_kernels' layer strategy, minus the specs it can draw but the layer refuses (deep profile:
    e.g. a bias frac more than 40 bits from q_in + q_w)."""
    try:
        return draw(cases())
    except NetworkError:
        reject()


@given(_valid_cases(), st.integers(0, 4), st.integers(8, 64))
def test_c_knobs_kernels_equal_references(case, tmp_extra, acc_bits):
    """The C knobs on the one kernel family: TMP_SCALE_FACTOR (``tmp_frac``, rounded bias), LONG accumulators on
    every layer (Add / GlobalSumPool wrap) and number.hh ``scale`` in LONG (``pre_bits``): Numba = plain Python."""
    layer, params, xs = case
    if isinstance(layer, Flatten):
        return
    changes = {"acc_bits": acc_bits}
    if isinstance(layer, Weighted):
        changes["tmp_frac"] = layer.fmt_w.frac + tmp_extra
    layer = layer.replace(**changes)
    got, want = ops.run(kernels, layer, params, xs), ops.run(reference, layer, params, xs)
    np.testing.assert_array_equal(got["out"], want["out"])
    assert got["overflow"] == want["overflow"]


@st.composite
def _float32_batchnorms(draw):
    """BatchNorm with arith = float32 (torch-eval): drawn formats wide enough that torch's float32 rounds (16-bit
    inputs and weights, fracs up to 30), every roundtype; the layers the formats make impossible are refused."""
    f = st.builds(QFormat, st.integers(2, 16), st.integers(-4, 30))
    dims, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    try:
        layer = BatchNorm(in_shape=(c, *[draw(st.integers(1, 4)) for _ in range(dims)]), dims=dims, num_features=c,
                          fmt_src=draw(f), fmt_in=draw(f), fmt_out=draw(f), fmt_w=draw(f),
                          fmt_b=draw(st.one_of(st.none(), f)), round_in=draw(rounds), round_out=draw(rounds),
                          arith="float32")
    except NetworkError:
        reject()
    params = {key: _raw(draw, fmt, shape) for key, (shape, fmt) in layer.param_specs().items()}
    return layer, params, [_raw(draw, layer.fmt_src, (draw(st.integers(1, 3)), *layer.in_shape))]


@given(_float32_batchnorms())
def test_float32_batchnorm_kernel_equals_reference_and_numpy_float32(case):
    """The float32 BatchNorm on the Numba family = the plain-Python oracle = numpy float32 evaluating torch's
    ``x * alpha + beta`` and ``floor(y * 2**q + 1/2)`` directly (float32 ops, one rounding each)."""
    layer, params, xs = case
    got = ops.run(kernels, layer, params, xs, bounds=True)
    want = ops.run(reference, layer, params, xs, bounds=True)
    np.testing.assert_array_equal(got["out"], want["out"])
    assert got["overflow"] == want["overflow"] and got["f32_exact"] is None and layer.float32_reproduced
    x, _ = ops.quantize(kernels, xs[0], layer.fmt_src, layer.fmt_in, layer.round_in)
    f32 = np.float32
    shape = (1, layer.num_features) + (1,) * layer.dims
    a = np.ldexp(params["weight"].astype(np.float64), -layer.fmt_w.frac).astype(f32).reshape(shape)
    y = np.ldexp(x.astype(np.float64), -layer.fmt_in.frac).astype(f32) * a
    if layer.fmt_b is not None:
        y = y + np.ldexp(params["bias"].astype(np.float64), -layer.fmt_b.frac).astype(f32).reshape(shape)
    z = (y * f32(2.0 ** layer.fmt_out.frac)).astype(f32)
    r = {Round.RND: np.floor(z + f32(0.5)), Round.TRN: np.floor(z), Round.TRN_INF: np.ceil(z)}[layer.round_out]
    np.testing.assert_array_equal(got["out"], np.clip(r, layer.fmt_out.min, layer.fmt_out.max).astype(np.int64))
