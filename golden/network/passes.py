"""Big batches in passes of a few samples: the same values, with every layer's working arrays in cache.

:meth:`golden.network.graph.Network.simulate` runs each layer over all its rows (samples x steps) at once. At real
sizes and a batch of 32 a layer's int64 rows reach hundreds of MiB (DVS-Gesture's first convolution: 32 samples x
8 steps x 16x64x64 values = 134 MiB), so every elementwise stage streams from memory and pays the page faults of
fresh arrays: measured 3-5x slower per sample than one sample at a time (docs/bench.md). Samples are independent
(every neuron starts each sample from its initial potential; no layer mixes samples), so a batch run in passes of
:func:`samples_per_pass` samples, its traces joined along the sample axis (:func:`join`), is the same trace value
for value, overflow counts summed.

A pass holds at most :data:`PASS_BYTES` in any one layer's int64 rows (at least one sample per pass).
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import numpy as np

PASS_BYTES = 8 << 20  # one layer's int64 rows in one pass: a few MiB stay in L2/L3 between a layer's stages


def samples_per_pass(nodes, input_shape, samples: int, steps: int, budget: int | None = None) -> int:
    """Samples per pass so that no layer's int64 rows (its input's, each output's) exceed ``budget`` bytes
    (default :data:`PASS_BYTES`); at least 1, at most ``samples``."""
    budget = PASS_BYTES if budget is None else int(budget)
    widest = max([math.prod(input_shape)] + [math.prod(n.layer.out_shape) for n in nodes])
    per_sample = 8 * max(int(steps), 1) * widest
    return max(1, min(int(samples), budget // per_sample))


def _cat(arrays):
    return None if arrays[0] is None else np.concatenate(arrays, axis=0)


def join(parts: list) -> OrderedDict:
    """The layer traces of consecutive passes (each an ordered name -> LayerTrace, samples first) as one: every
    array concatenated along the sample axis, every overflow count summed."""
    joined = OrderedDict()
    for name, first in parts[0].items():
        each = [p[name] for p in parts]
        overflow = {k: sum(int(lt.overflow[k]) for lt in each) for k in first.overflow}
        joined[name] = dataclasses.replace(
            first, out=_cat([lt.out for lt in each]), overflow=overflow, f32_exact=_cat([lt.f32_exact for lt in each]),
            v=_cat([lt.v for lt in each]), spikes=_cat([lt.spikes for lt in each]))
    return joined
