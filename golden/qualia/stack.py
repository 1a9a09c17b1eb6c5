"""The Qualia reference stack, imported once and lazily, and the quantizers' running calibration.

Only torch, spikingjelly 0.0.0.0.14, qualia-core and qualia-plugin-snn 2.6 are imported (never at golden's import
time); nothing of Qualia (AGPL-3.0) is copied here.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any, NamedTuple

from ..errors import TorchBridgeError

SNN_LAYERS = "qualia_plugin_snn.learningmodel.pytorch.layers.quantized_SNN_layers"
CORE_LAYERS = "qualia_core.learningmodel.pytorch.layers.quantized_layers"


class Stack(NamedTuple):
    """The imported modules: torch, Qualia's quantized SNN and core layer modules, spikingjelly's."""

    torch: Any
    snn: Any  # qualia_plugin_snn ... quantized_SNN_layers (QuantizedLIFNode, QuantizedIFNode, QuantizedATIF)
    core: Any  # qualia_core ... quantized_layers (QuantizedLinear, QuantizedConv2d, QuantizedAdd, ...)
    neuron: Any  # spikingjelly.activation_based.neuron
    functional: Any  # spikingjelly.activation_based.functional
    sjlayer: Any  # spikingjelly.activation_based.layer


@functools.cache
def _import() -> Stack:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        snn = importlib.import_module(SNN_LAYERS)
        core = importlib.import_module(CORE_LAYERS)
        from spikingjelly.activation_based import functional, neuron
        from spikingjelly.activation_based import layer as sjlayer
    return Stack(torch, snn, core, neuron, functional, sjlayer)


def stack() -> Stack:
    """The reference stack, or a TorchBridgeError naming what is missing (a failed import is retried next call)."""
    try:
        return _import()
    except Exception as e:
        raise TorchBridgeError(f"the torch reference stack is not importable (torch, spikingjelly 0.0.0.0.14, "
                               f"qualia-plugin-snn 2.6): {type(e).__name__}: {e}") from None


def snapshot_quantizers(model) -> list:
    """Every Quantizer's running (global_max, global_min): a train-mode run moves them; restore with the list."""
    return [(m, m.global_max, m.global_min) for m in model.modules()
            if hasattr(m, "global_max") and hasattr(m, "compute_scale_and_offset")]


def restore_quantizers(saved: list) -> None:
    """Put back what :func:`snapshot_quantizers` saved."""
    for q, gmax, gmin in saved:
        q.global_max, q.global_min = gmax, gmin
