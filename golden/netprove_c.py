"""The generated C's arithmetic primitives, run for real: number.hh's ``scale`` / ``scale_and_clamp_to``.

A whole-network proof against the C (:mod:`golden.netprove`) reduces every synaptic, pool and add layer to
two primitives of qualia-codegen-core's ``number.hh``: ``scale(NUMBER_T, n, s, mode)`` (a LONG_NUMBER_T
shifted right with the rounding, or left) and ``scale_and_clamp_to(NUMBER_T, n, s, mode)`` (the same, then
saturated to NUMBER_T). :func:`run_primitive` evaluates one of them on *every* integer of a range, in C:

1. ``number.hh`` is rendered from the **installed** package by its own ``Converter.write_numeric_header``
   (nothing of Qualia, AGPL-3.0, is copied here), with ``number_types`` = the converter's default
   ``NumberType(int, 32, 64)`` plus the layer's ``(width, long_width)``, as ``Converter.quantize_modelgraph``
   builds it;
2. a driver written here defines the shift and the rounding mode as compile-time constants (as the layer
   templates' ``#define`` s make them: gcc folds them the same way), reads int64 values on stdin, converts
   each to LONG_NUMBER_T, applies the primitive and writes each result as an int64 on stdout;
3. it is compiled with ``gcc -O2 -std=c11`` into :func:`golden.refs.codegen_c.cache_dir` (outside the
   repository), keyed by the sha256 of source, flags and compiler, so each (type, shift, mode, primitive)
   compiles once per machine.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .errors import PrimitiveError

PRIMITIVES = ("scale", "scale_and_clamp_to")
C_MODES = {"RND": "NEAREST", "TRN": "FLOOR"}  # golden round -> number.hh round_mode_t (NONE acts as FLOOR)
CFLAGS = ("-O2", "-std=c11", "-Wall", "-Wextra")
CHUNK = 1 << 22  # values per driver call
_CTYPES = {8: "int8_t", 16: "int16_t", 32: "int32_t", 64: "int64_t"}



@functools.cache
def number_hh(width: int, long_width: int) -> str:
    """``number.hh`` rendered by the installed converter for NUMBER_T int<width> / LONG_NUMBER_T int<long_width>."""
    try:
        from qualia_codegen_core.Converter import NumberType
        from qualia_codegen_plugin_snn import Converter
    except ImportError as e:  # pragma: no cover - the CI installs them
        raise PrimitiveError(f"qualia-codegen is not importable ({e}): install the test extras") from None
    conv = Converter()  # output_path=None: renders to strings, writes nothing
    conv.number_types.add(NumberType(int, width, long_width, -(1 << (width - 1)), (1 << (width - 1)) - 1))
    conv.number_types = sorted(conv.number_types, key=lambda t: (t.width, t.long_width))
    return conv.write_numeric_header()


def template_sha256(relpath: str) -> str | None:
    """sha256 of an installed qualia-codegen-core asset (``include/number.hh``, ``layers/fc.cc``, ...)."""
    import importlib.util

    spec = importlib.util.find_spec("qualia_codegen_core")
    if spec is None or spec.origin is None:
        return None
    p = Path(spec.origin).parent / "assets" / relpath
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


@functools.cache
def compiler_id() -> str:
    """The first line of ``gcc --version`` (recorded in certificates)."""
    out = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "gcc"


def _driver(width: int, long_width: int, primitive: str, shift: int, mode: str) -> str:
    num, lng = _CTYPES[width], _CTYPES[long_width]
    return f"""
/* ---- golden netprove driver (golden project code, not from Qualia) ---- */
#include <stdio.h>
#include <stdlib.h>
#define GOLDEN_SHIFT ({shift})
#define GOLDEN_MODE ROUND_MODE_{mode}
int main(void) {{
  static int64_t in[4096], out[4096];
  size_t k;
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  while ((k = fread(in, sizeof in[0], 4096, stdin)) > 0) {{
    for (size_t i = 0; i < k; i++) {{
      {lng} number = ({lng})in[i];
      out[i] = (int64_t){primitive}({num}, number, GOLDEN_SHIFT, GOLDEN_MODE);
    }}
    if (fwrite(out, sizeof out[0], k, stdout) != k) return 3;
  }}
  return fflush(stdout) == 0 ? 0 : 4;
}}
"""


@functools.cache
def _binary(width: int, long_width: int, primitive: str, shift: int, mode: str) -> Path:
    from .refs import codegen_c

    source = "#define SINGLE_FILE\n" + number_hh(width, long_width) + _driver(width, long_width, primitive, shift,
                                                                             mode)
    h = hashlib.sha256()
    for part in (source, compiler_id(), "\0".join(CFLAGS)):
        h.update(part.encode())
        h.update(b"\0\1")
    d = codegen_c.cache_dir() / ("prim-" + h.hexdigest()[:24])
    d.mkdir(parents=True, exist_ok=True)
    binary = d / "prim.bin"
    if binary.exists():
        return binary
    fd, src = tempfile.mkstemp(dir=d, suffix=".c")
    with os.fdopen(fd, "w") as f:
        f.write(source)
    tmp = d / f"prim.bin.{os.getpid()}.tmp"
    proc = subprocess.run(["gcc", *CFLAGS, src, "-o", str(tmp)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise PrimitiveError(f"gcc failed on number.hh's {primitive} ({width}/{long_width} bits): "
                             f"{proc.stderr.strip()[-300:]}")
    os.replace(src, d / "prim.c")
    os.replace(tmp, binary)
    return binary


def run_primitive(primitive: str, *, width: int, long_width: int, shift: int, mode: str, values) -> np.ndarray:
    """number.hh's ``primitive`` (NUMBER_T int<width>, LONG int<long_width>) on every LONG value of ``values``.

    ``mode``: golden's name of the layer's OUTPUT_ROUND_MODE (RND -> NEAREST, TRN -> FLOOR). Returns int64.
    """
    if primitive not in PRIMITIVES:
        raise PrimitiveError(f"primitive: {primitive!r} is not one of {', '.join(PRIMITIVES)}")
    if mode not in C_MODES:
        raise PrimitiveError(f"round: the C rounds NEAREST (RND) or FLOOR (TRN), not {mode}")
    values = np.ascontiguousarray(values, dtype="<i8")
    lim = 1 << (long_width - 1)
    if values.size and (values.min() < -lim or values.max() >= lim):
        raise PrimitiveError(f"values: outside int{long_width}_t")
    binary = _binary(width, long_width, primitive, int(shift), C_MODES[mode])
    parts = []
    for a in range(0, len(values), CHUNK):
        chunk = values[a: a + CHUNK]
        proc = subprocess.run([str(binary)], input=chunk.tobytes(), capture_output=True, check=False)
        got = np.frombuffer(proc.stdout, dtype="<i8")
        if proc.returncode != 0 or len(got) != len(chunk):
            raise PrimitiveError(f"the {primitive} driver failed (exit {proc.returncode}) on {len(chunk)} values: "
                                 f"{proc.stderr.decode(errors='replace').strip()[-200:]}")
        parts.append(got.astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
