"""The network demo: the embedded small network (golden/data/), run with numpy and numba only.

``run()`` loads the committed network directory (hashes checked), feeds it a
deterministic stimulus (static frames U(0, 2), repeated over the steps: Qualia's
'duplicate' timestep mode) and prints, per layer, what it did, then the model
output and the throughput.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .graph import Network
from .layers import NetworkError, type_name

DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT = "scnn1d_lif8"


def stimulus(net: Network, samples: int, steps: int, seed: int) -> np.ndarray:
    """Raw inputs (samples, steps, *input_shape): one U(0, 2) frame per sample, repeated over the steps."""
    rng = np.random.default_rng(seed)
    frames = rng.random((samples, *net.input_shape), dtype=np.float32) * np.float32(2)
    return net.quantize_input(np.repeat(frames[:, None], steps, axis=1))


def run(network=None, *, samples: int = 8, steps: int = 8, seed: int = 0, out=print) -> dict:
    """Simulate the embedded (or the given directory's) network; prints a report, returns its figures."""
    for name, v in (("samples", samples), ("steps", steps)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise NetworkError(f"{name}: expected an int >= 1, got {v!r}")
    path = DATA / DEFAULT if network is None else Path(network)
    net = Network.load(path)
    x = stimulus(net, samples, steps, seed)
    net.simulate(x[:1, :1])  # compile
    t0 = time.perf_counter()
    trace = net.simulate(x)
    dt = time.perf_counter() - t0
    out(f"golden network demo: {path.name} ({net.meta.get('model', net.meta.get('source', '?'))}), "
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
