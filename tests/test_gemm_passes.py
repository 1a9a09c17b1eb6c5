"""Network.simulate in passes of a few samples (golden/network/passes.py) gives the trace of one pass over the whole
batch, value for value: every layer's outputs, potentials, spikes, float32-exact marks and overflow counts, on the
Numba kernels (with the GEMM route) and on the plain-Python oracle, at pass sizes that split the batch anywhere."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.network import passes, reference
from golden.network.demo import load, stimulus

from proofs import missing_torch, requires


def _fields(lt):
    return {"out": lt.out, "v": lt.v, "spikes": lt.spikes, "f32_exact": lt.f32_exact}


def _assert_same(a, b):
    assert list(a.layers) == list(b.layers)
    for name in a.layers:
        x, y = a.layers[name], b.layers[name]
        assert x.overflow == y.overflow, name
        for k, v in _fields(x).items():
            w = _fields(y)[k]
            assert (v is None) == (w is None), (name, k)
            if v is not None:
                assert v.dtype == w.dtype and v.shape == w.shape, (name, k)
                np.testing.assert_array_equal(v, w, err_msg=f"{name}.{k}")
    np.testing.assert_array_equal(a.out, b.out)


def _run(net, x, budget, monkeypatch_ctx, **kw):
    with monkeypatch_ctx() as mp:
        mp.setattr(passes, "PASS_BYTES", budget)
        return net.simulate(x, **kw)


@functools.lru_cache(maxsize=1)
def _demo():
    return load()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 7), st.integers(1, 5), st.integers(1, 7), st.booleans(), st.integers(0, 2**31))
def test_passes_equal_one_pass_on_the_kernels(samples, steps, per_pass, bounds, seed):
    net = _demo()
    x = stimulus(net, samples, steps, seed % 1000)
    one = _run(net, x, 1 << 62, pytest.MonkeyPatch.context, bounds=bounds)
    widest = max([int(np.prod(net.input_shape))] + [int(np.prod(n.layer.out_shape)) for n in net.nodes])
    per_sample = 8 * steps * widest  # the budget below holds exactly ``per_pass`` samples of this network
    assert passes.samples_per_pass(net.nodes, net.input_shape, samples, steps, per_pass * per_sample) == min(
        per_pass, samples)
    split = _run(net, x, per_pass * per_sample, pytest.MonkeyPatch.context, bounds=bounds)
    _assert_same(split, one)
    assert split.input is x or np.array_equal(split.input, x)


def test_passes_equal_one_pass_on_the_oracle():
    net = _demo()
    x = stimulus(net, 3, 2, 4)
    widest = max([int(np.prod(net.input_shape))] + [int(np.prod(n.layer.out_shape)) for n in net.nodes])
    one = _run(net, x, 1 << 62, pytest.MonkeyPatch.context, impl=reference)
    split = _run(net, x, 8 * 2 * widest, pytest.MonkeyPatch.context, impl=reference)  # one sample a pass
    _assert_same(split, one)
    _assert_same(_run(net, x, 8 * 2 * widest, pytest.MonkeyPatch.context), one)  # the kernels = the oracle


def test_samples_per_pass_is_at_least_one_and_at_most_the_batch():
    net = _demo()
    assert passes.samples_per_pass(net.nodes, net.input_shape, 5, 3, budget=1) == 1
    assert passes.samples_per_pass(net.nodes, net.input_shape, 5, 3, budget=1 << 62) == 5
    assert passes.samples_per_pass(net.nodes, net.input_shape, 0, 3) == 1  # an empty batch: not split
    assert net.simulate(stimulus(net, 1, 2, 0)[:0]).out.shape[0] == 0


def test_a_bad_batch_is_refused_as_one_pass_refuses_it(monkeypatch):
    net = _demo()
    monkeypatch.setattr(passes, "PASS_BYTES", 1)
    x = stimulus(net, 4, 2, 0)
    for bad, words in ((x.astype(np.float64), "expected raw integers"), (x[..., :1], "expected shape"),
                       (x.astype(np.int64) + (net.fmt_input.max + 1), "outside the input format")):
        with pytest.raises(ValueError, match=words):
            net.simulate(bad)


@requires(missing_torch())
@pytest.mark.parametrize("bits", [8, 16])
def test_passes_equal_one_pass_on_a_qualia_model_with_bounds(bits, monkeypatch):
    """A 16-bit SResNet through from_torch (float32-exact marks, GEMM-eligible layers, an Add), split 1 per pass."""
    import golden
    from golden.refs import qualia_models as qm

    built = qm.build("SResNet", dims=2, kind="IF", bits=bits, batch_norm=True, seed=3, timesteps=3)
    net = golden.from_torch(built.model)
    x = net.quantize_input(built.sample_inputs(4, seed=9))
    one = _run(net, x, 1 << 62, pytest.MonkeyPatch.context, bounds=True)
    split = _run(net, x, 1, pytest.MonkeyPatch.context, bounds=True)
    _assert_same(split, one)
