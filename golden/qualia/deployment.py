"""Deploy a whole model to C exactly the way Qualia does: the rendered ``full_model.h`` and its deployment objects.

Nothing of Qualia (AGPL-3.0) is copied here or written into the repository: the C is rendered at run time from the
installed qualia-core / qualia-plugin-snn / qualia-codegen-core / qualia-codegen-plugin-snn, inside a fresh
temporary working directory (never the repository).

The deployment path (:func:`deploy`), as Qualia's own pipeline runs it:

1. ``QuantizationAwareTraining``'s activation-range exporter writes
   ``out/learningmodel/<name>_activations_range.txt`` for the calibrated QUANTIZED model
   (``convert()`` reads it back relative to the working directory);
2. the FLOAT twin (:func:`golden.qualia.twin.float_twin`, or a :class:`Packaged` model's own ``float_model()``)
   holds the quantized model's float parameters;
3. ``qualia_plugin_snn.postprocessing.QualiaCodeGen(quantize='int8'|'int16', long_width,
   dump_featuremaps=...).convert(framework, float_model, name, None)`` with the real
   ``SpikingJelly`` learning framework (only its ``summary`` is called) renders the
   single-file C (``full_model.h``).  A subclass of ours only keeps a reference to the
   ModelGraph the converter builds (:attr:`Deployed.modelgraph`: the deployment objects,
   with the weights as the converter quantized them).

This module renders only (no compiler needed). Compiling and running the C with golden's own harness is a test
reference: :mod:`golden.refs.codegen_model`. What the deployment holds per layer (the converter's integers beside
torch's) is :mod:`golden.qualia.deployparams`; reading it as a golden Network, :mod:`golden.qualia.creaders`.

Layer names: the C names are ``cnn_<fx name>``, where <fx name> is torch.fx's identifier for
the module's qualified name (``layers.conv1`` -> ``layers_conv1``, ``layers.0.0.add`` ->
``layers_0_0_add``); :attr:`CLayer.torch_name` maps back to the qualified name of
``model.named_modules()`` (``'input'`` for the input node).  ``QuantizedIdentity`` has no C
node (the converter deletes identity layers), so ``identity1`` has no C output.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import os
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import DeployError, GoldenError

__all__ = ["C_NAME", "CLayer", "Deployed", "Packaged", "deploy", "describe"]

C_NAME = "golden"  # the name the model is converted under: the C's featuremap directory is <C_NAME>_qint<width>
_PREFIX = "cnn_"
_CHDIR_LOCK = threading.Lock()


@runtime_checkable
class Packaged(Protocol):
    """A calibrated quantized model packaged with its float template (golden's test factory,
    ``golden.refs.qualia_models.Built``): deployed from that template rather than from the derived float twin."""

    model: Any  # the calibrated quantized model, in .eval()
    name: str
    torch_input_shape: tuple  # one sample, one step, channels-first
    quantized_kwargs: dict  # its constructor arguments: ``quant_params`` configures the activation-range export

    def float_model(self) -> Any:
        """The float template holding the quantized model's float parameters, in .eval()."""



@dataclass(frozen=True)
class CLayer:
    """One node of the deployed C model (converter order = execution order)."""

    c_name: str  # e.g. 'cnn_layers_conv1'
    torch_name: str | None  # qualified torch name, 'input' for the input node, None if unmapped
    ctype: str  # converter layer class, e.g. 'TConv2DLayer'
    c_shape: tuple[int, ...]  # per-sample, per-step output shape, channels-last
    in_c_shapes: tuple[tuple[int, ...], ...]
    innodes: tuple[str, ...]  # c names
    width: int
    long_width: int
    q_out: int | None  # output_scale_factor
    q_weights: int | None  # weights_scale_factor (q_v for neurons)
    q_bias: int | None
    round_out: str | None
    round_weights: str | None


@dataclass(frozen=True, eq=False)
class Deployed:
    """A model deployed to C: the rendered source, its layers and the converter's objects, the render time."""

    built: Packaged | None  # the packaged model deployed (its float template), or None for a model deployed as it is
    width: int
    long_width: int
    dump_featuremaps: bool
    source: str  # full_model.h as rendered (AGPL: never commit it)
    activations_range: str  # the exporter's text
    layers: tuple[CLayer, ...]
    modelgraph: Any  # the converter's ModelGraph after conversion (weights quantized)
    render_seconds: float
    input_q: int
    c_input_shape: tuple[int, ...]
    model: Any = None  # the calibrated quantized model deployed
    name: str = ""
    torch_input_shape: tuple[int, ...] = ()  # one sample, one step, channels-first

    def layer(self, name: str) -> CLayer:
        for la in self.layers:
            if name in (la.c_name, la.torch_name):
                return la
        raise KeyError(name)


# --------------------------------------------------------------------------------------------------
# deployment
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _in_dir(d: Path):
    with _CHDIR_LOCK:
        old = os.getcwd()
        os.chdir(d)
        try:
            yield
        finally:
            os.chdir(old)


def _fx_names(model) -> dict[str, str]:
    """fx identifier -> qualified module name, computed the way the exporter and torch.fx name modules."""
    from torch.fx.graph import _Namespace, _snake_case

    ns = _Namespace()
    out = {}
    for name, m in model.named_modules():
        if name:
            out[ns.create_name(_snake_case(name), m).replace(".", "")] = name
    return out


def _codegen_class():
    from qualia_plugin_snn.postprocessing.QualiaCodeGen import QualiaCodeGen

    class _KeepGraph(QualiaCodeGen):
        """Qualia's SNN QualiaCodeGen; only remembers the ModelGraph it converts."""

        modelgraph = None

        def convert_modelgraph_to_c(self, modelgraph, output_path):
            self.modelgraph = modelgraph
            return super().convert_modelgraph_to_c(modelgraph, output_path)

    return _KeepGraph


def _rm(m) -> str | None:
    return None if m is None else str(getattr(m, "value", m)).lower()


def _layers(modelgraph, fx: dict[str, str]) -> tuple[CLayer, ...]:
    out = []
    for node in modelgraph.nodes:
        c = node.layer.name
        bare = c.removeprefix(_PREFIX)
        torch_name = "input" if type(node.layer).__name__ == "TInputLayer" else fx.get(bare)
        q = node.q
        out.append(CLayer(
            c_name=c, torch_name=torch_name, ctype=type(node.layer).__name__,
            c_shape=tuple(int(d) for d in node.output_shape[0][1:]),
            in_c_shapes=tuple(tuple(int(d) for d in s[1:]) for s in node.input_shape),
            innodes=tuple(i.layer.name for i in node.innodes), width=int(q.width), long_width=int(q.long_width),
            q_out=q.output_scale_factor, q_weights=q.weights_scale_factor, q_bias=q.bias_scale_factor,
            round_out=_rm(q.output_round_mode), round_weights=_rm(q.weights_round_mode),
        ))
    return tuple(out)


class _Errors(logging.Handler):
    """Collects the error records Qualia logs while converting (its converter logs the cause, then returns None)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:
            msg = str(record.msg)
        if msg.strip():
            self.messages.append(" ".join(msg.split()))


_QUALIA_LOGGERS = ("qualia_core", "qualia_plugin_snn", "qualia_codegen_core", "qualia_codegen_plugin_snn")


def _capture_qualia_logs(handler: logging.Handler):
    """Route Qualia's loggers to ``handler`` only (nothing of the converter's log reaches stderr); returns the undo."""
    saved = []
    for name in _QUALIA_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.propagate, list(lg.handlers)))
        lg.propagate, lg.handlers = False, [handler]

    def undo():
        for lg, propagate, handlers in saved:
            lg.propagate, lg.handlers = propagate, handlers
    return undo


def _one_line(failed: str | None, logged: list[str]) -> str:
    """The converter's own cause first (what it logged), then the exception, in one line."""
    parts = [m for m in logged if m] + ([failed] if failed else [])
    text = "; ".join(dict.fromkeys(parts)) or "it returned nothing and logged no error"
    return text if len(text) <= 400 else text[:397] + "..."


def deploy(model, *, width: int | None = None, long_width: int | None = None, dump_featuremaps: bool = True,
           timestep_mode: str = "duplicate") -> Deployed:
    """Render ``model`` through Qualia's deployment path (no compiler needed). See the module doc.

    ``model``: a calibrated quantized Qualia model (its float twin is derived: :func:`golden.qualia.twin.float_twin`)
    or a :class:`Packaged` one (golden's test factory: its float template rebuilt from its arguments).
    ``width``: 8 or 16 (the converter's ``quantize='int8'|'int16'``; default: the narrowest holding the model's bits,
    :func:`golden.qualia.target.natural_width`; any bits deploy at either, as Qualia's converter deploys them).
    ``long_width``: the LONG accumulator width (None: the converter default, 16 for int8, 32 for int16).
    ``dump_featuremaps``: the C writes every layer's output at every step as JSON (what a harness reads back).
    ``timestep_mode``: the converter's 'duplicate' (its default) or 'iterate': only the
    ``MODEL_INPUT_TIMESTEP_MODE_*`` define of the rendered source differs (what the examples' main loops read).
    """
    from .network import torch_input_shape
    from .target import deployable_width
    from .twin import float_twin

    built = model if isinstance(model, Packaged) else None
    qmodel = model.model if built is not None else model
    name = built.name if built is not None else type(qmodel).__name__
    try:
        width = deployable_width(qmodel, width)
    except GoldenError as e:
        raise DeployError(str(e)) from None
    if timestep_mode not in ("duplicate", "iterate"):
        raise DeployError(f"timestep_mode: {timestep_mode!r} is not 'duplicate' or 'iterate' (QualiaCodeGen's modes)")
    if long_width is not None and (long_width not in (16, 32, 64) or long_width < width):
        raise DeployError(f"long_width must be 16, 32 or 64 and >= width {width}, got {long_width!r}")
    from qualia_core.postprocessing.QuantizationAwareTraining import (
        QuantizationAwareTraining,
    )
    from qualia_plugin_snn.learningframework.SpikingJelly import SpikingJelly

    t0 = time.perf_counter()
    fmodel = built.float_model() if built is not None else float_twin(qmodel)
    in_shape = built.torch_input_shape if built is not None else torch_input_shape(qmodel)
    qp = built.quantized_kwargs["quant_params"] if built is not None else {"bits": width}
    fx = _fx_names(fmodel)
    errors = _Errors()
    with tempfile.TemporaryDirectory(prefix="golden-deploy-") as tmp, _in_dir(Path(tmp)):
        (Path("out") / "learningmodel").mkdir(parents=True)
        qat = QuantizationAwareTraining(model={"params": {"quant_params": copy.deepcopy(qp)}})
        sink = io.StringIO()
        quiet = _capture_qualia_logs(errors)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                qat._QuantizationAwareTraining__export_activation_ranges(qmodel, save_name=C_NAME)
                ranges = (Path("out") / "learningmodel" / f"{C_NAME}_activations_range.txt").read_text()
                cg = _codegen_class()(quantize=f"int{width}", long_width=long_width,
                                      dump_featuremaps=dump_featuremaps, timestep_mode=timestep_mode)
                failed = None
                try:
                    ok = cg.convert(SpikingJelly(), fmodel, C_NAME, None)
                except Exception as e:  # any converter failure is the one-line DeployError below
                    failed = f"{type(e).__name__}: {e}"
        finally:
            quiet()
        if failed is not None or ok is None or not cg.h:
            # raised outside the handler and unchained: the converter's traceback would keep Qualia's QAT log
            # handler alive, pointing into the deleted working directory, and a deployment in the same second
            # would reuse it (FileNotFoundError)
            failed = _one_line(failed, errors.messages)
            raise DeployError(f"QualiaCodeGen.convert failed for {name}: {failed}")
        source = cg.h
    render_s = time.perf_counter() - t0
    layers = _layers(cg.modelgraph, fx)
    inp = layers[0]
    if inp.ctype != "TInputLayer":
        raise DeployError(f"first C node is {inp.ctype}, expected TInputLayer")
    return Deployed(built=built, width=width, long_width=int(layers[1].long_width), dump_featuremaps=dump_featuremaps,
                    source=source, activations_range=ranges, layers=layers, modelgraph=cg.modelgraph,
                    render_seconds=render_s, input_q=int(inp.q_out), c_input_shape=inp.c_shape, model=qmodel,
                    name=name, torch_input_shape=in_shape)


def describe(dep: Deployed) -> list[dict]:
    """One dict per C layer (the CLayer fields), for reports."""
    return [dataclasses.asdict(la) for la in dep.layers]

