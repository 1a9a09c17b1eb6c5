"""The network demo: the embedded small network (golden/data/), run with numpy and numba only.

``run()`` loads the committed network directory (hashes checked), feeds it a
deterministic stimulus (static frames U(0, 2), repeated over the steps: Qualia's
'duplicate' timestep mode) and prints, per layer, what it did, then the model
output and the throughput. :func:`memory` is what a run holds, so that a caller
can refuse an absurd ``samples x steps`` before anything is allocated.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .graph import Network
from .layers import NetworkError, Neuron, type_name

DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT = "scnn1d_lif8"
BYTES_PER_VALUE = 48  # per value of the stimulus and of every layer's trace, with the simulator's int64 work rows


def stimulus(net: Network, samples: int, steps: int, seed: int) -> np.ndarray:
    """Raw inputs (samples, steps, *input_shape): one U(0, 2) frame per sample, repeated over the steps."""
    rng = np.random.default_rng(seed)
    frames = rng.random((samples, *net.input_shape), dtype=np.float32) * np.float32(2)
    return net.quantize_input(np.repeat(frames[:, None], steps, axis=1))


def load(network=None) -> Network:
    """The embedded network (``None``) or the network directory ``network``."""
    return Network.load(DATA / DEFAULT if network is None else Path(network))


def memory(net: Network, samples: int, steps: int) -> int:
    """Bytes a run of ``samples x steps`` holds at its peak: the stimulus and every layer's trace (out; v and
    spikes for neurons), at :data:`BYTES_PER_VALUE` each."""
    per = int(np.prod(net.input_shape))
    for node in net.nodes:
        per += int(np.prod(node.layer.out_shape)) * (3 if isinstance(node.layer, Neuron) else 1)
    return samples * steps * per * BYTES_PER_VALUE


def run(network=None, *, samples: int = 8, steps: int = 8, seed: int = 0, out=print, name: str | None = None) -> dict:
    """Simulate the embedded network (``None``), the given directory's, or a loaded :class:`Network`; prints a
    report, returns its figures."""
    for what, v in (("samples", samples), ("steps", steps)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise NetworkError(f"{what}: expected an int >= 1, got {v!r}")
    net = network if isinstance(network, Network) else load(network)
    if name is None:
        name = DEFAULT if network is None else "network" if isinstance(network, Network) else Path(network).name
    x = stimulus(net, samples, steps, seed)
    net.plan(samples, steps)  # the timed run's neuron kernels, chosen (and compiled) before it
    net.simulate(x[:1, :1])  # compiles the layer kernels (and takes the plan's specialised neuron kernels)
    t0 = time.perf_counter()
    trace = net.simulate(x)
    dt = time.perf_counter() - t0
    out(f"golden network demo: {name} ({net.meta.get('model', net.meta.get('source', '?'))}), "
        f"digest {net.digest()[:16]}")
    out(f"input {net.input_shape} {net.fmt_input}, {samples} samples x {steps} steps, seed {seed}")
    rates = {}
    for name, lt in trace.layers.items():
        sat = {k: v for k, v in lt.overflow.items() if v}
        extra = f"spike rate {100 * lt.spike_rate:5.1f}%" if lt.spikes is not None else ""
        if lt.spikes is not None:
            rates[name] = lt.spike_rate
        out(f"  {name:28} {type_name(lt.layer):13} {lt.out.shape[2:]!s:14} {lt.fmt_out!s:7} "
            f"{extra:20} {'saturated/wrapped: ' + str(sat) if sat else ''}")
    y = trace.out.astype(np.int64).sum(axis=1)  # the output summed over the steps, per sample
    out(f"output {net.output!r}: per-sample argmax of the summed raw output: {y.argmax(axis=1).tolist()}")
    rate = samples * steps / dt
    out(f"simulate: {1e3 * dt:.2f} ms, {rate:,.0f} sample-steps/s")
    return {"trace": trace, "spike_rates": rates, "seconds": dt, "sample_steps_per_s": rate,
            "prediction": y.argmax(axis=1)}
