"""Smoke tests of the torch reference driver (golden/refs/torch_ref.py) itself.

Expected values are computed by hand from the fixed-point semantics.  They are
not taken from Qualia's source.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.refs import torch_ref

from proofs import missing_torch, requires

pytestmark = requires(missing_torch())

Q6_INT8 = dict(bits_in=8, q_in=6, bits_v=8, q_v=6, bits_out=8, q_out=6,
               round_in="nearest", round_v="nearest", round_out="nearest")


def _mk(kind, **kw):
    params = dict(Q6_INT8)
    params.update(kw)
    params.setdefault("tau", None)
    params.setdefault("v_reset", None)
    params.setdefault("v_threshold", 1.0)
    return torch_ref.make_module(kind=kind, **params)


# IF, soft reset, q=6 int8, v_threshold = 1.0 (64 raw).
IF_X = np.array([[40, 10, -3, 127],
                 [40, 60, 100, 127],
                 [0, 0, 0, 127]], dtype=np.int64)


def test_if_soft_reset_eval_hand_computed():
    # eval: H = v + x; spike if H >= 64; v = H - 64 on spike; then v = clamp(v, -128, 127)
    r = torch_ref.run_module(_mk("IF"), IF_X, q_in=6, mode="eval")
    assert r["out"].dtype == np.int64 and r["v"].dtype == np.int64 and r["spikes"].dtype == bool
    assert r["out"].tolist() == [[0, 0, 0, 64], [64, 64, 64, 64], [0, 0, 0, 64]]
    # col 4: 127 -> 63; 63+127=190 -> 126; 126+127=253 -> 189 -> saturates to 127
    assert r["v"].tolist() == [[40, 10, -3, 63], [16, 6, 33, 126], [16, 6, 33, 127]]
    assert r["spikes"].tolist() == (r["out"] != 0).tolist()


def test_if_soft_reset_train_quantizes_before_spike_test():
    # train: H = Qv(v + x) (saturates) before the spike test; no re-quantization after the reset.
    r = torch_ref.run_module(_mk("IF"), IF_X, q_in=6, mode="train")
    assert r["out"].tolist() == [[0, 0, 0, 64], [64, 64, 64, 64], [0, 0, 0, 64]]
    # col 4: 127 -> 63; Qv(190)=127 -> 63; again 63
    assert r["v"].tolist() == [[40, 10, -3, 63], [16, 6, 33, 63], [16, 6, 33, 63]]


def test_output_saturates_at_q_out_bits_minus_one():
    r = torch_ref.run_module(_mk("IF", q_out=7), np.array([[64]]), q_in=6, mode="eval")
    assert r["out"].tolist() == [[127]]  # 1.0 * 2**7 = 128 clamps to 127
    assert r["spikes"].tolist() == [[True]]


def test_hard_reset_initial_potential_is_v_reset():
    r = torch_ref.run_module(_mk("IF", v_reset=0.25), np.zeros((2, 3), np.int64), q_in=6, mode="eval")
    assert r["v"].tolist() == [[16, 16, 16]] * 2
    r = torch_ref.run_module(_mk("IF", v_reset=0.25), np.array([[60, 0]]), q_in=6, mode="eval")
    assert r["v"].tolist() == [[16, 16]] and r["out"].tolist() == [[64, 0]]  # 16+60=76 >= 64 -> reset to 16


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_lif_divides_by_float32_tau(mode):
    # tau = 64/7 -> Q(1/tau) = 7/64.  v=0, x=32 raw: (x - v)/tau is exactly 3.5 raw, but the
    # float32 division by float32(tau) gives 3.4999998 raw, which rounds half-up to 3 (not 4).
    m = _mk("LIF", tau=64 / 7)
    r = torch_ref.run_module(m, np.array([[32]]), q_in=6, mode=mode)
    assert r["v"].tolist() == [[3]]
    assert m.tau == pytest.approx(64 / 7)


def test_lif_eval_spikes_on_unrounded_potential_train_on_quantized():
    # tau=2, v=0, x=127 raw -> H = 63.5 raw.  eval: 63.5 < 64, no spike, then Qv -> 64.
    # train: Qv(63.5) = 64 >= 64 -> spike, soft reset to 0.
    x = np.array([[127]])
    ev = torch_ref.run_module(_mk("LIF", tau=2.0), x, q_in=6, mode="eval")
    tr = torch_ref.run_module(_mk("LIF", tau=2.0), x, q_in=6, mode="train")
    assert (ev["out"].tolist(), ev["v"].tolist()) == ([[0]], [[64]])
    assert (tr["out"].tolist(), tr["v"].tolist()) == ([[64]], [[0]])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_atif_unpatched_release_raises_attribute_error():
    # Documents why make_module aliases vp_th: the released class reads a missing attribute.
    import torch
    from qualia_plugin_snn.learningmodel.pytorch.layers.quantized_SNN_layers import QuantizedATIF

    qp = {"bits": 8, "quantype": "fxp", "force_q": 6, "roundtype": "nearest"}
    m = QuantizedATIF(quant_params=qp, v_threshold=1.0)
    m.eval()
    with torch.no_grad(), pytest.raises(AttributeError, match="vp_th"):
        m(torch.zeros(2))


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_atif_runs_with_alias(mode):
    # vth = 0.71 (45.44 raw; Qv(vth) = 45).  Step 1: v = 45; Qv(45 - 45.44) = Qv(-0.44) = 0 >= 0 -> fires,
    # v = Qv(-0.44) = 0, out = Qact(1 * 45/64) = 45.  Step 2: Qv(0 - 45.44) = -45 < 0, no spike.
    # Step 3: v = 100 (x=100), Qv(54.56) = 55 -> fires, v = 55, out 45.
    m = _mk("ATIF", v_threshold=0.71)
    assert m.vp_th is m.v_threshold
    assert float(m.v_threshold.detach()) == pytest.approx(np.float32(0.71))
    r = torch_ref.run_module(m, np.array([[45], [0], [100]]), q_in=6, mode=mode)
    assert r["out"].tolist() == [[45], [0], [45]]
    assert r["v"].tolist() == [[0], [0], [55]]
    assert r["spikes"].tolist() == [[True], [False], [True]]


def test_atif_rejects_hard_reset_and_lif_needs_tau():
    with pytest.raises(ValueError):
        _mk("ATIF", v_reset=0.0)
    with pytest.raises(ValueError):
        _mk("LIF", tau=None)


def test_run_module_rejects_q_in_mismatch_and_bad_mode():
    m = _mk("IF")
    with pytest.raises(ValueError):
        torch_ref.run_module(m, np.zeros((1, 1), np.int64), q_in=5, mode="eval")
    with pytest.raises(ValueError):
        torch_ref.run_module(m, np.zeros((1, 1), np.int64), q_in=6, mode="bogus")
