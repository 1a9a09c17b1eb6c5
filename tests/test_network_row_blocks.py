"""The row-blocked kernels (Conv, by blocks of ``kernels.ROW_BLOCK`` rows side by side) equal the plain-Python
reference at row counts that cross the block boundary: test_network_kernels draws 1 to 3 rows, inside one block."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from test_network_kernels import cases

from golden.network import Conv, kernels, ops, reference

B = kernels.ROW_BLOCK
ROWS = st.sampled_from([B - 1, B, B + 1, 2 * B + 3])


@given(cases(), ROWS, st.integers(0, 2**32 - 1))
def test_blocked_kernels_equal_references_across_blocks(case, rows, seed):
    layer, params, _ = case
    if not isinstance(layer, Conv):
        return
    rng = np.random.default_rng(seed)
    fmt = layer.fmt_src
    x = rng.integers(fmt.min, fmt.max + 1, (rows, *layer.in_shape))
    x[rng.random(x.shape) < 0.1] = fmt.max  # the format's edges, where accumulators wrap
    x[rng.random(x.shape) < 0.1] = fmt.min
    got, want = ops.run(kernels, layer, params, [x]), ops.run(reference, layer, params, [x])
    np.testing.assert_array_equal(got["out"], want["out"])
    assert got["overflow"] == want["overflow"]
