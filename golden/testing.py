"""pytest helpers: put golden's bit-exactness proof in your own test suite.

    from golden.testing import assert_bit_exact

    def test_my_snn_is_bit_exact():
        model = build_and_calibrate()          # Qualia quantized layers, calibrated
        x = torch.rand(25, 8, 784)             # (T, batch, features)
        assert_bit_exact(model, x)             # torch-eval; or profile="torch-train"

    def test_my_whole_snn_is_bit_exact():      # every layer, either step mode, batches
        x = np.random.rand(4, 25, 1, 28, 28).astype(np.float32)   # (samples, steps, *input_shape)
        assert_bit_exact(model, x, network=True)
"""

from __future__ import annotations

__all__ = ["assert_bit_exact"]


def assert_bit_exact(module_or_model, inputs, profile: str = "torch-eval", *, network: bool = False,
                     allow_float32: bool = False):
    """Assert golden equals the real model bit for bit; returns the report.

    ``network=False``: every quantized neuron layer, step by step; ``inputs`` is
    (T, batch, ...). Raises ``AssertionError`` with the per-layer report on any
    divergence, any layer golden refuses, or no quantized neuron layer at all.

    ``network=True``: every layer of the whole model (torch-eval), in its own
    step mode; ``inputs`` is (samples, steps, *input_shape). Raises on any
    mismatch; with ``allow_float32=True`` only on mismatches that float32
    accumulation does not explain (values outside the stated float32 bound).
    """
    from .torch_bridge import check_model

    report = check_model(module_or_model, inputs, profile=profile, network=network)
    ok = report.ok if (network and allow_float32) else bool(report)
    if not ok:
        raise AssertionError(str(report))
    return report
