"""Deploy a whole model to C exactly the way Qualia does, compile it, and run it layer by layer.

Nothing of Qualia (AGPL-3.0) is copied here or written into the repository: every piece is
rendered at run time from the installed qualia-core / qualia-plugin-snn /
qualia-codegen-core / qualia-codegen-plugin-snn, into a temporary working directory and
the C cache of :func:`golden.refs.codegen_c.cache_dir` (outside the repository).

The deployment path (:func:`deploy`), as Qualia's own pipeline runs it:

1. ``QuantizationAwareTraining``'s activation-range exporter writes
   ``out/learningmodel/<name>_activations_range.txt`` for the calibrated QUANTIZED model
   (``convert()`` reads it back relative to the working directory: both run inside a fresh
   temporary directory, never the repository);
2. the FLOAT twin template (:func:`golden.refs.qualia_models.float_model`) gets the
   quantized model's state_dict;
3. ``qualia_plugin_snn.postprocessing.QualiaCodeGen(quantize='int8'|'int16', long_width,
   dump_featuremaps=True).convert(framework, float_model, name, None)`` with the real
   ``SpikingJelly`` learning framework (only its ``summary`` is called) renders the
   single-file C (``full_model.h``).  A subclass of ours only keeps a reference to the
   ModelGraph the converter builds (:attr:`Deployed.modelgraph`: the deployment objects,
   with the weights as the converter quantized them).

The harness (:func:`_harness_source`, golden's own C) includes ``full_model.h``, reads raw
inputs on stdin (channels-last, the C's ``input_t``), calls ``cnn(input, output)`` once per
timestep, ``reset()`` after every sample (as Qualia's host example does; ``reset`` zeroes
every neuron potential and advances the featuremap sample counter), and writes the model
output of every step on stdout.  With ``dump_featuremaps`` the generated code itself writes
every layer's output at every step as JSON (``<run dir>/out/qualia_codegen/<name>/
featuremaps/<sample>/<t>/<layer>.json``); :func:`run` reads them all back.  The layer
buffers cannot be read by a harness directly: the generated ``cnn()`` keeps them in static
unions local to the function, shared between layers.

gcc flags: ``-O2 -std=gnu11`` (the featuremap dump uses POSIX ``mkdir``), warnings kept in
:attr:`CompiledModel.warnings`.  Binaries are cached by SHA-256 of (rendered source, harness,
compiler version, flags).

Layer names: the C names are ``cnn_<fx name>``, where <fx name> is torch.fx's identifier for
the module's qualified name (``layers.conv1`` -> ``layers_conv1``, ``layers.0.0.add`` ->
``layers_0_0_add``); :attr:`CLayer.torch_name` maps back to the qualified name of
``model.named_modules()`` (``'input'`` for the input node).  ``QuantizedIdentity`` has no C
node (the converter deletes identity layers), so ``identity1`` has no C output.

Layout: the C is channels-last.  :attr:`CRun.c` holds the raw C arrays ``(S, T, *c_shape)``
(e.g. ``(S, T, L, C)`` or ``(S, T, H, W, C)``); :attr:`CRun.cf` holds the channels-first view
keyed by torch name ``(S, T, C, L)`` / ``(S, T, C, H, W)``; a Flatten's channels-first view is
its input transposed to channels-first, then flattened (torch's order), not its C order.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import io
import json
import logging
import os
import subprocess
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from golden.errors import DeployError, GoldenError
from golden.refs.codegen_c import atomic_write, cache_dir, compiler_id
from golden.refs.qualia_models import Built, float_model

__all__ = [
    "CFLAGS",
    "CLayer",
    "CRun",
    "Comparison",
    "CompiledModel",
    "DeployError",
    "Deployed",
    "LayerDiff",
    "LayerParams",
    "compare_torch",
    "deploy",
    "deployment_params",
    "describe",
    "quantize_input",
    "run",
]

CFLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra")
_MAGIC = 0x474F4C44454E4D31  # "GOLDENM1"
_NAME = "golden"
_PREFIX = "cnn_"
_CHDIR_LOCK = threading.Lock()


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


@dataclass(frozen=True)
class CompiledModel:
    binary: Path
    source: Path
    warnings: str
    compile_seconds: float  # 0.0 when cached
    cached: bool
    key: str


@dataclass(frozen=True, eq=False)
class Deployed:
    """A model deployed to C: the rendered source, its layers, the compiled binary, timings."""

    built: Built | None  # the test-factory model, or None for a model deployed as it is
    width: int
    long_width: int
    dump_featuremaps: bool
    source: str  # full_model.h as rendered (AGPL: never commit it)
    activations_range: str  # the exporter's text
    layers: tuple[CLayer, ...]
    modelgraph: Any  # the converter's ModelGraph after conversion (weights quantized)
    compiled: CompiledModel | None  # None: rendered with compile=False
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


@dataclass(frozen=True, eq=False)
class CRun:
    """Outputs of one run. ``c``: {c_name: int64 (S, T, *c_shape)}; ``cf``: {torch_name: channels-first}."""

    c: dict[str, np.ndarray]
    cf: dict[str, np.ndarray]
    output: np.ndarray  # model output per step from the harness's stdout, int64 (S, T, n_out)
    run_seconds: float


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
           compile: bool = True) -> Deployed:
    """Render ``model`` through Qualia's deployment path and compile it (cached). See the module doc.

    ``model``: a calibrated quantized Qualia model (its float twin is derived: :func:`golden.qualia.twin.float_twin`)
    or a test-factory :class:`golden.refs.qualia_models.Built` (its float template rebuilt from its arguments).
    ``width``: 8 or 16 (the converter's ``quantize='int8'|'int16'``; default: the model's bits).
    ``long_width``: the LONG accumulator width (None: the converter default, 16 for int8, 32 for int16).
    ``compile=False``: render only (``compiled`` is None), no compiler needed.
    """
    from golden.qualia.network import torch_input_shape
    from golden.qualia.target import deployable_width
    from golden.qualia.twin import float_twin

    built = model if isinstance(model, Built) else None
    qmodel = model.model if built is not None else model
    name = built.name if built is not None else type(qmodel).__name__
    try:
        width = deployable_width(qmodel, width)
    except GoldenError as e:
        raise DeployError(str(e)) from None
    if long_width is not None and (long_width not in (16, 32, 64) or long_width < width):
        raise DeployError(f"long_width must be 16, 32 or 64 and >= width {width}, got {long_width!r}")
    from qualia_core.postprocessing.QuantizationAwareTraining import (
        QuantizationAwareTraining,
    )
    from qualia_plugin_snn.learningframework.SpikingJelly import SpikingJelly

    t0 = time.perf_counter()
    fmodel = float_model(built) if built is not None else float_twin(qmodel)
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
                qat._QuantizationAwareTraining__export_activation_ranges(qmodel, save_name=_NAME)
                ranges = (Path("out") / "learningmodel" / f"{_NAME}_activations_range.txt").read_text()
                cg = _codegen_class()(quantize=f"int{width}", long_width=long_width,
                                      dump_featuremaps=dump_featuremaps)
                failed = None
                try:
                    ok = cg.convert(SpikingJelly(), fmodel, _NAME, None)
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
    compiled = _compile(source, _harness_source(layers)) if compile else None
    return Deployed(built, width, int(layers[1].long_width), dump_featuremaps, source, ranges, layers, cg.modelgraph,
                    compiled, render_s, int(inp.q_out), inp.c_shape, qmodel, name, in_shape)


# --------------------------------------------------------------------------------------------------
# harness and compilation
# --------------------------------------------------------------------------------------------------


def _harness_source(layers: tuple[CLayer, ...]) -> str:
    """Golden's own host main (not from Qualia), appended after ``#include "full_model.h"``."""
    n_in = int(np.prod(layers[0].c_shape))
    n_out = int(np.prod(layers[-1].c_shape))
    return f"""
/* ---- golden whole-model harness (golden project code, not from Qualia) ---- */
#include <errno.h>      /* full_model.h is SINGLE_FILE: it leaves the includes of its */
#include <stdio.h>      /* featuremap dump (errno, mkdir) to the includer */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "full_model.h"

#define GOLDEN_MAGIC {_MAGIC}LL
#define GOLDEN_N_IN ((size_t){n_in})
#define GOLDEN_N_OUT ((size_t){n_out})

int main(void) {{
  static input_t in;
  static output_t out;
  long long hdr[4];
  if (sizeof(in) != GOLDEN_N_IN * sizeof(MODEL_INPUT_NUMBER_T) || sizeof(out) != GOLDEN_N_OUT * sizeof(out[0])) {{
    fputs("size mismatch\\n", stderr); return 3;
  }}
  if (fread(hdr, sizeof hdr[0], 4, stdin) != 4 || hdr[0] != GOLDEN_MAGIC || (size_t)hdr[3] != GOLDEN_N_IN) {{
    fputs("bad header\\n", stderr); return 2;
  }}
  for (long long s = 0; s < hdr[1]; s++) {{
    for (long long t = 0; t < hdr[2]; t++) {{
      if (fread(in, sizeof(MODEL_INPUT_NUMBER_T), GOLDEN_N_IN, stdin) != GOLDEN_N_IN) {{
        fputs("short input\\n", stderr); return 4;
      }}
      memset(out, 0x5a, sizeof out);
      cnn(in, out);
      if (fwrite(out, sizeof(out[0]), GOLDEN_N_OUT, stdout) != GOLDEN_N_OUT) {{ fputs("write\\n", stderr); return 5; }}
    }}
    reset();
  }}
  return fflush(stdout) == 0 ? 0 : 6;
}}
"""


def _compile(source: str, harness: str) -> CompiledModel:
    h = hashlib.sha256()
    for part in (source, harness, compiler_id("gcc"), "\0".join(CFLAGS)):
        h.update(part.encode())
        h.update(b"\0\1")
    key = "model-" + h.hexdigest()[:24]
    d = cache_dir() / key
    d.mkdir(parents=True, exist_ok=True)
    src, main, binary, log = d / "full_model.h", d / "main.c", d / "model.bin", d / "build.log"
    if binary.exists() and log.exists():
        return CompiledModel(binary, main, log.read_text(), 0.0, True, key)
    atomic_write(src, source.encode())
    atomic_write(main, harness.encode())
    tmp = d / f"model.bin.{os.getpid()}.tmp"
    cmd = ["gcc", *CFLAGS, "-I", str(d), str(main), "-o", str(tmp), "-lm"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        errs = [ln for ln in proc.stderr.splitlines() if "error" in ln][:3]
        raise DeployError(f"gcc failed in {d}: {' | '.join(errs) or proc.stderr.strip()[-300:]}")
    os.replace(tmp, binary)
    atomic_write(log, proc.stderr.encode())
    return CompiledModel(binary, main, proc.stderr, dt, False, key)


# --------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------


def _to_cl(a: np.ndarray) -> np.ndarray:
    """(S, T, C, *spatial) channels-first -> (S, T, *spatial, C)."""
    return np.moveaxis(a, 2, -1) if a.ndim >= 4 else a


def _to_cf(a: np.ndarray) -> np.ndarray:
    """(S, T, *spatial, C) channels-last -> (S, T, C, *spatial)."""
    return np.moveaxis(a, -1, 2) if a.ndim >= 4 else a


def quantize_input(dep: Deployed, x: np.ndarray) -> np.ndarray:
    """Float inputs (S, T, *torch_input_shape) -> raw ints at the C input's q, through the model's own quantizer.

    The quantizer applied is the first one the torch model applies to its input (``identity1``'s
    for SCNN/SResNet, the first Linear's ``quantizer_input`` for SMLP), in ``.eval()``.
    """
    import torch

    first = next(m for m in dep.model.modules() if hasattr(m, "quantizer_input"))
    with torch.no_grad():
        xq = first.quantizer_input(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()
    raw = xq.astype(np.float64) * 2.0 ** dep.input_q
    if not np.array_equal(raw, np.round(raw)):
        raise DeployError(f"the model's input quantizer is not at the C input q={dep.input_q}")
    return raw.astype(np.int64)


def run(dep: Deployed, x_raw: np.ndarray) -> CRun:
    """Run the compiled model on ``x_raw``: raw ints (S, T, *torch_input_shape), channels-first.

    Every sample starts from reset potentials.  Returns every C layer's output at every step
    (with ``dump_featuremaps``; otherwise only the model output).
    """
    x = np.asarray(x_raw)
    shape = dep.torch_input_shape
    if dep.compiled is None:
        raise DeployError("the model was deployed with compile=False: deploy it again to run it")
    if not np.issubdtype(x.dtype, np.integer) or x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != shape:
        raise DeployError(f"x_raw must be raw integers (S, T, *{shape}), got {x.dtype} {x.shape}")
    lo, hi = -(2 ** (dep.width - 1)), 2 ** (dep.width - 1) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise DeployError(f"x_raw outside int{dep.width} [{lo}, {hi}]")
    S, T = int(x.shape[0]), int(x.shape[1])
    xc = np.ascontiguousarray(_to_cl(x).reshape(S, T, -1)).astype(f"int{dep.width}")
    n_in = int(np.prod(dep.c_input_shape))
    hdr = np.array([_MAGIC, S, T, n_in], dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="golden-run-") as rd:
        t0 = time.perf_counter()
        proc = subprocess.run([str(dep.compiled.binary)], input=hdr.tobytes() + xc.tobytes(), capture_output=True,
                              cwd=rd, check=False)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            raise DeployError(f"{dep.compiled.binary} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
        out_dtype = np.dtype(f"int{dep.layers[-1].width}")
        out = np.frombuffer(proc.stdout, dtype=out_dtype).astype(np.int64)
        n_out = int(np.prod(dep.layers[-1].c_shape))
        if out.size != S * T * n_out:
            raise DeployError(f"expected {S * T * n_out} outputs, got {out.size}")
        c = _read_featuremaps(dep, Path(rd), S, T) if dep.dump_featuremaps else {}
    cf = _channels_first(dep, c)
    return CRun(c, cf, out.reshape(S, T, n_out), dt)


def _read_featuremaps(dep: Deployed, rd: Path, S: int, T: int) -> dict[str, np.ndarray]:
    base = rd / "out" / "qualia_codegen" / f"{_NAME}_qint{dep.width}" / "featuremaps"
    res = {}
    for la in dep.layers:
        arr = np.empty((S, T, *la.c_shape), dtype=np.int64)
        for s in range(S):
            for t in range(T):
                p = base / str(s) / str(t) / f"{la.c_name}.json"
                try:
                    d = json.loads(p.read_text())
                except (OSError, ValueError) as e:
                    raise DeployError(f"featuremap {p.relative_to(rd)} missing or unreadable: {e}") from e
                arr[s, t] = np.asarray(d["data"], dtype=np.int64).reshape(la.c_shape)
        res[la.c_name] = arr
    return res


def _channels_first(dep: Deployed, c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    cf = {}
    for la in dep.layers:
        if la.c_name not in c or la.torch_name is None:
            continue
        a = c[la.c_name]
        if la.ctype == "TFlattenLayer":
            src = la.in_c_shapes[0]
            a = _to_cf(a.reshape(*a.shape[:2], *src)).reshape(a.shape) if len(src) >= 2 else a
        else:
            a = _to_cf(a)
        cf[la.torch_name] = a
    return cf


def describe(dep: Deployed) -> list[dict]:
    """One dict per C layer (the CLayer fields), for reports."""
    return [dataclasses.asdict(la) for la in dep.layers]


# --------------------------------------------------------------------------------------------------
# torch .eval() vs the deployed C, per layer
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerDiff:
    """One layer of :class:`Comparison`; indices are channels-first (torch layout)."""

    torch_name: str
    c_name: str
    ctype: str
    values: int
    mismatches: int  # 0 when not comparable
    comparable: bool  # False when torch's output is not on the C layer's grid (e.g. SMLP's flatten of the raw input)
    diffs: dict[int, int]  # (C - torch) raw value -> count, the 8 most frequent
    first: tuple[int, int, tuple[int, ...]] | None  # (sample, t, index) of the first mismatch


@dataclass(frozen=True)
class Comparison:
    layers: dict[str, LayerDiff]  # execution order
    first: tuple[tuple[str, int, tuple[int, ...]] | None, ...]  # per sample: (layer, t, index) of the first divergence
    output_mismatch: float  # fraction of model output values (all steps) that differ
    spike_rates: dict[str, float]  # C neuron layers: fraction of non-zero outputs

    @property
    def values(self) -> int:
        return sum(d.values for d in self.layers.values() if d.comparable)

    @property
    def mismatches(self) -> int:
        return sum(d.mismatches for d in self.layers.values())


def compare_torch(dep: Deployed, x: np.ndarray, torch_outs: dict | None = None, crun: CRun | None = None) -> Comparison:
    """Run the model in ``.eval()`` (``qualia_models.run_torch``) and the C on the same float inputs ``x``.

    The C gets ``quantize_input(dep, x)``.  Torch outputs are converted to raw integers at each C layer's
    ``q_out``; a layer is compared only where that conversion is exact.
    """
    from golden.refs.qualia_models import run_torch

    tt = run_torch(dep.built, x) if torch_outs is None else torch_outs
    r = run(dep, quantize_input(dep, x)) if crun is None else crun
    layers: dict[str, LayerDiff] = {}
    S = x.shape[0]
    firsts: list[list] = [[] for _ in range(S)]
    order = 0
    for la in dep.layers:
        n = la.torch_name
        if n is None or n not in tt or n not in r.cf:
            continue
        tr = tt[n].astype(np.float64) * 2.0 ** la.q_out
        cv = r.cf[n]
        if tr.shape != cv.shape:
            raise DeployError(f"{n}: torch shape {tr.shape} != C shape {cv.shape}")
        if not np.array_equal(tr, np.round(tr)):
            layers[n] = LayerDiff(n, la.c_name, la.ctype, int(cv.size), 0, False, {}, None)
            continue
        bad = cv != tr
        d = (cv - tr)[bad].astype(np.int64)
        vals, counts = np.unique(d, return_counts=True)
        top = sorted(zip(vals.tolist(), counts.tolist()), key=lambda p: -p[1])[:8]
        first = None
        if bad.any():
            idx = np.argwhere(bad)
            i = int(np.lexsort((idx[:, 1], idx[:, 0]))[0])
            first = (int(idx[i, 0]), int(idx[i, 1]), tuple(int(v) for v in idx[i, 2:]))
            for s in range(S):
                bs = np.argwhere(bad[s])
                if len(bs):
                    t0 = int(bs[:, 0].min())
                    j = int(np.argwhere(bs[:, 0] == t0)[0, 0])
                    firsts[s].append((t0, order, n, tuple(int(v) for v in bs[j, 1:])))
        layers[n] = LayerDiff(n, la.c_name, la.ctype, int(cv.size), int(bad.sum()), True, dict(top), first)
        order += 1
    first_per_sample = tuple((min(f)[2], min(f)[0], min(f)[3]) if f else None for f in firsts)
    out_name = dep.layers[-1].torch_name
    out_mis = float(layers[out_name].mismatches / layers[out_name].values) if out_name in layers else float("nan")
    rates = {la.torch_name: float((r.cf[la.torch_name] != 0).mean()) for la in dep.layers
             if la.ctype in ("TLifLayer", "TIfLayer") and la.torch_name in r.cf}
    return Comparison(layers, first_per_sample, out_mis, rates)


# --------------------------------------------------------------------------------------------------
# what the deployment holds, per C layer (for golden's codegen profile)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LayerParams:
    """One C layer as the converter deployed it, next to what the quantized torch module holds.

    ``ints``: the converter's integer arrays (``node.layer.weights`` after ``quantize_modelgraph``), in the
    C layout (Conv kernels ``(O, K, I)`` / ``(O, KH, KW, I)``; a Dense after a Flatten has its input
    columns in channels-last order; BatchNorm ``kernel``/``bias`` are the fused alpha/beta; neurons hold
    ``v_threshold``, ``reciprocal_tau`` (LIF), ``v_reset`` (hard reset) at ``q_weights`` = q_v).
    ``torch_ints``: the same quantities from the quantized torch module's own quantizers (eval mode),
    brought to the same layout; ``differs``: name -> number of differing entries (-1: no torch counterpart
    of that shape).  Measured: 0 everywhere on the default grid except a LIF whose ``tau`` is not a power of
    two: the converter quantizes the float twin's float32(1/tau) at the final q_v while the calibrated module
    holds tau re-quantized at an earlier q_v (e.g. reciprocal_tau 5 vs 6 for tau=3 at q_v=4).
    ``attrs``: layer hyperparameters the C templates take (strides, padding, pool_size, soft_reset...).
    """

    c_name: str
    torch_name: str | None
    ctype: str
    width: int
    long_width: int
    q_in: tuple[int | None, ...]  # output_scale_factor of each input node
    q_out: int | None
    q_weights: int | None
    q_bias: int | None  # None: biases at q_weights
    round_out: str | None
    round_weights: str | None
    ints: dict[str, np.ndarray]
    torch_ints: dict[str, np.ndarray]
    differs: dict[str, int]
    attrs: dict[str, Any]


_ATTRS = ("strides", "padding", "pool_size", "kernel_size", "groups", "use_bias", "soft_reset", "decay_input",
          "epsilon", "units", "filters")


def _raw(t, q: int, where: str) -> np.ndarray:
    a = t.detach().double().numpy() * 2.0 ** q
    r = np.round(a)
    if not np.array_equal(a, r):
        raise DeployError(f"{where}: torch value off the q={q} grid (the deployment's q for it)")
    return r.astype(np.int64)


def flatten_perm(src_shape: tuple[int, ...]) -> np.ndarray:
    """C (channels-last) flat index j -> torch (channels-first) flat index."""
    n = int(np.prod(src_shape))
    nd = len(src_shape)
    cf_shape = (src_shape[-1], *src_shape[:-1])
    return np.arange(n).reshape(cf_shape).transpose(*range(1, nd), 0).ravel()


def _weights_and_bias(m, w, b):
    """(quantized weight, quantized bias) as the layer's forward makes them: a separate bias quantizer
    (``bias.quant_enable = true``) quantizes the bias alone, otherwise quantizer_w quantizes both together."""
    if b is None:
        return m.quantizer_w(w), None
    if getattr(m, "quantizer_bias", None) is not None:
        return m.quantizer_w(w), m.quantizer_bias(b)
    return m.quantizer_w(w, bias_tensor=b)


def _torch_ints(m, la: CLayer, prev: CLayer | None) -> dict[str, np.ndarray]:
    import torch

    qw = la.q_weights
    qb = la.q_bias if la.q_bias is not None else qw
    where = f"{la.torch_name} ({la.ctype})"
    with torch.no_grad():
        if la.ctype in ("TDenseLayer", "TConv1DLayer", "TConv2DLayer"):
            w, b = _weights_and_bias(m, m.weight, m.bias)
            k = _raw(w, qw, f"{where} weight")
            if la.ctype == "TConv1DLayer":
                k = k.transpose(0, 2, 1)
            elif la.ctype == "TConv2DLayer":
                k = k.transpose(0, 2, 3, 1)
            elif prev is not None and prev.ctype == "TFlattenLayer" and len(prev.in_c_shapes[0]) >= 2:
                k = k[:, flatten_perm(prev.in_c_shapes[0])]
            out = {"kernel": k}
            if b is not None:
                out["bias"] = _raw(b, qb, f"{where} bias")
            return out
        if la.ctype.startswith("TBatchNormalization"):
            alpha, beta = m.compute_fused_params(weight=m.weight, bias=m.bias, mean=m.running_mean,
                                                 var=m.running_var, eps=m.eps)
            a, b = _weights_and_bias(m, alpha, beta)
            return {"kernel": _raw(a, qw, f"{where} alpha").reshape(-1),
                    "bias": _raw(b, qb, f"{where} beta").reshape(-1)}
        if la.ctype in ("TLifLayer", "TIfLayer"):
            hp = m.get_hyperparams_tensor(device=torch.device("cpu"), dtype=torch.float32)
            _, q = m.quantizer_v(torch.zeros(1), bias_tensor=hp)
            raw = _raw(q, qw, f"{where} hyperparameters")
            names = ["v_threshold"] + (["reciprocal_tau"] if la.ctype == "TLifLayer" else [])
            names += [] if m.v_reset is None else ["v_reset"]
            return {n: raw[i].reshape(()) for i, n in enumerate(names)}
    return {}


def deployment_params(dep: Deployed) -> tuple[LayerParams, ...]:
    """Per C layer: the integers, Q formats, widths and rounding the deployment uses, and torch's view of them."""
    mods = dict(dep.model.named_modules())
    by_c = {la.c_name: la for la in dep.layers}
    out = []
    prev: CLayer | None = None
    for node, la in zip(dep.modelgraph.nodes, dep.layers):
        ints = {k: np.asarray(v).astype(np.int64) for k, v in node.layer.weights.items()}
        m = mods.get(la.torch_name) if la.torch_name else None
        tints = _torch_ints(m, la, prev) if m is not None and ints else {}
        differs = {k: int(np.sum(ints[k] != tints[k])) if k in tints and ints[k].shape == tints[k].shape else -1
                   for k in ints}
        attrs = {a: getattr(node.layer, a) for a in _ATTRS if hasattr(node.layer, a)}
        out.append(LayerParams(
            la.c_name, la.torch_name, la.ctype, la.width, la.long_width,
            tuple(by_c[i].q_out for i in la.innodes), la.q_out, la.q_weights, la.q_bias, la.round_out,
            la.round_weights, ints, tints, differs, attrs))
        prev = la
    return tuple(out)
