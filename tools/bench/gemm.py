"""Synaptic layers at real sizes (issue 20): golden's Numba kernel against the exact GEMM route and torch's own layer.

The models are the real qualia-plugin-snn 2.6.0 templates (``QuantizedSCNN`` / ``QuantizedSResNet``) built at the
sizes of the project's own configurations (qualia-plugin-snn ``conf/``; the kwargs below are the architecture
numbers only, restated), seeded, calibrated on a few random batches in train mode (the minmax activation ranges; a
quantizer that saw only zeros, a deep layer silent on random data, gets the range 1.0 a spiking layer has), then read
by ``golden.from_torch`` (torch-eval profile). For each synaptic layer (Linear, Conv), on the same rows
(S samples x T steps, every row one (sample, step)), raw inputs drawn over the layer's whole input format (the
worst case of its range analysis; no candidate skips zeros, so the values do not change the timings):

- **kernel**: ``golden.network.ops.core`` on :mod:`golden.network.kernels`' Numba kernels alone (:func:`numba_impl`:
  not the module itself, which ``Weighted.family`` would hand to the GEMM route);
- **gemm**: the same call on :mod:`golden.network.gemm`'s drop-in kernels (float32 or float64 as
  ``gemm.choose`` proves; its accumulators and wrap counts checked equal to the kernel's before timing), on 1 and
  on 2 BLAS threads;
- **torch**: the Qualia module itself in ``.eval()`` (its quantizers included) on the same rows as one batch, on
  1 and 2 torch threads.

Multiply-accumulates per second of each, and the GEMM route's as a fraction of the measured GEMM peak of this
machine (float32 and float64 square GEMMs on the same BLAS, 1 and 2 threads): the physical-limit row.

    python tools/bench/gemm.py --models "CIFAR-10 VGG16-bn IF int8" --samples 1
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
import time
import types
import warnings

import numpy as np

#: label -> (template, bits, roundtype, force_q, timesteps, channels-last input shape, architecture kwargs, neuron)
LIF = {"kind": "LIFNode", "params": {"v_threshold": 1.0, "v_reset": False, "tau": 2.0, "detach_reset": True,
                                     "step_mode": "s"}}
IF = {"kind": "IFNode", "params": {"v_threshold": 1.0, "v_reset": False, "detach_reset": True, "step_mode": "s"}}
SCNN7 = {"filters": [16, 32, 64, 128, 128, 256, 256], "kernel_sizes": [7, 3, 3, 3, 3, 3, 3],
         "pool_sizes": [0] * 7, "dropouts": [0] * 7, "strides": [2] * 7, "paddings": [3, 1, 1, 1, 1, 1, 1],
         "fc_units": [], "gsp": True, "batch_norm": True}
MODELS = {
    "DVS-Gesture SCNN int16": ("SCNN", 16, "floor", 9, 8, (128, 128, 2), {**SCNN7, "dims": 2}, LIF),
    "CIFAR-10 VGG16-bn IF int8": ("SCNN", 8, "floor", None, 4, (32, 32, 3), {
        "filters": [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512], "kernel_sizes": [3] * 13,
        "paddings": [1] * 13, "strides": [1] * 13, "pool_sizes": [0, 2, 0, 2, 0, 0, 2, 0, 0, 2, 0, 0, 2],
        "dropouts": [0] * 15, "fc_units": [512, 512], "batch_norm": True, "dims": 2}, IF),
    "CIFAR-10 SResNet 64x3 LIF int8": ("SResNet", 8, "floor", None, 4, (32, 32, 3), {
        "filters": [64, 64, 64], "kernel_sizes": [7, 3, 3], "paddings": [3, 1, 1], "strides": [1, 1],
        "num_blocks": [3], "dims": 2}, LIF),
    "CIFAR-10 SResNet18 IF int16": ("SResNet", 16, "floor", None, 4, (32, 32, 3), {
        "filters": [64, 64, 128, 256, 512], "kernel_sizes": [7, 3, 3, 3, 3], "paddings": [3, 1, 1, 1, 1],
        "strides": [2, 1, 1, 1, 1], "num_blocks": [2, 2, 2, 2], "postpool": "max", "batch_norm": True, "dims": 2},
        IF),
    "GSC SResNet-8 int16": ("SResNet", 16, "floor", 8, 4, (49, 10), {
        "filters": [64, 64], "kernel_sizes": [7, 3], "paddings": [3, 1], "strides": [1, 1], "num_blocks": [3],
        "dims": 1}, LIF),
    "SHD SCNN int16": ("SCNN", 16, "floor", 9, 6, (700, 2), {**SCNN7, "dims": 1}, LIF),
}
SAMPLES = 2
PEAK_N = 1024  # the square GEMM that measures the peak


@contextlib.contextmanager
def _quiet():
    import logging

    with warnings.catch_warnings(), contextlib.redirect_stdout(open(os.devnull, "w")) as sink:
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)
            sink.close()


def build(label: str, seed: int = 0, calib_batches: int = 2, calib_batch: int = 4, entry: tuple | None = None):
    """The quantized template of ``label`` at its real size, seeded, calibrated (train mode, minmax), in .eval().

    ``entry``: a :data:`MODELS`-style tuple to build instead of ``MODELS[label]`` (tools/bench/realnet.py's SMLP and
    its --quick sizes)."""
    import importlib

    import torch
    from spikingjelly.activation_based import functional

    template, bits, rnd, force_q, T, in_shape, arch, neuron = MODELS[label] if entry is None else entry
    qp = {"quant_enable": True, "LSQ": False, "quantype": "fxp", "range_setting": "minmax", "is_asymmetric": False,
          "bits": bits, "roundtype": rnd, "force_q": force_q}
    cls = getattr(importlib.import_module(f"qualia_plugin_snn.learningmodel.pytorch.Quantized{template}"),
                  f"Quantized{template}")
    with _quiet(), torch.random.fork_rng():
        torch.manual_seed(seed)
        model = cls(input_shape=in_shape, output_shape=(10,), quant_params=qp, neuron=copy.deepcopy(neuron),
                    timesteps=T, **copy.deepcopy(arch))
        torch_in = (in_shape[-1], *in_shape[:-1])
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
                    fan_in = int(np.prod(m.weight.shape[1:]))
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.5 / np.sqrt(fan_in)))
        functional.set_step_mode(model, "s")
        model.train()
        with torch.no_grad():
            for _ in range(calib_batches):
                functional.reset_net(model)
                x = torch.rand((calib_batch, *torch_in), generator=g) * 2
                for _t in range(T):
                    model(x)
        model.eval()
        functional.reset_net(model)
        for m in model.modules():  # a layer silent on random data (deep, untrained): the range a spiking one has
            gm = getattr(m, "global_max", None)
            if isinstance(gm, torch.Tensor) and not bool((gm != 0).any()):
                gm.fill_(1.0)
    return model, T, torch_in


def numba_impl():
    """golden.network.kernels as a plain namespace: ``Weighted.family`` hands only the module itself to the GEMM
    route, so this runs every layer on the Numba kernels (the column the route is measured against)."""
    from golden.network import kernels

    return types.SimpleNamespace(**{n: getattr(kernels, n) for n in ("requant", "maxpool2d", "add", "sumpool",
                                                                     "linear", "conv2d", "batchnorm")})


def _gemm_impl():
    from golden.network import gemm, kernels

    return types.SimpleNamespace(**{n: getattr(kernels, n) for n in ("requant", "maxpool2d", "add", "sumpool")},
                                 linear=gemm.linear, conv2d=gemm.conv2d, batchnorm=gemm.batchnorm)


BUDGET = 3.0  # seconds: a candidate slower than this per call is timed once (the Numba kernel on big layers)


def available() -> str | None:
    """None if these rows can run here, else why not (torch / Qualia missing)."""
    import importlib.util

    for mod in ("torch", "spikingjelly", "qualia_core", "qualia_plugin_snn"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (the [test] extra)"
    return None


def _time(fn, min_time: float, rounds: int) -> float:
    """Median seconds per call over ``rounds`` samples of calls batched to ``min_time`` (the first call, already
    warm from the equality check, is timed too: a call slower than ``BUDGET / rounds`` is timed once)."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    if once * rounds > BUDGET:
        return once
    reps = max(1, int(min_time / max(once, 1e-7)))
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - t) / reps)
    return float(np.median(times))


_PEAK_CHILD = """
import sys, time, numpy as np, threadpoolctl
threadpoolctl.threadpool_limits(1, user_api="blas")
arch = [i.get("architecture") for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
n = int(sys.argv[1]); rng = np.random.default_rng(0); out = [str(arch[0] if arch else "?")]
for ft in (np.float32, np.float64):
    a, b = rng.random((n, n)).astype(ft), rng.random((n, n)).astype(ft); a @ b
    ts = []
    for _ in range(3):
        t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
    out.append(repr(n ** 3 / sorted(ts)[1]))
print(" ".join(out))
"""


def blas_arch() -> str:
    """The kernel architecture numpy's BLAS picked (threadpoolctl), '?' if unknown."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return "?"
    arch = [i.get("architecture") for i in threadpool_info() if i.get("user_api") == "blas"]
    return str(arch[0]) if arch and arch[0] else "?"


def own_choice_peak(n: int = PEAK_N) -> dict | None:
    """When OPENBLAS_CORETYPE is set in the environment: the 1-thread float32/float64 peak of the same BLAS in a
    child process without it (the kernels OpenBLAS picks for this CPU by itself); None when it is not set (the run's
    own peak is then that one)."""
    import subprocess

    if not os.environ.get("OPENBLAS_CORETYPE"):
        return None
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    try:
        res = subprocess.run([sys.executable, "-c", _PEAK_CHILD, str(n)], env=env, capture_output=True, text=True,
                             timeout=120, check=True)
        arch, f32, f64 = res.stdout.split()
    except (subprocess.SubprocessError, ValueError, OSError) as e:
        return {"error": f"{type(e).__name__}"}
    return {"architecture": arch, "float32_1t": float(f32), "float64_1t": float(f64)}


def gemm_peak(n: int = PEAK_N, min_time: float = 0.3, rounds: int = 3) -> dict:
    """MAC/s of an n x n x n GEMM on numpy's BLAS, float32 and float64, on 1 and 2 threads: this machine's best."""
    from golden.network import gemm

    rng = np.random.default_rng(0)
    out = {}
    for ft in (np.float32, np.float64):
        a, b = rng.random((n, n)).astype(ft), rng.random((n, n)).astype(ft)
        for th in (1, 2):
            with gemm.blas_threads(th):
                out[f"{np.dtype(ft).name}_{th}t"] = n ** 3 / _time(lambda a=a, b=b: a @ b, min_time, rounds)
    return out


def layer_rows(label: str, samples: int = SAMPLES, min_time: float = 0.05, rounds: int = 3,
               torch_too: bool = True) -> dict:
    """Every synaptic layer of one model: kernel vs gemm (1t, 2t) vs the torch module (1t, 2t), checked equal first."""
    import torch

    import golden
    from golden import kernels as knobs
    from golden.network import Conv, Linear, gemm, ops

    model, T, torch_in = build(label)
    with _quiet():
        net = golden.from_torch(model)
    modules = dict(model.named_modules())
    impl, numba = _gemm_impl(), numba_impl()
    R = samples * T
    rng = np.random.default_rng(1)
    rows = []
    old_threads, old_torch = knobs.THREADS, torch.get_num_threads()
    try:
        for node in net.nodes:
            la = node.layer
            if not isinstance(la, (Linear, Conv)):
                continue
            params = net.params[node.name]
            x = rng.integers(la.fmt_in.min, la.fmt_in.max + 1, (R, *la.in_shape)).astype(np.int64)
            want = ops.core(numba, la, params, [x])
            got = ops.core(impl, la, params, [x])
            if not (np.array_equal(want[0], got[0]) and want[1] == got[1]):
                raise AssertionError(f"{label} {node.name}: the GEMM route differs from the kernel")
            w = params["weight"]
            macs = int(np.prod(la.out_shape)) * int(np.prod(w.shape[1:]))
            choice = gemm.choose(w, la.fmt_in, "conv" if isinstance(la, Conv) else "linear", macs=macs)
            def call(k, la=la, params=params, x=x):
                return lambda: ops.core(k, la, params, [x])

            secs = {"kernel": _time(call(numba), min_time, rounds)}
            for th in (1, 2):
                knobs.THREADS = th  # gemm's BLAS threads follow golden's knob
                secs[f"gemm_{th}t"] = _time(call(impl), min_time, rounds)
            # spike inputs (0 or the format's largest value, 20% active: a neuron layer's output): the indicator
            # route where the weights' row sums allow float32 (gemm.spike_scale), checked equal first
            xs = np.where(rng.random(x.shape) < 0.2, la.fmt_in.max, 0).astype(np.int64)
            want_s, got_s = ops.core(numba, la, params, [xs]), ops.core(impl, la, params, [xs])
            if not (np.array_equal(want_s[0], got_s[0]) and want_s[1] == got_s[1]):
                raise AssertionError(f"{label} {node.name}: the GEMM route differs from the kernel on spikes")
            knobs.THREADS = 1
            secs["gemm_spikes_1t"] = _time(call(impl, x=xs), min_time, rounds)
            spike_ft = gemm.route(w, xs)[0]
            knobs.THREADS = old_threads
            mod = modules.get(node.name)
            if torch_too and mod is not None:
                xt = torch.from_numpy((x * 2.0 ** -la.fmt_in.frac).astype(np.float32))
                for th in (1, 2):
                    torch.set_num_threads(th)
                    with torch.no_grad():
                        secs[f"torch_{th}t"] = _time(lambda xt=xt, mod=mod: mod(xt), min_time, rounds)
                torch.set_num_threads(old_torch)
            rows.append({"layer": node.name, "type": la.type_name if isinstance(la, Conv) else "Linear",
                         "in_shape": list(la.in_shape), "out_shape": list(la.out_shape), "macs_per_row": macs,
                         "rows": R, "dtype": np.dtype(choice.dtype).name if choice.dtype else None,
                         "bound_log2": float(np.log2(max(choice.bound, 1))), "route": choice.route,
                         "checked": int(want[0].size) + int(want_s[0].size), "seconds": secs,
                         "spike_dtype": np.dtype(spike_ft).name if spike_ft else None,
                         "mac_rate": {k: macs * R / v for k, v in secs.items()}})
    finally:
        knobs.THREADS = old_threads
        torch.set_num_threads(old_torch)
    return {"model": label, "samples": samples, "T": T, "rows": rows}


def whole_network(label: str, samples: int = 1, rounds: int = 3) -> dict:
    """The whole torch-eval network of ``label`` on ``samples`` samples x T: ``Network.simulate`` on the Numba kernels
    and on the GEMM route (its synaptic layers swapped, as the lead's wiring will), every layer's trace checked
    equal; each timed (median of ``rounds`` calls, one if slower than BUDGET / rounds), 1 thread, in the steady
    state (after the calls that make the neuron layers take their specialised kernels, as tools/bench/netc.py
    times networks); and the Qualia model in .eval() on the same inputs (batch = samples, 1 torch thread)."""
    import torch
    from spikingjelly.activation_based import functional

    import golden
    from golden import kernels as knobs

    model, T, torch_in = build(label)
    with _quiet():
        net = golden.from_torch(model)
    x = np.random.default_rng(2).random((samples, T, *torch_in), dtype=np.float32) * 2
    xr = net.quantize_input(x)
    old, old_torch = knobs.THREADS, torch.get_num_threads()
    knobs.THREADS = 1
    torch.set_num_threads(1)
    try:
        from golden.kernels import SPECIALISE_AT
        from golden.network import Neuron

        per_call = samples * T * sum(int(np.prod(n.layer.in_shape)) for n in net.nodes if isinstance(n.layer, Neuron))
        traces = {"kernel": net.simulate(xr, impl=numba_impl()),  # compiles; checked below
                  "gemm": net.simulate(xr, impl=_gemm_impl())}
        for _ in range(-(-SPECIALISE_AT // max(per_call, 1))):  # the steady state: neurons on their specialised kernels
            net.simulate(xr, impl=_gemm_impl())
        secs = {"kernel": _time(lambda: net.simulate(xr, impl=numba_impl()), 0.0, rounds),
                "gemm": _time(lambda: net.simulate(xr, impl=_gemm_impl()), 0.0, rounds)}
        differ = sum(int((traces["kernel"].layers[n].out != traces["gemm"].layers[n].out).sum())
                     for n in traces["kernel"].layers)
        values = sum(lt.out.size for lt in traces["kernel"].layers.values())
        xt = torch.from_numpy(x)

        def run_torch():
            functional.reset_net(model)
            for t in range(T):
                model(xt[:, t])

        with torch.no_grad(), _quiet():
            secs["torch"] = _time(run_torch, 0.0, rounds)
    finally:
        knobs.THREADS = old
        torch.set_num_threads(old_torch)
    return {"model": label, "samples": samples, "T": T, "seconds": secs, "values": values, "differ": differ}


def gemm_rows(labels=None, samples: int = SAMPLES, min_time: float = 0.05, rounds: int = 3,
              whole_samples: int = 0) -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    peak = gemm_peak()
    blas = {"architecture": blas_arch(), "coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
            "own_choice": own_choice_peak()}
    models = [layer_rows(label, samples, min_time, rounds) for label in (labels or MODELS)]
    whole = [whole_network(label, whole_samples) for label in (labels or MODELS)] if whole_samples else []
    return {"load": load, "load_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0, "peak": peak,
            "blas": blas, "models": models, "whole": whole}


TORCH_TARGET = 1.0
PEAK_TARGET = 0.5  # the physical-limit row: the GEMM-route layers' MAC/s against the measured peak of their dtype


def of_peak(m: dict, peak: dict) -> float | None:
    """The physical-limit figure of one model: its GEMM-route synaptic layers' multiply-accumulates over their time
    (1 thread), against the measured 1-thread peak of each layer's dtype (time-weighted: sum of MACs / sum of the
    time each layer would take at its dtype's peak, over the time they took). None: no layer on the GEMM route."""
    rows = [r for r in m["rows"] if r["route"] == "gemm"]
    if not rows:
        return None
    at_peak = sum(r["macs_per_row"] * r["rows"] / peak[f"{r['dtype']}_1t"] for r in rows)
    return at_peak / sum(r["seconds"]["gemm_1t"] for r in rows)


def targets(res: dict) -> list:
    """(name, measured worst case, hit): the GEMM route of every model's synaptic layers against the Qualia modules
    (1 thread each), and against golden's Numba kernel."""
    ms = [m for m in res["models"] if m["rows"]]
    if not ms:
        return []
    vs_torch = {m["model"]: _totals(m).get("torch_1t", 0) / _totals(m)["chosen_1t"] for m in ms}
    vs_kernel = {m["model"]: _totals(m)["kernel"] / _totals(m)["chosen_1t"] for m in ms}
    wt, wk = min(vs_torch, key=vs_torch.get), min(vs_kernel, key=vs_kernel.get)
    fr = {m["model"]: of_peak(m, res["peak"]) for m in ms if of_peak(m, res["peak"]) is not None}
    wp = min(fr, key=fr.get) if fr else None
    limit = [(f"physical limit: synaptic layers on the GEMM route >= {PEAK_TARGET:.0%} of the measured GEMM peak of "
              "their dtype (1 thread)", f"{fr[wp]:.0%} ({wp})", fr[wp] >= PEAK_TARGET)] if wp else []
    return limit + [(f"synaptic layers on the GEMM route >= {TORCH_TARGET}x the Qualia modules in .eval(), 1 thread, "
             "real sizes",
             f"{vs_torch[wt]:.2f}x ({wt})", vs_torch[wt] >= TORCH_TARGET),
            ("synaptic layers on the GEMM route faster than golden's Numba kernels, real sizes",
             f"{vs_kernel[wk]:.1f}x ({wk})", vs_kernel[wk] > 1.0)]


def _totals(m: dict) -> dict:
    """Seconds of all synaptic layers per candidate; ``chosen_1t``: each layer on the route ``gemm.choose`` picks
    (the GEMM where proven and large enough, else the kernel), what the wiring gives."""
    keys = m["rows"][0]["seconds"].keys() if m["rows"] else ()
    t = {k: sum(r["seconds"][k] for r in m["rows"] if k in r["seconds"]) for k in keys}
    t["chosen_1t"] = sum(r["seconds"]["gemm_1t" if r["route"] == "gemm" else "kernel"] for r in m["rows"])
    return t


def _of(rate: float, dtype, pk: dict) -> str:
    return f"{rate / pk[f'{dtype}_1t']:.0%}" if dtype else "-"


def _limit_text(m: dict, pk: dict) -> str:
    f = of_peak(m, pk)
    return "" if f is None else (f" Physical limit: its GEMM-route layers run at {f:.0%} of the measured 1-thread "
                                 f"peak of their dtype (target >= {PEAK_TARGET:.0%}: "
                                 f"{'hit' if f >= PEAK_TARGET else '**missed**'}).")


def _blas_text(b: dict | None) -> str:
    if not b:
        return ""
    text = f" numpy's BLAS runs its {b['architecture']} kernels"
    if b.get("coretype_env"):
        text += f" (OPENBLAS_CORETYPE={b['coretype_env']} is set in this environment)"
        own = b.get("own_choice") or {}
        if "float32_1t" in own:
            text += (f"; without that variable it picks {own['architecture']} kernels for this CPU and reaches "
                     f"float32 {own['float32_1t']:.3g}, float64 {own['float64_1t']:.3g} MAC/s on 1 thread (a child "
                     "process, the same run)")
    return text + "."


def markdown(res: dict) -> list:
    pk = res["peak"]
    lines = [f"Synaptic layers at real sizes (issue 20): real qualia-plugin-snn templates at their configurations' "
             f"sizes, golden torch-eval layers; load average {res['load']:.2f} at the start, {res['load_end']:.2f} at "
             "the end; one run. Per layer: multiply-accumulates per second of golden's Numba kernel, of the exact "
             "GEMM route (`golden/network/gemm.py`, its dtype as the range analysis proves it, equal to the kernel "
             "on every value first) on 1 and 2 BLAS threads, and of the Qualia module in `.eval()` (quantizers "
             "included) on 1 and 2 torch threads; speedup = kernel time / GEMM time (1 thread); of peak = the GEMM "
             "route on 1 thread against the measured 1-thread GEMM peak of its dtype; spikes: the same layer fed a "
             "spike train (0 or the format's largest value, 20% active, as a neuron layer's output), its dtype and "
             "MAC/s on the GEMM route (the 0/1 indicator where the weights' row sums fit float32) (float32 "
             f"{pk['float32_1t']:.3g}, float64 {pk['float64_1t']:.3g} MAC/s; the physical-limit row).", "",
             "GEMM peak (n = 1024 square, numpy's BLAS): " + ", ".join(f"{k} {v:.3g} MAC/s" for k, v in pk.items())
             + "." + _blas_text(res.get("blas")), ""]
    for m in res["models"]:
        lines += [f"**{m['model']}** ({m['samples']} samples x T {m['T']} = {m['samples'] * m['T']} rows):", "",
                  "| layer | type | in -> out | MACs/row | bound | dtype | chosen | kernel | gemm 1t | gemm 2t | "
                  "torch 1t | torch 2t | speedup 1t | gemm 1t of peak | spikes: dtype | spikes: gemm 1t |",
                  "|" + "---|" * 16]
        for r in m["rows"]:
            q = r["mac_rate"]
            sp = r["seconds"]["kernel"] / r["seconds"]["gemm_1t"]
            lines.append(f"| {r['layer']} | {r['type']} | {tuple(r['in_shape'])} -> {tuple(r['out_shape'])} | "
                         f"{r['macs_per_row']:.3g} | 2^{r['bound_log2']:.1f} | {r['dtype'] or '-'} | {r['route']} | "
                         f"{q['kernel']:.3g} | {q['gemm_1t']:.3g} | {q['gemm_2t']:.3g} | {q.get('torch_1t', 0):.3g} | "
                         f"{q.get('torch_2t', 0):.3g} | **{sp:.1f}x** | {_of(q['gemm_1t'], r['dtype'], pk)} | "
                         f"{r.get('spike_dtype') or '-'} | {q.get('gemm_spikes_1t', 0):.3g} |")
        t = _totals(m)
        lines += ["", f"All its synaptic layers: kernel {t['kernel']:.3g} s, GEMM {t['gemm_1t']:.3g} s (1t) / "
                  f"{t['gemm_2t']:.3g} s (2t), each on its chosen route {t['chosen_1t']:.3g} s (1t), torch "
                  f"{t.get('torch_1t', 0):.3g} s (1t) / {t.get('torch_2t', 0):.3g} s (2t): the chosen routes "
                  f"{t['kernel'] / t['chosen_1t']:.1f}x the kernel, {t.get('torch_1t', 0) / t['chosen_1t']:.2f}x "
                  "torch (1 thread each)." + _limit_text(m, pk), ""]
    if res.get("whole"):
        lines += ["Whole torch-eval networks, `Network.simulate` on the Numba kernels and with the synaptic layers on "
                  "the GEMM route (every layer's output checked equal), median of 3 calls (one if slower than 1 s), in "
                  "the steady state (neurons on their specialised kernels), 1 thread; the Qualia model in "
                  "`.eval()` on the same inputs (batch = samples, stepped over T, 1 torch thread):", "",
                  "| model | samples x T | values compared | differ | kernels | GEMM route | Qualia | GEMM / kernels "
                  "| GEMM route / Qualia |", "|" + "---|" * 9]
        for w in res["whole"]:
            s = w["seconds"]
            lines.append(f"| {w['model']} | {w['samples']} x {w['T']} | {w['values']} | {w['differ']} | "
                         f"{s['kernel']:.3g} s | {s['gemm']:.3g} s | {s['torch']:.3g} s | "
                         f"**{s['kernel'] / s['gemm']:.1f}x** | {s['torch'] / s['gemm']:.2f}x |")
        lines.append("")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=list(MODELS))
    ap.add_argument("--samples", type=int, default=SAMPLES)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.05)
    ap.add_argument("--whole-samples", type=int, default=0, help="also time whole networks on this many samples")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.fspath(__import__("pathlib").Path(__file__).resolve().parents[2]))
    res = gemm_rows(args.models, args.samples, args.min_time, args.rounds, args.whole_samples)
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    print("\n".join(markdown(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
