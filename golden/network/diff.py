"""Two networks of one model (e.g. torch-eval vs codegen) on one stimulus: where they part, and why.

:func:`diff_networks` runs both on the same raw input and reports, per layer both hold at the same
format, the mismatch rate; per sample the first divergence (step, layer, index), ordered by step then
layer, so that the diverging layer's inputs are still equal in both; and its cause, in the one vocabulary
of :mod:`golden.causes` (as ``golden diff`` names a single layer's): only that layer of the second network
is re-run, on the second network's own inputs to it, with the knobs of each cause switched toward the first
network's layer, sets by size then in :data:`golden.causes.CAUSES` order (the attribution engine
:func:`golden.causes.attribute`); the first set that restores a's value is the cause, "unexplained" when
none does. A neuron layer has every cause its spec differs in; any other layer one, its accumulator width
("saturation width": a Linear/Conv/BatchNorm/Add/GlobalSumPool LONG_NUMBER_T that wraps).

``float32 accumulation`` is no divergence between two golden networks: it is where the real
torch module may differ from its golden torch-eval network; the report counts, per layer, the
values of the first network that torch's float32 may round (``f32_risk``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..budget import Cost
from ..causes import CAUSES, F32_ARITH, WIDTH, FirstDivergence, attribute, spec_variants
from . import kernels, ops
from .graph import Network, Node, run_neuron
from .layers import Neuron

__all__ = ["CAUSES", "FirstDivergence", "NetworkDiff", "diff_cost", "diff_networks"]

BYTES_PER_VALUE = 32  # both traces (outputs and potentials) and the comparison masks; measured about 13
SECONDS_PER_VALUE = 5e-7  # both simulations and the per-sample cause re-runs; measured 0.4 us on the demo network


@dataclass(frozen=True)
class NetworkDiff:
    rates: dict  # layer -> (mismatches, values)
    f32_risk: dict  # layer -> values of network a that torch's float32 may round
    first: tuple  # per sample: FirstDivergence or None

    @property
    def causes(self) -> dict:
        """cause label -> number of samples whose first divergence it explains (in the order first seen)."""
        out: dict = {}
        for f in self.first:
            if f is not None:
                out[f.cause] = out.get(f.cause, 0) + 1
        return out

    @property
    def identical(self) -> bool:
        return all(m == 0 for m, _ in self.rates.values())

    def to_dict(self) -> dict:
        return {"identical": self.identical,
                "layers": {n: {"mismatches": m, "values": v, "f32_risk": self.f32_risk.get(n, 0)}
                           for n, (m, v) in self.rates.items()},
                "first_divergence": [None if f is None else f.to_dict() for f in self.first],
                "causes": self.causes}

    def __str__(self) -> str:
        lines = [f"golden network diff: {len(self.rates)} layers compared, {len(self.first)} samples: "
                 + ("IDENTICAL" if self.identical else "they differ")]
        for n, (m, v) in self.rates.items():
            risk = self.f32_risk.get(n, 0)
            lines.append(f"  {n:28} {m:>9} of {v:<9} differ ({100 * m / max(v, 1):6.2f}%)"
                         + (f", {risk} values a's float32 may round" if risk else ""))
        for s, f in enumerate(self.first):
            lines.append(f"  sample {s}: " + ("no divergence" if f is None else
                         f"first at t={f.t}, layer {f.layer}, index {f.index}: a {f.a} != b {f.b} [{f.cause}]"))
        causes = self.causes
        if causes:
            lines.append("  first divergences by cause: " + ", ".join(f"{c} {k}" for c, k in causes.items()))
        return "\n".join(lines)


def _rerun(net: Network, node: Node, layer, xs_rows, S, T):
    if isinstance(layer, Neuron):
        return run_neuron(kernels, Node(node.name, layer, node.inputs), xs_rows[0], S, T).out
    res = ops.run(kernels, layer, net.params.get(node.name, {}), xs_rows, node.name)
    return res["out"].reshape(S, T, *layer.out_shape)


def _variants(node_a: Node, node_b: Node):
    """(label, b's layer with those knobs of a's) in attribution order: a neuron's cause sets, or the one
    accumulator-width knob of any other layer."""
    la, lb = node_a.layer, node_b.layer
    if isinstance(lb, Neuron) and isinstance(la, Neuron):
        for label, spec in spec_variants(la.spec, lb.spec):
            yield label, (lb.replace, {"spec": spec})
    elif not isinstance(lb, Neuron) and type(la) is type(lb):
        knobs = {k: getattr(la, k) for k in WIDTH.layer_knobs if getattr(la, k) != getattr(lb, k)}
        if knobs:
            yield WIDTH.name, (lb.replace, knobs)
        if getattr(la, "arith", None) != getattr(lb, "arith", None):  # a BatchNorm: torch's float32 vs the C's ints
            yield F32_ARITH.name, (lb.replace, {k: getattr(la, k) for k in F32_ARITH.layer_knobs})


def _cause(net_a: Network, net_b: Network, tb, name: str, s: int, t: int, idx: tuple, want: int) -> str:
    """The label of the first variant of b's layer ``name`` that gives a's value ``want`` at (s, t, *idx), each
    variant re-run on sample ``s`` of b's own inputs to that layer."""
    node_b = net_b[name]
    T = tb.input.shape[1]
    rows = {n: lt.out[s].reshape(T, *lt.layer.out_shape).astype(np.int64) for n, lt in tb.layers.items()}
    rows["input"] = np.asarray(tb.input[s], np.int64).reshape(T, *net_b.input_shape)
    xs = [rows[i] for i in node_b.inputs]

    def restores(variant, _idx) -> np.ndarray:
        make, changes = variant
        return np.array([int(_rerun(net_b, node_b, make(**changes), xs, 1, T)[(0, t, *idx)]) == want])

    code, labels = attribute(np.ones(1, bool), _variants(net_a[name], node_b), restores)
    return labels[code[0] - 1]


def diff_cost(net_a: Network, net_b: Network, samples: int, steps: int) -> Cost:
    """What :func:`diff_networks` costs on ``samples`` x ``steps`` inputs, before anything is allocated."""
    per_step = max(math.prod(net.input_shape) + sum(math.prod(n.layer.out_shape) for n in net.nodes)
                   for net in (net_a, net_b))
    n = samples * steps * per_step
    return Cost(f"{samples} samples x {steps} steps of {per_step} values", 2 * n * BYTES_PER_VALUE,
                2 * n * SECONDS_PER_VALUE)


def diff_networks(net_a: Network, net_b: Network, x_raw) -> NetworkDiff:
    """Run both on ``x_raw`` (S, T, *input_shape); compare the layers both hold at the same format."""
    ta, tb = net_a.simulate(x_raw, bounds=True), net_b.simulate(x_raw)
    order = [n.name for n in net_b.nodes]
    common = [n for n in order if n in ta.layers and ta.layers[n].fmt_out == tb.layers[n].fmt_out
              and ta.layers[n].out.shape == tb.layers[n].out.shape]
    rates, risk, cands = {}, {}, {}
    S = np.asarray(x_raw).shape[0]
    for li, n in enumerate(common):
        a, b = ta.layers[n].out, tb.layers[n].out
        bad = a != b
        rates[n] = (int(bad.sum()), int(bad.size))
        m = ta.layers[n].f32_exact
        risk[n] = 0 if m is None else int((~m).sum())
        for s in range(S):
            hits = np.argwhere(bad[s])
            if len(hits):
                t = int(hits[:, 0].min())
                j = hits[hits[:, 0] == t][0]
                key = (t, li)
                if s not in cands or key < cands[s][0]:
                    cands[s] = (key, n, tuple(int(v) for v in j[1:]))
    first = []
    for s in range(S):
        if s not in cands:
            first.append(None)
            continue
        (t, _), n, idx = cands[s]
        va, vb = int(ta.layers[n].out[(s, t, *idx)]), int(tb.layers[n].out[(s, t, *idx)])
        first.append(FirstDivergence(t, idx, ("out",), va, vb, _cause(net_a, net_b, tb, n, s, t, idx, va),
                                     sample=s, layer=n))
    return NetworkDiff(rates, risk, tuple(first))
