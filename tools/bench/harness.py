"""The benchmark harness behind ``golden bench``: golden against the C of the same spec and the Qualia layers.

It lives beside the package, not in it: ``golden bench`` (golden/cli/bench.py, the options) loads it from the
source checkout golden runs from; ``python tools/bench`` is the same command.

For each profile (torch-eval, torch-train, codegen, hardware) and kind (IF,
LIF, ATIF; codegen has no ATIF), at each layer size N and step count T, one
run measures

- golden's kernel, on 1 thread and on 2 (as :func:`golden.simulate` picks
  it), on preallocated arrays, and :func:`golden.simulate` itself (input
  check, output allocation: what a caller waits for);
- C: golden's C kernel of the spec (:mod:`golden.ckernel`: golden's
  datapath in C with every constant folded in, not Qualia's templates),
  compiled with ``gcc -O3 -march=native`` (``ckernel.CFLAGS``), on 1 thread and
  with OpenMP on 2, on the same arrays; it is first checked bit-exact against
  golden (outputs, potentials, spikes, overflow counts);
- Qualia: the qualia-plugin-snn layer of the kind in ``.eval()``, stepped
  over time as Qualia runs it (torch-eval rows), when torch and Qualia are
  installed;
- at N = 65536, the copy bound: what copying a working set the size of the
  layer's arrays allows at the bytes one update moves;
- once, a fresh interpreter's time to its first result for a spec already
  in Numba's disk cache;
- whole networks (tools/bench/netc.py): ``Network.simulate`` of real Qualia models against the model C
  that Qualia's deployment path generates and against the model in ``.eval()``.

Timing: the candidates of a configuration are timed in turn, round after
round (the order rotates), and each reports the median of its rounds; ratios
are taken between those medians, so they compare runs that shared the machine
at the same moments. Rates are neuron-updates per second (N x T / time).

    golden bench --quick                       # N in 64..65536, T = 100
    golden bench --json b.json --markdown b.md # the full grid
    python tools/bench ...                     # the same
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from golden import kernels, profiles
from golden.ckernel import CFLAGS, CKernel, check_c, compiler_version
from golden.datapath import constants, encode, lane_type
from golden.simulate import Runner, simulate
from golden.spec import Kind, Spec

PROFILES = tuple(profiles.PROFILES)
KINDS = tuple(k.value for k in Kind)
SIZES = (64, 1024, 65536, 1048576)
STEPS = (100, 1000)
QUICK_SIZES, QUICK_STEPS = (64, 1024, 65536), (100,)
LANES_SIZES = ((65536, 1000), (8192, 64))  # (N, T): the size (memory-bound), and in cache
MAX_UPDATES = 1 << 27  # N x T per configuration (memory: ~5 bytes per update for each candidate's arrays)


def bench_spec(profile: str, kind: str) -> Spec:
    """The layer benchmarked: the profile's defaults (8 bits, q_v = 6, tau 2, v_threshold 1; ATIF soft)."""
    return profiles.make(profile, kind, **({"v_reset": None} if Kind(kind).soft_reset_only else {}))


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

    xt = torch.from_numpy(x_raw.astype(np.float32) * np.float32(2.0 ** -q_in))

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


# ----------------------------------------------------------------- as users call golden
REAL_C_MAX = 65535  # the templates loop over neurons with unsigned short indices
USER_N, USER_T, FLOOR_N = 32768, 200, 16


def _sibling(name: str):
    """tools/bench/<name>.py, loaded beside this file (once) as ``golden_bench_<name>``."""
    import importlib.util

    key = f"golden_bench_{name}"
    module = sys.modules.get(key)
    if module is None:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def realc_module():
    """tools/bench/realc.py (the real generated C of one layer)."""
    return _sibling("realc")


def lanes_module():
    """tools/bench/lanes.py (narrow lanes: the range analysis' lanes against the wide ones, in one run)."""
    return _sibling("lanes")


def netc_module():
    """tools/bench/netc.py (whole networks: the real generated model C and the Qualia model)."""
    return _sibling("netc")


def realnet_module():
    """tools/bench/realnet.py (whole networks at real sizes: the Qualia model, the model C, batch 1 and 32)."""
    return _sibling("realnet")


def gemm_module():
    """tools/bench/gemm.py (synaptic layers at real sizes: the Numba kernel, the exact GEMM route, torch's layer)."""
    return _sibling("gemm")


def user_spec() -> Spec:
    """The issue's yardstick layer: qualia-codegen int16 LIF, q 6, tau 3."""
    return profiles.make("codegen", "LIF", width=16, q_v=6, tau=3.0)


def user_rows(real_c, tmp: Path, rounds: int, min_time: float, n: int = USER_N, steps: int = USER_T) -> dict:
    """golden as users call it against the real generated C (checked bit-exact first), one interleaved run.

    - step: ``Simulator.step(x[t], out=o)`` for t in 0..T (the Python call included) vs ``layer()`` per step;
    - trace fresh: ``golden.simulate(spec, x)`` vs a C harness that mallocs and records out + v;
    - trace reused: ``golden.simulate(spec, x, out=trace)`` vs the C recording into preallocated arrays;
    - floor: µs per ``Simulator.step`` call at N = 16 (the cocotb case), on the specialised kernel and on the
      generic one a small Simulator starts on.
    """
    from golden import Simulator, Trace

    spec = user_spec()
    rc = real_c.RealC(spec, n, tmp)
    x = np.random.default_rng(3).integers(spec.fmt_in.min, spec.fmt_in.max + 1, (steps, n)).astype(spec.fmt_in.dtype)
    checked = rc.check(x)
    sim, o = Simulator(spec, n), np.empty(n, spec.fmt_out.dtype)
    c_row = np.empty(n, spec.fmt_out.dtype)
    c_out, c_vt = np.empty(x.shape, spec.fmt_out.dtype), np.empty(x.shape, spec.fmt_v.dtype)
    trace = Trace.empty(spec, x.shape)
    # the step loop checked against the C's trace too
    sim.reset()
    for t in range(steps):
        sim.step(x[t], out=o)
    ref_out, ref_v = rc.trace(x)
    if not (np.array_equal(o, ref_out[-1]) and np.array_equal(sim.v, ref_v[-1])):
        raise AssertionError("Simulator.step differs from the real generated C")

    def stepping():
        sim.reset()
        for t in range(steps):
            sim.step(x[t], out=o)

    def c_steps():
        rc.lib.rc_reset()
        rc.lib.rc_steps(steps, x.ctypes.data, c_row.ctypes.data)

    def c_trace():
        rc.lib.rc_reset()
        rc.lib.rc_trace(steps, x.ctypes.data, c_out.ctypes.data, c_vt.ctypes.data)

    def c_alloc():
        rc.lib.rc_reset()
        rc.lib.rc_trace_alloc(steps, x.ctypes.data)

    xs = x[:, :FLOOR_N].copy()
    small, generic = Simulator(spec, FLOOR_N), Simulator(spec, FLOOR_N)
    generic._kernel = None  # the generic kernel a small Simulator starts on (until its lifetime pays a compile)
    generic._lifetime = -(1 << 62)
    o16 = np.empty(FLOOR_N, spec.fmt_out.dtype)

    def floor(s):
        def run():
            s.reset()
            for t in range(steps):
                s.step(xs[t], out=o16)
        return run

    secs = interleaved({"step": stepping, "c_steps": c_steps, "simulate": lambda: simulate(spec, x),
                        "simulate_out": lambda: simulate(spec, x, out=trace), "c_alloc": c_alloc,
                        "c_trace": c_trace, "floor": floor(small), "floor_generic": floor(generic)},
                       rounds, min_time)
    rate = {k: steps * n / v for k, v in secs.items() if not k.startswith("floor")}
    rows = [("per-cycle: `Simulator.step(x[t], out=o)` vs `layer()` per step", rate["step"], rate["c_steps"], 0.5),
            ("whole trace, fresh buffers: `golden.simulate(spec, x)` vs C that mallocs and records out + v",
             rate["simulate"], rate["c_alloc"], None),
            ("whole trace, reused buffers: `golden.simulate(spec, x, out=trace)` vs C recording out + v "
             "into preallocated arrays", rate["simulate_out"], rate["c_trace"], 1.0)]
    return {"spec": spec.describe(), "N": n, "T": steps, "checked": checked, "load": os.getloadavg()[0],
            "rows": [{"job": j, "golden": g, "c": c, "ratio": g / c, "target": tg} for j, g, c, tg in rows],
            "floor_us": secs["floor"] / steps * 1e6, "floor_generic_us": secs["floor_generic"] / steps * 1e6,
            "step_us": secs["step"] / steps * 1e6, "c_step_us": secs["c_steps"] / steps * 1e6}


def users_markdown(u: dict) -> list:
    lines = [f"As users call golden, against the C qualia-codegen really generates ({u['spec']}; N = {u['N']}, "
             f"T = {u['T']}; lif.cc rendered from the installed package and compiled at bench time, checked "
             f"bit-exact first on {u['checked']} values; load average {u['load']:.2f} when it started):", "",
             "| job | golden (updates/s) | the real generated C | ratio | target |", "|---|---|---|---|---|"]
    for r in u["rows"]:
        t = "-" if r["target"] is None else (f">= {r['target']}x: " + ("hit" if r["ratio"] >= r["target"]
                                                                       else "**missed**"))
        lines.append(f"| {r['job']} | {r['golden']:.2e} | {r['c']:.2e} | **{r['ratio']:.2f}x** | {t} |")
    lines += ["", f"Per step at N = {u['N']}: `Simulator.step` {u['step_us']:.1f} µs, `layer()` {u['c_step_us']:.1f} "
              f"µs. Per-call floor at N = {FLOOR_N} (the cocotb case): {u['floor_us']:.2f} µs on the specialised "
              f"kernel, {u['floor_generic_us']:.2f} µs on the generic one a small Simulator starts on.", ""]
    return lines


# ----------------------------------------------------------------- stimuli
STIM_N = 1024  # the README's `golden vectors generate` width
STIM_TARGET = 0.5  # every stimulus within 2x of uniform (issue 13)
STIM_T = 100_000  # the T


def stimulus_rows(min_time: float, n: int = STIM_N, seed: int = 1, steps: int = STIM_T) -> dict:
    """Neuron-steps per second of each ``golden vectors generate`` stimulus on the users' spec, streamed as
    ``generate`` streams it: a fresh generator, ``steps`` steps in blocks of ``BLOCK``, after one warm-up block
    (the kernels compile and load from the disk cache outside the timing); ratio to ``uniform`` in the same
    run. ``min_time``: repeat a stimulus until it has run that long (the rate of all its passes)."""
    from golden.stimuli import BLOCK, STIMULI, Stimulus

    spec = user_spec()
    rates = {}
    for gen in STIMULI:
        Stimulus(spec, n, seed, gen).block(0, 1)
        passes, dt = 0, 0.0
        while passes == 0 or dt < min_time:
            st = Stimulus(spec, n, seed, gen)
            t0 = time.perf_counter()
            for k in range(-(-steps // BLOCK)):
                st.block(k, min(BLOCK, steps - k * BLOCK))
            dt += time.perf_counter() - t0
            passes += 1
        rates[gen] = {"rows": steps, "passes": passes, "seconds": dt, "rate": passes * steps * n / dt}
    base = rates["uniform"]["rate"]
    for r in rates.values():
        r["ratio"] = r["rate"] / base
    return {"spec": spec.describe(), "N": n, "T": steps, "rates": rates, "target": STIM_TARGET,
            "load": os.getloadavg()[0]}


def stimuli_markdown(st: dict) -> list:
    lines = [f"Stimuli of `golden vectors generate` ({st['spec']}; N = {st['N']}, T = {st['T']}, streamed in "
             f"blocks as `generate` does, from a fresh generator; load average {st.get('load', 0):.2f}):", "",
             "| stimulus | steps timed | neuron-steps/s | of uniform | target (>= 0.5 of uniform) |",
             "|---|---|---|---|---|"]
    for gen, r in st["rates"].items():
        hit = "hit" if r["ratio"] >= st["target"] else "**missed**"
        lines.append(f"| {gen} | {r['rows'] * r.get('passes', 1)} | {r['rate']:.2e} | {r['ratio']:.3f} | {hit} |")
    lines += ["", "`ties` (and the quarter of `mixed` that is ties) proposes, per neuron-step, the inputs that land "
              "on a rounding tie or the threshold from the neuron's potential, and golden's own step keeps those "
              "that do (vectors/README.md): about 12 vectorised step evaluations per neuron-step, against one "
              "random word for uniform.", ""]
    return lines


# ----------------------------------------------------------------- profile
VECTOR_REGS = ("zmm", "ymm", "xmm")  # x86 vector registers, widest first: AVX-512, AVX/AVX2, SSE


def vector_width(asm_lines) -> str | None:
    """The widest x86 vector register class the code uses (zmm, ymm, xmm), or None (not x86 / no vectors)."""
    import re

    text = "\n".join(asm_lines)
    for reg in VECTOR_REGS:
        if re.search(rf"%{reg}\d+\b|\b{reg}\d+\b", text):
            return reg
    return None


def loop_profile(asm_lines) -> dict:
    """The innermost vector loop of an x86 assembly listing: its instructions, how many touch vector registers,
    the elements one iteration steps over (the ``addq $N`` of its counter), the register class, instructions per
    element. Loops are jumps back to an earlier label; the chosen one counts elements and is the densest in the
    widest registers the listing uses (zmm on AVX-512, ymm on AVX2, xmm on SSE-only targets). {} if none."""
    import re

    reg = vector_width(asm_lines)
    if reg is None:
        return {}
    labels = {line.split(":")[0]: i for i, line in enumerate(asm_lines) if re.match(r"^\.LBB\d+_\d+:", line)}
    best = None
    for i, line in enumerate(asm_lines):
        m = re.match(r"\s+j\w+\s+(\.LBB\d+_\d+)", line)
        if m and m.group(1) in labels and labels[m.group(1)] < i:
            body = [x for x in asm_lines[labels[m.group(1)] + 1:i + 1]
                    if x.startswith("\t") and not x.strip().startswith(".")]
            step = [int(s.group(1)) for x in body[-4:] for s in [re.search(r"addq\s+\$(\d+),", x)] if s]
            dense = sum(reg in x for x in body)
            key = (bool(step), dense)  # a loop that counts neurons, then the most work in the widest registers
            if dense >= 4 and len(body) < 200 and (best is None or key > best[0]):
                best = (key, body, max(step) if step else 0)
    if best is None:
        return {}
    _, body, per = best
    return {"registers": reg, "instructions": len(body), "vector": sum(any(r in x for r in VECTOR_REGS) for x in body),
            "updates": per, "per_update": len(body) / per if per else None}


def hot_loop(spec: Spec, lanes=None) -> dict:
    """The innermost vector loop of the spec's specialised kernel (compiled afresh, uncached): a static profile.

    Returns :func:`loop_profile` of its assembly (instructions, vector ones, neuron-updates per iteration,
    instructions per update, the register class) and the lane type W; {} where no vector loop is found (a
    non-x86 machine), so a row shows "-" rather than failing. ``lanes``: the lane type to compile it in
    (default: the range analysis', ``lane_type(spec)``).
    """
    lanes = lane_type(spec) if lanes is None else lanes
    kernel = kernels.uncached(encode(spec, lanes), constants(spec, lanes))
    n = 64
    kernel(np.zeros((2, n), spec.fmt_in.dtype), np.zeros(n, spec.fmt_v.dtype), np.zeros((2, n), spec.fmt_out.dtype),
           np.zeros((2, n), spec.fmt_v.dtype), np.zeros((2, n), np.bool_), np.zeros(5, np.int64),
           np.full(3, -1, np.int64),
           0, 0, n)
    loop = loop_profile(kernel.inspect_asm(kernel.signatures[0]).splitlines())
    return {"W": np.dtype(lanes).name, **loop} if loop else {}


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


ISA_FLAGS = (("avx512f", "AVX-512F"), ("avx512bw", "AVX-512BW"), ("avx512vl", "AVX-512VL"), ("avx2", "AVX2"),
             ("fma", "FMA"), ("avx", "AVX"), ("sse4_2", "SSE4.2"), ("asimd", "ASIMD"), ("sve", "SVE"))


def instruction_set(flags: str | None = None) -> dict:
    """The vector instruction set of this run: the CPU's (``/proc/cpuinfo`` flags; ``flags`` to read another
    listing) and what Numba compiles golden's kernels for (its target CPU and features: NUMBA_CPU_NAME /
    NUMBA_CPU_FEATURES when set, else the host's), so a bench file says which machine code produced it."""
    if flags is None:
        flags = ""
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith(("flags", "Features")):
                    flags = line.split(":", 1)[1]
                    break
        except OSError:
            pass
    have = set(flags.split())
    from numba.core import config
    try:
        import llvmlite.binding as llvm
        host = llvm.get_host_cpu_name()
    except Exception:  # pragma: no cover - llvmlite always ships with numba
        host = "?"
    return {"cpu_flags": [name for flag, name in ISA_FLAGS if flag in have], "arch": platform.machine(),
            "numba_cpu": config.CPU_NAME or host, "numba_features": config.CPU_FEATURES or "host"}


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
            "gcc": compiler_version(), "cflags": " ".join(CFLAGS), "platform": platform.platform(),
            "isa": instruction_set(), "blas": blas_info()}


def blas_info() -> str:
    """The BLAS numpy calls (the GEMM route's): library, version, the kernel architecture it picked (which
    OPENBLAS_CORETYPE can force), its threads; "unknown" without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return "unknown"
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture') or '?'} kernels, "
                     f"{i.get('num_threads')} threads)" for i in libs) or "none loaded"


def isa_text(m: dict) -> str:
    """One phrase for a bench file: the CPU's vector extensions and Numba's compile target."""
    isa = m.get("isa") or {}
    if not isa:
        return "instruction set not recorded"
    return (f"{isa['arch']} with {', '.join(isa['cpu_flags']) or 'no vector extension listed'}; Numba compiles for "
            f"{isa['numba_cpu']} (features: {isa['numba_features']})")


def run_config(spec: Spec, n: int, steps: int, ckernel, qualia, rounds: int, min_time: float, seed: int = 0,
               real=None) -> dict:
    """One configuration: every candidate timed interleaved; rates in neuron-updates per second.

    golden_1t / golden_2t and c_1t / c_omp2 are the kernels on the same preallocated arrays (what
    the datapath costs); simulate is the public ``golden.simulate`` call, which also checks the
    input and allocates its outputs (what a user waits for). ``real``: a callable giving the real generated
    C (:mod:`realc`) of this spec for ``n`` neurons, or None; it is checked bit-exact on ``x`` first, then
    timed recording outputs and potentials into preallocated arrays (real_c).
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
    rc = real(n) if real is not None else None
    if rc is not None:
        rc.check(x)
        rc_out, rc_vt = np.empty_like(out), np.empty_like(vt)
        fns["real_c"] = lambda: rc.lib.rc_trace(steps, x.ctypes.data, rc_out.ctypes.data, rc_vt.ctypes.data)
    q_steps = 0
    if qualia is not None:
        q_steps = max(2, min(steps, int(2e6 // n)))  # the reference is ~1000x slower: time fewer steps
        fns["qualia"] = qualia_runner(qualia, x[:q_steps])
    secs = interleaved(fns, rounds, min_time)
    rates = {k: (q_steps if k == "qualia" else steps) * n / s for k, s in secs.items()}
    return {"profile": spec.profile, "kind": spec.kind, "N": n, "T": steps, "rates": rates,
            "W": np.dtype(lane_type(spec)).name, "bytes_per_update": _bytes_per_update(spec)}


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
    if "real_c" in r:
        out["golden/real C 1t"] = r["golden_1t"] / r["real_c"]
    out["golden 2t/1t"] = r["golden_2t"] / r["golden_1t"]
    if "qualia" in r:
        out["simulate/Qualia"] = r["simulate"] / r["qualia"]
    return out


def _fmt(v) -> str:
    return f"{v:.2e}" if v is not None else "-"


COLUMNS = ("golden_1t", "golden_2t", "c_1t", "c_omp2", "real_c", "simulate", "qualia")
RATIOS = ("golden/C 1t", "golden/C 2t", "golden/real C 1t", "golden 2t/1t", "simulate/Qualia")


LOADED = 1.5  # load average above which the run shared the machine with other work (2 timed threads at most)


def header(result: dict) -> list:
    """The file's opening: what produced it, on which CPU and instruction set, with which BLAS, how loaded."""
    m = result["machine"]
    load0, load1 = m.get("load") or 0.0, result.get("load_end")
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    lines = ["# golden bench", "",
             f"Generated by `golden bench{' ' if result.get('argv') else ''}{' '.join(result.get('argv') or ())}` "
             f"(tools/bench/harness.py) on {result['date']}, in one run of {result.get('seconds', 0) / 60:.0f} min. "
             f"CPU: {m['cpu']}, {m['threads']} threads for golden; {isa_text(m)}. BLAS (numpy, the GEMM route's): "
             f"{m.get('blas', 'unknown')}; OPENBLAS_CORETYPE "
             + (f"= {coretype} in the environment." if coretype else "not set (the BLAS's own choice).")
             + f" {m['platform']}. Load average {load0:.2f} at the start"
             + (f", {load1:.2f} at the end." if load1 is not None else ".")]
    if max(load0, load1 or 0.0) > LOADED:
        lines += ["", f"**This run shared the machine** (load average above {LOADED} at its start or end): absolute "
                  "rates are low and noisy, and ratios compare timings taken one after the other; rerun "
                  "`golden bench` on a quiet machine for the reference figures."]
    return lines + [""]


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Measured {result['date']} on {m['cpu']} ({isa_text(m)}; {m['threads']} hardware threads, load "
             f"average {m['load']:.2f} at the start), Python {m['python']}, numpy {m['numpy']}, numba {m['numba']}, "
             f"{m['gcc'] or 'no gcc'} `{m['cflags']}`.", "",
             f"Neuron-updates per second, median of {result['rounds']} interleaved rounds; ratios compare "
             "medians of the same run. golden 1t/2t and C 1t/omp 2t: the kernels on the same preallocated "
             "arrays; real C: the C qualia-codegen-plugin-snn generates (lif.cc/if.cc rendered from the installed "
             "package at bench time, same flags, recording outputs and potentials; codegen rows, N <= 65535, the "
             "templates' limit); simulate: the public `golden.simulate` call (input check, output allocation, "
             "threads as it picks them); Qualia: the qualia-plugin-snn layer of the kind in `.eval()` (torch-eval "
             "rows).", ""]
    lines += ["| profile | kind | N | T | golden 1t | golden 2t | C 1t | C omp 2t | real C 1t | simulate | Qualia | "
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
    for lanes in reversed(result.get("lanes", [])):
        lines = lanes_module().lanes_markdown(lanes) + lines
    if result.get("stimuli"):
        lines = stimuli_markdown(result["stimuli"]) + lines
    if result.get("gemm"):
        lines = gemm_module().markdown(result["gemm"]) + lines
    elif result.get("gemm_missing"):
        lines = [f"The real-size synaptic layer rows are skipped: {result['gemm_missing']}.", ""] + lines
    if result.get("networks"):
        lines = netc_module().markdown(result["networks"]) + lines
    elif result.get("networks_missing"):
        lines = [f"The whole-network rows are skipped: {result['networks_missing']}.", ""] + lines
    if result.get("real"):
        lines = realnet_module().markdown(result["real"]) + lines
    elif result.get("real_missing"):
        lines = [f"The real-size whole-network rows are skipped: {result['real_missing']}.", ""] + lines
    if result.get("users"):
        lines = users_markdown(result["users"]) + lines
    elif result.get("real_c_missing"):
        lines = [f"The real generated C is not timed: {result['real_c_missing']}.", ""] + lines
    t = targets(result)
    if t:
        lines = ["| target | measured (worst case) | |", "|---|---|---|",
                 *(f"| {name} | {text} | {'hit' if ok else '**missed**'} |" for name, text, ok in t), "", *lines]
    lines = header(result) + lines
    if result.get("hot_loops"):
        lines += ["", "The hot loop of each specialised kernel (static count, from its machine code): one iteration "
                  "updates `updates` neurons with `instructions` instructions, `vector` of them on vector registers "
                  "(the widest the code uses: zmm on AVX-512, ymm on AVX2, xmm on SSE).", "",
                  "| spec | working type | registers | updates | instructions | vector | per update |",
                  "|---|---|---|---|---|---|---|"]
        for name, h in result["hot_loops"].items():
            if h:
                per = f"{h['per_update']:.2f}" if h["per_update"] else "-"
                lines.append(f"| {name} | {h['W']} | {h['registers']} | {h['updates'] or '-'} | {h['instructions']} "
                             f"| {h['vector']} | {per} |")
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
    vs_qualia = lambda x: r(x, "simulate") / r(x, "qualia")  # noqa: E731
    w = _worst([x for x in rows if x["N"] <= 1024 and "qualia" in x["rates"]], vs_qualia)
    if w:
        out.append(("golden.simulate >= 1000x the Qualia layer (eval) at N <= 1024", f"{w[0]:.0f}x ({_where(w[1])})",
                    w[0] >= 1000))
    w = _worst([x for x in rows if x["N"] == 65536 and "qualia" in x["rates"]], vs_qualia)
    if w:
        out.append(("golden.simulate >= 50x the Qualia layer (eval) at N = 65536", f"{w[0]:.0f}x ({_where(w[1])})",
                    w[0] >= 50))
    w = _worst([x for x in rows if "copy_1t" in x], lambda x: r(x, "golden_1t") * x["bytes_per_update"] / x["copy_1t"])
    if w:
        out.append(("golden 1 thread >= 50% of the copy bound at N = 65536", f"{w[0]:.0%} ({_where(w[1])})",
                    w[0] >= 0.5))
    integer = {(x["kind"], x["N"], x["T"]): r(x, "golden_1t") for x in rows if x["profile"] == "hardware"}
    w = _worst([x for x in rows
                if x["profile"] == "torch-eval" and (x["kind"], x["N"], x["T"]) in integer and x["N"] >= 1024],
               lambda x: integer[x["kind"], x["N"], x["T"]] / r(x, "golden_1t"), pick=max)
    if w:
        out.append(("torch-eval (float32) within 2x of the integer profile (hardware) of the same layer, N >= 1024",
                    f"{w[0]:.2f}x slower ({_where(w[1])})", w[0] <= 2.0))
    big = [lr for lr in result.get("lanes", []) if lr["N"] >= 65536]
    w = _worst([row for lr in big for row in lr["rows"]], lambda x: x["ratio"])
    if w:
        out.append(("narrow lanes >= 1.8x the wide ones, int8/int16 codegen and hardware, N >= 65536",
                    f"{w[0]:.2f}x ({w[1]['profile']} {w[1]['kind']} int{w[1]['bits']} N={big[0]['N']} "
                    f"T={big[0]['T']})", w[0] >= 1.8))
    if result.get("networks"):
        out += netc_module().targets(result["networks"])
    if result.get("real"):
        out += realnet_module().targets(result["real"])
    if result.get("gemm"):
        out += gemm_module().targets(result["gemm"])
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
    t_start = time.perf_counter()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch or any C loads OpenMP
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    steps_list = args.steps or (QUICK_STEPS if args.quick else STEPS)
    gcc = compiler_version() if not args.no_c else None
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "rounds": args.rounds, "rows": [],
              "argv": getattr(args, "argv", None),
              "qualia_exact": {}, "hot_loops": {}}
    real_c = None
    if gcc:
        real_c = realc_module()
        why = real_c.available()
        if why:
            result["real_c_missing"], real_c = why, None
    with tempfile.TemporaryDirectory(prefix="golden-bench-") as tmp:
        if real_c is not None and not args.no_users:
            result["users"] = user_rows(real_c, Path(tmp), args.rounds, args.min_time)
        if not args.no_stimuli:
            result["stimuli"] = stimulus_rows(max(args.min_time, 0.2))
        if not getattr(args, "no_networks", False):
            why = "--no-c skips every compiled C" if args.no_c else netc_module().available()
            if why:
                result["networks_missing"] = why
            else:
                nc = netc_module()
                result["networks"] = nc.network_rows(Path(tmp), args.rounds, max(args.min_time, 0.05),
                                                     getattr(args, "net_models", None),
                                                     getattr(args, "net_samples", nc.NET_S),
                                                     getattr(args, "net_steps", nc.NET_T))
        if not getattr(args, "no_real", False):
            rn = realnet_module()
            why = "--no-c skips every compiled C" if args.no_c else rn.available()
            if why:
                result["real_missing"] = why
            else:
                result["real"] = rn.real_rows(Path(tmp), min(args.rounds, 3), max(args.min_time, 0.05),
                                              getattr(args, "real_models", None),
                                              getattr(args, "real_batch", rn.BATCH), args.quick)
        if not getattr(args, "no_gemm", False):
            gm = gemm_module()
            why = gm.available()
            if why:
                result["gemm_missing"] = why
            else:
                result["gemm"] = gm.gemm_rows(getattr(args, "gemm_models", None),
                                              getattr(args, "gemm_samples", gm.SAMPLES), max(args.min_time, 0.05),
                                              min(args.rounds, 3))
        if not getattr(args, "no_lanes", False):
            lanes = lanes_module()
            result["lanes"] = [lanes.lanes_rows(n, t, args.rounds, max(args.min_time, 0.2), args.asm)
                               for n, t in LANES_SIZES]
        for profile in args.profiles:
            for kind in args.kinds:
                if kind not in profiles.KINDS[profile]:
                    continue  # qualia-codegen has no ATIF
                spec = bench_spec(profile, kind)
                if args.asm:
                    result["hot_loops"][f"{profile} {kind}"] = hot_loop(spec)
                ck = None
                if gcc:
                    ck = CKernel(spec, Path(tmp))
                    rng = np.random.default_rng(1)
                    x = rng.integers(spec.fmt_in.min, spec.fmt_in.max + 1, (50, 70_000))
                    check_c(ck, x.astype(spec.fmt_in.dtype))
                qualia = qualia_module(kind) if (profile == "torch-eval" and not args.no_qualia) else None
                if qualia is not None:
                    x = np.random.default_rng(2).integers(spec.fmt_in.min, spec.fmt_in.max + 1, (20, 256))
                    result["qualia_exact"][kind] = qualia_agrees(qualia, spec, x.astype(spec.fmt_in.dtype))
                real = None
                if real_c is not None and profile == "codegen":
                    def real(n, spec=spec):
                        return real_c.RealC(spec, n, Path(tmp)) if n <= REAL_C_MAX else None
                for n in sizes:
                    for steps in steps_list:
                        if n * steps > MAX_UPDATES:
                            continue
                        row = run_config(spec, n, steps, ck, qualia, args.rounds, args.min_time, real=real)
                        if n == 65536:
                            bound = copy_bound(n * steps * row["bytes_per_update"], args.rounds, args.min_time)
                            row.update(("copy_" + k, v) for k, v in bound.items())
                        result["rows"].append(row)
                        if not args.quiet:
                            r = row["rates"]
                            print(f"{profile:11s} {kind:4s} N={n:<8d} T={steps:<5d} " + " ".join(
                                f"{k}={v:.2e}" for k, v in r.items()), file=sys.stderr, flush=True)
    if not args.no_fresh:
        result["fresh_process"] = fresh_process()
    result["seconds"] = time.perf_counter() - t_start
    result["load_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return result
