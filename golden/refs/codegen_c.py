"""Run the real C that qualia-codegen-plugin-snn generates for one IF / LIF layer.

Nothing from Qualia (AGPL-3.0) is copied into this repository.  At run time the
harness

1. imports the *installed* ``qualia_codegen_plugin_snn.Converter`` (a subclass
   of ``qualia_codegen_core.Converter``) and lets it render, with its own jinja
   environment, template search path and ``qtype2ctype``:

   * ``include/number.hh``       (qualia-codegen-core) -> ``number.h``
   * ``include/layers/{if,lif}.hh`` (plugin)            -> layer header
   * ``layers/{if,lif}.cc``      (plugin)               -> layer function

   for a single layer node built from the packages' own graph classes
   (``LayerNode``, ``Quantization``, ``RoundMode``, ``TIfLayer``/``TLifLayer``,
   ``TInputLayer``).  The pieces are concatenated behind ``#define SINGLE_FILE``
   exactly as ``Converter.generate_code`` does (it also puts a ``'\\n'`` after
   every rendered layer piece: the templates end without a newline);
2. appends a small driver written here (:func:`_driver_source`) that reads raw
   integers on stdin, calls the layer function once per time step (after
   ``<name>_reset_pot()`` at the start of every sequence) and writes the output
   array and the layer's static ``<name>_potent`` array after every step on
   stdout;
3. compiles that single translation unit with ``gcc -O2 -Wall -Wextra -std=c11``
   into a cache directory *outside the repository* (see :func:`cache_dir`),
   keyed by a SHA-256 of (rendered source + driver + compiler + flags + compiler
   version), so a given configuration is compiled once per machine.

For ``golden prove``, :func:`prove_chunk_c` compiles the same rendered layer with
a third driver of ours (``golden_prove_chunk``) as a shared library, loaded once
per process with ctypes: one call per chunk runs the three layer calls of the
proof and replays the template's integer expressions for undefined behaviour in
exact 128-bit arithmetic (:func:`undefined_pairs` is its numpy twin).

What is compile time and what is run time
-----------------------------------------
Baked into the binary (one compile per distinct value): ``kind``, ``width``,
``long_width``, ``q_in``/``q_v``/``q_out``, ``round_mode``, ``soft_reset``,
``decay_input`` (LIF only) and the per-step neuron shape.  For a flat layer
(``shape=None``) the compiled width is rounded up to a bucket (power of two,
at least 64, at most 65535) and the extra neurons are fed zeros and dropped:
neurons are independent, so this only saves compiles (``pad_flat=False``
compiles the exact ``N``).

Passed at run time (they are parameters of the generated C function):
``v_threshold``, ``v_reset`` (ignored when ``soft_reset``), ``reciprocal_tau``
(ignored for IF) and the input data.

Template variables the harness supplies (via the real objects)
-------------------------------------------------------------
``node.layer.name`` ('golden_if' / 'golden_lif'), ``node.layer.soft_reset`` and
``node.layer.decay_input`` as the ints 0/1 (that is what Qualia's
``TorchModelGraph`` stores; a Python ``bool`` would render as ``True``, which
the preprocessor treats as an undefined identifier = 0 -> ``#if !SOFTRESET``
would select the *hard* reset), ``node.input_shape[0]`` = ``(1, N)``,
``(1, S, C)`` or ``(1, H, W, C)``, ``node.innodes[0].q.output_scale_factor`` =
``q_in``, ``node.q.weights_scale_factor`` = ``q_v``,
``node.q.output_scale_factor`` = ``q_out``, ``node.q.output_round_mode``,
``node.q.number_type`` = ``int``, ``node.q.width``, ``node.q.long_width``;
``number.hh`` gets ``number_types`` = the Converter's default
``NumberType(int, 32, 64)`` plus this layer's type (sorted, so the rendering
and the cache key are stable from one process to the next: ``number_types``
is a ``set`` whose order depends on ``hash(int)``, i.e. on ``id(int)``).

Data layout
-----------
``x`` is ``(T, N)`` (or ``(B, T, N)``: B independent sequences, each starting
from a zero potential).  With ``shape=(S, C)`` or ``(H, W, C)`` column ``n`` of
``x`` is the C row-major flattening of that shape (channels last, as the
template's arrays).  Outputs have the same shape as ``x``.

Extra keyword-only knobs (defaults give the configuration described above):
``extra_cflags`` (appended to the gcc command line, e.g. ``("-fwrapv",)``,
``("-O0",)`` or Qualia's own Linux example flags
``("-fsanitize=signed-integer-overflow", "-fno-sanitize-recover",
"-DTRAPV_SHIFT")``), ``lang`` ("c" -> gcc -std=c11, "c++" -> g++ -std=c++17,
which is how Qualia's examples/Linux/build.sh builds model.c) and
``pad_flat``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.errors import CRunError

__all__ = [
    "CBuild",
    "CRunError",
    "ChunkResult",
    "QUALIA_LINUX_UB_CFLAGS",
    "build_c_layer",
    "c_available",
    "cache_dir",
    "prove_chunk_c",
    "render_c_layer",
    "run_c_layer",
    "step_c_layer",
    "undefined_pairs",
]

_REPO_ROOT = Path(__file__).resolve().parents[2]

#: Loop indices in the templates are ``unsigned short``: any loop bound above
#: this never terminates.
MAX_DIM = 65535
#: Sanity cap on the total neuron count of one compiled layer (static arrays).
MAX_TOTAL = 1 << 24

_MAGIC = 0x474F4C44454E4331  # "GOLDENC1"
_HDR_WORDS = 8

_BASE_CFLAGS = {
    "c": ("-O2", "-Wall", "-Wextra", "-std=c11"),
    "c++": ("-O2", "-Wall", "-Wextra", "-std=c++17"),
}
_COMPILER = {"c": "gcc", "c++": "g++"}
_LANG_FLAG = {"c": "c", "c++": "c++"}

#: Signed-overflow trap flags of Qualia's own host build (examples/Linux/CMakeLists.txt):
#: pass as ``extra_cflags`` to find inputs on which the generated C hits
#: undefined behaviour (run_c_layer then raises CRunError).
QUALIA_LINUX_UB_CFLAGS = ("-fsanitize=signed-integer-overflow", "-fno-sanitize-recover", "-DTRAPV_SHIFT")

_DTYPES = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}


# --------------------------------------------------------------------------
# availability / locations
# --------------------------------------------------------------------------


def c_available(lang: str = "c") -> bool:
    """True if the C compiler is on PATH and the Qualia codegen packages are importable."""
    if shutil.which(_COMPILER.get(lang, "gcc")) is None:
        return False
    for mod in ("qualia_codegen_core", "qualia_codegen_plugin_snn", "jinja2"):
        if importlib.util.find_spec(mod) is None:
            return False
    try:
        _qualia()
    except Exception:
        return False
    return True


def cache_dir() -> Path:
    """Directory holding rendered sources and compiled binaries.

    ``$GOLDEN_CCACHE`` if set, else ``$XDG_CACHE_HOME/golden-ccache`` if
    ``XDG_CACHE_HOME`` is set, else ``<tempdir>/golden-ccache-<uid>``.  It must
    lie outside the repository (rendered Qualia templates are AGPL and must
    never be committed).
    """
    env = os.environ.get("GOLDEN_CCACHE")
    if env:
        d = Path(env)
    elif os.environ.get("XDG_CACHE_HOME"):
        d = Path(os.environ["XDG_CACHE_HOME"]) / "golden-ccache"
    else:
        uid = os.getuid() if hasattr(os, "getuid") else "u"
        d = Path(tempfile.gettempdir()) / f"golden-ccache-{uid}"
    d = d.resolve()
    if d == _REPO_ROOT or _REPO_ROOT in d.parents:
        raise RuntimeError(f"C cache dir {d} is inside the repository {_REPO_ROOT}; refusing")
    d.mkdir(parents=True, exist_ok=True)
    return d


# --------------------------------------------------------------------------
# rendering through the installed Qualia packages
# --------------------------------------------------------------------------


@functools.cache
def _qualia():
    """Import the Qualia codegen pieces once (this pulls in torch: ~2 s)."""
    from qualia_codegen_core.Converter import NumberType
    from qualia_codegen_core.graph.LayerNode import LayerNode
    from qualia_codegen_core.graph.layers import TInputLayer
    from qualia_codegen_core.graph.Quantization import Quantization
    from qualia_codegen_core.graph.RoundMode import RoundMode
    from qualia_codegen_core.typing import DTypes, Shape, Shapes
    from qualia_codegen_plugin_snn import Converter
    from qualia_codegen_plugin_snn.graph.layers import TIfLayer, TLifLayer

    return {
        "Converter": Converter,
        "NumberType": NumberType,
        "LayerNode": LayerNode,
        "TInputLayer": TInputLayer,
        "Quantization": Quantization,
        "RoundMode": RoundMode,
        "DTypes": DTypes,
        "Shape": Shape,
        "Shapes": Shapes,
        "TIfLayer": TIfLayer,
        "TLifLayer": TLifLayer,
    }


@dataclass(frozen=True)
class _Config:
    kind: str
    width: int
    long_width: int
    q_in: int
    q_v: int
    q_out: int
    round_mode: str
    soft_reset: bool
    decay_input: bool
    shape: tuple[int, ...]  # per-step neuron shape actually compiled (1, 2 or 3 dims)

    @property
    def name(self) -> str:
        return f"golden_{self.kind.lower()}"

    @property
    def total(self) -> int:
        return int(np.prod(self.shape))


def _check_config(cfg: _Config) -> None:
    if cfg.kind not in ("IF", "LIF"):
        raise ValueError(f"kind must be 'IF' or 'LIF', got {cfg.kind!r}")
    if cfg.width not in (8, 16, 32):
        raise ValueError(f"width must be 8, 16 or 32, got {cfg.width}")
    if cfg.long_width not in (16, 32, 64):
        raise ValueError(f"long_width must be 16, 32 or 64, got {cfg.long_width}")
    if cfg.long_width < cfg.width:
        raise ValueError(f"long_width {cfg.long_width} < width {cfg.width}")
    if cfg.width == 32 and cfg.long_width != 64:
        # Converter always emits NumberType(int, 32, 64); a second int32 type with
        # another long width redefines scale_number_t_int32_t & co. -> the real
        # generated code does not compile either.
        raise ValueError("width=32 requires long_width=64 (Qualia's number.h always defines int32_t with int64_t)")
    for nm in ("q_in", "q_v", "q_out"):
        q = getattr(cfg, nm)
        if not isinstance(q, (int, np.integer)) or not -64 < int(q) < 64:
            raise ValueError(f"{nm} must be a small int, got {q!r}")
    if cfg.round_mode not in ("nearest", "floor", "none"):
        raise ValueError(f"round_mode must be 'nearest' or 'floor', got {cfg.round_mode!r}")
    if not 1 <= len(cfg.shape) <= 3:
        raise ValueError(f"shape must have 1 to 3 dims, got {cfg.shape}")
    for d in cfg.shape:
        if not 1 <= d <= MAX_DIM:
            raise ValueError(
                f"every per-step dimension must be in 1..{MAX_DIM} (unsigned short loop indices), got {cfg.shape}"
            )
    if cfg.total > MAX_TOTAL:
        raise ValueError(f"too many neurons per step ({cfg.total} > {MAX_TOTAL})")


def _make_node(cfg: _Config):
    Q = _qualia()
    Shape, Shapes, DTypes = Q["Shape"], Q["Shapes"], Q["DTypes"]
    dt = _DTYPES[cfg.width]
    shapes = Shapes((Shape((1, *cfg.shape)),))
    dtypes = DTypes((dt,))
    in_layer = Q["TInputLayer"](input_shape=shapes, output_shape=shapes, output_dtype=dtypes, name="golden_input")
    in_node = Q["LayerNode"](
        layer=in_layer,
        q=Q["Quantization"](
            number_type=int,
            width=cfg.width,
            long_width=cfg.long_width,
            output_scale_factor=int(cfg.q_in),
            output_round_mode=Q["RoundMode"](cfg.round_mode),
        ),
    )
    # Weight values are never rendered by layers/{if,lif}.cc (they are function
    # parameters); dummies of the right dtype keep the dataclasses well-formed.
    zero = np.array(0, dtype=dt)
    common = dict(
        input_shape=shapes,
        output_shape=shapes,
        output_dtype=dtypes,
        name=cfg.name,
        v_threshold=zero,
        v_reset=None if cfg.soft_reset else zero,
        soft_reset=int(bool(cfg.soft_reset)),  # int, as TorchModelGraph stores it
    )
    if cfg.kind == "LIF":
        layer = Q["TLifLayer"](**common, reciprocal_tau=zero, decay_input=int(bool(cfg.decay_input)))
    else:
        layer = Q["TIfLayer"](**common)
    node = Q["LayerNode"](
        layer=layer,
        innodes=[in_node],
        q=Q["Quantization"](
            number_type=int,
            width=cfg.width,
            long_width=cfg.long_width,
            weights_scale_factor=int(cfg.q_v),
            output_scale_factor=int(cfg.q_out),
            weights_round_mode=Q["RoundMode"](cfg.round_mode),
            output_round_mode=Q["RoundMode"](cfg.round_mode),
        ),
    )
    in_node.outnodes.append(node)
    return node


@functools.lru_cache(maxsize=256)
def _render(cfg: _Config) -> str:
    Q = _qualia()
    Converter = Q["Converter"]
    NumberType = Q["NumberType"]
    node = _make_node(cfg)
    conv = Converter()  # output_path=None: renders to strings, writes nothing
    template = Converter.layer_template_files[type(node.layer)]
    # Same NumberType construction as Converter.quantize_modelgraph().
    conv.number_types.add(
        NumberType(int, cfg.width, cfg.long_width, -(2 ** (cfg.width - 1)), 2 ** (cfg.width - 1) - 1)
    )
    conv.number_types = sorted(conv.number_types, key=lambda t: (t.width, t.long_width))
    # Same assembly as Converter.generate_code() (defines.hh only matters for CMSIS-NN).
    src = "#define SINGLE_FILE\n"
    src += conv.write_numeric_header()
    src += "\n"
    src += conv.write_layer_header(template=template, node=node) + "\n"
    src += conv.write_layer_function(template=template, node=node) + "\n"
    return src


def _ctype(width: int) -> str:
    return _qualia()["Converter"]().dataconverter.qtype2ctype(int, width)


def _driver_source(cfg: _Config) -> str:
    """Our own C driver, appended to the rendered translation unit."""
    ct = _ctype(cfg.width)
    name = cfg.name
    dims = "".join(f"[{d}]" for d in cfg.shape)
    inner = "".join(f"[{d}]" for d in cfg.shape[1:])
    if len(cfg.shape) == 1:
        in_arg, out_arg = "(const golden_num_t *)g_in", "(golden_num_t *)g_out"
    else:
        in_arg = f"(const golden_num_t (*){inner})g_in"
        out_arg = f"(golden_num_t (*){inner})g_out"
    args = [in_arg, "v_threshold"]
    if not cfg.soft_reset:
        args.append("v_reset")
    if cfg.kind == "LIF":
        args.append("reciprocal_tau")
    args.append(out_arg)
    call = f"{name}({', '.join(args)});"
    return f"""
/* ---- golden test-harness driver (golden project code, not from Qualia) ---- */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef {ct} golden_num_t;
#define GOLDEN_TOTAL ((size_t){cfg.total})
#define GOLDEN_MAGIC {_MAGIC}LL

static golden_num_t g_in{dims};
static golden_num_t g_out{dims};

int main(void) {{
  long long hdr[{_HDR_WORDS}];
  static char obuf[1 << 16];
  setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
  if (fread(hdr, sizeof hdr[0], {_HDR_WORDS}, stdin) != {_HDR_WORDS}) {{ fputs("short header\\n", stderr); return 2; }}
  if (hdr[0] != GOLDEN_MAGIC || (size_t)hdr[3] != GOLDEN_TOTAL
      || sizeof(g_in) != GOLDEN_TOTAL * sizeof(golden_num_t)
      || sizeof({name}_potent) != GOLDEN_TOTAL * sizeof(golden_num_t)) {{
    fputs("bad header / size mismatch\\n", stderr);
    return 3;
  }}
  const long long n_seq = hdr[1], n_steps = hdr[2];
  const golden_num_t v_threshold = (golden_num_t)hdr[4];
  const golden_num_t v_reset = (golden_num_t)hdr[5];
  const golden_num_t reciprocal_tau = (golden_num_t)hdr[6];
  (void)v_reset; (void)reciprocal_tau;
  for (long long b = 0; b < n_seq; b++) {{
    {name}_reset_pot();
    for (long long t = 0; t < n_steps; t++) {{
      if (fread(g_in, sizeof(golden_num_t), GOLDEN_TOTAL, stdin) != GOLDEN_TOTAL) {{
        fputs("short input\\n", stderr);
        return 4;
      }}
      memset(g_out, 0x5a, sizeof g_out); /* every element must be overwritten */
      {call}
      if (fwrite(g_out, sizeof(golden_num_t), GOLDEN_TOTAL, stdout) != GOLDEN_TOTAL
          || fwrite({name}_potent, sizeof(golden_num_t), GOLDEN_TOTAL, stdout) != GOLDEN_TOTAL) {{
        fputs("write failed\\n", stderr);
        return 5;
      }}
    }}
  }}
  return fflush(stdout) == 0 ? 0 : 6;
}}
"""


def render_c_layer(
    *,
    kind: str,
    width: int,
    long_width: int,
    q_in: int,
    q_v: int,
    q_out: int,
    round_mode: str,
    soft_reset: bool,
    decay_input: bool,
    shape: tuple[int, ...],
) -> str:
    """The complete translation unit (rendered Qualia code + driver), for inspection."""
    cfg = _make_config(kind, width, long_width, q_in, q_v, q_out, round_mode, soft_reset, decay_input, shape)
    return _render(cfg) + _driver_source(cfg)


# --------------------------------------------------------------------------
# compilation with an on-disk cache
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CBuild:
    binary: Path
    source: Path
    warnings: str  # compiler stderr (empty when clean)
    compile_seconds: float  # 0.0 when the binary came from the cache
    cached: bool
    key: str


@functools.cache
def compiler_id(compiler: str) -> str:
    out = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0] if out else compiler


_BUILDS: dict[tuple, CBuild] = {}


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _build(cfg: _Config, lang: str, extra_cflags: tuple[str, ...], driver: str = "seq") -> CBuild:
    memo_key = (cfg, lang, extra_cflags, driver)
    if memo_key in _BUILDS:
        return _BUILDS[memo_key]
    if lang not in _COMPILER:
        raise ValueError(f"lang must be 'c' or 'c++', got {lang!r}")
    compiler = _COMPILER[lang]
    flags = (*_BASE_CFLAGS[lang], *extra_cflags)
    if driver == "chunk":  # a shared library (golden_prove_chunk), loaded once per process with ctypes
        flags = (*flags, "-shared", "-fPIC")
    source = _render(cfg) + _DRIVERS[driver](cfg)
    h = hashlib.sha256()
    for part in (source, compiler, compiler_id(compiler), "\0".join(flags)):
        h.update(part.encode())
        h.update(b"\0\1")
    key = h.hexdigest()[:24]
    d = cache_dir() / key
    d.mkdir(parents=True, exist_ok=True)
    src_path = d / ("layer.c" if lang == "c" else "layer.cpp")
    bin_path = d / ("layer.so" if driver == "chunk" else "layer.bin")
    log_path = d / "build.log"
    if bin_path.exists() and log_path.exists():
        build = CBuild(bin_path, src_path, log_path.read_text(), 0.0, True, key)
    else:
        atomic_write(src_path, source.encode())
        tmp_bin = d / f"{bin_path.name}.{os.getpid()}.tmp"
        cmd = [compiler, *flags, "-x", _LANG_FLAG[lang], str(src_path), "-o", str(tmp_bin)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            tmp_bin.unlink(missing_ok=True)
            raise RuntimeError(f"compilation failed ({' '.join(cmd)}):\n{proc.stderr}")
        os.replace(tmp_bin, bin_path)
        atomic_write(log_path, proc.stderr.encode())
        build = CBuild(bin_path, src_path, proc.stderr, dt, False, key)
    _BUILDS[memo_key] = build
    return build


def _flat_bucket(n: int) -> int:
    b = 64
    while b < n:
        b *= 2
    return min(b, MAX_DIM)


def _make_config(kind, width, long_width, q_in, q_v, q_out, round_mode, soft_reset, decay_input, shape) -> _Config:
    kind = str(kind).upper()
    cfg = _Config(
        kind=kind,
        width=int(width),
        long_width=int(long_width),
        q_in=int(q_in),
        q_v=int(q_v),
        q_out=int(q_out),
        round_mode=str(round_mode).lower(),
        soft_reset=bool(soft_reset),
        decay_input=bool(decay_input) if kind == "LIF" else False,
        shape=tuple(int(s) for s in shape),
    )
    _check_config(cfg)
    return cfg


def build_c_layer(
    *,
    kind: str,
    width: int,
    long_width: int,
    q_in: int,
    q_v: int,
    q_out: int,
    round_mode: str,
    soft_reset: bool,
    decay_input: bool,
    shape: tuple[int, ...],
    lang: str = "c",
    extra_cflags: Sequence[str] = (),
) -> CBuild:
    """Render and compile (or fetch from the cache) one configuration.

    ``shape`` is the exact per-step shape compiled: ``(N,)`` flat, ``(S, C)``
    or ``(H, W, C)``.
    """
    cfg = _make_config(kind, width, long_width, q_in, q_v, q_out, round_mode, soft_reset, decay_input, shape)
    return _build(cfg, lang, tuple(extra_cflags))


# --------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------


def _check_range(name: str, value, width: int) -> None:
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    arr = np.asarray(value)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{name} outside int{width} range [{lo}, {hi}]")


def run_c_layer(
    *,
    kind: str,
    width: int,
    long_width: int,
    q_in: int,
    q_v: int,
    q_out: int,
    round_mode: str,
    soft_reset: bool,
    decay_input: bool,
    v_threshold: int,
    v_reset: int,
    reciprocal_tau: int,
    x: np.ndarray,
    shape: tuple[int, ...] | None = None,
    lang: str = "c",
    extra_cflags: Sequence[str] = (),
    pad_flat: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the generated C layer over ``x`` (``(T, N)`` or ``(B, T, N)`` raw ints).

    Returns ``(out, v)``, int64 arrays shaped like ``x``: the layer's output
    array and its ``potent[]`` array after each step.  The potential starts
    at 0 for every sequence (``<name>_reset_pot()``).
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"x must be an integer array, got {x.dtype}")
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be (T, N) or (B, T, N), got shape {x.shape}")
    batched = x.ndim == 3
    x3 = x if batched else x[None]
    B, T, N = (int(s) for s in x3.shape)
    if N < 1:
        raise ValueError("N must be >= 1")
    if shape is None:
        if N > MAX_DIM:
            raise ValueError(f"N={N} > {MAX_DIM}: the templates loop with unsigned short indices")
        cshape: tuple[int, ...] = (_flat_bucket(N) if pad_flat else N,)
    else:
        cshape = tuple(int(s) for s in shape)
        if len(cshape) not in (2, 3):
            raise ValueError("shape must be (samples, channels) or (h, w, channels); use None for flat")
        if int(np.prod(cshape)) != N:
            raise ValueError(f"prod(shape)={int(np.prod(cshape))} != N={N}")
    cfg = _make_config(kind, width, long_width, q_in, q_v, q_out, round_mode, soft_reset, decay_input, cshape)
    _check_range("x", x3, cfg.width)
    _check_range("v_threshold", v_threshold, cfg.width)
    _check_range("v_reset", v_reset, cfg.width)
    _check_range("reciprocal_tau", reciprocal_tau, cfg.width)

    build = _build(cfg, lang, tuple(extra_cflags))
    dt = np.dtype(_DTYPES[cfg.width])
    ntot = cfg.total
    data = np.zeros((B, T, ntot), dtype=dt)
    data[:, :, :N] = x3
    hdr = np.array(
        [_MAGIC, B, T, ntot, int(v_threshold), int(v_reset), int(reciprocal_tau), 0], dtype=np.int64
    )
    payload = hdr.tobytes() + data.tobytes()
    proc = subprocess.run([str(build.binary)], input=payload, capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        raise CRunError(f"{build.binary} exited with {proc.returncode}:\n{err}", proc.returncode, err)
    expected = B * T * 2 * ntot * dt.itemsize
    if len(proc.stdout) != expected:
        raise CRunError(f"expected {expected} output bytes, got {len(proc.stdout)}", 0, "")
    raw = np.frombuffer(proc.stdout, dtype=dt).reshape(B, T, 2, ntot)
    out = raw[:, :, 0, :N].astype(np.int64, order="C")
    v = raw[:, :, 1, :N].astype(np.int64, order="C")
    if not batched:
        out, v = out[0], v[0]
    return out, v

# --------------------------------------------------------------------------
# one step from given potentials (golden prove)
# --------------------------------------------------------------------------

_STEP_MAGIC = 0x474F4C44454E5331  # "GOLDENS1"



def _layer_call(cfg, src: str, dst: str) -> str:
    """The C statement calling the rendered layer on the golden_num_t buffers ``src`` / ``dst`` (cast to the
    layer's array shape) with its hyperparameters, as both golden drivers call it."""
    inner = "".join(f"[{d}]" for d in cfg.shape[1:])
    if len(cfg.shape) == 1:
        in_arg, out_arg = f"(const golden_num_t *){src}", f"(golden_num_t *){dst}"
    else:
        in_arg, out_arg = f"(const golden_num_t (*){inner}){src}", f"(golden_num_t (*){inner}){dst}"
    args = [in_arg, "v_threshold"] + ([] if cfg.soft_reset else ["v_reset"])
    args += ["reciprocal_tau"] if cfg.kind == "LIF" else []
    return f"{cfg.name}({', '.join(args + [out_arg])});"

def _step_driver_source(cfg: _Config) -> str:
    """Our own C driver for ``golden prove``: set the layer's potentials, call the layer once, report.

    stdin: an 8-word header (magic, number of calls, neurons), then per call 4 int64 words (load, v_threshold,
    v_reset, reciprocal_tau), the potentials (only when load != 0: else the layer continues from its own) and
    the inputs. stdout: the potentials right after ``<name>_reset_pot()``, then per call the output array and
    the potentials after the call.
    """
    ct = _ctype(cfg.width)
    name = cfg.name
    dims = "".join(f"[{d}]" for d in cfg.shape)
    call = _layer_call(cfg, "g_in", "g_out")
    return f"""
/* ---- golden prove driver (golden project code, not from Qualia) ---- */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef {ct} golden_num_t;
#define GOLDEN_TOTAL ((size_t){cfg.total})

static golden_num_t g_in{dims};
static golden_num_t g_out{dims};

static int put(const void *p) {{
  return fwrite(p, sizeof(golden_num_t), GOLDEN_TOTAL, stdout) == GOLDEN_TOTAL;
}}

int main(void) {{
  long long hdr[{_HDR_WORDS}], call[4];
  if (fread(hdr, sizeof hdr[0], {_HDR_WORDS}, stdin) != {_HDR_WORDS}) {{ fputs("short header\\n", stderr); return 2; }}
  if (hdr[0] != {_STEP_MAGIC}LL || (size_t)hdr[2] != GOLDEN_TOTAL
      || sizeof({name}_potent) != GOLDEN_TOTAL * sizeof(golden_num_t)) {{
    fputs("bad header / size mismatch\\n", stderr);
    return 3;
  }}
  {name}_reset_pot();
  if (!put({name}_potent)) return 5;
  for (long long b = 0; b < hdr[1]; b++) {{
    if (fread(call, sizeof call[0], 4, stdin) != 4) {{ fputs("short call\\n", stderr); return 4; }}
    const golden_num_t v_threshold = (golden_num_t)call[1];
    const golden_num_t v_reset = (golden_num_t)call[2];
    const golden_num_t reciprocal_tau = (golden_num_t)call[3];
    (void)v_reset; (void)reciprocal_tau;
    if (call[0] && fread({name}_potent, sizeof(golden_num_t), GOLDEN_TOTAL, stdin) != GOLDEN_TOTAL) return 4;
    if (fread(g_in, sizeof(golden_num_t), GOLDEN_TOTAL, stdin) != GOLDEN_TOTAL) return 4;
    memset(g_out, 0x5a, sizeof g_out); /* every element must be overwritten */
    {call}
    if (!put(g_out) || !put({name}_potent)) {{ fputs("write failed\\n", stderr); return 5; }}
  }}
  return fflush(stdout) == 0 ? 0 : 6;
}}
"""


@dataclass(frozen=True)
class StepCall:
    """One call of the layer: ``v`` the potentials to load first (None: continue from the layer's own)."""

    x: np.ndarray
    v_threshold: int
    v_reset: int
    reciprocal_tau: int
    v: np.ndarray | None = None


def step_c_layer(*, kind: str, width: int, long_width: int, q_in: int, q_v: int, q_out: int, round_mode: str,
                 soft_reset: bool, decay_input: bool, shape: tuple[int, ...], calls: Sequence[StepCall],
                 lang: str = "c", extra_cflags: Sequence[str] = ()) -> tuple[np.ndarray, list]:
    """Call the generated layer once per ``calls`` entry, in one process: one compiled binary per configuration.

    ``shape`` is the compiled per-step shape (``(N,)``, ``(S, C)`` or ``(H, W, C)``); every array is flat, of
    ``prod(shape)`` raw integers. Returns (the potentials right after ``<name>_reset_pot()``, [(out, v) per call]),
    int64 arrays.
    """
    cfg = _make_config(kind, width, long_width, q_in, q_v, q_out, round_mode, soft_reset, decay_input, shape)
    build = _build(cfg, lang, tuple(extra_cflags), driver="step")
    dt = np.dtype(_DTYPES[cfg.width])
    n = cfg.total
    parts = [np.array([_STEP_MAGIC, len(calls), n, 0, 0, 0, 0, 0], np.int64).tobytes()]
    for c in calls:
        for name in ("v_threshold", "v_reset", "reciprocal_tau"):
            _check_range(name, getattr(c, name), cfg.width)
        load = c.v is not None
        parts.append(np.array([int(load), c.v_threshold, c.v_reset, c.reciprocal_tau], np.int64).tobytes())
        for name, a in (("v", c.v), ("x", c.x)) if load else (("x", c.x),):
            a = np.asarray(a)
            if a.shape != (n,) or a.dtype.kind not in "iu":
                raise ValueError(f"{name}: expected {n} raw integers, got {a.dtype} {a.shape}")
            _check_range(name, a, cfg.width)
            parts.append(a.astype(dt).tobytes())
    proc = subprocess.run([str(build.binary)], input=b"".join(parts), capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        raise CRunError(f"{build.binary} exited with {proc.returncode}:\n{err}", proc.returncode, err)
    if len(proc.stdout) != (1 + 2 * len(calls)) * n * dt.itemsize:
        raise CRunError(f"unexpected output length {len(proc.stdout)}", 0, "")
    raw = np.frombuffer(proc.stdout, dtype=dt).astype(np.int64)
    res = raw[n:].reshape(len(calls), 2, n)
    return raw[:n], [(res[i, 0], res[i, 1]) for i in range(len(calls))]


def undefined_pairs(*, kind: str, long_width: int, q_in: int, q_v: int, q_out: int, round_mode: str,
                    soft_reset: bool, decay_input: bool, v_threshold: int, v_reset: int, reciprocal_tau: int,
                    v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per (v, x) pair, does one call of the generated layer hit undefined behaviour? (bool array)

    The templates' integer expressions, replayed operation by operation on exact integers: C evaluates in
    ``A = max(32, long_width)`` bits (``int`` after promotion, or ``int64_t``); a value assigned to (or passed as)
    LONG_NUMBER_T narrower than that wraps (gcc's modular conversion, defined); any operation leaving ``A`` bits
    is a signed overflow, and a shift by ``A`` bits or more is undefined too. Left shifts of negative values
    are defined by gcc (documented) and not flagged, as Qualia's own sanitizer build
    (``-fsanitize=signed-integer-overflow``) does not flag them either.
    """
    L, A = int(long_width), max(32, int(long_width))
    lo, hi = -(1 << (A - 1)), (1 << (A - 1)) - 1
    obj = (lambda a: np.asarray(a, dtype=np.int64).astype(object)) if A == 64 else \
        (lambda a: np.asarray(a, dtype=np.int64))  # int64 is exact for 32-bit C arithmetic
    ub = np.zeros(np.shape(v), bool)

    def chk(n):
        nonlocal ub
        ub = ub | np.asarray((n < lo) | (n > hi), dtype=bool)
        return n

    def to_long(n):
        if L >= A:
            return n
        m = 1 << L
        return (n + (m >> 1)) % m - (m >> 1)

    def scale(n, s):
        nonlocal ub
        n = to_long(n)
        if s <= 0:
            if -s >= A:
                ub = ub | True
                return n * 0
            return to_long(chk(n * (1 << -s)))
        if round_mode == "nearest":
            if s - 1 >= 31:
                ub = ub | True
                return n * 0
            n = to_long(chk(n + (1 << (s - 1))))
        if s >= A:
            ub = ub | True
            return n * 0
        return n >> s

    T = max(q_in, q_v)
    VT = scale(obj(np.full(np.shape(v), v_threshold)), q_v - T)
    VR = scale(obj(np.full(np.shape(v), v_reset)), q_v - T)
    scale(obj(np.ones(np.shape(v), np.int64)), -q_out)
    P, X = scale(obj(v), q_v - T), scale(obj(x), q_in - T)
    if kind == "LIF":
        tmp = P if soft_reset else to_long(chk(P - VR))
        if decay_input:
            tmp = to_long(chk(P + scale(chk(to_long(chk(X - tmp)) * reciprocal_tau), T)))
        else:
            tmp = to_long(chk(to_long(chk(P - scale(chk(tmp * reciprocal_tau), T))) + X))
    else:
        tmp = to_long(chk(P + X))
    spike = chk(tmp - VT) >= 0
    before = ub
    scale(tmp, T - q_v)  # no spike: back to q_v
    idle = ub
    ub = before
    if soft_reset:
        scale(to_long(chk(tmp - VT)), T - q_v)
    return np.where(np.asarray(spike, bool), ub, idle)


# --------------------------------------------------------------------------
# one chunk of golden prove in one call of a shared library (loaded once per process)
# --------------------------------------------------------------------------


def _replay_source(cfg: _Config) -> str:
    """golden's replay of the template's integer expressions for undefined behaviour, in C with exact 128-bit
    arithmetic: the same operations, in the same order, as :func:`undefined_pairs` (its numpy twin, which the
    tests hold it equal to). C evaluates in ``A = max(32, long_width)`` bits; a value assigned to a narrower
    LONG_NUMBER_T wraps (gcc's modular conversion, defined); an operation leaving ``A`` bits, or a shift by ``A``
    bits or more, is undefined. Every exact value of the replay fits in 127 bits (operands are raw inputs or
    checked ``A``-bit values); a value found out of range flags the pair and is replaced by 0, which cannot change
    the flag (it is sticky up to the spike test, and each reset branch only adds flags)."""
    A = max(32, cfg.long_width)
    wrap = f"(golden_wide_t)(int{cfg.long_width}_t)n" if cfg.long_width < A else "n"
    T = max(cfg.q_in, cfg.q_v)
    if cfg.kind == "LIF":
        tmp = "tmp = P;" if cfg.soft_reset else "tmp = golden_to_long(golden_chk(P - VR, &ub));"
        if cfg.decay_input:
            tmp += (f"\n  tmp = golden_to_long(golden_chk(P + golden_scale(golden_chk(golden_to_long("
                    f"golden_chk(X - tmp, &ub)) * rtau, &ub), {T}, &ub), &ub));")
        else:
            tmp += (f"\n  tmp = golden_to_long(golden_chk(golden_to_long(golden_chk(P - golden_scale(golden_chk(tmp * "
                    f"rtau, &ub), {T}, &ub), &ub)) + X, &ub));")
    else:
        tmp = "tmp = golden_to_long(golden_chk(P + X, &ub));"
    soft = f"golden_scale(golden_to_long(golden_chk(tmp - VT, &ub)), {T - cfg.q_v}, &ub);" if cfg.soft_reset else ""
    return f"""
/* ---- golden's undefined-behaviour replay (golden project code, not from Qualia) ---- */
typedef __int128 golden_wide_t;
#define GOLDEN_A {A}

static golden_wide_t golden_chk(golden_wide_t n, int *ub) {{
  const golden_wide_t hi = (((golden_wide_t)1) << (GOLDEN_A - 1)) - 1, lo = -hi - 1;
  if (n < lo || n > hi) {{ *ub = 1; return 0; }}
  return n;
}}

static golden_wide_t golden_to_long(golden_wide_t n) {{ return {wrap}; }}

static golden_wide_t golden_scale(golden_wide_t n, int s, int *ub) {{
  n = golden_to_long(n);
  if (s <= 0) {{
    if (-s >= GOLDEN_A) {{ *ub = 1; return 0; }}
    return golden_to_long(golden_chk(n * (((golden_wide_t)1) << -s), ub));
  }}
  if ({int(cfg.round_mode == "nearest")}) {{
    if (s - 1 >= 31) {{ *ub = 1; return 0; }}
    n = golden_to_long(golden_chk(n + (((golden_wide_t)1) << (s - 1)), ub));
  }}
  if (s >= GOLDEN_A) {{ *ub = 1; return 0; }}
  return n >> s;
}}

static unsigned char golden_undefined(golden_wide_t v, golden_wide_t x, golden_wide_t vth, golden_wide_t vr,
                                      golden_wide_t rtau) {{
  int ub = 0;
  const golden_wide_t VT = golden_scale(vth, {cfg.q_v - T}, &ub);
  const golden_wide_t VR = golden_scale(vr, {cfg.q_v - T}, &ub);
  golden_scale(1, {-cfg.q_out}, &ub);
  const golden_wide_t P = golden_scale(v, {cfg.q_v - T}, &ub), X = golden_scale(x, {cfg.q_in - T}, &ub);
  golden_wide_t tmp;
  (void)VR; (void)rtau; (void)X;
  {tmp}
  const int spike = golden_chk(tmp - VT, &ub) >= 0;
  const int before = ub;
  golden_scale(tmp, {T - cfg.q_v}, &ub);
  const int idle = ub;
  ub = before;
  {soft}
  return (unsigned char)(spike ? ub : idle);
}}
"""


def _chunk_driver_source(cfg: _Config) -> str:
    """Our own C for ``golden prove``, compiled as a shared library: ``golden_prove_chunk`` runs one chunk in one
    call. It records the potentials right after ``<name>_reset_pot()``, then: (1) loads ``v`` and steps on ``x``;
    (2) steps again on ``x2``, continuing from the layer's own state; (3) loads the potentials reported by (1) and
    steps on ``x2``; then replays every pair of (1) and of (2) for undefined behaviour (:func:`_replay_source`).
    The layer is called through one non-inlined function, as the sequence driver calls it."""
    ct = _ctype(cfg.width)
    name = cfg.name
    call = _layer_call(cfg, "in", "out")
    hyper = ", ".join(f"golden_num_t {a}" for a in ("v_threshold", "v_reset", "reciprocal_tau"))
    return _replay_source(cfg) + f"""
/* ---- golden prove chunk driver (golden project code, not from Qualia) ---- */
#include <string.h>

typedef {ct} golden_num_t;
#define GOLDEN_TOTAL ((size_t){cfg.total})

static __attribute__((noinline)) void golden_call(const golden_num_t *in, {hyper}, golden_num_t *out) {{
  (void)v_reset; (void)reciprocal_tau;
  memset(out, 0x5a, GOLDEN_TOTAL * sizeof(golden_num_t)); /* every element must be overwritten */
  {call}
}}

int golden_prove_chunk(long long n, long long vth, long long vr, long long rtau,
                       const golden_num_t *v, const golden_num_t *x, const golden_num_t *x2, golden_num_t *v0,
                       golden_num_t *o1, golden_num_t *v1, golden_num_t *o2, golden_num_t *v2,
                       golden_num_t *o3, golden_num_t *v3, unsigned char *ub1, unsigned char *ub2) {{
  const size_t bytes = GOLDEN_TOTAL * sizeof(golden_num_t);
  if ((size_t)n != GOLDEN_TOTAL || sizeof({name}_potent) != bytes) return 3;
  {name}_reset_pot();
  memcpy(v0, {name}_potent, bytes);
  memcpy({name}_potent, v, bytes);
  golden_call(x, (golden_num_t)vth, (golden_num_t)vr, (golden_num_t)rtau, o1);
  memcpy(v1, {name}_potent, bytes);
  golden_call(x2, (golden_num_t)vth, (golden_num_t)vr, (golden_num_t)rtau, o2);
  memcpy(v2, {name}_potent, bytes);
  memcpy({name}_potent, v1, bytes);
  golden_call(x2, (golden_num_t)vth, (golden_num_t)vr, (golden_num_t)rtau, o3);
  memcpy(v3, {name}_potent, bytes);
  for (size_t i = 0; i < GOLDEN_TOTAL; i++) {{
    ub1[i] = golden_undefined(v[i], x[i], vth, vr, rtau);
    ub2[i] = golden_undefined(v1[i], x2[i], vth, vr, rtau);
  }}
  return 0;
}}
"""


_DRIVERS = {"seq": _driver_source, "step": _step_driver_source, "chunk": _chunk_driver_source}


@dataclass(frozen=True)
class ChunkResult:
    """One chunk of ``golden prove`` on the real C (raw NUMBER_T arrays, one value per pair): ``v0`` the potentials
    after ``<name>_reset_pot()``; ``o1``/``v1`` one step from (v, x); ``o2``/``v2`` a second step continuing on x2;
    ``o3``/``v3`` one step from ``v1`` on x2; ``ub1``/``ub2`` (bool) the pairs of steps 1 and 2 on which the
    template's integer expressions hit undefined behaviour (steps 2 and 3 compute the same expressions)."""

    v0: np.ndarray
    o1: np.ndarray
    v1: np.ndarray
    o2: np.ndarray
    v2: np.ndarray
    o3: np.ndarray
    v3: np.ndarray
    ub1: np.ndarray
    ub2: np.ndarray


_LIBS: dict = {}  # shared library path -> (ctypes function, lock): loaded once per process
_LIBS_LOCK = threading.Lock()


def _chunk_function(build: CBuild):
    with _LIBS_LOCK:
        if build.binary not in _LIBS:
            fn = ctypes.CDLL(str(build.binary)).golden_prove_chunk
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_longlong] * 4 + [ctypes.c_void_p] * 12
            _LIBS[build.binary] = (fn, threading.Lock())  # the layer's potentials are one static array
        return _LIBS[build.binary]


def prove_chunk_c(*, kind: str, width: int, long_width: int, q_in: int, q_v: int, q_out: int, round_mode: str,
                  soft_reset: bool, decay_input: bool, shape: tuple[int, ...], v: np.ndarray, x: np.ndarray,
                  x2: np.ndarray, v_threshold: int, v_reset: int, reciprocal_tau: int) -> ChunkResult:
    """One chunk of ``golden prove`` against the generated layer, in one call (see :class:`ChunkResult`).

    The layer, rendered from the installed templates, is compiled once per configuration (on-disk cache) as a
    shared library with golden's driver and loaded once per process: no process per chunk. ``shape`` is the
    compiled per-step shape; ``v``, ``x``, ``x2`` hold ``prod(shape)`` raw integers each.
    """
    cfg = _make_config(kind, width, long_width, q_in, q_v, q_out, round_mode, soft_reset, decay_input, shape)
    dt = np.dtype(_DTYPES[cfg.width])
    n = cfg.total
    for name, value in (("v_threshold", v_threshold), ("v_reset", v_reset), ("reciprocal_tau", reciprocal_tau)):
        _check_range(name, value, cfg.width)
    ins = []
    for name, a in (("v", v), ("x", x), ("x2", x2)):
        a = np.asarray(a)
        if a.shape != (n,) or a.dtype.kind not in "iu":
            raise ValueError(f"{name}: expected {n} raw integers, got {a.dtype} {a.shape}")
        _check_range(name, a, cfg.width)
        ins.append(np.ascontiguousarray(a, dtype=dt))
    fn, lock = _chunk_function(_build(cfg, "c", (), driver="chunk"))
    outs = [np.empty(n, dt) for _ in range(7)] + [np.empty(n, np.uint8) for _ in range(2)]
    with lock:
        rc = fn(n, int(v_threshold), int(v_reset), int(reciprocal_tau),
                *(a.ctypes.data_as(ctypes.c_void_p) for a in ins + outs))
    if rc != 0:
        raise CRunError(f"golden_prove_chunk returned {rc} (size mismatch)", rc, "")
    return ChunkResult(*outs[:7], *(a.view(bool) for a in outs[7:]))


if __name__ == "__main__":  # pragma: no cover - manual smoke run
    print("c_available:", c_available(), "cache:", cache_dir(), file=sys.stderr)
