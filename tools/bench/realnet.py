"""Whole networks at real sizes (issue 20): golden against the Qualia model and against the model C it predicts.

The models are the real qualia-plugin-snn 2.6.0 templates at their configurations' sizes, built by Qualia's own
classes (:func:`tools/bench/gemm.py build <build>`: the five conv models of gemm.py plus an SMLP at SHD's input
size), seeded and calibrated. For each, in one run, one thread everywhere (``golden.kernels.THREADS = 1``,
``torch.set_num_threads(1)``, BLAS on 1 thread):

- **golden torch-eval**: ``golden.from_torch(model).simulate(x)``;
- **golden codegen**: ``golden.from_torch(deployed, profile="codegen").simulate(x)``, where ``deployed`` is the
  model rendered by Qualia's own deployment path (:func:`golden.qualia.deployment.deploy`, activation-range
  export, float twin, ``QualiaCodeGen.convert``; ``dump_featuremaps=False``);
- **Qualia**: the quantized model in ``.eval()``, stepped over T in step mode 's', ``reset_net`` first;
- **model C**: that deployment's ``full_model.h`` compiled ``gcc -O3 -march=native`` with golden's in-process
  timing driver (tools/bench/netc.py's :class:`ModelC`: inputs in memory, ``cnn()`` per step, ``reset()`` between
  samples, no feature-map dumps), sample after sample (the C has no batch).

At batch 1 (one sample) and at batch B (default 32: golden simulates B samples in one call, torch runs them as one
batch). Before anything is timed: golden torch-eval's model outputs are compared with the Qualia model's at every
(sample, step) of both batches, and golden codegen's with the model C's on the samples the C runs. Times are
per (sample, step); the ratio is the other's time over golden's (> 1: golden is faster). Rounds are interleaved
(tools/bench/netc.py's ``_rounds``); a call longer than :data:`ONCE` seconds is sampled once per round.

golden runs in its steady state (netc's :func:`warm_calls`: its neuron layers on their specialised kernels).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

BATCH = 32
C_SAMPLES = 2  # the model C runs sample after sample: timed on the first ones (per (sample, step))
ONCE = 2.0  # seconds: a call at least this long is timed once per round (no batching of calls)
TARGET = 1.0
SMLP = ("SMLP", 8, "floor", None, 6, (700, 2), {"units": [256, 256]}, None)  # neuron filled in from gemm.LIF


def _sibling(name: str):
    return sys.modules["golden_bench_harness"]._sibling(name)


def models() -> dict:
    """label -> gemm.build entry: the real-size conv models of tools/bench/gemm.py and the SMLP."""
    gm = _sibling("gemm")
    return {**gm.MODELS, "SHD-size SMLP int8": SMLP[:-1] + (gm.LIF,)}


def quick_entry(entry: tuple) -> tuple:
    """The same template at a toy size (filters and units capped at 4, inputs shrunk, T 2): the rows' structure
    without their cost (``golden bench --quick`` and the tests)."""
    template, bits, rnd, force_q, _T, in_shape, arch, neuron = entry
    arch = dict(arch)
    for k in ("filters", "units", "fc_units"):
        if arch.get(k):
            arch[k] = [min(4, f) for f in arch[k]]
    if template == "SResNet" and arch.get("num_blocks"):
        arch["num_blocks"] = [1] * len(arch["num_blocks"])
    small = tuple(min(32 if len(in_shape) == 3 else 64, n) for n in in_shape[:-1]) + (in_shape[-1],)
    return template, bits, rnd, force_q, 2, small, arch, neuron


def available() -> str | None:
    return _sibling("netc").available()


def _sampler(fn, min_time: float):
    """Seconds per call of ``fn`` (calls batched to ``min_time``; one call a sample when a call takes >= ONCE)."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    reps = 1 if once >= ONCE else max(1, int(min_time / max(once, 1e-7)))

    def sample():
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t) / reps

    return sample


def _torch_steps(model, xs):
    """The Qualia model over xs (B, T, ...) as one batch, step by step from reset; outputs (B, T, n_out) float32."""
    import torch
    from spikingjelly.activation_based import functional

    with torch.no_grad():
        functional.reset_net(model)
        return torch.stack([model(xs[:, t]) for t in range(xs.shape[1])], 1).numpy()


def _differ(te_out, y, frac) -> int:
    """Values where golden's raw model outputs and the Qualia model's (scaled by 2**frac) differ."""
    want = y.astype(np.float64) * 2.0 ** frac
    return int((te_out.reshape(want.shape) != want).sum())


def model_rows(label: str, entry: tuple, tmp: Path, rounds: int, min_time: float, batch: int = BATCH,
               c_samples: int = C_SAMPLES) -> dict:
    """One model at batch 1 and ``batch``: checked, then every candidate timed interleaved (see the module doc)."""
    import torch

    import golden
    from golden.qualia.deployment import deploy
    from golden.refs import codegen_model as cm

    gm, nc = _sibling("gemm"), _sibling("netc")
    t_start = time.perf_counter()
    model, T, torch_in = gm.build(label, entry=entry)
    with nc._quiet():
        t0 = time.perf_counter()
        dep = deploy(model, dump_featuremaps=False)
        deploy_s = time.perf_counter() - t0
        net_te = golden.from_torch(model)
        net_cg = golden.from_torch(dep, profile="codegen")
    t0 = time.perf_counter()
    c = nc.ModelC(dep, tmp, nc.FLAGS["O3native"], "O3native", name=label)
    compile_s = time.perf_counter() - t0
    x = np.random.default_rng(5).random((batch, T, *torch_in), dtype=np.float32) * 2
    x_te, x_cg = net_te.quantize_input(x), cm.quantize_input(dep, x).astype(net_cg.fmt_input.dtype)
    xt = torch.from_numpy(x)
    cs = min(c_samples, batch)
    with nc.one_thread():  # golden's GEMM route follows golden.kernels.THREADS: BLAS on 1 thread too
        # the checks, before any timing
        tr_te, tr_cg = net_te.simulate(x_te), net_cg.simulate(x_cg)
        with nc._quiet():
            y_b, y_1 = _torch_steps(model, xt), _torch_steps(model, xt[:1])
        frac = tr_te.fmt_out.frac
        differ_b = _differ(tr_te.out, y_b, frac)
        differ_1 = _differ(tr_te.out[:1], y_1, frac)
        xc, out_c = c.prepare(x_cg[:cs])
        c.run(xc, out_c)
        got = tr_cg.out.reshape(batch, T, -1)[:cs]
        if not np.array_equal(out_c, got):
            raise AssertionError(f"{label}: golden's codegen network differs from the model C in "
                                 f"{int((out_c != got).sum())} of {out_c.size} outputs")
        for n, xr in ((net_te, x_te), (net_cg, x_cg)):  # the steady state (specialised neuron kernels)
            for _ in range(nc.warm_calls(n, batch, T) - 1):
                n.simulate(xr)
        samplers = {"te_1": _sampler(lambda: net_te.simulate(x_te[:1]), min_time),
                    "cg_1": _sampler(lambda: net_cg.simulate(x_cg[:1]), min_time),
                    "c": nc._c_sampler(c, xc, out_c, min_time)}
        with nc._quiet():
            samplers["torch_1"] = _sampler(lambda: _torch_steps(model, xt[:1]), min_time)
            if batch > 1:
                samplers.update(te_b=_sampler(lambda: net_te.simulate(x_te), min_time),
                                cg_b=_sampler(lambda: net_cg.simulate(x_cg), min_time),
                                torch_b=_sampler(lambda: _torch_steps(model, xt), min_time))
            secs = nc._rounds(samplers, rounds)
        missed = [k for k, v in _ratios(secs, batch, cs, T).items() if v < TARGET]
        prof = None
        if missed:  # where golden's time goes, for the text that explains the miss (batch 1, each layer alone)
            net, xr = (net_cg, x_cg) if any(k.startswith("cg") for k in missed) else (net_te, x_te)
            prof = {"net": "codegen" if net is net_cg else "torch-eval", "missed": missed,
                    "layers": nc.layer_profile(net, xr[:1], min_time, 1)}
    n_of = {"c": cs, **{k: (1 if k.endswith("_1") else batch) for k in samplers if k != "c"}}
    per = {k: v / (n_of[k] * T) for k, v in secs.items()}
    ratios = _ratios(secs, batch, cs, T)
    spikes = [lt.spike_rate for lt in tr_te.layers.values() if lt.spike_rate is not None]
    return {"model": label, "T": T, "batch": batch, "c_samples": cs, "input": list(torch_in),
            "bits": entry[1], "layers": len(net_te.nodes), "macs": nc.macs(net_te), "params": int(sum(
                p.numel() for p in model.parameters())),
            "checked_torch": int(y_b.size + y_1.size), "differ_torch": differ_b + differ_1,
            "checked_c": int(out_c.size), "spike_rate": float(np.mean(spikes)) if spikes else None,
            "per_step": per, "ratios": ratios, "deploy_s": deploy_s, "compile_s": compile_s,
            "c_flags": c.cmd, "profile": _shares(prof, T), "seconds": time.perf_counter() - t_start}


def _ratios(secs: dict, batch: int, cs: int, T: int) -> dict:
    """The other's time per (sample, step) over golden's, per column and batch (see :data:`COLUMNS`)."""
    n_of = {"c": cs, **{k: (1 if k.endswith("_1") else batch) for k in secs if k != "c"}}
    per = {k: v / (n_of[k] * T) for k, v in secs.items()}
    out = {}
    for b in ("1", "b") if batch > 1 else ("1",):
        out[f"te_vs_torch_{b}"] = per[f"torch_{b}"] / per[f"te_{b}"]
        out[f"cg_vs_torch_{b}"] = per[f"torch_{b}"] / per[f"cg_{b}"]
        out[f"cg_vs_c_{b}"] = per["c"] / per[f"cg_{b}"]
    return out


GROUPS = {"Conv": "synaptic (Conv/Linear)", "Linear": "synaptic (Conv/Linear)", "Neuron": "neurons",
          "BatchNorm": "BatchNorm"}


def _shares(prof: dict | None, T: int) -> dict | None:
    """A batch-1 layer profile as seconds per step by group (synaptic, neurons, BatchNorm, other) and the whole."""
    if prof is None:
        return None
    groups: dict = {}
    for p in prof["layers"][:-1]:
        g = GROUPS.get(p["type"], "other (pools, adds, identities)")
        groups[g] = groups.get(g, 0.0) + p["seconds"] / T
    return {"net": prof["net"], "missed": prof["missed"], "groups": groups, "calls": len(prof["layers"]) - 1,
            "whole": prof["layers"][-1]["seconds"] / T}


def real_rows(tmp: Path, rounds: int = 3, min_time: float = 0.05, labels=None, batch: int = BATCH,
              quick: bool = False) -> dict:
    """Every model of :func:`models` named in ``labels`` (default: all); ``quick``: at toy sizes."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    t0 = time.perf_counter()
    rows = []
    for label, entry in models().items():
        if labels is None or label in labels:
            rows.append(model_rows(label, quick_entry(entry) if quick else entry, tmp, rounds, min_time, batch))
    return {"batch": batch, "quick": quick, "load": load,
            "load_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0,
            "seconds": time.perf_counter() - t0, "target": TARGET, "rows": rows}


COLUMNS = (("te_vs_torch", "golden torch-eval / Qualia"), ("cg_vs_torch", "golden codegen / Qualia"),
           ("cg_vs_c", "golden codegen / model C -O3 native"))


def _us(sec: float) -> str:
    return f"{sec * 1e3:.3g} ms" if sec >= 1e-3 else f"{sec * 1e6:.3g} µs"


def _cell(v: float, target: float) -> str:
    return f"**{v:.2f}x** " + ("hit" if v >= target else "**missed**")


def markdown(rr: dict) -> list:
    b = rr["batch"]
    size = "toy sizes (--quick: the rows' structure, not their speed)" if rr["quick"] else "real sizes"
    lines = [f"Whole networks at {size} (issue 20; tools/bench/realnet.py), one run of {rr['seconds']:.0f} s, load "
             f"average {rr['load']:.2f} at its start and {rr['load_end']:.2f} at its end. One thread everywhere. "
             "Time per (sample, step); ratio = the other's time / golden's (target >= "
             f"{rr['target']}x: golden faster). Batch 1: one sample; batch {b}: golden simulates {b} samples in one "
             f"call, torch runs them as one batch; the model C runs sample after sample (its first samples). Checked "
             "before timing: golden torch-eval = the Qualia model's outputs at every (sample, step) of both batches; "
             "golden codegen = the model C's outputs on the samples it runs.", "",
             "| model | bits | params | MACs/step | T | Qualia b1 | golden torch-eval b1 | golden codegen b1 | "
             f"model C | Qualia b{b} | torch-eval b{b} | codegen b{b} | outputs checked (torch, C) | differ |",
             "|" + "---|" * 14]
    for r in rr["rows"]:
        p = r["per_step"]
        lines.append(f"| {r['model']} | {r['bits']} | {r['params']:.3g} | {r['macs']:.3g} | {r['T']} | "
                     f"{_us(p['torch_1'])} | {_us(p['te_1'])} | {_us(p['cg_1'])} | {_us(p['c'])} | "
                     f"{_us(p.get('torch_b', 0))} | {_us(p.get('te_b', 0))} | {_us(p.get('cg_b', 0))} | "
                     f"{r['checked_torch']}, {r['checked_c']} | {r['differ_torch']}, 0 |")
    lines += ["", "| model | " + " | ".join(f"{name} b1" for _, name in COLUMNS) + " | "
              + " | ".join(f"{name} b{b}" for _, name in COLUMNS) + " |", "|" + "---|" * 7]
    for r in rr["rows"]:
        q = r["ratios"]
        cells = [_cell(q[f"{k}_1"], rr["target"]) for k, _ in COLUMNS]
        cells += [_cell(q[f"{k}_b"], rr["target"]) if f"{k}_b" in q else "-" for k, _ in COLUMNS]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    lines.append("")
    for r in rr["rows"]:
        if r["differ_torch"]:
            lines += [f"{r['model']}: {r['differ_torch']} of {r['checked_torch']} model outputs differ from the Qualia "
                      "model's: its float32 Conv/Linear rounds sums beyond 2^24, which a 16-bit model's reach (the "
                      "bound `net.describe()` states per layer), where golden gives the exact integer sum; "
                      "`golden.check_model` names each such value \"float32 accumulation\" (README, Whole networks). "
                      "The C (integers) agrees with golden's codegen network on every output.", ""]
    for r in rr["rows"]:
        pr = r.get("profile")
        if not pr:
            continue
        whole = pr["whole"]
        parts = ", ".join(f"{g} {_us(v)} ({v / whole:.0%})" for g, v in sorted(pr["groups"].items(),
                                                                              key=lambda gv: -gv[1]))
        p = r["per_step"]
        lines += [f"Where golden's time goes in {r['model']} (missed: {', '.join(pr['missed'])}): golden "
                  f"{pr['net']} at batch 1, each of its {pr['calls']} layers run alone, per step: {parts}; the whole "
                  f"`simulate` {_us(whole)} (Qualia b1 {_us(p['torch_1'])}, model C {_us(p['c'])}). A synaptic "
                  "share near the whole is bound by the GEMM (its rate against this machine's peak: the "
                  "physical-limit row of the synaptic-layer tables); a large neuron/other share or a whole well "
                  "above the layers' sum is per-call and per-pass overhead.", ""]
    return lines


def targets(rr: dict) -> list:
    """(name, measured worst case, hit) per column, over the models."""
    out = []
    if not rr["rows"]:
        return out
    for key, name in COLUMNS:
        for b in ("1", "b"):
            vals = [(r["ratios"][f"{key}_{b}"], r["model"]) for r in rr["rows"] if f"{key}_{b}" in r["ratios"]]
            if vals:
                v, m = min(vals)
                bs = 1 if b == "1" else rr["batch"]
                out.append((f"real-size networks: {name} >= {rr['target']}x, batch {bs}, 1 thread",
                            f"{v:.2f}x ({m})", v >= rr["target"]))
    bad = [r["model"] for r in rr["rows"] if r["differ_torch"]]
    out.append(("real-size networks: golden torch-eval = the Qualia model's outputs before timing",
                f"{sum(r['differ_torch'] for r in rr['rows'])} of {sum(r['checked_torch'] for r in rr['rows'])} "
                f"differ" + (f" ({', '.join(bad)})" if bad else ""), not bad))
    return out
