"""Prove a whole Qualia model against golden: hook every layer, run the model, compare every value.

Three separate steps:

1. :func:`record` hooks every layer of the network's graph and runs the real model
   in ``.eval()`` on (S, T, *input_shape) float inputs, in its own step mode ('s':
   T calls on the S-sample batch; 'm': one call on (T, S, ...)), from a fresh state
   (spikingjelly ``reset_net``). Returns each layer's float32 outputs as (S, T, ...)
   and, for neurons, the potentials.
2. :func:`replay` runs each golden layer on the module's *own* recorded inputs, so a
   divergence is charged to the layer that makes it, not to everything downstream.
3. :func:`compare` counts, per layer, the values compared and the mismatches, splits
   them by cause and finds the first divergence (sample, t, layer, index).

Causes: ``float32 accumulation`` (the value lies outside the float32 bound: torch's
float32 Linear/Conv/Add/sum cannot hold it exactly, golden's is the exact integer
result), ``off grid`` (the module's value is not on its quantizer's grid) and
``golden != module`` (inside the bound: a bug, in golden or upstream). A layer whose
float32 golden reproduces (``layer.float32_reproduced``: the torch-eval BatchNorm, two
elementwise float32 operations) has no bound: each of its mismatches is ``golden != module``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..network import kernels, ops
from ..network.graph import INPUT, Network, run_neuron
from ..network.layers import NetworkError, Neuron, type_name
from .network import network_from_module
from .stack import restore_quantizers, snapshot_quantizers, stack

F32 = "float32 accumulation"
OFF_GRID = "off grid"
BUG = "golden != module"


@dataclass
class Divergence:
    sample: int
    t: int
    layer: str
    index: tuple
    field: str  # out or v
    cause: str
    golden: int
    module: object  # raw int, or the float when it is off the grid
    shrunk_input: np.ndarray | None = None  # the sample's input up to t: (1, t + 1, *input_shape), float32

    def __str__(self) -> str:
        shr = "" if self.shrunk_input is None else f"; shrunk input {self.shrunk_input.shape}"
        return (f"sample {self.sample}, t={self.t}, layer {self.layer!r}, index {self.index} ({self.field}): golden "
                f"{self.golden} != module {self.module} [{self.cause}]{shr}")


@dataclass
class LayerCheck:
    name: str
    type: str
    compared: int = 0
    mismatches: dict = field(default_factory=dict)  # cause -> count
    outside_bound: int = 0  # values float32 cannot hold exactly (whether or not they differ)
    spike_rate: float | None = None
    first: Divergence | None = None

    @property
    def total_mismatches(self) -> int:
        return sum(self.mismatches.values())

    def __str__(self) -> str:
        rate = "" if self.spike_rate is None else f", spike rate {100 * self.spike_rate:.1f}%"
        bound = f", {self.outside_bound} outside the float32 bound" if self.outside_bound else ""
        if not self.total_mismatches:
            return f"{self.name} ({self.type}): exact, {self.compared} values{rate}{bound}"
        causes = ", ".join(f"{k}: {v}" for k, v in self.mismatches.items() if v)
        return f"{self.name} ({self.type}): {self.total_mismatches}/{self.compared} differ ({causes}){rate}{bound}"


@dataclass
class NetworkReport:
    network: Network
    step_mode: str
    samples: int
    steps: int
    layers: list
    first: Divergence | None = None
    end_to_end_mismatches: int = 0  # the model output vs golden's own end-to-end run

    @property
    def compared(self) -> int:
        return sum(c.compared for c in self.layers)

    def count(self, cause: str) -> int:
        return sum(c.mismatches.get(cause, 0) for c in self.layers)

    @property
    def exact(self) -> bool:
        return all(not c.total_mismatches for c in self.layers)

    @property
    def ok(self) -> bool:
        """No mismatch but those float32 accumulation explains."""
        return all(c.total_mismatches == c.mismatches.get(F32, 0) for c in self.layers)

    def __bool__(self) -> bool:
        return self.exact

    def __str__(self) -> str:
        verdict = "bit-exact" if self.exact else ("exact inside the float32 bound" if self.ok else "NOT bit-exact")
        head = (f"check_model (torch-eval, network, step mode {self.step_mode!r}): {verdict}; {len(self.layers)} "
                f"layers, {self.samples} samples x {self.steps} steps, {self.compared} values compared")
        lines = [head]
        if self.first is not None:
            lines.append(f"  first divergence: {self.first}")
        lines += [f"  {c}" for c in self.layers]
        lines.append(f"  model output end to end: {self.end_to_end_mismatches} value(s) differ")
        return "\n".join(lines)


# ------------------------------------------------------------------ 1. hooking + running
def record(model, net: Network, x) -> dict:
    """Run ``model`` in ``.eval()`` on float ``x`` (S, T, *input_shape); name -> {'out', 'v'} float32 (S, T, ...)."""
    s = stack()
    torch, functional = s.torch, s.functional
    mods = dict(model.named_modules())
    x = torch.as_tensor(np.asarray(x, np.float32))
    S, T = int(x.shape[0]), int(x.shape[1])
    mode = net.meta.get("step_mode", "s")
    rec = {n.name: {"out": [], "v": []} for n in net}
    handles = []

    def hook(name, is_neuron):
        def fn(module, args, output):
            rec[name]["out"].append(output.detach().to(torch.float32).clone())
            if is_neuron:
                v = getattr(module, "v_seq", None) if mode == "m" else module.v
                if torch.is_tensor(v):
                    rec[name]["v"].append(torch.broadcast_to(v.detach().to(torch.float32), output.shape).clone())
                elif mode == "m" and torch.is_tensor(module.v):  # no v_seq: the potential after the last step
                    rec[name]["v_last"] = module.v.detach().to(torch.float32).clone()
        return fn

    stored = {}
    for n in net:
        m = mods[n.name]
        if isinstance(n.layer, Neuron) and mode == "m" and hasattr(m, "store_v_seq"):
            stored[n.name] = m.store_v_seq
            m.store_v_seq = True
        handles.append(m.register_forward_hook(hook(n.name, isinstance(n.layer, Neuron))))
    was = model.training
    saved = snapshot_quantizers(model)
    try:
        model.eval()
        functional.reset_net(model)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if mode == "m":
                model(x.transpose(0, 1).contiguous())
            else:
                for t in range(T):
                    model(x[:, t].contiguous())
    finally:
        for h in handles:
            h.remove()
        for name, flag in stored.items():
            mods[name].store_v_seq = flag
        model.train(was)
        restore_quantizers(saved)
        functional.reset_net(model)
    out = {}
    for n in net:
        r = rec[n.name]
        if len(r["out"]) != (T if mode == "s" else 1):
            raise NetworkError(f"{n.name}: called {len(r['out'])} times; expected one call per "
                               f"{'step' if mode == 's' else 'sample batch'} (is it used twice?)")
        shape = n.layer.out_shape
        out[n.name] = {"out": _to_samples(torch, r["out"], mode, S, T, shape)}
        if r["v"] and len(r["v"]) == len(r["out"]):
            out[n.name]["v"] = _to_samples(torch, r["v"], mode, S, T, shape)
        elif "v_last" in r:
            out[n.name]["v_last"] = torch.broadcast_to(r["v_last"], (S, *shape)).reshape(S, 1, *shape).numpy()
    return out


def _to_samples(torch, calls, mode, S, T, shape) -> np.ndarray:
    """Recorded calls -> (S, T, *shape): 's' gives T calls of (S, ...), 'm' one call of (T, S, ...)."""
    a = torch.stack(calls, 1) if mode == "s" else calls[0].reshape(T, S, *shape).transpose(0, 1)
    return a.reshape(S, T, *shape).numpy()


def _pre_quantizer(net: Network) -> set:
    """Layers that see the model's float input before any quantizer (leading Flatten): the module holds floats."""
    fed = {INPUT}
    for n in net:
        if type_name(n.layer) == "Flatten" and set(n.inputs) <= fed:
            fed.add(n.name)
    return fed - {INPUT}


def module_raw(net: Network, name: str, values: np.ndarray, frac: int):
    """A layer's recorded floats -> (raw, on-grid mask); floats seen before any quantizer are quantized first."""
    if name in _pre_quantizer(net):
        return net.quantize_input(values).astype(np.int64), np.ones(values.shape, bool)
    return to_raw(values, frac)


def to_raw(values: np.ndarray, frac: int):
    """Module floats -> (raw int64, on-grid mask)."""
    real = values.astype(np.float64) * 2.0 ** frac
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(real) & (real == np.round(real))
    return np.where(ok, real, 0).astype(np.int64), ok


# ------------------------------------------------------------------ 2. replaying
def replay(net: Network, x_raw: np.ndarray, recorded: dict) -> dict:
    """Each golden layer on the module's own inputs: name -> {'out', 'v', 'spikes', 'f32_exact'} (S, T, ...)."""
    S, T = x_raw.shape[:2]
    raws = {INPUT: x_raw.reshape(S * T, *net.input_shape).astype(np.int64)}
    for n in net:
        raw, _ = module_raw(net, n.name, recorded[n.name]["out"], n.layer.fmt_out.frac)
        raws[n.name] = raw.reshape(S * T, *n.layer.out_shape)
    res = {}
    for n in net:
        xs = [raws[i] for i in n.inputs]
        if isinstance(n.layer, Neuron):
            lt = run_neuron(kernels, n, xs[0], S, T)
            res[n.name] = {"out": lt.out, "v": lt.v, "spikes": lt.spikes, "f32_exact": None}
        else:
            r = ops.run(kernels, n.layer, net.params.get(n.name, {}), xs, n.name, bounds=True)
            shape = (S, T, *n.layer.out_shape)
            res[n.name] = {"out": r["out"].reshape(shape),
                           "f32_exact": None if r["f32_exact"] is None else r["f32_exact"].reshape(shape)}
    return res


# ------------------------------------------------------------------ 3. comparing
def compare(net: Network, x: np.ndarray, recorded: dict, golden: dict, step_mode: str) -> NetworkReport:
    S, T = x.shape[:2]
    checks, firsts = [], []
    for pos, n in enumerate(net):
        g = golden[n.name]
        c = LayerCheck(n.name, type_name(n.layer), mismatches={BUG: 0, F32: 0, OFF_GRID: 0})
        if g.get("spikes") is not None:
            c.spike_rate = float(g["spikes"].mean())
        fields = [("out", n.layer.fmt_out.frac)]
        if isinstance(n.layer, Neuron) and "v" in recorded[n.name]:
            fields.append(("v", n.layer.spec.fmt_v.frac))
        elif isinstance(n.layer, Neuron) and "v_last" in recorded[n.name]:  # 'm' without v_seq: the last step
            fields.append(("v_last", n.layer.spec.fmt_v.frac))
            g = {**g, "v_last": g["v"][:, -1:]}
        exact = g.get("f32_exact")
        if exact is not None:
            c.outside_bound = int((~exact).sum())
        for fname, frac in fields:
            have, on_grid = module_raw(net, n.name, recorded[n.name][fname], frac)
            want = g[fname].astype(np.int64)
            bad = ~on_grid | (have != want)
            c.compared += want.size
            if not bad.any():
                continue
            cause = np.full(bad.shape, BUG, dtype=object)
            if exact is not None:
                cause[~exact] = F32
            cause[~on_grid] = OFF_GRID
            for k in (BUG, F32, OFF_GRID):
                c.mismatches[k] += int((bad & (cause == k)).sum())
            where = np.argwhere(bad)  # the earliest step first, then the sample, then the index
            at = tuple(int(a) for a in where[np.lexsort((*where[:, 2:].T[::-1], where[:, 0], where[:, 1]))[0]])
            s, t, *idx = at
            got = int(have[at]) if on_grid[at] else float(recorded[n.name][fname][at])
            if fname == "v_last":
                t = T - 1  # v_last holds only the last step
            d = Divergence(s, t, n.name, tuple(idx), fname, str(cause[at]), int(want[at]), got)
            firsts.append(((t, pos, s), d))
            if c.first is None:
                c.first = d
        checks.append(c)
    first = min(firsts, key=lambda p: p[0])[1] if firsts else None
    if first is not None:
        first.shrunk_input = np.asarray(x[first.sample:first.sample + 1, :first.t + 1], np.float32)
    return NetworkReport(net, step_mode, S, T, checks, first)


def check_network(model, x, net: Network | None = None) -> NetworkReport:
    """Prove every layer of ``model`` (a calibrated quantized Qualia SNN) against golden's torch-eval network.

    ``x``: float inputs (S, T, *input_shape), channels-first. Both step modes; the
    model's own. See the module doc for what is compared and how causes are named.
    """
    x = np.asarray(x, np.float32)
    if x.ndim < 3:
        raise NetworkError(f"inputs: expected (samples, steps, *input_shape), got shape {x.shape}")
    net = network_from_module(model, tuple(x.shape[2:])) if net is None else net
    if x.ndim != 2 + len(net.input_shape) or tuple(x.shape[2:]) != net.input_shape:
        raise NetworkError(f"inputs: expected (samples, steps, *{net.input_shape}), got {x.shape}")
    recorded = record(model, net, x)
    x_raw = net.quantize_input(x)
    report = compare(net, x, recorded, replay(net, x_raw, recorded), net.meta.get("step_mode", "s"))
    end = net.simulate(x_raw).out
    want, ok = module_raw(net, net.output, recorded[net.output]["out"], net[net.output].layer.fmt_out.frac)
    report.end_to_end_mismatches = int((~ok | (want != end)).sum())
    return report

