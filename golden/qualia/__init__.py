"""The rules for reading Qualia, in one leaf package (imported lazily: torch and Qualia load on first use).

==================  ===========================================================================================
module              what it reads
==================  ===========================================================================================
stack               the reference stack (torch, spikingjelly, qualia-core, qualia-plugin-snn), quantizer snapshots
quantizers          a quantizer's format: bits, q (force_q or calibrated; scale 1 when global_max == 0), roundtype
atif                QuantizedATIF's learned threshold as integers (fire/reset C, graded output)
neurons             a quantized neuron module -> its :class:`golden.Spec` (torch-eval / torch-train / codegen)
readers             one torch reader per Qualia module class (``@torch_reader(QuantizedConv2d)``), a registry
network             a whole model -> its torch-eval :class:`golden.network.Network` (torch.fx graph + readers)
check               a whole model proven against that network at every layer and step
target              what QualiaCodeGen can deploy (widths, neuron kinds), checked before deploying
twin                the float twin of a quantized model (what Qualia's converter converts)
deployment          Qualia's deployment path run on a model: the rendered C and the converter's objects
deployparams        what a deployment holds per C layer (the converter's integers beside torch's)
creaders            one C reader per generated-C layer type (``@c_reader("TConv2DLayer")``), a registry
deploy              profile "codegen": the deployment Qualia makes, read as a Network
==================  ===========================================================================================

Explicit factories (the facade :func:`golden.from_torch` dispatches to them by type):
:func:`spec_from_module`, :func:`network_from_module`, :func:`network_from_deployment`, :func:`network_codegen`.
"""

from __future__ import annotations

import importlib

__all__ = ["check_network", "network_codegen", "network_from_deployment", "network_from_module",
           "spec_from_module"]

_WHERE = {"spec_from_module": "neurons", "network_from_module": "network", "network_from_deployment": "deploy",
          "network_codegen": "deploy", "check_network": "check", "from_qualia": "project"}


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(name)
