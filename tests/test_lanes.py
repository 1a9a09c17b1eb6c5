"""Narrow lanes: the range analysis that picks the kernels' lane type c.W is sound, and the kernels in those lanes
(specialised, threaded and generic, and Simulator.step) equal the plain-Python reference on int8 and int16
codegen and hardware specs, on stimuli aimed at saturation, wrap, ties and the threshold.

Soundness is checked against the reference itself: every value it narrows (the exact result of each operation,
before ``A``/``N``) is recorded and must lie inside the lane type, and inside the hull of
``datapath.exact_ranges``; exhaustively over every (v, x) pair for 8-bit formats.
"""

import itertools
import os
import platform

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import golden
from golden import datapath, kernels, profiles, reference
from golden.datapath import exact_ranges, lane_type, working_type
from golden.spec import Kind, SpecError
from golden.strategies import specs, stimuli

from proofs import record

DEEP = settings().max_examples >= 10000
HEAVY = settings(max_examples=2000 if DEEP else 8)  # each example walks up to 65536 (v, x) pairs
COMPILES = settings(max_examples=1000 if DEEP else 3)  # each example compiles a specialised kernel (~3 s)


@st.composite
def lane_specs(draw, bits=(8, 16)):
    """An int8 or int16 codegen or hardware spec, every knob those profiles take drawn (edges favoured)."""
    profile = draw(st.sampled_from(["codegen", "hardware"]))
    b = draw(st.sampled_from(bits))
    kind = draw(st.sampled_from([k.value for k in profiles.KINDS[profile]]))
    q_v = draw(st.sampled_from([b - 2, b // 2, 6]) | st.integers(0, b - 1))
    q_in = q_v + draw(st.sampled_from([0, 0, -1, 1, -3, 3]))
    vmax = (1 << (b - 1)) - 1
    vth = draw(st.sampled_from([1, vmax, vmax // 2, 1 << q_v]) | st.integers(1, vmax))
    params = dict(q_v=q_v, q_in=q_in, q_out=draw(st.sampled_from([q_v, b - 1, 0]) | st.integers(0, b - 2)),
                  v_threshold=vth * 2.0 ** -q_v, decay_input=draw(st.booleans()))
    if Kind(kind).soft_reset_only or draw(st.booleans()):
        params["v_reset"] = None
    else:
        params["v_reset"] = draw(st.sampled_from([0, -1, vth // 2, -vmax, vmax]) | st.integers(-vmax - 1, vmax)) \
            * 2.0 ** -q_v
    if Kind(kind).has_leak:
        params["tau"] = draw(st.sampled_from([1.1, 2.0, 3.0, 8.0, 64.0]) | st.floats(1.01, 200.0))
    if profile == "codegen":
        params.update(width=b, long_width=draw(st.sampled_from([None, 32, 64] if b == 8 else [None, 64])),
                      round=draw(st.sampled_from(["nearest", "floor"])),
                      round_out=draw(st.sampled_from(["nearest", "floor"])))
    else:
        params.update(bits=b, round=draw(st.sampled_from(["RND", "TRN", "TRN_ZERO", "TRN_INF", "RND_ZERO",
                                                          "RND_MIN_INF", "RND_INF", "RND_CONV"])),
                      overflow=draw(st.sampled_from(["saturate", "wrap", "strict"])),
                      acc_bits=draw(st.sampled_from([None, b + 2, 2 * b]) | st.integers(b, 2 * b + 4)))
    try:
        return profiles.make(profile, kind, **params)
    except SpecError:
        assume(False)


def aimed(spec, rng, steps: int, distinct: int) -> np.ndarray:
    """(steps, distinct) raw inputs: full scale held (saturation, wrap), alternating extremes, the threshold and
    its neighbours held, small values (leak ties), half-LSB multiples (rounding ties at q_in > q_v), anything."""
    lo, hi = spec.fmt_in.min, spec.fmt_in.max
    d = spec.fmt_in.frac - spec.fmt_v.frac
    vth_in = spec.v_threshold << max(d, 0) >> max(-d, 0)
    held = [lo, hi, lo + 1, hi - 1, 0, 1, -1, *(min(max(vth_in + k, lo), hi) for k in (-1, 0, 1))]
    cols = [np.full(steps, h) for h in held]
    cols += [np.where(np.arange(steps) % 2, lo, hi), np.where(np.arange(steps) % 3, hi, lo)]
    half = 1 << (d - 1) if d > 0 else 1
    while len(cols) < distinct:
        style = len(cols) % 3
        if style == 0:
            cols.append(rng.integers(lo, hi + 1, steps))
        elif style == 1:
            cols.append(np.clip(rng.integers(-6, 7, steps) << max(d, 0), lo, hi))
        else:
            cols.append(np.clip((2 * rng.integers(-4, 5, steps) + 1) * half, lo, hi))
    return np.array(cols[:distinct], np.int64).T.copy()


# ------------------------------------------------------------------ the analysis
@given(specs(arith=st.just("int")))
def test_lane_type_never_wider_than_working_type(spec):
    """The range analysis only ever narrows: every spec that had lanes still has them, or narrower ones."""
    assert np.dtype(lane_type(spec)).itemsize <= np.dtype(working_type(spec)).itemsize


def _narrowed(spec, pairs) -> list:
    """Every value golden.reference narrows (acc and v) while stepping each (v, x) of ``pairs``."""
    seen, on = [], [True]
    real, real_aligned = reference.narrow, reference.aligned

    def spy(n, bits, policy, stage, events):
        if on[0]:
            seen.append(n)
        return real(n, bits, policy, stage, events)

    def aligned(spec, raw):  # a constant aligned in Python: the kernels read only its narrowed value
        on[0] = False
        try:
            return real_aligned(spec, raw)
        finally:
            on[0] = True

    reference.narrow, reference.aligned = spy, aligned
    try:
        for v, x in pairs:
            try:
                reference.step(spec, v, x)
            except reference.Overflow:
                pass
    finally:
        reference.narrow, reference.aligned = real, real_aligned
    return seen


def _pairs(spec, rng):
    """Every (v, x) for 8-bit formats; else every pair of corner values and 20000 drawn pairs."""
    fv, fi = spec.fmt_v, spec.fmt_in
    if fv.bits <= 8 and fi.bits <= 8:
        return itertools.product(range(fv.min, fv.max + 1), range(fi.min, fi.max + 1))
    corner = lambda f: sorted({f.min, f.min + 1, -1, 0, 1, f.max - 1, f.max, spec.v_threshold, spec.v_reset})  # noqa: E731
    drawn = zip(rng.integers(fv.min, fv.max + 1, 20000).tolist(), rng.integers(fi.min, fi.max + 1, 20000).tolist())
    return itertools.chain(itertools.product(corner(fv), corner(fi)), drawn)


@HEAVY
@given(lane_specs(), st.integers(0, 2**32 - 1))
def test_range_analysis_is_sound(spec, seed):
    """Every exact value the reference narrows lies in the lane type and in the analysis' hull."""
    note(spec.to_toml())
    W = lane_type(spec)
    info = np.iinfo(W)
    ranges = exact_ranges(spec)
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    seen = _narrowed(spec, _pairs(spec, np.random.default_rng(seed)))
    assert info.min <= lo and hi <= info.max, "lane_type does not hold exact_ranges"
    record("lanes analysis", "every value golden.reference narrows, inside the range analysis' hull", len(seen),
           sum(not lo <= n <= hi for n in seen), unit="values")
    bad = [n for n in seen if not lo <= n <= hi]
    assert not bad, f"the reference narrows {bad[0]}, outside the analysis' hull {lo}..{hi} ({W.__name__} lanes)"


def test_the_target_specs_get_narrow_lanes():
    """The specs of issue 13's lanes target each get lanes half as wide as the formats' widths alone gave."""
    for profile, bits, kind in itertools.product(["codegen", "hardware"], [8, 16], ["LIF", "IF"]):
        spec = profiles.make(profile, kind, **({"width": bits} if profile == "codegen" else {"bits": bits}))
        want = np.int16 if bits == 8 else np.int32
        assert lane_type(spec) is want and np.dtype(working_type(spec)).itemsize == 2 * np.dtype(want).itemsize


BAD_LANES = [(np.int8, "at least int16"), (np.float32, "expected np.int16"), ("int32", "expected np.int16"),
             (np.int16, "at least int32")]


@pytest.mark.parametrize("lanes,why", BAD_LANES)
def test_forced_lanes_are_checked(lanes, why):
    spec = profiles.make("codegen", "LIF", width=16 if lanes is np.int16 else 8)
    for f in (datapath.encode, datapath.constants):
        with pytest.raises(SpecError, match=f"lanes: .*{why}"):
            f(spec, lanes)


# ------------------------------------------------------------------ the kernels
def _expect(spec, x_distinct, copies):
    """The reference on each distinct column; the whole layer is each column repeated ``copies`` times."""
    ref = reference.simulate(spec, x_distinct)
    counts = {k: n * copies for k, n in ref["overflow"].items()}
    return ref, counts


@COMPILES
@given(lane_specs(), st.integers(0, 2**32 - 1))
def test_narrow_kernels_equal_reference(spec, seed):
    """Specialised (threaded, over several count chunks) and generic kernels in the spec's lanes, and
    Simulator.step, on aimed columns each repeated across the layer: outputs, potentials, spikes and overflow
    counts equal the reference's."""
    note(spec.to_toml())
    rng = np.random.default_rng(seed)
    steps, distinct = 24, 41
    xd = aimed(spec, rng, steps, distinct)
    copies = (2 * kernels.CHUNK) // distinct + 2  # the layer crosses count chunks, with a ragged end
    x = np.tile(xd, (1, copies)).astype(spec.fmt_in.dtype)
    try:
        ref, counts = _expect(spec, xd, copies)
    except reference.Overflow:  # a strict policy stops: test_kernel_vs_reference covers where
        with pytest.raises(golden.SimulationOverflow):
            golden.simulate(spec, x, parallel=True)
        return
    for parallel in (True, False):
        trace = golden.simulate(spec, x, parallel=parallel)
        for field in ("out", "v", "spikes"):
            want = np.tile(ref[field], (1, copies))
            differ = int((getattr(trace, field) != want).sum())
            record("lanes kernels", "golden.reference, on aimed columns", want.size, differ)
            assert not differ, f"{field} differs ({'specialised' if parallel else 'generic'}, {lane_type(spec)})"
        assert trace.overflow == counts
    # Simulator.step on the same (specialised, narrow) kernel, from its first step: a wide layer
    sim = golden.Simulator(spec, x.shape[1])
    assert sim._kernel is not None
    for t in range(steps):
        assert np.array_equal(sim.step(x[t]), np.tile(ref["out"][t], copies))
        assert np.array_equal(sim.v, np.tile(ref["v"][t], copies))
    assert sim.overflow == counts


@given(st.data())
def test_generic_kernel_in_narrow_lanes(data):
    """The property suite's specs that the analysis narrows, through the generic kernel (no compile each)."""
    spec = data.draw(specs(arith=st.just("int")).filter(
        lambda s: np.dtype(lane_type(s)).itemsize < np.dtype(working_type(s)).itemsize))
    x = data.draw(stimuli(spec))
    try:
        ref = reference.simulate(spec, x)
    except reference.Overflow:
        return
    trace = golden.simulate(spec, x, parallel=False)
    assert np.array_equal(trace.out, ref["out"]) and np.array_equal(trace.v, ref["v"])
    assert trace.overflow == ref["overflow"]


def _lanes_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "tools" / "bench" / "lanes.py"
    spec = importlib.util.spec_from_file_location("golden_bench_lanes", path)
    lanes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lanes)
    return lanes


X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


def test_lanes_bench_rows():
    """tools/bench/lanes.py: both kernels checked against golden.simulate, timed, and (on x86, whatever its vector
    extensions) the narrow hot loop needs fewer instructions per update than the wide one (the lanes really
    narrowed). Elsewhere the loop analysis has no x86 listing to read: the rows show "-"."""
    lanes = _lanes_module()
    row = lanes.compare(lanes.lane_spec("codegen", 8, "LIF"), n=512, steps=8, rounds=1, min_time=0.001)
    assert (row["wide"], row["narrow"]) == ("int32", "int16")
    assert row["wide_rate"] > 0 and row["narrow_rate"] > 0 and row["copy_bound"] > 0
    if X86:
        assert row["narrow_loop"]["registers"] == row["wide_loop"]["registers"] in ("zmm", "ymm", "xmm")
        assert row["narrow_loop"]["per_update"] < row["wide_loop"]["per_update"]
    text = "\n".join(lanes.lanes_markdown({"N": 512, "T": 8, "rows": [row], "load": 0.0, "target": 1.8}))
    assert "| codegen LIF int8 | int32 -> int16 |" in text


LISTING = """\t.text
.LBB0_1:
\tvmovdqu64\t(%rdi,%rax,2), %{r}0
\tvpaddw\t%{r}0, %{r}1, %{r}2
\tvpmullw\t%{r}2, %{r}3, %{r}4
\tvpsraw\t$3, %{r}4, %{r}5
\tvmovdqu64\t%{r}5, (%rsi,%rax,2)
\taddq\t${n}, %rax
\tcmpq\t%rax, %rcx
\tjne\t.LBB0_1
.LBB0_2:
\tmovq\t%rax, %rdx
\taddq\t$1, %rax
\tjne\t.LBB0_2
"""


@pytest.mark.parametrize("reg,n", [("zmm", 32), ("ymm", 16), ("xmm", 8)])
def test_loop_analysis_reads_every_x86_vector_width(reg, n):
    """The hot-loop analysis finds the vector loop whatever register class the machine code uses (AVX-512, AVX2,
    SSE), from the listing alone: no dependence on this machine's instruction set."""
    from golden.cli.bench import harness

    loop = harness().loop_profile(LISTING.format(r=reg, n=n).splitlines())
    assert loop == {"registers": reg, "instructions": 8, "vector": 5, "updates": n, "per_update": 8 / n}
    assert harness().loop_profile(LISTING.replace("%{r}", "%r").format(n=n).splitlines()) == {}  # scalar only


@pytest.mark.skipif(not X86, reason="simulates an AVX2-only x86 (Numba's target CPU and features)")
def test_lanes_bench_rows_on_an_avx2_only_x86(tmp_path):
    """The loop analysis of the lanes rows as an AVX2-only x86 (Haswell, no AVX-512) sees it: Numba told to compile
    for that CPU in a fresh process (its own kernel cache); the wide and narrow loops are read in ymm registers."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[1]
    code = ("import json; from golden import datapath, profiles; from golden.cli.bench import harness; "
            "h = harness(); spec = profiles.make('codegen', 'LIF', width=8); "
            "print(json.dumps([h.hot_loop(spec, datapath.working_type(spec)), h.hot_loop(spec)]))")
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx,+avx2,+fma,+sse4.2,+popcnt,+bmi,"
           "+bmi2", "GOLDEN_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(root)}
    res = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    wide, narrow = json.loads(res.stdout.splitlines()[-1])
    assert wide["registers"] == narrow["registers"] == "ymm"
    assert narrow["per_update"] < wide["per_update"]


def test_golden_bench_reports_the_lanes_rows_and_their_target():
    """``golden bench`` runs lanes.py's rows (unless --no-lanes), renders them and judges the 1.8x target at
    N >= 65536 on the worst row."""
    from golden.cli.bench import harness

    h = harness()
    lanes = h.lanes_module()
    small = lanes.lanes_rows(65536, 2, rounds=1, min_time=0.001, asm=False, layers=(("codegen", 8),), kinds=("IF",))
    result = {"rows": [], "lanes": [small]}
    (name, worst, hit), = [t for t in h.targets(result) if "narrow lanes" in t[0]]
    ratio = small["rows"][0]["ratio"]
    assert worst.startswith(f"{ratio:.2f}x (codegen IF int8 N=65536 T=2)") and hit == (ratio >= 1.8)
    text = h.markdown({**result, "machine": h.machine(), "date": "now", "rounds": 1, "qualia_exact": {},
                       "hot_loops": {}})
    assert "Numba compiles for" in text  # the instruction set of the run is recorded
    assert "Narrow lanes, N = 65536, T = 2" in text and "| codegen IF int8 |" in text
