"""golden.ckernel, the second executable model: its C equals golden's kernels for arbitrary specs and stimuli,
and it refuses what it cannot compute, in one line."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import golden
from golden import ckernel
from golden.strategies import specs, stimuli

from proofs import missing_gcc, record, requires

pytestmark = requires(missing_gcc())

NON_STRICT = specs().filter(lambda s: "strict" not in (s.v_overflow, s.acc_overflow))


@settings(max_examples=8)  # one gcc compile per example
@given(st.data())
def test_c_kernel_equals_golden_on_drawn_specs(data):
    spec = data.draw(NON_STRICT, label="spec")
    x = data.draw(stimuli(spec, max_steps=16, max_neurons=8), label="x").astype(spec.fmt_in.dtype)
    note(spec.to_toml())
    with tempfile.TemporaryDirectory() as tmp:
        ck = ckernel.CKernel(spec, Path(tmp))
        want = golden.simulate(spec, x)
        for threads in (1, 2):
            out, v, spikes, counts = ck(x, threads)
            differ = (out != want.out) | (v != want.v) | (spikes != want.spikes)
            record("golden C kernel", "golden.ckernel's C of the same spec (gcc, 1 and 2 threads)", x.size,
                   int(differ.sum()))
            assert not differ.any(), np.argwhere(differ)[0]
            assert counts.tolist() == list(want.overflow.values())


def test_strict_policy_refused():
    spec = golden.hardware("IF", overflow="strict")
    with pytest.raises(golden.GoldenError, match="no strict overflow policy"):
        ckernel.c_source(spec)


def test_source_is_definitions_then_the_packaged_c():
    spec = golden.codegen("LIF")
    text = ckernel.c_source(spec)
    assert text.startswith(f"/* {spec.describe()} */\n#define GOLDEN_SPEC 1")
    assert "void golden_c(" in text and f"KIND = {spec.kind.code}" in text and f"ROUND = {spec.round.code}" in text
