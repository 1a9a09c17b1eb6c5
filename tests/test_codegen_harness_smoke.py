"""Smoke tests of the generated-C harness (golden/refs/codegen_c.py) itself.

Every expected value below is worked out by hand from the arithmetic of the
rendered templates (``layers/if.cc`` / ``layers/lif.cc`` over ``number.hh``):
``scale(n, s)`` is ``n << -s`` for ``s <= 0`` and ``(n [+ 2**(s-1) if nearest]) >> s``
(arithmetic shift) for ``s > 0``, everything in LONG_NUMBER_T;
``TMP = max(q_in, q_v)``; a spike writes ``clamp(1 << q_out)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.refs import codegen_c as cc

from proofs import missing_codegen, requires

pytestmark = requires(missing_codegen())


def _run(x, **kw):
    x = np.asarray(x, dtype=np.int64)
    return cc.run_c_layer(x=x, **kw)


def test_if_soft_reset_int8_q6():
    # TMP = 6, every shift is 0, thr_s = 64, spike = 1 << 6 = 64.
    # t0: 0+40=40 <64 -> out 0, v 40
    # t1: 40+40=80 >=64 -> out 64, v 80-64=16
    # t2: 16+40=56 <64 -> out 0, v 56
    # t3: 56+100=156 -> out 64, v 92
    x = [[40], [40], [40], [100]]
    for rm in ("floor", "nearest"):
        out, v = _run(
            x, kind="IF", width=8, long_width=16, q_in=6, q_v=6, q_out=6, round_mode=rm,
            soft_reset=True, decay_input=False, v_threshold=64, v_reset=0, reciprocal_tau=0,
        )
        assert out[:, 0].tolist() == [0, 64, 0, 64]
        assert v[:, 0].tolist() == [40, 16, 56, 92]


def test_if_hard_reset_stores_raw_v_reset_and_spike_clamps():
    # Hard reset writes v_reset itself into potent (no rescaling).
    # q_out = 7 -> spike = clamp_to(int8, 1 << 7) = 127, not 128.
    # t0: 0+70=70 >=64 -> out 127, v = v_reset = -5
    # t1: -5+10=5 <64 -> out 0, v 5
    # t2: 5+59=64 >=64 -> out 127, v -5
    out, v = _run(
        [[70], [10], [59]], kind="IF", width=8, long_width=16, q_in=6, q_v=6, q_out=7,
        round_mode="floor", soft_reset=False, decay_input=False, v_threshold=64, v_reset=-5, reciprocal_tau=0,
    )
    assert out[:, 0].tolist() == [127, 0, 127]
    assert v[:, 0].tolist() == [-5, 5, -5]


@pytest.mark.parametrize(
    ("round_mode", "exp_v"),
    [
        # neuron A: x = 100, 100, 10 ; neuron B: x = -21, 1, 0
        ("nearest", [[55, -5], [10, 3], [15, 7]]),
        ("floor", [[55, -6], [10, 2], [15, 6]]),
    ],
)
def test_lif_decay_input_hard_reset_int8(round_mode, exp_v):
    # q = 6 everywhere: TMP = 6, v_reset_s = 10, thr_s = 64, rtau 32 (x 2**-TMP = 0.5).
    # step: tmp = x - (v - 10); tmp = scale(tmp * 32, 6); tmp = v + tmp
    # A nearest: t0 (110*32+32)>>6=55 -> v 55 | t1 tmp=55: (1760+32)>>6=28 -> 83 >= 64 fire, v=10
    #            t2 tmp=10: (320+32)>>6=5 -> 15
    # B nearest: t0 tmp=-11: (-352+32)>>6=-5 -> v -5 | t1 tmp=16: (512+32)>>6=8 -> 3
    #            t2 tmp=7: (224+32)>>6=4 -> 7
    # floor: A 3520>>6=55, 1760>>6=27 -> 82 fire, 5 -> 15 ; B -352>>6=-6, 17*32>>6=8 -> 2, 8*32>>6=4 -> 6
    x = [[100, -21], [100, 1], [10, 0]]
    out, v = _run(
        x, kind="LIF", width=8, long_width=16, q_in=6, q_v=6, q_out=6, round_mode=round_mode,
        soft_reset=False, decay_input=True, v_threshold=64, v_reset=10, reciprocal_tau=32,
    )
    assert out.tolist() == [[0, 0], [64, 0], [0, 0]]
    assert v.tolist() == exp_v


@pytest.mark.parametrize(
    ("round_mode", "exp_v"),
    [("floor", [12, 5, -3]), ("nearest", [13, 6, -2])],
)
def test_lif_no_decay_input_soft_reset_int16_mixed_q(round_mode, exp_v):
    # q_in = 8, q_v = 4 -> TMP = 8; thr 16 -> thr_s = 16 << 4 = 256; rtau 64 (x 2**-8);
    # spike = 1 << 8 = 256; potent is stored back with scale(tmp, TMP - q_v = 4).
    # floor:   t0 tmp=200 -> v 200>>4=12
    #          t1 ps=192, 192*64>>8=48 -> 144+200=344 fire, (344-256)>>4=5
    #          t2 ps=80, 80*64>>8=20 -> 60-100=-40, -40>>4=-3
    # nearest: t0 (200+8)>>4=13
    #          t1 ps=208, (13312+128)>>8=52 -> 156+200=356 fire, (100+8)>>4=6
    #          t2 ps=96, (6144+128)>>8=24 -> 72-100=-28, (-28+8)>>4=-2
    out, v = _run(
        [[200], [200], [-100]], kind="LIF", width=16, long_width=32, q_in=8, q_v=4, q_out=8,
        round_mode=round_mode, soft_reset=True, decay_input=False, v_threshold=16, v_reset=0, reciprocal_tau=64,
    )
    assert out[:, 0].tolist() == [0, 256, 0]
    assert v[:, 0].tolist() == exp_v


def test_lif_int8_long16_product_wraps_to_int16():
    # int8 build, LONG_NUMBER_T = int16_t.  q_in = 7, q_v = 0 -> TMP = 7.
    # v_reset = -128 -> v_reset_s = -16384 ; thr 1 -> thr_s = 128 ; rtau = 127.
    # t0: tmp = 0 - (-16384) = 16384; tmp * rtau = 2080768 is computed in int but
    #     passed to scale(int16_t number, ...) -> wraps to -16384 -> >>7 = -128;
    #     tmp = 0 - (-128) = 128 >= 128 -> spike (clamp(1 << 0) = 1), v = v_reset.
    #     (Without the wrap it would be 0 - 16256: far below threshold.)
    # t1, t2: ps = -16384, tmp - v_reset_s = 0 -> tmp = -16384 < 128 -> v = -16384 >> 7 = -128.
    out, v = _run(
        [[0], [0], [0]], kind="LIF", width=8, long_width=16, q_in=7, q_v=0, q_out=0, round_mode="floor",
        soft_reset=False, decay_input=False, v_threshold=1, v_reset=-128, reciprocal_tau=127,
    )
    assert out[:, 0].tolist() == [1, 0, 0]
    assert v[:, 0].tolist() == [-128, -128, -128]


@pytest.mark.parametrize("kind", ["IF", "LIF"])
def test_shape_variants_batch_and_padding_agree(kind):
    rng = np.random.default_rng(1234)
    x = rng.integers(-128, 128, size=(3, 25, 24))
    kw = dict(kind=kind, width=8, long_width=16, q_in=5, q_v=6, q_out=6, round_mode="nearest",
              soft_reset=False, decay_input=True, v_threshold=50, v_reset=-3, reciprocal_tau=40)
    ref_out, ref_v = cc.run_c_layer(x=x, **kw)  # flat, padded to 64 neurons, batched
    assert ref_out.shape == ref_v.shape == x.shape
    for b in range(x.shape[0]):  # each sequence starts from potent = 0
        o, v = cc.run_c_layer(x=x[b], pad_flat=False, **kw)
        np.testing.assert_array_equal(o, ref_out[b])
        np.testing.assert_array_equal(v, ref_v[b])
    for shape in [(4, 6), (2, 3, 4)]:
        o, v = cc.run_c_layer(x=x, shape=shape, **kw)
        np.testing.assert_array_equal(o, ref_out)
        np.testing.assert_array_equal(v, ref_v)
    assert ref_out.any()  # the data does make spikes


def test_input_validation():
    kw = dict(kind="IF", width=8, long_width=16, q_in=6, q_v=6, q_out=6, round_mode="floor",
              soft_reset=True, decay_input=False, v_threshold=64, v_reset=0, reciprocal_tau=0)
    with pytest.raises(ValueError):
        cc.run_c_layer(x=np.zeros((2, 65536), dtype=np.int64), **kw)
    with pytest.raises(ValueError):
        cc.run_c_layer(x=np.full((2, 3), 128), **kw)
    with pytest.raises(ValueError):
        cc.run_c_layer(x=np.zeros((2, 6), dtype=np.int64), shape=(2, 2), **kw)
    with pytest.raises(ValueError):
        cc.run_c_layer(x=np.zeros((2, 6), dtype=np.int64), **{**kw, "v_threshold": 200})
    with pytest.raises(ValueError):
        cc.run_c_layer(x=np.zeros((2, 6), dtype=np.int64), **{**kw, "width": 32, "long_width": 32})


def test_build_cache_outside_repo():
    from pathlib import Path

    repo = Path(cc.__file__).resolve().parents[2]
    kw = dict(kind="LIF", width=16, long_width=32, q_in=8, q_v=8, q_out=8, round_mode="nearest",
              soft_reset=True, decay_input=True, shape=(7,))
    b1 = cc.build_c_layer(**kw)
    b2 = cc.build_c_layer(**kw)
    assert b1.binary == b2.binary and b1.binary.exists()
    assert repo not in b1.binary.resolve().parents
    assert b1.warnings == ""  # -O2 -Wall -Wextra -std=c11 is clean on the real templates
