"""Whole networks in the bench: golden's ``Network.simulate`` against the real generated model C and the Qualia model.

For each model (a seeded, calibrated qualia-plugin-snn template from :mod:`golden.refs.qualia_models`):

- the C: Qualia's own deployment path renders ``full_model.h`` at bench time
  (:func:`golden.refs.codegen_model.deploy`, ``dump_featuremaps=False``; nothing of it is committed) and the
  bench compiles it, into a temporary directory, with a timing driver of golden's own (:data:`_DRIVER`, not
  Qualia's host example): ``nb_run`` runs S samples x T steps of ``cnn()`` from inputs preloaded in memory,
  ``reset()`` between samples, every step's model output into a preallocated array, and times itself with
  ``clock_gettime`` inside the process (no process spawn, no I/O in the timed region). Built as a shared
  library loaded with ctypes, once with the flags codegen_model compiles the model with (``-O2``) and once with
  ``-O3 -march=native``;
- golden: ``golden.from_torch(deployed, profile="codegen").simulate(x)`` on the same raw inputs (channels-first;
  the C gets them channels-last), on one thread (``golden.kernels.THREADS = 1`` for the run), its model outputs
  checked equal to the C's, every (sample, step), before anything is timed;
- torch: the quantized model in ``.eval()`` at batch 1, stepped as built (step mode 's'), ``reset_net`` before
  every sample, ``torch.set_num_threads(1)``, on the first :data:`TORCH_SAMPLES` samples (a step costs
  milliseconds); golden's torch-eval network of the same model (``golden.from_torch(model)``) is checked to give
  its model outputs on those samples, every step, and timed on all of them.

golden is timed in its steady state: each network first runs until its neuron layers are on their specialised
kernels (Network.simulate's lifetime rule, :func:`warm_calls`), as any network simulated more than a few times.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

#: (label, qualia_models.MODELS key, neuron variant): the whole-network rows, all 8 bits
MODELS = (("SMLP", "SMLP", "LIF-soft"), ("SCNN1d", "SCNN1d", "LIF-soft"), ("SCNN2d", "SCNN2d", "LIF-soft"),
          ("SResNet2d", "SResNet2d", "LIF-soft"))
NET_S, NET_T = 32, 100  # samples x steps per timed call
TORCH_SAMPLES = 4  # torch at batch 1 costs ms a step: checked and timed on the first samples (per-step time)
BITS, SEED, X_SEED = 8, 0, 11
C_TARGET, TORCH_TARGET = 1.0, 100.0
FLAGS = {"O2": ("-O2", "-std=gnu11"), "O3native": ("-O3", "-march=native", "-std=gnu11")}

_DRIVER = """
/* ---- golden whole-network timing driver (golden project code, not from Qualia) ---- */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "full_model.h"

long nb_n_in(void) {{ return (long)(sizeof(input_t) / sizeof(MODEL_INPUT_NUMBER_T)); }}
long nb_n_out(void) {{ return (long)(sizeof(output_t) / sizeof(MODEL_OUTPUT_NUMBER_T)); }}

/* S samples x T steps of cnn() from x (S, T, n_in), reset() between samples, every step's output into
   out (S, T, n_out); returns the seconds it took (clock_gettime, monotonic), reps times over. */
double nb_run(long reps, long S, long T, const MODEL_INPUT_NUMBER_T *x, MODEL_OUTPUT_NUMBER_T *out) {{
  const long n_in = {n_in}, n_out = {n_out};
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long r = 0; r < reps; r++) {{
    reset();
    for (long s = 0; s < S; s++) {{
      for (long t = 0; t < T; t++) cnn((const void *)(x + (s * T + t) * n_in), (void *)(out + (s * T + t) * n_out));
      reset();
    }}
  }}
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}}
"""


def available() -> str | None:
    """None if the whole-network rows can run here, else why not (torch/Qualia, qualia-codegen or gcc missing)."""
    import importlib.util
    import shutil

    for mod in ("torch", "spikingjelly", "qualia_core", "qualia_plugin_snn", "qualia_codegen_core",
                "qualia_codegen_plugin_snn"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (the [test] extra)"
    if shutil.which("gcc") is None:
        return "gcc is not on PATH"
    return None


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(open(os.devnull, "w")) as sink:
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield sink
        finally:
            logging.disable(logging.NOTSET)
            sink.close()


@contextlib.contextmanager
def one_thread():
    """golden's threads knob (``golden.kernels.THREADS``, what GOLDEN_THREADS sets) and torch's, at 1."""
    import torch

    from golden import kernels

    old, old_torch = kernels.THREADS, torch.get_num_threads()
    kernels.THREADS = 1
    torch.set_num_threads(1)
    try:
        yield
    finally:
        kernels.THREADS = old
        torch.set_num_threads(old_torch)


class ModelC:
    """The deployed model's ``full_model.h`` with :data:`_DRIVER`, compiled into ``tmp`` as a shared library."""

    def __init__(self, dep, tmp: Path, flags: tuple, tag: str, name: str | None = None):
        self.width = dep.width
        n_in, n_out = int(np.prod(dep.c_input_shape)), int(np.prod(dep.layers[-1].c_shape))
        d = Path(tmp) / f"netc-{''.join(ch if ch.isalnum() else '_' for ch in name or dep.built.name)}-{tag}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "full_model.h").write_text(dep.source)  # rendered from the installed packages; a temporary file
        (d / "driver.c").write_text(_DRIVER.format(n_in=n_in, n_out=n_out))
        so = d / "model.so"
        cmd = ["gcc", *flags, "-fPIC", "-shared", "-I", str(d), "-o", str(so), str(d / "driver.c"), "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"the model C did not compile ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
        self.cmd = " ".join(flags)
        self.lib = ctypes.CDLL(str(so))
        self.lib.nb_run.restype = ctypes.c_double
        self.lib.nb_run.argtypes = [ctypes.c_long] * 3 + [ctypes.c_void_p] * 2
        self.lib.nb_n_in.restype = self.lib.nb_n_out.restype = ctypes.c_long
        if (self.lib.nb_n_in(), self.lib.nb_n_out()) != (n_in, n_out):
            raise RuntimeError("the model C's input/output sizes differ from the deployment's layers")
        self.n_in, self.n_out = n_in, n_out

    def prepare(self, x_raw: np.ndarray):
        """(x channels-last in the C's input type, a preallocated output array) for raw inputs (S, T, C, ...)."""
        S, T = x_raw.shape[:2]
        x = np.moveaxis(x_raw, 2, -1) if x_raw.ndim >= 4 else x_raw
        xc = np.ascontiguousarray(x.reshape(S, T, -1), f"int{self.width}")
        return xc, np.empty((S, T, self.n_out), f"int{self.width}")

    def run(self, xc: np.ndarray, out: np.ndarray, reps: int = 1) -> float:
        """Seconds for ``reps`` passes over every sample (timed inside the C)."""
        S, T = xc.shape[:2]
        return self.lib.nb_run(reps, S, T, xc.ctypes.data, out.ctypes.data)


def _c_sampler(c: ModelC, xc, out, min_time: float):
    once = c.run(xc, out)
    reps = max(1, int(min_time / max(once, 1e-7)))
    return lambda: c.run(xc, out, reps) / reps


def _py_sampler(fn, min_time: float):
    """harness's ``_sampler`` (this module is loaded by ``harness.netc_module``, so the harness is loaded)."""
    return sys.modules["golden_bench_harness"]._sampler(fn, min_time)


def _rounds(samplers: dict, rounds: int) -> dict:
    """Median seconds per call of each sampler, sampled in turn round after round (the order rotating), as the
    harness's ``interleaved`` does: ratios compare runs that shared the machine at the same moments."""
    names = list(samplers)
    times = {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            times[k].append(samplers[k]())
    return {k: float(np.median(v)) for k, v in times.items()}


def torch_runner(built, x_float: np.ndarray):
    """The Qualia model in ``.eval()`` at batch 1, every sample from ``reset_net``, stepped as built; returns a
    callable giving the model outputs (S, T, n_out) float32."""
    import torch
    from spikingjelly.activation_based import functional

    model = built.model.eval()
    xs = torch.from_numpy(np.ascontiguousarray(x_float, np.float32))
    S, T = xs.shape[:2]

    def run():
        res = []
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for s in range(S):
                functional.reset_net(model)
                if built.step_mode == "m":
                    res.append(model(xs[s][:, None])[:, 0])
                else:
                    res.append(torch.stack([model(xs[s, t][None])[0] for t in range(T)]))
        return torch.stack(res).numpy()

    return run


def model_rows(label: str, model: str, neuron: str, tmp: Path, rounds: int, min_time: float, S: int = NET_S,
               T: int = NET_T) -> dict:
    """One model: deploy, check (golden codegen = the C on every output; golden torch-eval = torch on the first
    :data:`TORCH_SAMPLES` samples), then time every candidate interleaved in one run; seconds per (sample, step)."""
    import golden
    from golden.refs import codegen_model as cm
    from golden.refs import qualia_models as qm

    with _quiet():
        built = qm.build(**qm.MODELS[model], **qm.neuron_kwargs(neuron, BITS), bits=BITS, seed=SEED, timesteps=T)
        dep = cm.deploy(built, dump_featuremaps=False)
        x_float = built.sample_inputs(S, seed=X_SEED)
        net = golden.from_torch(dep, profile="codegen")
        net_te = golden.from_torch(built.model)
    x_raw = cm.quantize_input(dep, x_float).astype(net.fmt_input.dtype)
    x_te = net_te.quantize_input(x_float)
    cs = {tag: ModelC(dep, tmp, flags, tag) for tag, flags in FLAGS.items()}
    st = min(S, TORCH_SAMPLES)
    with one_thread():
        tr = net.simulate(x_raw)
        got = tr.out.reshape(S, T, -1)
        bufs = {}
        for tag, c in cs.items():
            xc, out = bufs[tag] = c.prepare(x_raw)
            c.run(xc, out)
            if not np.array_equal(out, got):
                raise AssertionError(f"{label}: golden's codegen network differs from the model C ({tag}) in "
                                     f"{int((out != got).sum())} of {out.size} outputs")
        run_torch = torch_runner(built, x_float[:st])
        with _quiet():
            y = run_torch()
        te = net_te.simulate(x_te)
        want = y.astype(np.float64) * 2.0 ** te.fmt_out.frac
        torch_equal = bool(np.array_equal(want, te.out[:st].reshape(st, T, -1)))
        for n in (net, net_te):  # the steady state: past the lifetime after which neurons run specialised
            for _ in range(warm_calls(n, S, T)):
                n.simulate(x_raw if n is net else x_te)
        samplers = {"golden": _py_sampler(lambda: net.simulate(x_raw), min_time),
                    "golden_torch_eval": _py_sampler(lambda: net_te.simulate(x_te), min_time),
                    **{"c_" + tag: _c_sampler(c, *bufs[tag], min_time) for tag, c in cs.items()}}
        with _quiet():
            samplers["torch"] = _py_sampler(run_torch, min_time)
            secs = _rounds(samplers, rounds)
        profile = layer_profile(net, x_raw, min_time) if per_step_ratio(secs) < C_TARGET else None
    per = {k: v / ((st if k == "torch" else S) * T) for k, v in secs.items()}
    spikes = [lt.spike_rate for lt in tr.layers.values() if lt.spike_rate is not None]
    return {"model": label, "name": built.name, "S": S, "T": T, "torch_samples": st, "layers": len(net.nodes),
            "macs": macs(net), "checked": int(got.size), "torch_checked": int(want.size), "torch_equal": torch_equal,
            "spike_rate": float(np.mean(spikes)) if spikes else None, "per_step": per,
            "c_flags": {tag: c.cmd for tag, c in cs.items()},
            "ratio_c": per["c_O2"] / per["golden"], "ratio_c_native": per["c_O3native"] / per["golden"],
            "ratio_torch": per["torch"] / per["golden"], "ratio_torch_eval": per["torch"] / per["golden_torch_eval"],
            "profile": profile}


def per_step_ratio(secs: dict) -> float:
    return secs["c_O2"] / secs["golden"]


def layer_profile(net, x_raw, min_time: float, rounds: int = 3) -> list:
    """Where ``net.simulate(x_raw)`` spends its time: each layer run alone (as simulate runs it, on the inputs
    simulate gave it), median seconds per call; neuron layers also in ns per neuron-update. Run after warm-up."""
    from golden.network import Neuron, graph, kernels, ops

    S, T = x_raw.shape[:2]
    tr = net.simulate(x_raw)
    rows = {graph.INPUT: np.ascontiguousarray(x_raw, np.int64).reshape(S * T, *net.input_shape)}
    rows.update((n, lt.out.reshape(S * T, *lt.layer.out_shape).astype(np.int64)) for n, lt in tr.layers.items())
    fns = {}
    for node in net.nodes:
        xs = [rows[i] for i in node.inputs]
        if isinstance(node.layer, Neuron):
            fns[node.name] = lambda node=node, xs=xs: graph.run_neuron(kernels, node, xs[0], S, T, True)
        else:
            fns[node.name] = lambda node=node, xs=xs: ops.run(kernels, node.layer, net.params.get(node.name, {}), xs,
                                                              node.name)
    fns["(whole simulate)"] = lambda: net.simulate(x_raw)
    secs = _rounds({k: _py_sampler(f, min_time) for k, f in fns.items()}, rounds)
    out = []
    for node in net.nodes:
        la = node.layer
        upd = S * T * int(np.prod(la.in_shape)) if isinstance(la, Neuron) else 0
        out.append({"layer": node.name, "type": type(la).__name__, "what": la.describe()[:90],
                    "seconds": secs[node.name], "ns_per_update": secs[node.name] / upd * 1e9 if upd else None})
    out.append({"layer": "(whole simulate)", "type": "", "what": "", "seconds": secs["(whole simulate)"],
                "ns_per_update": None})
    return out


def warm_calls(net, S: int, T: int) -> int:
    """Calls of ``net.simulate`` on (S, T) inputs after which its neuron layers run their specialised kernels
    (Network.simulate's lifetime rule: golden.kernels.SPECIALISE_AT neuron-steps in all)."""
    from golden.kernels import SPECIALISE_AT
    from golden.network import Neuron

    per_call = S * T * sum(int(np.prod(n.layer.in_shape)) for n in net.nodes if isinstance(n.layer, Neuron))
    return -(-SPECIALISE_AT // max(per_call, 1))


def macs(net) -> int:
    """Multiply-accumulates of one (sample, step) through the network's Linear/Conv layers (a size measure)."""
    from golden.network.layers import Conv, Linear

    n = 0
    for node in net.nodes:
        la = node.layer
        if isinstance(la, (Linear, Conv)):
            w = net.params[node.name]["weight"]
            n += int(np.prod(la.out_shape)) * int(np.prod(w.shape[1:]))
    return n


def network_rows(tmp: Path, rounds: int, min_time: float, labels=None, S: int = NET_S, T: int = NET_T) -> dict:
    """The models of :data:`MODELS` named in ``labels`` (default: all); the machine load when it started."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    rows = [model_rows(label, m, n, tmp, rounds, min_time, S, T) for label, m, n in MODELS
            if labels is None or label in labels]
    return {"S": S, "T": T, "bits": BITS, "load": load, "rows": rows, "c_target": C_TARGET,
            "torch_target": TORCH_TARGET}


def _us(sec: float) -> str:
    return f"{sec * 1e6:.3g} µs"


def markdown(nw: dict) -> list:
    """The whole-network rows as markdown lines."""
    r0 = nw["rows"][0] if nw["rows"] else {}
    flags = r0.get("c_flags", {})
    lines = [f"Whole networks (issue 12), {nw['bits']}-bit seeded qualia-plugin-snn models, {nw['S']} samples x "
             f"{nw['T']} steps, one thread everywhere (load average {nw['load']:.2f} when it started). Time per "
             "(sample, step), medians of interleaved rounds, ratios within the run:", "",
             "- **golden**: `golden.from_torch(deployed, profile=\"codegen\").simulate(x)`, every layer's trace;",
             "- **C**: the model's `full_model.h`, rendered by Qualia's deployment path at bench time "
             "(`dump_featuremaps=False`), driven by golden's timing harness (inputs in memory, `cnn()` per step, "
             "`reset()` between samples, `clock_gettime` in the process), gcc "
             f"`{flags.get('O2', '-O2')}` and `{flags.get('O3native', '-O3 -march=native')}`; its model outputs "
             "equal golden's at every (sample, step) before anything is timed;",
             "- **Qualia**: the quantized model in `.eval()` at batch 1, step mode 's', `reset_net` between "
             f"samples, torch on 1 thread (first {r0.get('torch_samples', TORCH_SAMPLES)} samples); "
             "**golden torch-eval**: `golden.from_torch(model).simulate(x)`, checked equal to it (model outputs, "
             "every step of those samples).", "",
             "| model | layers | MACs/step | spike rate | golden | C -O2 | C -O3 native | golden / C -O2 | "
             "golden / C -O3 native | golden torch-eval | Qualia eval | torch-eval / Qualia | codegen / Qualia |",
             "|" + "---|" * 13]
    for r in nw["rows"]:
        p = r["per_step"]
        rate = "-" if r["spike_rate"] is None else f"{r['spike_rate']:.2f}"
        eq = "" if r["torch_equal"] else " (**outputs differ**)"
        lines.append(f"| {r['model']} | {r['layers']} | {r['macs']} | {rate} | {_us(p['golden'])} | "
                     f"{_us(p['c_O2'])} | {_us(p['c_O3native'])} | **{r['ratio_c']:.2f}x** | "
                     f"{r['ratio_c_native']:.2f}x | {_us(p['golden_torch_eval'])} | {_us(p['torch'])} | "
                     f"**{r['ratio_torch_eval']:.0f}x**{eq} | {r['ratio_torch']:.0f}x |")
    for r in nw["rows"]:
        if r.get("profile"):
            lines += ["", f"Where golden's time goes in {r['model']} (below target): each layer run alone on the "
                      "inputs simulate gave it, per call of the whole batch:", "",
                      "| layer | what | time | share | ns per neuron-update |", "|---|---|---|---|---|"]
            whole = r["profile"][-1]["seconds"]
            for p in r["profile"]:
                ns = "-" if p["ns_per_update"] is None else f"{p['ns_per_update']:.2f}"
                lines.append(f"| {p['layer']} | {p['what']} | {p['seconds'] * 1e3:.3f} ms | "
                             f"{p['seconds'] / whole:.0%} | {ns} |")
    lines += ["", f"Targets: golden >= {nw['c_target']}x the model C at -O2; golden >= {nw['torch_target']:.0f}x "
              "the Qualia model (judged on golden's torch-eval network, the one that computes what it computes).", ""]
    return lines


def targets(nw: dict) -> list:
    """(name, measured worst case, hit) for the harness's target table."""
    rows = nw["rows"]
    if not rows:
        return []
    c = min(rows, key=lambda r: r["ratio_c"])
    t = min(rows, key=lambda r: r["ratio_torch_eval"])
    return [(f"whole-network simulate >= {nw['c_target']}x the real generated model C (gcc -O2), 1 thread",
             f"{c['ratio_c']:.2f}x ({c['model']})", c["ratio_c"] >= nw["c_target"]),
            (f"whole-network simulate >= {nw['torch_target']:.0f}x the Qualia model in .eval() at batch 1",
             f"{t['ratio_torch_eval']:.0f}x ({t['model']})",
             t["ratio_torch_eval"] >= nw["torch_target"] and all(r["torch_equal"] for r in rows))]
