"""pytest helpers: put golden's bit-exactness proof in your own test suite.

    from golden.testing import assert_bit_exact

    def test_my_snn_is_bit_exact():
        model = build_and_calibrate()          # Qualia quantized layers, calibrated
        x = torch.rand(25, 8, 784)             # (T, batch, features)
        assert_bit_exact(model, x)             # torch-eval; or profile="torch-train"
"""

from __future__ import annotations

__all__ = ["assert_bit_exact"]


def assert_bit_exact(module_or_model, inputs, profile: str = "torch-eval"):
    """Assert every quantized neuron layer of ``module_or_model`` equals golden, step by step, bit for bit.

    ``inputs`` is (T, batch, ...) (a lone neuron layer takes (T, batch,
    neurons)). Runs :func:`golden.check_model`; on any divergence, any layer
    golden refuses, or no quantized neuron layer at all, raises
    ``AssertionError`` with the per-layer report (first differing step,
    neuron, field, golden's and the module's values, and the spec). Returns
    the report when everything is exact.
    """
    from .torch_bridge import check_model

    report = check_model(module_or_model, inputs, profile=profile)
    if not report.ok:
        raise AssertionError(str(report))
    return report
