"""Speed regression check: golden's kernel against the C of the same spec, as a ratio within one process.

Absolute speed depends on the machine and on what else runs on it; a ratio to
C compiled here, timed interleaved with golden, does not. golden is about as
fast as that C (docs/bench.md), so this fails only on a collapse (below 0.3x):
a kernel that stopped vectorising, a signed index that brought back bounds
arithmetic, a constant no longer folded. The C is first checked bit-exact.
"""

import tempfile
from pathlib import Path

import numpy as np
import pytest

import golden
from golden import ckernel, kernels
from golden.cli.bench import harness
from golden.simulate import Runner

from proofs import missing_codegen, missing_gcc, record, requires

COLLAPSE = 0.3
N, T = 16384, 64

pytestmark = requires(missing_gcc())


@pytest.mark.parametrize("profile", ["codegen", "torch-eval"])  # the integer and the float32 datapath
def test_golden_kernel_keeps_up_with_c(profile):
    spec = harness().bench_spec(profile, "LIF")
    rng = np.random.default_rng(0)
    x = rng.integers(spec.fmt_in.min, spec.fmt_in.max + 1, (T, N)).astype(spec.fmt_in.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        ck = ckernel.CKernel(spec, Path(tmp))
        ckernel.check_c(ck, x)
        record("golden C kernel", "golden.ckernel's C of the same spec (gcc, 1 and 2 threads)", 2 * x.size)
        v = np.full(N, spec.v_start, spec.fmt_v.dtype)
        out, vt = np.empty((T, N), spec.fmt_out.dtype), np.empty((T, N), spec.fmt_v.dtype)
        spikes, counts, err = np.empty((T, N), np.bool_), np.zeros(5, np.int64), np.full(3, -1, np.int64)
        r = Runner(spec)
        golden.simulate(spec, x)  # the spec's specialised kernel, compiled or loaded
        kernel = kernels.pick(r.code, r.consts, N, T, threads=1)
        ptr = [a.ctypes.data for a in (x, v, out, vt, spikes, counts)]
        secs = harness().interleaved({"golden": lambda: kernel(x, v, out, vt, spikes, counts, err, 0),
                                  "c": lambda: ck.lib.golden_c(T, N, 0, N, *ptr)}, rounds=7, min_time=0.02)
    ratio = secs["c"] / secs["golden"]
    print(f"{profile}: golden {T * N / secs['golden']:.3g} updates/s, C {T * N / secs['c']:.3g}, ratio {ratio:.2f}")
    assert ratio >= COLLAPSE, f"golden's kernel is {ratio:.2f}x the C of the same spec (collapse below {COLLAPSE}x)"


LANES = [("codegen", "LIF", {"width": 8}, 16), ("hardware", "LIF", {"bits": 8}, 16),
         ("codegen", "LIF", {"width": 16}, 32), ("hardware", "IF", {"bits": 16}, 32),
         ("torch-eval", "LIF", {}, 32), ("torch-train", "ATIF", {"v_reset": None}, 32),
         # soft reset with q_in < q_v (every Qualia model's second LIF): scalar 64-bit code before narrow lanes
         ("codegen", "LIF", {"v_reset": None, "q_v": 5, "q_in": 4, "tau": 2.0}, 16)]


@pytest.mark.parametrize("profile,kind,params,bits", LANES)
def test_specialised_kernels_stay_in_narrow_lanes(profile, kind, params, bits):
    """The pitfall the ratio above only halves on: a datapath change that lets LLVM fall back to wider lanes.

    Each spec's lane type (datapath.lane_type: int16 for the 8-bit integer specs, int32 for the 16-bit ones and
    the float32 datapath's quantizer) is pinned; every integer vector operation of its kernel must be in it, none
    wider (Numba widens each integer operation to int64: the datapath's lane operations undo that).
    """
    import re

    from golden.datapath import constants, encode, lane_type

    spec = golden.make(profile, kind, **params)
    assert 8 * np.dtype(lane_type(spec)).itemsize == bits
    kernel = kernels.uncached(encode(spec), constants(spec))  # compiled here: a cached kernel cannot be inspected
    n = 64
    arrays = (np.zeros((2, n), spec.fmt_in.dtype), np.zeros(n, spec.fmt_v.dtype), np.zeros((2, n), spec.fmt_out.dtype),
              np.zeros((2, n), spec.fmt_v.dtype), np.zeros((2, n), np.bool_), np.zeros(5, np.int64),
              np.full(3, -1, np.int64))
    kernel(*arrays, 0, 0, n)
    ir = kernel.inspect_llvm(kernel.signatures[0])
    ops = re.findall(r"= (?:add|sub|mul|shl|ashr|lshr|and|or|xor|icmp \w+)(?: nsw| nuw| exact)* <\d+ x i(\d+)>", ir)
    widths = {int(w) for w in ops} - {1}
    assert bits in widths, f"the kernel no longer vectorises in {bits}-bit lanes (vector integer ops in {widths})"
    assert max(widths) == bits, f"the kernel computes in {max(widths)}-bit vector lanes, wider than its {bits}"


@requires(missing_codegen())
def test_real_generated_c_rows():
    """The bench's yardstick: qualia-codegen's real lif.cc, rendered at bench time, bit-exact with golden (checked
    inside user_rows before anything is timed, on the trace and on Simulator.step), and every row measured."""
    bench = harness()
    with tempfile.TemporaryDirectory() as tmp:
        u = bench.user_rows(bench.realc_module(), Path(tmp), rounds=1, min_time=0.001, n=512, steps=20)
    record("codegen", "qualia-codegen-plugin-snn's C, rendered and compiled with gcc", u["checked"], 0)
    assert [r["target"] for r in u["rows"]] == [0.5, None, 1.0]
    assert all(r["golden"] > 0 and r["c"] > 0 for r in u["rows"]) and u["floor_us"] > 0
    text = "\n".join(bench.users_markdown(u))
    assert "the real generated C" in text and "Per-call floor at N = 16" in text


def test_bench_reports_every_stimulus():
    """The bench's stimulus rows: every generator of golden vectors generate, timed in one run, as a ratio to
    uniform (not a timed test: the ratios are reported, the README says which targets they hit)."""
    from golden.stimuli import STIMULI

    bench = harness()
    st = bench.stimulus_rows(min_time=0.01, n=64, steps=1500)  # two blocks, the second one partial
    assert list(st["rates"]) == list(STIMULI)
    assert all(r["rate"] > 0 and r["rows"] == 1500 and r["passes"] >= 1 for r in st["rates"].values())
    assert st["rates"]["uniform"]["ratio"] == 1.0
    text = "\n".join(bench.stimuli_markdown(st))
    assert all(f"| {g} |" in text for g in STIMULI)
