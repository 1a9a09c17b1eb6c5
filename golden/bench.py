"""``golden bench``: golden against the C of the same spec and the Qualia layers, in one run.

For each profile (torch-eval, torch-train, codegen, hardware) and kind (IF,
LIF, ATIF; codegen has no ATIF), at each layer size N and step count T, one
run measures

- golden's kernel, on 1 thread and on 2 (as :func:`golden.simulate` picks
  it), on preallocated arrays, and :func:`golden.simulate` itself (input
  check, output allocation: what a caller waits for);
- C: a kernel this module writes for the spec (:func:`c_source`: golden's
  datapath in C with every constant folded in, not Qualia's templates),
  compiled with ``gcc -O3 -march=native`` (:data:`CFLAGS`), on 1 thread and
  with OpenMP on 2, on the same arrays; it is first checked bit-exact against
  golden (outputs, potentials, spikes, overflow counts);
- Qualia: the qualia-plugin-snn layer of the kind in ``.eval()``, stepped
  over time as Qualia runs it (torch-eval rows), when torch and Qualia are
  installed;
- at N = 65536, the copy bound: what copying a working set the size of the
  layer's arrays allows at the bytes one update moves;
- once, a fresh interpreter's time to its first result for a spec already
  in Numba's disk cache.

Timing: the candidates of a configuration are timed in turn, round after
round (the order rotates), and each reports the median of its rounds; ratios
are taken between those medians, so they compare runs that shared the machine
at the same moments. Rates are neuron-updates per second (N x T / time).

    golden bench --quick                       # N in 64..65536, T = 100
    golden bench --json b.json --markdown b.md # the full grid
    python tools/bench.py ...                  # the same
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from . import kernels, profiles
from .datapath import constants, working_type
from .simulate import Runner, simulate
from .spec import ROUND_MODES, Spec

KINDS = ("IF", "LIF", "ATIF")
PROFILES = tuple(profiles.PROFILES)
SIZES = (64, 1024, 65536, 1048576)
STEPS = (100, 1000)
QUICK_SIZES, QUICK_STEPS = (64, 1024, 65536), (100,)
MAX_UPDATES = 1 << 27  # N x T per configuration (memory: ~5 bytes per update for each candidate's arrays)
# -ffp-contract=off: no fused multiply-add, as in PyTorch and golden (bit-exactness). The other two only make
# gcc vectorise and change no value: -fno-trapping-math lets it vectorise floorf (LLVM does so for golden);
# -fno-thread-jumps stops jump threading from turning the branch-free float32 step back into branches.
CFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-trapping-math", "-fno-thread-jumps")


def bench_spec(profile: str, kind: str) -> Spec:
    """The layer benchmarked: the profile's defaults (8 bits, q_v = 6, tau 2, v_threshold 1; ATIF soft)."""
    return profiles.make(profile, kind, **({"v_reset": None} if kind == "ATIF" else {}))


# ------------------------------------------------------------------ the C
_C_TEMPLATE = r"""/* {describe}
 * Written by golden.bench from the spec (not from Qualia's templates): the same datapath as
 * golden.datapath, every constant folded in. Stage bits: 1 align, 2 leak, 4 charge, 8 reset, 16 v. */
#include <math.h>
#include <stdint.h>

typedef {W} W;  /* holds every exact intermediate value (golden.datapath.working_type) */
typedef {S} S;  /* W, or int32_t if narrower (C promotes): where a wrap is shifted */
typedef {US} US;
typedef {X} x_t;
typedef {V} v_t;
typedef {O} o_t;
enum {{ KIND = {kind}, SOFT = {soft}, DECAY = {decay}, ROUND_FIRST = {round_first}, FLOAT32 = {float32},
       RESET0 = {reset0}, ROUND = {round}, ACC_BITS = {acc_bits}, A_WRAP = {a_wrap}, V_BITS = {v_bits},
       V_WRAP = {v_wrap}, SH_IN = {sh_in}, SH_V = {sh_v}, LEAK_S = {leak_s}, BLOCK = {block} }};
static const W VTH = {vth}, VR = {vr}, RTAU = {rtau}, VT_A = {VT}, VR_A = {VR};
static const o_t SPIKE_OUT = {spike_out};
static const float SC_IN = {sc_in}, SC_V = {sc_v}, INV_SC_V = {inv_sc_v}, VTH_F = {vth_f}, VR_F = {vr_f},
                   TAU_F = {tau_f}, DECAY_F = {decay_f}, R_LIM = 0x1p62f;  /* (the clamp before an int64 conversion) */
#define RND 3
#if {wide}  /* a 64-bit wrapping accumulator: wrap as the machine does, without signed overflow */
#define ADD(a, b) ((W)((uint64_t)(a) + (uint64_t)(b)))
#define SUB(a, b) ((W)((uint64_t)(a) - (uint64_t)(b)))
#define MUL(a, b) ((W)((uint64_t)(a) * (uint64_t)(b)))
#else      /* exact: no intermediate value overflows W */
#define ADD(a, b) ((W)((a) + (b)))
#define SUB(a, b) ((W)((a) - (b)))
#define MUL(a, b) ((W)((a) * (b)))
#endif
#define POW2(s) ((W)((uint64_t)1 << (s)))

/* n narrowed to a signed `bits`-wide integer, wrapping or saturating; *o set on overflow. */
static inline W narrow(W n, int bits, int wrap, int *o) {{
    if (bits >= 64) return n;  /* (only with a 64-bit W) */
    const W hi = (W)(((uint64_t)1 << (bits - 1)) - 1), lo = (W)(-hi - 1);
    const int out = (n < lo) | (n > hi);
    *o |= out;
    if (!wrap) return n < lo ? lo : n > hi ? hi : n;
    return !out ? n : (W)((S)((US)(S)n << (8 * sizeof(S) - bits)) >> (8 * sizeof(S) - bits));
}}
#define A(n, o) narrow((n), ACC_BITS, A_WRAP, (o))
#define N(n, o) narrow((n), V_BITS, V_WRAP, (o))

static inline int round_up(int above, int tie, int inexact, int negative, int odd) {{
    switch (ROUND) {{  /* TRN TRN_ZERO TRN_INF RND RND_ZERO RND_MIN_INF RND_INF RND_CONV */
    case 0: return 0;
    case 1: return inexact & negative;
    case 2: return inexact;
    case 3: return above | tie;
    case 4: return above | (tie & negative);
    case 5: return above;
    case 6: return above | (tie & !negative);
    default: return above | (tie & odd);
    }}
}}

/* R(n, s): n * 2**-s rounded; RND adds the half LSB in the accumulator. */
static inline W shift_round(W n, int s, int *o) {{
    if (s <= 0) return A(MUL(n, POW2(-s)), o);
    if (ROUND == RND) return A(ADD(n, POW2(s - 1)), o) >> s;
    W q = n >> s, rem = SUB(n, MUL(q, POW2(s))), half = POW2(s - 1);
    return ADD(q, round_up(rem > half, rem == half, rem != 0, n < 0, q & 1));
}}

static inline W quantize(float h, int *o) {{  /* Qualia's quantizer: floor(y + 0.5) in float32 for RND */
    float y = h * INV_SC_V;
    if (ROUND == RND) {{
        float r = floorf(y + 0.5f);
        if (sizeof(W) == 8) r = r < -R_LIM ? -R_LIM : r > R_LIM ? R_LIM : r;
        return N((W)r, o);
    }}
    double yd = y, f = floor(yd), rem = yd - f, lim = R_LIM;
    double r = f + round_up(rem > 0.5, rem == 0.5, rem != 0.0, yd < 0.0, fabs(fmod(f, 2.0)) == 1.0);
    if (sizeof(W) == 8) r = r < -lim ? -lim : r > lim ? lim : r;
    return N((W)r, o);
}}

/* The float32 step is written branch-free (every candidate computed, then selected): gcc
 * vectorises its overflow counts only so. */
static inline W fire_rounded(W v1, int *spike, int *ovf) {{  /* round_then_fire */
    int o = 0;
    const int s = v1 >= VTH;
    const W v2 = N(SUB(v1, VTH), &o);
    *spike = s;
    *ovf |= (s & SOFT) ? o << 4 : 0;
    return !s ? v1 : SOFT ? v2 : (W)VR;
}}

static inline W step(W v, W x, int *spike, int *ovf) {{
    int o = 0, o2 = 0;
    if (FLOAT32) {{
        const float vf = (float)v * SC_V, xf = (float)x * SC_IN;
        float h;
        if (KIND != 1) h = vf + xf;
        else if (DECAY) h = RESET0 ? vf + (xf - vf) / TAU_F : vf + (xf - (vf - VR_F)) / TAU_F;
        else h = RESET0 ? vf * DECAY_F + xf : (vf - (vf - VR_F) / TAU_F) + xf;
        if (ROUND_FIRST) {{
            const W v1 = quantize(h, &o);
            *ovf = o << 4;
            return fire_rounded(v1, spike, ovf);
        }}
        const int s = h >= VTH_F;
        const W q = quantize(s & SOFT ? h - VTH_F : h, &o);
        *spike = s;
        *ovf = (s & !SOFT) ? 0 : o << 4;
        return (s & !SOFT) ? (W)VR : q;
    }}
    int oa = 0, ol = 0, oc = 0;
    const W P = A(MUL(v, POW2(SH_V)), &oa), X = A(MUL(x, POW2(SH_IN)), &oa);
    W H;
    if (KIND != 1) H = A(ADD(P, X), &oc);
    else {{
        W d = A(SUB(P, VR_A), &oc);
        if (DECAY) d = A(SUB(X, d), &oc);
        const W leak = shift_round(A(MUL(d, RTAU), &ol), LEAK_S, &ol);
        if (DECAY) H = A(ADD(P, leak), &oc);
        else H = A(ADD(A(SUB(P, leak), &oc), X), &oc);
    }}
    *ovf = oa | ol << 1 | oc << 2;
    if (ROUND_FIRST) {{
        const W v1 = N(shift_round(H, SH_V, &o), &o);
        *ovf |= o << 4;
        return fire_rounded(v1, spike, ovf);
    }}
    *spike = H >= VT_A;
    if (*spike && !SOFT) return (W)VR;
    if (*spike) {{
        H = A(SUB(H, VT_A), &o2);
        *ovf |= o2 << 3;
    }}
    const W v1 = N(shift_round(H, SH_V, &o), &o);
    *ovf |= o << 4;
    return v1;
}}

/* Neurons lo..hi of a time-major (T, N) layer, block by block; overflow counts added to counts[5]. */
void golden_c(int64_t T, int64_t Nn, int64_t lo, int64_t hi, const x_t *restrict x, v_t *restrict v,
              o_t *restrict out, v_t *restrict vt, uint8_t *restrict spikes, int64_t *restrict counts) {{
    for (int64_t b = lo; b < hi; b += BLOCK) {{
        const int64_t m = hi - b < BLOCK ? hi - b : BLOCK;
        v_t *restrict vb = v + b;
        for (int64_t t = 0; t < T; t++) {{
            const x_t *restrict xt = x + t * Nn + b;
            o_t *restrict ot = out + t * Nn + b;
            v_t *restrict tt = vt + t * Nn + b;
            uint8_t *restrict st = spikes + t * Nn + b;
            int32_t k0 = 0, k1 = 0, k2 = 0, k3 = 0, k4 = 0;
            for (int64_t n = 0; n < m; n++) {{
                int s = 0, ovf = 0;
                const W v1 = step((W)vb[n], (W)xt[n], &s, &ovf);
                vb[n] = (v_t)v1;
                tt[n] = (v_t)v1;
                ot[n] = s ? (o_t)SPIKE_OUT : (o_t)0;
                st[n] = (uint8_t)s;
                k0 += ovf & 1;
                k1 += (ovf >> 1) & 1;
                k2 += (ovf >> 2) & 1;
                k3 += (ovf >> 3) & 1;
                k4 += (ovf >> 4) & 1;
            }}
            counts[0] += k0;
            counts[1] += k1;
            counts[2] += k2;
            counts[3] += k3;
            counts[4] += k4;
        }}
    }}
}}

/* The same, the neurons shared among `threads` OpenMP threads (in parts of at most BLOCK). */
void golden_c_omp(int64_t T, int64_t Nn, const x_t *restrict x, v_t *restrict v, o_t *restrict out,
                  v_t *restrict vt, uint8_t *restrict spikes, int64_t *restrict counts, int threads) {{
    const int64_t blocks = (Nn + BLOCK - 1) / BLOCK, nb = blocks > threads ? blocks : threads;
    int64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0, c4 = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : c0, c1, c2, c3, c4)
    for (int64_t i = 0; i < nb; i++) {{
        int64_t c[5] = {{0, 0, 0, 0, 0}};
        golden_c(T, Nn, Nn * i / nb, Nn * (i + 1) / nb, x, v, out, vt, spikes, c);
        c0 += c[0], c1 += c[1], c2 += c[2], c3 += c[3], c4 += c[4];
    }}
    counts[0] += c0, counts[1] += c1, counts[2] += c2, counts[3] += c3, counts[4] += c4;
}}
"""

_CTYPES = {1: "int8_t", 2: "int16_t", 4: "int32_t", 8: "int64_t"}


def _cfloat(value) -> str:
    """A float32 value as an exact C literal."""
    v = float(np.float32(value))
    return f"{v.hex()}f" if np.isfinite(v) else ("INFINITY" if v > 0 else "-INFINITY")


def c_source(spec: Spec) -> str:
    """The C kernel of ``spec`` (see the template): golden's datapath with every constant folded in, golden's blocks."""
    if "strict" in (spec.v_overflow, spec.acc_overflow):
        raise ValueError("the bench's C has no strict overflow policy")
    c = constants(spec)
    W = working_type(spec)
    return _C_TEMPLATE.format(
        describe=spec.describe(), W=_CTYPES[np.dtype(W).itemsize], S=_CTYPES[max(4, np.dtype(W).itemsize)],
        US="u" + _CTYPES[max(4, np.dtype(W).itemsize)], X=_CTYPES[spec.fmt_in.dtype.itemsize],
        V=_CTYPES[spec.fmt_v.dtype.itemsize], O=_CTYPES[spec.fmt_out.dtype.itemsize],
        kind=KINDS.index(spec.kind), soft=int(spec.reset == "soft"), decay=int(spec.decay_input),
        round_first=int(spec.order == "round_then_fire"), float32=int(spec.arith == "float32"),
        reset0=int(spec.charge_form == "reset0"), round=ROUND_MODES.index(spec.round), acc_bits=spec.acc_bits,
        a_wrap=int(spec.acc_overflow == "wrap"), v_bits=spec.fmt_v.bits, v_wrap=int(spec.v_overflow == "wrap"),
        sh_in=spec.shift_in, sh_v=spec.shift_v, leak_s=spec.leak_s, block=kernels.BLOCK_BYTES // spec.fmt_v.dtype.itemsize,
        vth=spec.v_threshold, vr=spec.v_reset, rtau=spec.reciprocal_tau, spike_out=spec.spike_out,
        VT=int(c.VT), VR=int(c.VR), sc_in=_cfloat(c.sc_in), sc_v=_cfloat(c.sc_v), inv_sc_v=_cfloat(c.inv_sc_v),
        vth_f=_cfloat(c.vth_f), vr_f=_cfloat(c.vr_f), tau_f=_cfloat(c.tau_f), decay_f=_cfloat(c.decay_f),
        wide=int(W is np.int64 and spec.acc_bits == 64),
    )


class CKernel:
    """The compiled C of one spec, called through ctypes on numpy arrays."""

    def __init__(self, spec: Spec, workdir: Path, compiler: str = "gcc"):
        # Idle OpenMP threads (this C's, and torch's) must sleep, not spin through the next candidate's timing.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.spec = spec
        src = workdir / f"k{abs(hash(spec))}.c"
        src.write_text(c_source(spec))
        so = src.with_suffix(".so")
        cmd = [compiler, *CFLAGS, "-fopenmp", "-fPIC", "-shared", "-o", str(so), str(src), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        self.lib = ctypes.CDLL(str(so))
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        self.lib.golden_c.argtypes = [i64, i64, i64, i64, p, p, p, p, p, p]
        self.lib.golden_c_omp.argtypes = [i64, i64, p, p, p, p, p, p, ctypes.c_int]

    def __call__(self, x: np.ndarray, threads: int = 1):
        """out, v trace, spikes, overflow counts: the same job as golden.simulate on (T, N) raw inputs."""
        s = self.spec
        T, n = x.shape
        x = np.ascontiguousarray(x, s.fmt_in.dtype)
        v = np.full(n, s.v_start, s.fmt_v.dtype)
        out, vt = np.empty((T, n), s.fmt_out.dtype), np.empty((T, n), s.fmt_v.dtype)
        spikes, counts = np.empty((T, n), np.bool_), np.zeros(5, np.int64)
        ptr = [a.ctypes.data for a in (x, v, out, vt, spikes, counts)]
        if threads == 1:
            self.lib.golden_c(T, n, 0, n, *ptr)
        else:
            self.lib.golden_c_omp(T, n, *ptr, threads)
        return out, vt, spikes, counts


def compiler_version(compiler: str = "gcc") -> str | None:
    if shutil.which(compiler) is None:
        return None
    return subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def check_c(kernel: CKernel, x: np.ndarray) -> None:
    """Raise unless the C computes exactly what golden does on ``x`` (1 and 2 threads)."""
    want = simulate(kernel.spec, x)
    for threads in (1, 2):
        out, vt, spikes, counts = kernel(x, threads)
        for name, a, b in (("out", out, want.out), ("v", vt, want.v), ("spikes", spikes, want.spikes)):
            if not np.array_equal(a, b):
                t, n = np.argwhere(a != b)[0]
                raise AssertionError(f"C ({threads} threads) != golden for {kernel.spec.describe()}: {name} first differs "
                                     f"at t={t} neuron={n}: C {a[t, n]} golden {b[t, n]}")
        if counts.tolist() != list(want.overflow.values()):
            raise AssertionError(f"C overflow counts {counts.tolist()} != golden {want.overflow}")


# ----------------------------------------------------------------- Qualia
_QUALIA_LAYERS = "qualia_plugin_snn.learningmodel.pytorch.layers.quantized_SNN_layers"


def qualia_module(kind: str):
    """The Qualia layer of ``kind`` with the bench layer's parameters, every q forced, or None if not installed.

    Built as golden/refs/torch_ref.py does (ATIF gets its missing ``vp_th`` aliased to ``v_threshold``).
    """
    try:
        import importlib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
            layers = importlib.import_module(_QUALIA_LAYERS)
    except Exception:
        return None
    q = {"bits": 8, "force_q": 6, "roundtype": "nearest"}
    qp = {"quant_enable": True, "LSQ": False, "quantype": "fxp", "range_setting": "minmax", "is_asymmetric": False,
          "bits": 8, "roundtype": "nearest", "input": dict(q), "v": dict(q), "act": dict(q)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "LIF":
            m = layers.QuantizedLIFNode(quant_params=qp, tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0,
                                        detach_reset=False, step_mode="s", backend="torch")
        elif kind == "IF":
            m = layers.QuantizedIFNode(quant_params=qp, v_threshold=1.0, v_reset=0.0, detach_reset=False,
                                       step_mode="s", backend="torch")
        else:
            m = layers.QuantizedATIF(quant_params=qp, v_threshold=1.0, vth_init_l=1.0, vth_init_h=1.0, alpha=1.0,
                                     device="cpu")
            with torch.no_grad():
                m.v_threshold.fill_(1.0)
            m.vp_th = m.v_threshold
    return m.eval()


def qualia_runner(module, x_raw: np.ndarray, q_in: int = 6):
    """A callable running ``module`` over the (T, N) raw inputs, one step per time step, as Qualia does."""
    import torch
    from spikingjelly.activation_based import functional

    xt = torch.from_numpy((x_raw.astype(np.float32) * np.float32(2.0 ** -q_in)))

    def run():
        functional.reset_net(module)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for t in range(xt.shape[0]):
                module(xt[t])

    return run


def qualia_agrees(module, spec: Spec, x_raw: np.ndarray) -> bool:
    """Whether the layer's outputs, as raw integers, equal golden's for ``spec`` on ``x_raw`` (T, N)."""
    import torch
    from spikingjelly.activation_based import functional

    functional.reset_net(module)
    out = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(x_raw.shape[0]):
            y = module(torch.from_numpy(x_raw[t].astype(np.float32) * np.float32(2.0 ** -spec.fmt_in.frac)))
            out.append(y.double().numpy() * 2.0 ** spec.fmt_out.frac)
    return bool(np.array_equal(np.array(out), simulate(spec, x_raw).out))


# ----------------------------------------------------------------- profile
def hot_loop(spec: Spec) -> dict:
    """The innermost vector loop of the spec's specialised kernel (compiled afresh, uncached): a static profile.

    Returns its instruction count, how many of them are vector (zmm/ymm) ones, and the neuron-updates
    one iteration does, so instructions per update.
    """
    import re

    from .datapath import encode

    kernel = kernels.uncached(encode(spec), constants(spec))
    n = 64
    kernel(np.zeros((2, n), spec.fmt_in.dtype), np.zeros(n, spec.fmt_v.dtype), np.zeros((2, n), spec.fmt_out.dtype),
           np.zeros((2, n), spec.fmt_v.dtype), np.zeros((2, n), np.bool_), np.zeros(5, np.int64), np.full(3, -1, np.int64),
           0, 0, n)
    asm = kernel.inspect_asm(kernel.signatures[0]).splitlines()
    labels = {line.split(":")[0]: i for i, line in enumerate(asm) if re.match(r"^\.LBB\d+_\d+:", line)}
    best = None
    for i, line in enumerate(asm):  # loops: a jump back to an earlier label; the one densest in zmm registers
        m = re.match(r"\s+j\w+\s+(\.LBB\d+_\d+)", line)
        if m and m.group(1) in labels and labels[m.group(1)] < i:
            body = [x for x in asm[labels[m.group(1)] + 1:i + 1] if x.startswith("\t") and not x.strip().startswith(".")]
            step = [int(s.group(1)) for x in body[-4:] for s in [re.search(r"addq\s+\$(\d+),", x)] if s]
            zmm = sum("zmm" in x for x in body)
            key = (bool(step), zmm)  # a loop that counts neurons, then the most 512-bit work
            if zmm >= 4 and len(body) < 200 and (best is None or key > best[0]):
                best = (key, body, max(step) if step else 0)
    if best is None:
        return {}
    _, body, per = best
    return {"W": np.dtype(working_type(spec)).name, "instructions": len(body),
            "vector": sum("zmm" in x or "ymm" in x for x in body), "updates": per,
            "per_update": len(body) / per if per else None}


# ----------------------------------------------------------------- timing
def _sampler(fn, min_time: float):
    """fn timed in batches of calls long enough to time: returns a callable giving seconds per call."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    reps = max(1, int(min_time / max(once, 1e-7)))

    def sample():
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t) / reps

    return sample


def interleaved(fns: dict, rounds: int, min_time: float) -> dict:
    """Median seconds per call of each fn, timed in turn round after round (order rotating)."""
    samplers = {k: _sampler(f, min_time) for k, f in fns.items()}
    names = list(samplers)
    times = {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            times[k].append(samplers[k]())
    return {k: float(np.median(v)) for k, v in times.items()}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    return {"cpu": cpu, "threads": kernels.THREADS, "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "gcc": compiler_version(), "cflags": " ".join(CFLAGS), "platform": platform.platform()}


def run_config(spec: Spec, n: int, steps: int, ckernel, qualia, rounds: int, min_time: float, seed: int = 0) -> dict:
    """One configuration: every candidate timed interleaved; rates in neuron-updates per second.

    golden_1t / golden_2t and c_1t / c_omp2 are the kernels on the same preallocated arrays (what
    the datapath costs); simulate is the public ``golden.simulate`` call, which also checks the
    input and allocates its outputs (what a user waits for).
    """
    rng = np.random.default_rng(seed)
    x = rng.integers(spec.fmt_in.min, spec.fmt_in.max + 1, (steps, n)).astype(spec.fmt_in.dtype)
    v = np.full(n, spec.v_start, spec.fmt_v.dtype)
    out, vt = np.empty((steps, n), spec.fmt_out.dtype), np.empty((steps, n), spec.fmt_v.dtype)
    spikes, counts, err = np.empty((steps, n), np.bool_), np.zeros(5, np.int64), np.full(3, -1, np.int64)
    runner = Runner(spec)
    # compile (or load) the spec's specialised kernel first: every size then runs it, as in any process that has it
    kernels.specialised(runner.code, runner.consts)(x[:1], v.copy(), out[:1], vt[:1], spikes[:1], counts, err, 0, 0, n)
    def golden_on(k):
        f = kernels.pick(runner.code, runner.consts, n, steps, threads=k)
        return lambda: f(x, v, out, vt, spikes, counts, err, 0)

    fns = {"golden_1t": golden_on(1), "golden_2t": golden_on(2), "simulate": lambda: simulate(spec, x)}
    if ckernel is not None:
        cp = [a.ctypes.data for a in (x, v, out, vt, spikes, counts)]
        fns["c_1t"] = lambda: ckernel.lib.golden_c(steps, n, 0, n, *cp)
        fns["c_omp2"] = lambda: ckernel.lib.golden_c_omp(steps, n, *cp, 2)
    q_steps = 0
    if qualia is not None:
        q_steps = max(2, min(steps, int(2e6 // n)))  # the reference is ~1000x slower: time fewer steps
        fns["qualia"] = qualia_runner(qualia, x[:q_steps])
    secs = interleaved(fns, rounds, min_time)
    rates = {k: (q_steps if k == "qualia" else steps) * n / s for k, s in secs.items()}
    return {"profile": spec.profile, "kind": spec.kind, "N": n, "T": steps, "rates": rates,
            "W": np.dtype(working_type(spec)).name, "bytes_per_update": _bytes_per_update(spec)}


def _bytes_per_update(spec: Spec) -> int:
    """Memory traffic of one neuron-update: read x, write out, v and the spike flag."""
    return spec.fmt_in.dtype.itemsize + spec.fmt_out.dtype.itemsize + spec.fmt_v.dtype.itemsize + 1


def copy_bound(nbytes: int, rounds: int, min_time: float) -> dict:
    """Bytes per second (read + write) of copying an ``nbytes`` working set, on 1 thread and on 2."""
    half = max(nbytes // 2, 1)
    a, b = np.ones(half, np.uint8), np.empty(half, np.uint8)
    pool = kernels._pool_for(2)

    def two():
        j = pool.submit(np.copyto, b[half // 2:], a[half // 2:])
        np.copyto(b[:half // 2], a[:half // 2])
        j.result()

    secs = interleaved({"1t": lambda: np.copyto(b, a), "2t": two}, rounds, min_time)
    return {k: 2 * half / s for k, s in secs.items()}


# ----------------------------------------------------------------- report
def ratios(row: dict) -> dict:
    r = row["rates"]
    out = {}
    if "c_1t" in r:
        out["golden/C 1t"] = r["golden_1t"] / r["c_1t"]
        out["golden/C 2t"] = r["golden_2t"] / r["c_omp2"]
    out["golden 2t/1t"] = r["golden_2t"] / r["golden_1t"]
    if "qualia" in r:
        out["simulate/Qualia"] = r["simulate"] / r["qualia"]
    return out


def _fmt(v) -> str:
    return f"{v:.2e}" if v is not None else "-"


COLUMNS = ("golden_1t", "golden_2t", "c_1t", "c_omp2", "simulate", "qualia")
RATIOS = ("golden/C 1t", "golden/C 2t", "golden 2t/1t", "simulate/Qualia")


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Measured {result['date']} on {m['cpu']} ({m['threads']} hardware threads, load average "
             f"{m['load']:.2f} at the start), Python {m['python']}, numpy {m['numpy']}, numba {m['numba']}, "
             f"{m['gcc'] or 'no gcc'} `{m['cflags']}`.", "",
             f"Neuron-updates per second, median of {result['rounds']} interleaved rounds; ratios compare "
             "medians of the same run. golden 1t/2t and C 1t/omp 2t: the kernels on the same preallocated "
             "arrays; simulate: the public `golden.simulate` call (input check, output allocation, threads "
             "as it picks them); Qualia: the qualia-plugin-snn layer of the kind in `.eval()` (torch-eval "
             "rows).", ""]
    lines += ["| profile | kind | N | T | golden 1t | golden 2t | C 1t | C omp 2t | simulate | Qualia | "
              + " | ".join(RATIOS) + " |", "|" + "---|" * (4 + len(COLUMNS) + len(RATIOS))]
    for row in result["rows"]:
        r, q = row["rates"], ratios(row)
        cells = [row["profile"], row["kind"], row["N"], row["T"], *(_fmt(r.get(k)) for k in COLUMNS)]
        cells += [(f"{q[k]:.0f}" if k == "simulate/Qualia" else f"{q[k]:.2f}") if k in q else "-" for k in RATIOS]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    bound = [row for row in result["rows"] if "copy_1t" in row]
    if bound:
        lines += ["", "Copy bound: a copy of a working set the size of the layer's arrays moves `copy` bytes per "
                  "second (read + write); at the bytes one update moves (x in; out, v and the spike flag out) "
                  "that bounds the updates per second.", "",
                  "| profile | kind | N | T | bytes/update | copy 1t B/s | bound 1t | golden 1t | of bound "
                  "| copy 2t B/s | bound 2t | golden 2t | of bound |", "|" + "---|" * 13]
        for row in bound:
            b1, b2 = row["copy_1t"] / row["bytes_per_update"], row["copy_2t"] / row["bytes_per_update"]
            r = row["rates"]
            lines.append(f"| {row['profile']} | {row['kind']} | {row['N']} | {row['T']} | {row['bytes_per_update']} | "
                         f"{row['copy_1t']:.2e} | {b1:.2e} | {r['golden_1t']:.2e} | {r['golden_1t'] / b1:.0%} | "
                         f"{row['copy_2t']:.2e} | {b2:.2e} | {r['golden_2t']:.2e} | {r['golden_2t'] / b2:.0%} |")
    t = targets(result)
    if t:
        lines = ["| target | measured (worst case) | |", "|---|---|---|",
                 *(f"| {name} | {text} | {'hit' if ok else '**missed**'} |" for name, text, ok in t), "", *lines]
    if result.get("hot_loops"):
        lines += ["", "The hot loop of each specialised kernel (static count, from its machine code): one iteration "
                  "updates `updates` neurons with `instructions` instructions, `vector` of them on 256/512-bit "
                  "registers.", "", "| spec | working type | updates | instructions | vector | per update |",
                  "|---|---|---|---|---|---|"]
        for name, h in result["hot_loops"].items():
            if h:
                per = f"{h['per_update']:.2f}" if h["per_update"] else "-"
                lines.append(f"| {name} | {h['W']} | {h['updates'] or '-'} | {h['instructions']} | {h['vector']} | {per} |")
    if result.get("qualia_exact"):
        lines += ["", "The Qualia layers timed compute what golden's torch-eval spec does, bit for bit: "
                  + ", ".join(f"{k} {'yes' if v else '**NO**'}" for k, v in result["qualia_exact"].items())
                  + " (outputs on a 20 x 256 stimulus)."]
    fresh = result.get("fresh_process")
    if fresh:
        lines += ["", f"Fresh process (`{fresh['command']}`, the spec's kernel already in Numba's disk cache), "
                  f"median of {fresh['runs']}: first result {fresh['first_result']:.2f} s after start, of which "
                  f"interpreter start {fresh['python']:.2f} s, `import numba` {fresh['numba']:.2f} s, "
                  f"`import golden` (with numba) {fresh['import']:.2f} s, first `simulate` {fresh['simulate']:.2f} s."]
    return "\n".join(lines) + "\n"


def _worst(rows, value, pick=min):
    """(value, row) of the worst row by ``value`` (rows where it is None are skipped)."""
    scored = [(value(r), r) for r in rows]
    scored = [(v, r) for v, r in scored if v is not None]
    return pick(scored, key=lambda vr: vr[0]) if scored else None


def _where(row) -> str:
    return f"{row['profile']} {row['kind']} N={row['N']} T={row['T']}"


def targets(result: dict) -> list:
    """The issue's targets, each as (name, measured worst case, hit)."""
    rows, out = result["rows"], []
    r = lambda row, k: row["rates"].get(k)  # noqa: E731
    w = _worst([x for x in rows if x["N"] >= 1024 and "c_1t" in x["rates"]], lambda x: r(x, "golden_1t") / r(x, "c_1t"))
    if w:
        out.append(("golden 1 thread >= 1.0x the C of the same spec on 1 thread, every N >= 1024",
                    f"{w[0]:.2f}x ({_where(w[1])})", w[0] >= 1.0))
    w = _worst([x for x in rows if x["N"] >= 65536], lambda x: r(x, "golden_2t") / r(x, "golden_1t"))
    if w:
        out.append(("2 threads >= 1.8x 1 thread at N >= 65536", f"{w[0]:.2f}x ({_where(w[1])})", w[0] >= 1.8))
    w = _worst([x for x in rows if x["N"] < 65536], lambda x: r(x, "golden_2t") / r(x, "golden_1t"))
    if w:
        out.append(("no slowdown at small N (the 2-thread setting picks 1 thread below 32768 neurons)",
                    f"{w[0]:.2f}x ({_where(w[1])})", w[0] >= 0.9))
    w = _worst([x for x in rows if x["N"] <= 1024 and "qualia" in x["rates"]], lambda x: r(x, "simulate") / r(x, "qualia"))
    if w:
        out.append(("golden.simulate >= 1000x the Qualia layer (eval) at N <= 1024", f"{w[0]:.0f}x ({_where(w[1])})",
                    w[0] >= 1000))
    w = _worst([x for x in rows if x["N"] == 65536 and "qualia" in x["rates"]], lambda x: r(x, "simulate") / r(x, "qualia"))
    if w:
        out.append(("golden.simulate >= 50x the Qualia layer (eval) at N = 65536", f"{w[0]:.0f}x ({_where(w[1])})",
                    w[0] >= 50))
    w = _worst([x for x in rows if "copy_1t" in x], lambda x: r(x, "golden_1t") * x["bytes_per_update"] / x["copy_1t"])
    if w:
        out.append(("golden 1 thread >= 50% of the copy bound at N = 65536", f"{w[0]:.0%} ({_where(w[1])})",
                    w[0] >= 0.5))
    integer = {(x["kind"], x["N"], x["T"]): r(x, "golden_1t") for x in rows if x["profile"] == "hardware"}
    w = _worst([x for x in rows if x["profile"] == "torch-eval" and (x["kind"], x["N"], x["T"]) in integer and x["N"] >= 1024],
               lambda x: integer[x["kind"], x["N"], x["T"]] / r(x, "golden_1t"), pick=max)
    if w:
        out.append(("torch-eval (float32) within 2x of the integer profile (hardware) of the same layer, N >= 1024",
                    f"{w[0]:.2f}x slower ({_where(w[1])})", w[0] <= 2.0))
    fresh = result.get("fresh_process")
    if fresh:
        out.append(("a fresh process reaches its first result in < 1 s (spec in the disk cache)",
                    f"{fresh['first_result']:.2f} s", fresh["first_result"] < 1.0))
    return out


_FRESH = """
import time; t0 = time.perf_counter()
import numba; t1 = time.perf_counter()
import numpy as np, golden; t2 = time.perf_counter()
spec = golden.make({profile!r}, {kind!r})
x = np.zeros(({steps}, {n}), spec.fmt_in.dtype)
golden.simulate(spec, x); t3 = time.perf_counter()
print(t1 - t0, t2 - t0, t3 - t2, time.time())
"""


def fresh_process(profile="codegen", kind="LIF", n=1 << 16, steps=100, runs=3) -> dict:
    """Wall time from a new interpreter's start to its first simulate result, the spec already used (cached)."""
    script = _FRESH.format(profile=profile, kind=kind, n=n, steps=steps)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)  # compile or load once
    walls, parts = [], []
    for _ in range(runs):
        t = time.time()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        start_cost = time.time() - t
        t = time.time()
        res = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
        numba_s, import_s, sim_s, done = map(float, res.stdout.split())
        walls.append(done - t)
        parts.append((start_cost, numba_s, import_s, sim_s))
    i = int(np.argsort(walls)[len(walls) // 2])
    return {"command": f"golden.simulate(golden.make({profile!r}, {kind!r}), x[{steps}, {n}])", "runs": runs,
            "first_result": walls[i], "python": parts[i][0], "numba": parts[i][1], "import": parts[i][2],
            "simulate": parts[i][3]}


def run(args) -> dict:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch or any C loads OpenMP
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    steps_list = args.steps or (QUICK_STEPS if args.quick else STEPS)
    gcc = compiler_version() if not args.no_c else None
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "rounds": args.rounds, "rows": [],
              "qualia_exact": {}, "hot_loops": {}}
    with tempfile.TemporaryDirectory(prefix="golden-bench-") as tmp:
        for profile in args.profiles:
            for kind in args.kinds:
                if profile == "codegen" and kind == "ATIF":
                    continue  # qualia-codegen has no ATIF
                spec = bench_spec(profile, kind)
                if args.asm:
                    result["hot_loops"][f"{profile} {kind}"] = hot_loop(spec)
                ck = None
                if gcc:
                    ck = CKernel(spec, Path(tmp))
                    rng = np.random.default_rng(1)
                    check_c(ck, rng.integers(spec.fmt_in.min, spec.fmt_in.max + 1, (50, 70_000)).astype(spec.fmt_in.dtype))
                qualia = qualia_module(kind) if (profile == "torch-eval" and not args.no_qualia) else None
                if qualia is not None:
                    x = np.random.default_rng(2).integers(spec.fmt_in.min, spec.fmt_in.max + 1, (20, 256))
                    result["qualia_exact"][kind] = qualia_agrees(qualia, spec, x.astype(spec.fmt_in.dtype))
                for n in sizes:
                    for steps in steps_list:
                        if n * steps > MAX_UPDATES:
                            continue
                        row = run_config(spec, n, steps, ck, qualia, args.rounds, args.min_time)
                        if n == 65536:
                            row.update(("copy_" + k, v) for k, v in
                                       copy_bound(n * steps * row["bytes_per_update"], args.rounds, args.min_time).items())
                        result["rows"].append(row)
                        if not args.quiet:
                            r = row["rates"]
                            print(f"{profile:11s} {kind:4s} N={n:<8d} T={steps:<5d} " + " ".join(
                                f"{k}={v:.2e}" for k, v in r.items()), file=sys.stderr, flush=True)
    if not args.no_fresh:
        result["fresh_process"] = fresh_process()
    return result


def cli(argv=None) -> int:
    p = argparse.ArgumentParser(prog="golden bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"N in {QUICK_SIZES}, T in {QUICK_STEPS}")
    p.add_argument("--sizes", type=int, nargs="+", help=f"layer sizes N (default {SIZES})")
    p.add_argument("--steps", type=int, nargs="+", help=f"time steps T (default {STEPS})")
    p.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds per configuration (median)")
    p.add_argument("--min-time", type=float, default=0.02, help="seconds per timed sample (calls are batched)")
    p.add_argument("--no-c", action="store_true", help="skip the compiled C")
    p.add_argument("--no-qualia", action="store_true", help="skip the Qualia reference")
    p.add_argument("--no-fresh", action="store_true", help="skip timing a fresh process's first result")
    p.add_argument("--asm", action="store_true", help="also count the instructions of each kernel's hot loop")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--markdown", help="write the markdown table here")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    result = run(a)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    if a.markdown:
        Path(a.markdown).write_text(text)
    if not a.quiet:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
