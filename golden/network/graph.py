"""``Network``: an ordered graph of layer specs (sequential + residual adds), its raw weights, save/load, simulate.

A network runs layer by layer over every (sample, step) at once: a feed-forward
SNN allows it, since only neurons carry state, and a neuron layer runs all its
steps in one kernel call, every sample's neurons side by side (state starts
fresh per sample: spikingjelly's ``reset_net`` between samples).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import kernels as neuron_kernels
from ..errors import NetworkError
from ..simulate import Runner, initial_v, kernel_args
from ..spec import STAGES, Overflow, QFormat, Round, quantize_real
from . import kernels as layer_kernels
from . import npkernels, ops, passes, store
from .layers import (
    F32_EXACT,
    ROUNDS,
    Add,
    BatchNorm,
    Conv,
    Flatten,
    GlobalSumPool,
    Identity,
    Layer,
    Linear,
    MaxPool,
    Neuron,
    float32_bound,
    type_name,
)
from .store import INPUT

SPECIALISE_AT = 1 << 14  # neuron-steps of one layer in one call from which it runs on its spec's specialised kernel
SPECIALISED, GENERIC = "specialised", "generic"  # the neuron kernels Network.plan chooses between
NUMPY, NUMBA = "numpy", "numba"  # the kernel families of the other layers
# the layer types whose every kernel npkernels has (exact types: a subclass may call kernels it lacks)
NUMPY_TYPES = (Linear, Conv, BatchNorm, MaxPool, Add, GlobalSumPool, Flatten, Identity, Neuron)


def tiny(layer: Layer, rows: int) -> bool:
    """Whether ``layer`` on ``rows`` (sample, step) rows makes at most ``npkernels.TINY`` output values, so that it
    runs in plain numpy, with no compile: a compile costs 0.3-1 s, such a call microseconds either way."""
    if type(layer) not in NUMPY_TYPES:  # a layer type registered elsewhere knows the Numba family and the oracle
        return False
    return rows * math.prod(layer.out_shape) <= npkernels.TINY


class LongCheck(NamedTuple):
    """One layer's deployment check (:meth:`Network.long_check`): its LONG width, the worst-case accumulator
    ``lo``..``hi`` at frac F over every input of its format, the bits that needs, whether it can wrap, and the
    smallest safe LONG width (None: wider than 64 bits)."""

    name: str
    acc_bits: int
    lo: int
    hi: int
    bits: int
    wraps: bool
    safe_width: int | None


@dataclass(frozen=True)
class Node:
    """One layer of the graph: its name (the torch module's qualified name), spec and producers."""

    name: str
    layer: Layer
    inputs: tuple = (INPUT,)


@dataclass
class LayerTrace:
    """One layer's raw outputs (S, T, *out_shape) at ``fmt_out``; neurons also ``v`` and ``spikes``."""

    name: str
    layer: Layer
    out: np.ndarray
    overflow: dict
    f32_exact: np.ndarray | None = None  # per value: torch's float32 holds it exactly (None: always)
    v: np.ndarray | None = None
    spikes: np.ndarray | None = None

    @property
    def fmt_out(self) -> QFormat:
        return self.layer.fmt_out

    @property
    def spike_rate(self) -> float | None:
        return None if self.spikes is None else float(self.spikes.mean())


@dataclass
class Trace:
    """``layers``: ordered name -> :class:`LayerTrace`; ``out``: the model output (the last layer's)."""

    network: Network
    input: np.ndarray
    layers: OrderedDict

    @property
    def out(self) -> np.ndarray:
        return self.layers[self.network.output].out

    @property
    def fmt_out(self) -> QFormat:
        return self.layers[self.network.output].fmt_out


class Network:
    """Layers as data: ``nodes`` in execution order, raw integer ``params[name][array]``, the input format."""

    def __init__(self, input_shape, fmt_input: QFormat, nodes, params=None, round_input: Round = Round.RND,
                 output: str | None = None, meta: dict | None = None):
        self.input_shape = tuple(int(n) for n in input_shape)
        self.fmt_input, self.round_input = fmt_input, round_input
        self.nodes = list(nodes)
        self.params = {k: dict(v) for k, v in (params or {}).items()}
        self.output = output or (self.nodes[-1].name if self.nodes else None)
        self.meta = dict(meta or {})
        self.neuron_steps = 0  # neuron-steps this network has simulated (a count only: no kernel choice reads it)
        self._plans: dict = {}  # (samples, steps) -> the kernel of each neuron layer (see plan)
        self._check()

    # ------------------------------------------------------------- validation
    def _check(self) -> None:
        if not isinstance(self.fmt_input, QFormat):
            raise NetworkError("fmt_input: expected a QFormat")
        rnd = next((m for m in ROUNDS if isinstance(self.round_input, str) and self.round_input == m), None)
        if rnd is None:
            raise NetworkError(f"round_input: {self.round_input!r} is not one of {', '.join(ROUNDS)}")
        self.round_input = rnd
        if not self.nodes:
            raise NetworkError("nodes: a network needs at least one layer")
        seen = {INPUT: (self.input_shape, self.fmt_input)}
        for node in self.nodes:
            n, layer = node.name, node.layer
            if not isinstance(n, str) or not n or n in seen:
                raise NetworkError(f"layer name {n!r}: empty, reserved or repeated")
            if not isinstance(layer, Layer):
                raise NetworkError(f"{n}: expected a layer spec, got {type(layer).__name__}")
            srcs = [(layer.in_shape, fmt_src) for fmt_src, _ in layer.sources()]
            if len(node.inputs) != len(srcs):
                raise NetworkError(f"{n}: {type_name(layer)} takes {len(srcs)} input(s), got {list(node.inputs)}")
            for src, (shape, fmt) in zip(node.inputs, srcs):
                if src not in seen:
                    raise NetworkError(f"{n}: input {src!r} is not an earlier layer (nor {INPUT!r})")
                got_shape, got_fmt = seen[src]
                if tuple(got_shape) != tuple(shape):
                    raise NetworkError(f"{n}: shapes do not chain: {type_name(layer)} takes {tuple(shape)} but "
                                       f"{src!r} gives {tuple(got_shape)}")
                if got_fmt != fmt:
                    raise NetworkError(f"{n}: formats do not chain: it expects {fmt} but {src!r} gives {got_fmt}")
            self._check_params(n, layer)
            seen[n] = (layer.out_shape, layer.fmt_out)
        if self.output not in seen or self.output == INPUT:
            raise NetworkError(f"output: {self.output!r} is not a layer")
        extra = set(self.params) - {node.name for node in self.nodes}
        if extra:
            raise NetworkError(f"params: arrays for unknown layer(s) {', '.join(sorted(extra))}")

    def _check_params(self, name: str, layer: Layer) -> None:
        want = layer.param_specs()
        have = self.params.get(name, {})
        if set(have) != set(want):
            raise NetworkError(f"{name}: expects arrays {sorted(want)}, got {sorted(have)}")
        for key, (shape, fmt) in want.items():
            arr = np.asarray(have[key])
            if arr.dtype.kind not in "iu":
                raise NetworkError(f"{name}.{key}: raw weights must be integers, got dtype {arr.dtype}")
            if arr.shape != tuple(shape):
                raise NetworkError(f"{name}.{key}: shape {arr.shape}, expected {tuple(shape)}")
            if arr.size and (arr.min() < fmt.min or arr.max() > fmt.max):
                bad = arr[(arr < fmt.min) | (arr > fmt.max)].flat[0]
                raise NetworkError(f"{name}.{key}: raw value {bad} is off its declared grid {fmt} "
                                   f"({fmt.min}..{fmt.max})")
            have[key] = np.ascontiguousarray(arr, dtype=np.int64)
            have[key].flags.writeable = False

    # ---------------------------------------------------------------- queries
    def __iter__(self):
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def out_shape(self) -> tuple:
        return self[self.output].layer.out_shape

    def float32_bounds(self) -> dict:
        """name -> the worst-case |partial sum| (units of 2**-F, + half an output LSB) over the input formats."""
        return {n.name: float32_bound(n.layer, self.params.get(n.name, {})) for n in self.nodes}

    def digest(self) -> str:
        """sha256 of the canonical TOML with every array's digest: the identity of the network."""
        return store.digest(self)

    def describe(self) -> str:
        lines = [(f"network: input {self.input_shape} {self.fmt_input}, {len(self.nodes)} layers, output "
                 f"{self.output!r} {self.out_shape}")]
        longs = {c.name: c for c in self.long_check()}
        for node in self.nodes:
            bound = 0 if node.layer.float32_reproduced else float32_bound(node.layer, self.params.get(node.name, {}))
            verdict = "float32 exact" if bound <= F32_EXACT else "float32 may round"
            b = f"  [float32 bound 2^{math.log2(bound):.1f}: {verdict}]" if bound else ""
            lc = longs.get(node.name)
            if lc is not None:
                b += (f"  [LONG {lc.acc_bits}b: MAY WRAP on inputs of its format (worst case needs {lc.bits} bits); "
                      f"long_width {lc.safe_width} is safe]" if lc.wraps else
                      f"  [LONG {lc.acc_bits}b: never wraps (worst case {lc.bits} bits)]")
            lines.append(f"  {node.name} <- {', '.join(node.inputs)}: {node.layer.describe()}{b}")
        return "\n".join(lines)

    def long_check(self) -> list:
        """The deployment check, before anyone deploys: for every layer whose accumulator wraps at ``acc_bits``
        (the generated C's LONG_NUMBER_T: ``acc_overflow = wrap``, ``acc_bits < 64``), whether it can wrap on
        some input of its format, worst case from its real weights (:meth:`Layer.acc_extremes`), and the
        smallest LONG width (16, 32 or 64) that never wraps. A list of :class:`LongCheck`, in layer order."""
        out = []
        for node in self.nodes:
            layer = node.layer
            if layer.acc_overflow != Overflow.WRAP or layer.acc_bits >= 64:
                continue
            ext = layer.acc_extremes(self.params.get(node.name, {}))
            if ext is None:
                continue
            bits = layer.long_bits(self.params.get(node.name, {}))
            safe = next(w for w in (16, 32, 64) if w >= bits) if bits <= 64 else None
            out.append(LongCheck(node.name, layer.acc_bits, ext[0], ext[1], bits, bits > layer.acc_bits, safe))
        return out

    # ---------------------------------------------------------------- running
    def quantize_input(self, x_float) -> np.ndarray:
        """The raw network input, exactly as the model's first input quantizer makes it."""
        return quantize_real(x_float, self.fmt_input, self.round_input).astype(self.fmt_input.dtype)

    def simulate(self, x_raw, *, bounds: bool = False, impl=None) -> Trace:
        """Raw input (S, T, *input_shape) -> :class:`Trace`. ``bounds``: mark values float32 holds exactly.

        Every kernel is chosen before the first layer runs (:meth:`plan`, kept per shape). ``impl``: a kernel
        family to run every non-neuron layer on instead (:mod:`golden.network.reference`, the oracle); the neuron
        layers always run on golden's neuron kernels."""
        default = impl is None
        impl = layer_kernels if impl is None else impl
        x = np.asarray(x_raw)
        step = passes.samples_per_pass(self.nodes, self.input_shape, len(x), x.shape[1]) if x.ndim > 2 else len(x)
        if step < len(x):  # a big batch in passes of a few samples: the same values, the arrays in cache
            parts = [self.simulate(x[s:s + step], bounds=bounds, impl=None if default else impl)
                     for s in range(0, len(x), step)]
            return Trace(self, x, passes.join([p.layers for p in parts]))
        if x.dtype.kind not in "iu":
            raise NetworkError(f"x_raw: expected raw integers, got dtype {x.dtype} (use net.quantize_input)")
        if x.ndim != 2 + len(self.input_shape) or x.shape[2:] != self.input_shape:
            raise NetworkError(f"x_raw: expected shape (S, T, *{self.input_shape}), got {x.shape}")
        if x.size and (x.min() < self.fmt_input.min or x.max() > self.fmt_input.max):
            raise NetworkError(f"x_raw: values outside the input format {self.fmt_input}")
        S, T = x.shape[:2]
        self.neuron_steps += S * T * sum(math.prod(n.layer.in_shape) for n in self.nodes if isinstance(n.layer, Neuron))
        plan = self.plan(S, T)  # before any layer runs: every neuron kernel it names is compiled here
        rows = {INPUT: np.ascontiguousarray(x, np.int64).reshape(S * T, *self.input_shape)}
        layers = OrderedDict()
        for node in self.nodes:
            xs = [rows[i] for i in node.inputs]
            family = npkernels if default and tiny(node.layer, S * T) else impl
            if isinstance(node.layer, Neuron):  # the one stateful layer: all its steps in one kernel call
                lt = run_neuron(family, node, xs[0], S, T, plan.get(node.name) == SPECIALISED)
                rows[node.name] = lt.out.reshape(S * T, *node.layer.out_shape).astype(np.int64)
            else:
                res = ops.run(family, node.layer, self.params.get(node.name, {}), xs, node.name, bounds)
                out = res["out"]
                mask = None if res["f32_exact"] is None else res["f32_exact"].reshape(S, T, *node.layer.out_shape)
                lt = LayerTrace(node.name, node.layer, out.reshape(S, T, *node.layer.out_shape)
                                .astype(node.layer.fmt_out.dtype), res["overflow"], mask)
                rows[node.name] = out.reshape(S * T, *node.layer.out_shape)  # int64, in fmt_out: lt.out exactly
            layers[node.name] = lt
        return Trace(self, x, layers)

    def plan(self, samples: int, steps: int) -> dict:
        """Neuron layer name -> the kernel it runs on for inputs of ``samples`` x ``steps``: :data:`SPECIALISED`
        (its spec's own kernel) or :data:`GENERIC` (one kernel for every spec: no compile per spec); every other
        layer's name -> :data:`NUMPY` (:mod:`golden.network.npkernels`, no compile: its share of the call is at
        most ``npkernels.TINY`` output values, see :func:`tiny`) or :data:`NUMBA` (:mod:`golden.network.kernels`,
        or the exact-GEMM route it hands large Linear/Conv layers to).

        Chosen once per shape, before the run, and kept for the network's life: the same shapes always run on the
        same kernels, so no call is slower than the one before it on the same shapes (no compile in mid-use).
        A layer is specialised when its share of one call, ``samples x steps x neurons``, reaches
        :data:`SPECIALISE_AT` (a run of that size pays for its compile, once per spec and machine: the disk
        cache), or when this process already has its spec's kernel (:meth:`specialise`); otherwise generic (a
        property campaign's many small networks compile nothing per spec). Choosing compiles, or loads from the
        disk cache, every kernel the plan names.
        """
        key = (int(samples), int(steps))
        rows = key[0] * key[1]
        plan = self._plans.get(key)
        if plan is None:
            plan = {}
            for node in self.nodes:
                if isinstance(node.layer, Neuron):
                    code, consts = kernel_args(node.layer.spec)
                    big = key[0] * key[1] * math.prod(node.layer.in_shape) >= SPECIALISE_AT
                    if big or neuron_kernels.has_specialised(code, consts):
                        neuron_kernels.specialised(code, consts)
                        plan[node.name] = SPECIALISED
                    else:
                        plan[node.name] = GENERIC
                else:
                    plan[node.name] = NUMPY if tiny(node.layer, rows) else NUMBA
            self._plans[key] = plan
        return plan

    def specialise(self) -> None:
        """Compile (or load from the disk cache) every neuron layer's specialised kernel now, so that every run
        from here on, of any shape, takes them: for a network called many times on small batches."""
        for node in self.nodes:
            if isinstance(node.layer, Neuron):
                neuron_kernels.specialised(*kernel_args(node.layer.spec))
        self._plans.clear()

    # ------------------------------------------------------------ save / load (golden/network/store.py)
    def to_toml(self, digests: dict, weights_sha256: str = "") -> str:
        return store.to_toml(self, digests, weights_sha256)

    def save(self, directory, *, overwrite: bool = False) -> Path:
        """Write ``directory``/network.toml + weights.npz all or nothing; see :func:`golden.network.store.save`."""
        return store.save(self, directory, overwrite=overwrite)

    @classmethod
    def load(cls, directory) -> Network:
        """Read a saved network, every field and hash checked; see :func:`golden.network.store.read`."""
        doc = store.read(directory)
        return cls(doc.input_shape, doc.fmt_input, [Node(n, layer, tuple(i)) for n, layer, i in doc.nodes],
                   doc.params, doc.round_input, doc.output, doc.meta)


def run_neuron(impl, node: Node, x, S: int, T: int, specialise: bool = False) -> LayerTrace:
    """A neuron layer over every sample at once: (T, S * N), the samples side by side, each from the spec's initial
    potential (as ``golden.simulate`` runs it, without its input check: ``quantize`` keeps x in the format).
    ``specialise``: run on the spec's specialised kernel (the caller has made it: :meth:`Network.plan`), else on
    the generic one."""
    layer = node.layer
    q, sat = ops.quantize(impl, x, layer.fmt_src, layer.fmt_in, layer.round_in)
    shape = layer.in_shape
    n = math.prod(shape)
    steps = np.empty((T, S * n), layer.fmt_in.dtype)
    steps.reshape(T, S, n)[...] = q.reshape(S, T, n).swapaxes(0, 1)  # one pass: transpose and narrow
    runner = Runner(layer.spec)
    if specialise:
        neuron_kernels.specialised(runner.code, runner.consts)  # made by the plan: a lookup
    out, vt, spikes, counts = runner.run(steps, initial_v(layer.spec, None, (S * n,)), parallel=None if specialise
                                         else False)

    def back(a):
        return np.ascontiguousarray(a.reshape(T, S, *shape).swapaxes(0, 1))

    overflow = {"in": int(sat), **dict(zip(STAGES, counts.tolist()))}
    return LayerTrace(node.name, layer, back(out), overflow, None, back(vt), back(spikes))
