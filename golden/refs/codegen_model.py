"""Compile a deployed model's C with golden's own harness, run it layer by layer, compare it with torch.

The deployment itself (Qualia's own path: activation-range export, float twin, ``QualiaCodeGen.convert``) is
:func:`golden.qualia.deployment.deploy`; this test reference only compiles and runs what it rendered. Nothing of
Qualia (AGPL-3.0) is copied here or written into the repository: the rendered source and the binaries live in the
C cache of :func:`golden.refs.codegen_c.cache_dir` (outside the repository).

:func:`deploy` = :func:`golden.qualia.deployment.deploy` (render) + :func:`compile_deployed` (this harness).

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

Layout: the C is channels-last.  :attr:`CRun.c` holds the raw C arrays ``(S, T, *c_shape)``
(e.g. ``(S, T, L, C)`` or ``(S, T, H, W, C)``); :attr:`CRun.cf` holds the channels-first view
keyed by torch name ``(S, T, C, L)`` / ``(S, T, C, H, W)``; a Flatten's channels-first view is
its input transposed to channels-first, then flattened (torch's order), not its C order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.errors import DeployError
from golden.qualia.deployment import C_NAME, CLayer, Deployed
from golden.qualia.deployment import deploy as render
from golden.refs.codegen_c import atomic_write, cache_dir, compiler_id

__all__ = [
    "CFLAGS",
    "CRun",
    "Comparison",
    "CompiledDeployed",
    "CompiledModel",
    "DeployError",
    "LayerDiff",
    "compare_torch",
    "compile_deployed",
    "deploy",
    "quantize_input",
    "run",
]

CFLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra")
_MAGIC = 0x474F4C44454E4D31  # "GOLDENM1"


@dataclass(frozen=True)
class CompiledModel:
    binary: Path
    source: Path
    warnings: str
    compile_seconds: float  # 0.0 when cached
    cached: bool
    key: str



@dataclass(frozen=True, eq=False)
class CompiledDeployed(Deployed):
    """A :class:`golden.qualia.deployment.Deployed` model with its C compiled by golden's harness (None: not
    compiled)."""

    compiled: CompiledModel | None = None


@dataclass(frozen=True, eq=False)
class CRun:
    """Outputs of one run. ``c``: {c_name: int64 (S, T, *c_shape)}; ``cf``: {torch_name: channels-first}."""

    c: dict[str, np.ndarray]
    cf: dict[str, np.ndarray]
    output: np.ndarray  # model output per step from the harness's stdout, int64 (S, T, n_out)
    run_seconds: float



def deploy(model, *, width: int | None = None, long_width: int | None = None, dump_featuremaps: bool = True,
           compile: bool = True) -> CompiledDeployed:
    """Render ``model`` the way Qualia does (:func:`golden.qualia.deployment.deploy`, same arguments) and compile it
    with golden's harness (cached); ``compile=False``: render only (``compiled`` is None), no compiler needed."""
    dep = render(model, width=width, long_width=long_width, dump_featuremaps=dump_featuremaps)
    return compile_deployed(dep) if compile else CompiledDeployed(**_fields(dep))


def compile_deployed(dep: Deployed) -> CompiledDeployed:
    """``dep`` with its rendered C compiled together with golden's harness (the binary cached by content)."""
    return CompiledDeployed(**{**_fields(dep), "compiled": _compile(dep.source, _harness_source(dep.layers))})


def _fields(dep: Deployed) -> dict:
    return {f.name: getattr(dep, f.name) for f in dataclasses.fields(Deployed)}


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
    if getattr(dep, "compiled", None) is None:
        raise DeployError("the model's C is not compiled (deployed with compile=False, or by golden.qualia): "
                          "compile it with golden.refs.codegen_model.compile_deployed(dep) to run it")
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
    base = rd / "out" / "qualia_codegen" / f"{C_NAME}_qint{dep.width}" / "featuremaps"
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

