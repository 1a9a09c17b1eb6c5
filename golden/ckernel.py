"""A second executable model of the datapath: golden's step written in C for one spec, compiled and called.

:func:`c_source` writes the spec's definitions (types, choices, constants, every one folded in) in front of
``golden/ckernel.c``, which holds golden's step (:mod:`golden.datapath`) and block loop (:mod:`golden.kernels`)
in C. :class:`CKernel` compiles it with ``gcc -O3 -march=native`` (:data:`CFLAGS`) and calls it through
ctypes on numpy arrays, on 1 thread or with OpenMP; :func:`check_c` proves it bit-exact against golden
(outputs, potentials, spikes, overflow counts). ``golden bench`` times it; it is not Qualia's C (that is
``golden.refs.codegen_c``).

    import golden, tempfile, pathlib
    from golden.ckernel import CKernel, check_c
    spec = golden.make("codegen", "LIF")
    ck = CKernel(spec, pathlib.Path(tempfile.mkdtemp()))
    out, v, spikes, counts = ck(x)        # x: raw (T, N) inputs
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np

from .datapath import constants, working_type
from .errors import CKernelError
from .kernels import BLOCK_BYTES
from .simulate import simulate
from .spec import STAGES, Arith, ChargeForm, Kind, Order, Overflow, Reset, Round, Spec

# -ffp-contract=off: no fused multiply-add, as in PyTorch and golden (bit-exactness). The other two only make
# gcc vectorise and change no value: -fno-trapping-math lets it vectorise floorf (LLVM does so for golden);
# -fno-thread-jumps stops jump threading from turning the branch-free float32 step back into branches.
CFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-trapping-math", "-fno-thread-jumps")
_CTYPES = {1: "int8_t", 2: "int16_t", 4: "int32_t", 8: "int64_t"}


def _cfloat(value) -> str:
    """A float32 value as an exact C literal."""
    v = float(np.float32(value))
    return f"{v.hex()}f" if np.isfinite(v) else ("INFINITY" if v > 0 else "-INFINITY")


def definitions(spec: Spec) -> str:
    """The spec's definitions that ``ckernel.c`` reads: C types, choices, widths, shifts and constants."""
    if Overflow.STRICT in (spec.v_overflow, spec.acc_overflow):
        raise CKernelError("the C kernel has no strict overflow policy (it does not stop); use saturate or wrap")
    c = constants(spec)
    w = np.dtype(working_type(spec)).itemsize
    s = max(4, w)
    choices = {
        "KIND": spec.kind.code, "SOFT": int(spec.reset == Reset.SOFT), "DECAY": int(spec.decay_input),
        "ROUND_FIRST": int(spec.order == Order.ROUND_THEN_FIRE), "FLOAT32": int(spec.arith == Arith.FLOAT32),
        "RESET0": int(spec.charge_form == ChargeForm.RESET0), "ROUND": spec.round.code, "ACC_BITS": spec.acc_bits,
        "A_WRAP": int(spec.acc_overflow == Overflow.WRAP), "V_BITS": spec.fmt_v.bits,
        "V_WRAP": int(spec.v_overflow == Overflow.WRAP), "SH_IN": spec.shift_in, "SH_V": spec.shift_v,
        "LEAK_S": spec.leak_s, "BLOCK": BLOCK_BYTES // spec.fmt_v.dtype.itemsize, "N_STAGES": len(STAGES),
        **{f"KIND_{k.name}": k.code for k in Kind}, **{m.name: m.code for m in Round},
    }
    lines = [
        f"/* {spec.describe()} */",
        "#define GOLDEN_SPEC 1",
        f"#define WIDE {int(w == 8 and spec.acc_bits == 64)}  /* a 64-bit wrapping accumulator */",
        "#include <math.h>",
        "#include <stdint.h>",
        f"typedef {_CTYPES[w]} W;  /* holds every exact intermediate value (golden.datapath.working_type) */",
        f"typedef {_CTYPES[s]} S;  /* W, or int32_t if narrower (C promotes): where a wrap is shifted */",
        f"typedef u{_CTYPES[s]} US;",
        f"typedef {_CTYPES[spec.fmt_in.dtype.itemsize]} x_t;",
        f"typedef {_CTYPES[spec.fmt_v.dtype.itemsize]} v_t;",
        f"typedef {_CTYPES[spec.fmt_out.dtype.itemsize]} o_t;",
        "enum { " + ", ".join(f"{k} = {v}" for k, v in choices.items()) + " };",
        f"static const W VTH = {spec.v_threshold}, VR = {spec.v_reset}, RTAU = {spec.reciprocal_tau}, "
        f"VT_A = {int(c.VT)}, VR_A = {int(c.VR)};",
        f"static const o_t SPIKE_OUT = {spec.spike_out};",
        f"static const float SC_IN = {_cfloat(c.sc_in)}, SC_V = {_cfloat(c.sc_v)}, INV_SC_V = {_cfloat(c.inv_sc_v)}, "
        f"VTH_F = {_cfloat(c.vth_f)}, VR_F = {_cfloat(c.vr_f)}, TAU_F = {_cfloat(c.tau_f)}, "
        f"DECAY_F = {_cfloat(c.decay_f)}, R_LIM = 0x1p62f;  /* R_LIM: the clamp before an int64 conversion */",
    ]
    return "\n".join(lines) + "\n"


def c_source(spec: Spec) -> str:
    """The C kernel of ``spec``: its definitions, then ``golden/ckernel.c``."""
    return definitions(spec) + resources.files("golden").joinpath("ckernel.c").read_text()


def compiler_version(compiler: str = "gcc") -> str | None:
    """The compiler's first ``--version`` line, or None if it is not installed."""
    if shutil.which(compiler) is None:
        return None
    return subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


class CKernel:
    """The compiled C of one spec, called through ctypes on numpy arrays."""

    def __init__(self, spec: Spec, workdir: Path, compiler: str = "gcc"):
        # Idle OpenMP threads (this C's, and torch's) must sleep, not spin through the next candidate's timing.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.spec = spec
        src = Path(workdir) / f"k{abs(hash(spec))}.c"
        src.write_text(c_source(spec))
        so = src.with_suffix(".so")
        cmd = [compiler, *CFLAGS, "-fopenmp", "-fPIC", "-shared", "-o", str(so), str(src), "-lm"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:
            raise CKernelError(f"{compiler}: cannot run it ({e.strerror})") from None
        if proc.returncode:
            raise CKernelError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
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
        spikes, counts = np.empty((T, n), np.bool_), np.zeros(len(STAGES), np.int64)
        ptr = [a.ctypes.data for a in (x, v, out, vt, spikes, counts)]
        if threads == 1:
            self.lib.golden_c(T, n, 0, n, *ptr)
        else:
            self.lib.golden_c_omp(T, n, *ptr, threads)
        return out, vt, spikes, counts


def check_c(kernel: CKernel, x: np.ndarray) -> None:
    """Raise AssertionError unless the C computes exactly what golden does on ``x`` (1 and 2 threads)."""
    want = simulate(kernel.spec, x)
    for threads in (1, 2):
        out, vt, spikes, counts = kernel(x, threads)
        for name, a, b in (("out", out, want.out), ("v", vt, want.v), ("spikes", spikes, want.spikes)):
            if not np.array_equal(a, b):
                t, n = np.argwhere(a != b)[0]
                raise AssertionError(f"C ({threads} threads) != golden for {kernel.spec.describe()}: {name} first "
                                     f"differs at t={t} neuron={n}: C {a[t, n]} golden {b[t, n]}")
        if counts.tolist() != list(want.overflow.values()):
            raise AssertionError(f"C overflow counts {counts.tolist()} != golden {want.overflow}")
