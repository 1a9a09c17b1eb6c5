"""Two networks of one model (e.g. torch-eval vs codegen) on one stimulus: where they part, and why.

:func:`diff_networks` runs both on the same raw input and reports, per layer both hold at the same
format, the mismatch rate; per sample the first divergence (step, layer, index), ordered by step then
layer, so that the diverging layer's inputs are still equal in both; and its cause, found by
re-running only that layer of the second network with one knob of the first, in this order:

- ``TMP leak shift``: the neuron's ``leak_shift`` (the C shifts the leak by max(q_in, q_v));
- ``LIF compare-before-round``: the neuron's ``arith`` (torch's float32 compares the unrounded
  potential, the C the rounded one);
- ``LONG wrap``: a Linear/Conv/BatchNorm/Add/GlobalSumPool accumulator (``acc_bits``), or the
  neuron's LONG potential arithmetic;
- ``tau re-quantized``: the LIF's ``reciprocal_tau`` (a tau off the power-of-two grid: the
  deployment quantizes float32(1/tau) at the final q_v, the calibrated module holds another value);
- ``other``: none of these alone explains it.

``float32 accumulation`` is no divergence between two golden networks: it is where the real
torch module may differ from its golden torch-eval network; the report counts, per layer, the
values of the first network that torch's float32 may round (``f32_risk``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..spec import SpecError
from . import kernels, ops
from .graph import Network, Node, run_neuron
from .layers import Neuron

CAUSES = ("TMP leak shift", "LIF compare-before-round", "LONG wrap", "tau re-quantized", "other")  # tried in this order


@dataclass(frozen=True)
class FirstDivergence:
    sample: int
    t: int
    layer: str
    index: tuple
    a: int
    b: int
    cause: str


@dataclass(frozen=True)
class NetworkDiff:
    rates: dict  # layer -> (mismatches, values)
    f32_risk: dict  # layer -> values of network a that torch's float32 may round
    first: tuple  # per sample: FirstDivergence or None

    @property
    def causes(self) -> dict:
        out = dict.fromkeys(CAUSES, 0)
        for f in self.first:
            if f is not None:
                out[f.cause] += 1
        return out

    @property
    def identical(self) -> bool:
        return all(m == 0 for m, _ in self.rates.values())

    def to_dict(self) -> dict:
        return {"identical": self.identical,
                "layers": {n: {"mismatches": m, "values": v, "f32_risk": self.f32_risk.get(n, 0)}
                           for n, (m, v) in self.rates.items()},
                "first_divergence": [None if f is None else dataclasses.asdict(f) for f in self.first],
                "causes": {c: k for c, k in self.causes.items() if k}}

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
        causes = {c: k for c, k in self.causes.items() if k}
        if causes:
            lines.append("  first divergences by cause: " + ", ".join(f"{c} {k}" for c, k in causes.items()))
        return "\n".join(lines)


def _rerun(net: Network, node: Node, layer, xs_rows, S, T):
    if isinstance(layer, Neuron):
        return run_neuron(kernels, Node(node.name, layer, node.inputs), xs_rows[0], S, T).out
    res = ops.run(kernels, layer, net.params.get(node.name, {}), xs_rows, node.name)
    return res["out"].reshape(S, T, *layer.out_shape)


def _cause(net_a: Network, net_b: Network, tb, name: str, s: int, t: int, idx: tuple, want: int) -> str:
    node_a, node_b = net_a[name], net_b[name]
    S, T = tb.input.shape[:2]
    rows = {n: lt.out.reshape(S * T, *lt.layer.out_shape).astype(np.int64) for n, lt in tb.layers.items()}
    rows["input"] = np.asarray(tb.input, np.int64).reshape(S * T, *net_b.input_shape)
    xs = [rows[i] for i in node_b.inputs]
    lb = node_b.layer
    tries = []
    if isinstance(lb, Neuron) and isinstance(node_a.layer, Neuron):
        sa, sb = node_a.layer.spec, lb.spec
        # the leak shift before arith: torch's float32 datapath has no leak shift, so taking a's arith would also
        # undo a TMP shift (a q_in > q_v pair would always read "compare-before-round"); with q_in = q_v the
        # leak-shift swap changes nothing
        tries = [("TMP leak shift", {"leak_shift": sa.leak_shift}), ("LIF compare-before-round", {"arith": sa.arith}),
                 ("LONG wrap", {"acc_bits": 64}), ("tau re-quantized", {"reciprocal_tau": sa.reciprocal_tau})]
        tries = [(c, lb.replace(spec=dataclasses.replace(sb, **k))) for c, k in tries]
    elif lb.acc_bits < 64:
        tries = [("LONG wrap", lb.replace(acc_bits=64))]
    for cause, layer in tries:
        try:
            got = int(_rerun(net_b, node_b, layer, xs, S, T)[(s, t, *idx)])
        except SpecError:  # a knob the spec refuses in this combination: not this cause
            got = None
        if got == want:
            return cause
    return "other"


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
        first.append(FirstDivergence(s, t, n, idx, va, vb, _cause(net_a, net_b, tb, n, s, t, idx, va)))
    return NetworkDiff(rates, risk, tuple(first))
