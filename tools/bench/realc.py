"""The real generated C as the bench's yardstick: qualia-codegen-plugin-snn's ``lif.cc`` / ``if.cc``, rendered
from the installed packages at bench time (golden/refs/codegen_c.py) and compiled here with a timing driver.

Nothing of Qualia's (AGPL-3.0) is committed: the source is rendered into a temporary directory and compiled
with ``gcc -O3 -march=native`` (``golden.ckernel.CFLAGS``) as a shared library. The driver below (golden's
code) calls the generated layer function with the spec's raw parameters as constants, as a generated model
does, and exposes what the bench times:

- ``rc_steps(T, x, out)``: ``layer()`` once per step, the outputs into one row (per-cycle use);
- ``rc_trace(T, x, out, vt)``: ``layer()`` per step, outputs and potentials recorded into preallocated
  (T, N) arrays;
- ``rc_trace_alloc(T, x)``: the same into arrays it allocates (malloc) and frees each call.

:func:`RealC.check` proves it bit-exact against golden (outputs and potentials) before anything is timed.
"""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np

from golden.ckernel import CFLAGS
from golden.spec import Kind, Reset, Round, Spec

_ROUND = {Round.RND: "nearest", Round.TRN: "floor"}  # the C's OUTPUT_ROUND_MODE

_DRIVER = """
/* ---- golden bench driver (golden project code, not from Qualia) ---- */
#include <stdlib.h>
#include <string.h>
typedef {ct} rc_t;
#define RC_N {n}
void rc_reset(void) {{ {name}_reset_pot(); }}
static inline void rc_layer(const rc_t *in, rc_t *out) {{ {name}({args}); }}
void rc_steps(long T, const rc_t *x, rc_t *out) {{
  for (long t = 0; t < T; t++) rc_layer(x + t * RC_N, out);
}}
void rc_trace(long T, const rc_t *x, rc_t *out, rc_t *vt) {{
  for (long t = 0; t < T; t++) {{
    rc_layer(x + t * RC_N, out + t * RC_N);
    memcpy(vt + t * RC_N, {name}_potent, sizeof {name}_potent);
  }}
}}
int rc_trace_alloc(long T, const rc_t *x) {{
  rc_t *out = malloc(sizeof(rc_t) * RC_N * T), *vt = malloc(sizeof(rc_t) * RC_N * T);
  if (!out || !vt) {{ free(out); free(vt); return 1; }}
  rc_trace(T, x, out, vt);
  int r = out[T * RC_N - 1] + vt[T * RC_N - 1];  /* keep the stores */
  free(out); free(vt);
  return r & 0;
}}
"""


def available() -> str | None:
    """None if the real C can be built here, else why not (qualia-codegen or gcc missing)."""
    from golden.refs import codegen_c

    return None if codegen_c.c_available() else "qualia-codegen or gcc is not installed"


class RealC:
    """The real generated C of a ``codegen`` IF/LIF spec over N flat neurons, compiled into ``tmp``."""

    def __init__(self, spec: Spec, n: int, tmp: Path):
        from golden.refs import codegen_c

        if spec.profile != "codegen" or spec.kind not in (Kind.IF, Kind.LIF):
            raise ValueError(f"the real generated C exists for codegen IF/LIF specs, not {spec.describe()}")
        self.spec, self.n = spec, n
        width = 8 * spec.fmt_v.dtype.itemsize
        soft = spec.reset == Reset.SOFT
        cfg = codegen_c._make_config(spec.kind.value, width, spec.acc_bits, spec.fmt_in.frac, spec.fmt_v.frac,
                                     spec.fmt_out.frac, _ROUND[spec.round], soft, spec.decay_input, (n,))
        ct = codegen_c._ctype(width)
        args = ["in", f"({ct}){spec.v_threshold}"] + ([] if soft else [f"({ct}){spec.v_reset}"])
        args += [f"({ct}){spec.reciprocal_tau}"] if spec.kind == Kind.LIF else []
        source = codegen_c._render(cfg) + _DRIVER.format(ct=ct, n=n, name=cfg.name, args=", ".join(args + ["out"]))
        src, so = Path(tmp) / f"realc_{spec.kind.value}_{n}.c", Path(tmp) / f"realc_{spec.kind.value}_{n}.so"
        src.write_text(source)
        cmd = ["gcc", *CFLAGS, "-std=c11", "-fPIC", "-shared", "-o", str(so), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"the real C did not compile ({' '.join(cmd)}):\n{proc.stderr}")
        self.lib = ctypes.CDLL(str(so))
        for f in ("rc_steps", "rc_trace", "rc_trace_alloc"):
            getattr(self.lib, f).argtypes = [ctypes.c_long] + [ctypes.c_void_p] * (2 if f == "rc_steps" else
                                                                                  3 if f == "rc_trace" else 1)
        self.lib.rc_reset.argtypes = []

    def trace(self, x: np.ndarray):
        """(out, v) of the real C over raw inputs ``x`` (T, N), from a reset potential."""
        x = np.ascontiguousarray(x, self.spec.fmt_in.dtype)
        out, vt = np.empty(x.shape, self.spec.fmt_out.dtype), np.empty(x.shape, self.spec.fmt_v.dtype)
        self.lib.rc_reset()
        self.lib.rc_trace(x.shape[0], x.ctypes.data, out.ctypes.data, vt.ctypes.data)
        return out, vt

    def check(self, x: np.ndarray) -> int:
        """Assert the real C equals golden.simulate on ``x`` (outputs and potentials); returns the values compared."""
        import golden

        out, vt = self.trace(x)
        want = golden.simulate(self.spec, x)
        bad = int((out != want.out).sum() + (vt != want.v).sum())
        if bad:
            raise AssertionError(f"the real generated C differs from golden in {bad} values ({self.spec.describe()})")
        return 2 * x.size
