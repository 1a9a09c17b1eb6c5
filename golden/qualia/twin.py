"""The float twin of a quantized Qualia model: what Qualia's deployment hands to its converter.

Qualia goes from the float model to the quantized one by name: ``QuantizationAwareTraining`` builds
``learningmodels['Quantized' + kind](**params)`` and loads the float state_dict into it (strict); ``prepare_deploy``
converts the FLOAT model (the converter knows no quantized layer). A quantized model does not keep its constructor
arguments, so golden goes back by the same naming rule, module by module: ``<pkg>.quantized_layers2d.QuantizedConv2d``
-> ``<pkg>.layers2d.Conv2d``, ``<pkg>.QuantizedSResNet.QuantizedBasicBlock`` -> ``<pkg>.SResNet.BasicBlock``,
``...spikingjelly.QuantizedAdd.QuantizedAdd`` -> ``...spikingjelly.Add.Add``; where no such module exists, the class's
own base of that name (``QuantizedLIFNode`` -> spikingjelly's ``LIFNode``, ``QuantizedIdentity`` -> ``Identity``).
Each module keeps its state (the same attributes and tensors; its quantizers dropped), so the twin holds exactly
the quantized model's float parameters. Proven by tests/test_codegen_model.py: the deployment of the twin is
byte-identical to the deployment of the float template built from the original constructor arguments.
"""

from __future__ import annotations

import copy
import importlib

from ..errors import DeployError
from .stack import stack

_PREFIX = "Quantized"


_ALIASES = ("qualia_plugin_snn.learningmodel.pytorch.layers.spikingjelly.layers1d",
            "qualia_plugin_snn.learningmodel.pytorch.layers.spikingjelly.layers2d")


def _twin_class(cls):
    """The float class Qualia pairs with quantized ``cls`` (see the module doc), or None if ``cls`` is not quantized.

    Searched in Qualia's own pairings first: the plugin's ``layers1d`` / ``layers2d`` tables (``QuantizedBatchNorm``
    beside ``BatchNorm``), then the sibling module without the prefix (templates, blocks, Add, GlobalSumPool), then
    spikingjelly's layer of that name (what the float templates build), then a base class of that name.
    """
    name = cls.__name__
    if not name.startswith(_PREFIX):
        return None
    plain = name[len(_PREFIX):]
    for table in _ALIASES:
        mod = importlib.import_module(table)
        for alias, value in vars(mod).items():
            if value is cls and alias.startswith(_PREFIX) and isinstance(getattr(mod, alias[len(_PREFIX):], None),
                                                                          type):
                return getattr(mod, alias[len(_PREFIX):])
    parts = cls.__module__.split(".")
    if parts[-1].startswith(_PREFIX):
        sibling = ".".join(parts[:-1] + [parts[-1][len(_PREFIX):]])
        try:
            twin = getattr(importlib.import_module(sibling), plain, None)
        except ImportError:
            twin = None
        if isinstance(twin, type):
            return twin
    twin = getattr(stack().sjlayer, plain, None)
    if isinstance(twin, type):
        return twin
    for base in cls.__mro__[1:]:
        if base.__name__ == plain:
            return base
    raise DeployError(f"{name}: no float twin class found (Qualia pairs Quantized<X> with <X>); Qualia's deployment "
                      f"converts the float model, so golden needs it")


def float_twin(model):
    """A float copy of the calibrated quantized ``model`` (Qualia's templates or any graph of its layers), in
    ``.eval()``: every quantized module becomes its float twin class with its own state, quantizers dropped."""
    quantizer = importlib.import_module("qualia_core.learningmodel.pytorch.layers.Quantizer").Quantizer
    if _twin_class(type(model)) is None and not any(type(m).__name__.startswith(_PREFIX) for m in model.modules()):
        raise DeployError(f"model: {type(model).__name__} holds no Qualia quantized layer; deploy a quantized model")
    twin = _as_twin(copy.deepcopy(model), quantizer)
    if any(isinstance(m, quantizer) for m in twin.modules()):  # pragma: no cover - removed by _as_twin
        raise DeployError("model: a quantizer is left in the float twin")
    return twin.eval()


def _as_twin(m, quantizer):
    """``m`` (already a private copy) as its float twin: its state in a new object of the twin class, recursively."""
    for key, child in list(m._modules.items()):
        if isinstance(child, quantizer):
            del m._modules[key]
        elif child is not None:
            m._modules[key] = _as_twin(child, quantizer)
    cls = _twin_class(type(m))
    if cls is None:
        return m
    new = cls.__new__(cls)
    new.__dict__.update(m.__dict__)
    return new
