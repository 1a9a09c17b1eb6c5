"""The README recipe "a new layer type", done here: one class, one kernel, one reference function.

``Scale`` (an elementwise integer gain, ``Qact(k * Qi(x))``) is written in this file only: its
class registers under its TOML type name, its Numba kernel and its plain-Python reference compute
the accumulator, and a ``Network`` that uses it simulates on both families, equals hand-worked
integers, saves and loads back. Nothing in golden/ names it. Also: one quantization vocabulary
(``Round``/``Overflow`` members, one code per mode) and the registries' supported lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from numba import njit

import golden
from golden import datapath, quant
from golden.errors import NetworkError
from golden.network import Identity, Layer, Linear, Network, Neuron, Node, ops, reference
from golden.network import kernels as layer_kernels
from golden.network import layers as layers_mod
from golden.qualia.creaders import C_READERS
from golden.spec import QUALIA_NAME, QUALIA_ROUND, Overflow, QFormat, Round


# --------------------------------------------------- the kernel and the reference function
@njit(cache=False)
def scale_kernel(x, k, acc_bits):
    """Numba: acc = k * x, wrapped to acc_bits; (acc, number wrapped)."""
    flat = x.reshape(-1)
    out = np.empty(flat.size, np.int64)
    hits = 0
    sh = 64 - acc_bits
    for i in range(flat.size):
        a = flat[i] * k
        w = (a << sh) >> sh if acc_bits < 64 else a
        hits += w != a
        out[i] = w
    return out.reshape(x.shape), hits


def scale_reference(x, k, acc_bits):
    """Plain Python, from the definition: k * x as a Python int, narrowed by golden.quant."""
    res = [quant.narrow(int(v) * k, acc_bits, Overflow.WRAP) for v in np.asarray(x).reshape(-1)]
    return np.array([r[0] for r in res], np.int64).reshape(np.shape(x)), sum(r[1] for r in res)


# In golden itself these are ``scale`` in golden/network/kernels.py and golden/network/reference.py, and ``core``
# calls ``impl.scale``; a layer type outside the package picks its function by family.
SCALE = {layer_kernels: scale_kernel, reference: scale_reference}


# --------------------------------------------------------------------------- the class
@layers_mod.register("Scale")
@dataclass(frozen=True, kw_only=True)
class Scale(Layer):
    """``Qact(k * Qi(x))``: the exact product at frac q_in, then the output quantizer."""

    TYPE: ClassVar[str] = "Scale"
    SUMS: ClassVar[bool] = True  # float32 forms k * x: exact while float32_bound <= 2**24
    k: int

    def validate(self) -> None:
        if not isinstance(self.k, int) or isinstance(self.k, bool) or not -(1 << 15) <= self.k < 1 << 15:
            raise NetworkError(f"k: expected an int in -32768..32767, got {self.k!r}")

    def core(self, impl, params, xs, acc_bits=None):
        return SCALE[impl](xs[0], self.k, self.acc_bits if acc_bits is None else acc_bits)

    def float32_bound(self, params, x_max=None) -> int:
        return self.input_max(x_max) * abs(self.k) + self.half_lsb()

    def describe(self) -> str:
        return f"{super().describe()} k={self.k}"


def _net(k=-3, acc_bits=64):
    q84, q83 = QFormat(8, 4), QFormat(8, 3)
    nodes = [Node("id", Identity(in_shape=(4,), fmt_src=q84, fmt_in=q84, fmt_out=q84)),
             Node("scale", Scale(in_shape=(4,), fmt_src=q84, fmt_in=q84, fmt_out=q83, k=k, acc_bits=acc_bits,
                                 round_out="RND"), ("id",))]
    return Network((4,), q84, nodes)


X = np.array([1, -2, 50, 127], np.int8).reshape(1, 1, 4)  # (S, T, 4) at Q8.4


def test_a_new_layer_type_runs_on_both_families_and_equals_the_hand_worked_integers():
    net = _net()
    fast, slow = net.simulate(X, bounds=True), net.simulate(X, bounds=True, impl=reference)
    # acc = -3 x at frac 4 = [-3, 6, -150, -381]; to frac 3, RND (floor(y + 1/2)): -1.5 -> -1, 3, -75,
    # -190.5 -> -190, which saturates to -128 in 8 bits
    assert fast.out.reshape(-1).tolist() == slow.out.reshape(-1).tolist() == [-1, 3, -75, -128]
    assert fast.layers["scale"].overflow == slow.layers["scale"].overflow == {"in": 0, "acc": 0, "out": 1}
    assert fast.out.dtype == np.int8
    # the float32 bound: |x| <= 128 at frac 4, times 3, plus half an LSB at frac 4 -> 3 = 385 << 2**24
    assert net.float32_bounds()["scale"] == 128 * 3 + 1
    assert fast.layers["scale"].f32_exact.all()
    assert "Scale (4,)->(4,)" in net.describe() and "k=-3" in net.describe()


def test_a_new_layer_type_wraps_its_accumulator_on_both_families():
    net = _net(k=-3, acc_bits=8)  # -150 and -381 wrap in 8 bits: 106, -125
    fast, slow = net.simulate(X), net.simulate(X, impl=reference)
    assert fast.out.reshape(-1).tolist() == slow.out.reshape(-1).tolist() == [-1, 3, 53, -62]
    assert fast.layers["scale"].overflow["acc"] == slow.layers["scale"].overflow["acc"] == 2


def test_a_new_layer_type_saves_and_loads_by_its_registered_name(tmp_path):
    net = _net()
    back = Network.load(net.save(tmp_path / "net"))
    assert back["scale"].layer == net["scale"].layer and isinstance(back["scale"].layer, Scale)
    assert back.digest() == net.digest()
    assert 'type = "Scale"' in (tmp_path / "net" / "network.toml").read_text()
    np.testing.assert_array_equal(back.simulate(X).out, net.simulate(X).out)


def test_the_supported_list_is_the_registry():
    assert layers_mod.layer_class("Scale") is Scale and "Scale" in layers_mod.LAYERS.names()
    with pytest.raises(NetworkError, match=r"unknown layer type 'Conv3d' \(known: .*Scale"):
        layers_mod.layer_class("Conv3d")
    with pytest.raises(ValueError, match="registered twice"):
        layers_mod.register("Scale")(Linear)
    assert set(C_READERS.names()) == {
        "TAddLayer", "TBatchNormalization1DLayer", "TBatchNormalization2DLayer", "TConv1DLayer", "TConv2DLayer",
        "TDenseLayer", "TFlattenLayer", "TIfLayer", "TLifLayer", "TMaxPooling1DLayer", "TMaxPooling2DLayer",
        "TSumLayer"}


def test_a_bad_field_of_the_new_type_is_one_clean_line():
    with pytest.raises(NetworkError, match=r"^k: expected an int in -32768\.\.32767, got 'x'$"):
        _net(k="x")


# ------------------------------------------------------------ one quantization vocabulary
def test_layers_hold_round_and_overflow_members_and_take_their_toml_strings():
    layer = _net()["scale"].layer
    assert layer.round_out is Round.RND and layer.round_in is Round.RND
    assert layer.out_overflow is Overflow.SATURATE and layer.acc_overflow is Overflow.WRAP
    assert layer.replace(round_out="TRN_INF").round_out is Round.TRN_INF
    assert set(layers_mod.ROUNDS) == set(QUALIA_ROUND.values())
    assert all(QUALIA_ROUND[QUALIA_NAME[m]] is m for m in layers_mod.ROUNDS)
    with pytest.raises(NetworkError, match=r"^round_out: 'RND_CONV' is not one of TRN, TRN_INF, RND$"):
        layer.replace(round_out="RND_CONV")
    with pytest.raises(NetworkError, match=r"^acc_overflow: 'saturate' is not one of wrap, strict$"):
        layer.replace(acc_overflow="saturate")


def test_one_code_per_mode_in_every_engine():
    """RND is one code everywhere: the neuron datapath, the layer kernels and their reference."""
    for m in (Round.TRN, Round.TRN_INF, Round.RND):
        assert getattr(datapath, m.value) == getattr(layer_kernels, m.value) == m.code
        assert reference.ROUND_OF[m.code] is m
    assert (layer_kernels.SAT, layer_kernels.WRAP) == (reference.SAT, reference.WRAP) == (0, 1)
    x = np.array([-5, 6, -6, 127], np.int64)
    for m in layers_mod.ROUNDS:  # a quantizer called with a member, its string, on both families
        want = [quant.rescale(int(v), 2, m) for v in x]
        for impl in (layer_kernels, reference):
            assert ops.quantize(impl, x, QFormat(8, 4), QFormat(8, 2), m)[0].tolist() == want
            assert ops.quantize(impl, x, QFormat(8, 4), QFormat(8, 2), m.value)[0].tolist() == want


def test_the_network_counts_its_neuron_steps_in_the_open():
    """Network.neuron_steps: the neuron-steps run so far (it picks when neuron kernels specialise), set in __init__."""
    spec = golden.torch_eval("LIF", bits=8, q_v=4, q_in=4)
    q84 = QFormat(8, 4)
    net = Network((4,), q84, [Node("lif", Neuron.of(spec, (4,), q84))])
    assert net.neuron_steps == 0
    x = np.zeros((3, 5, 4), np.int8)
    net.simulate(x)
    net.simulate(x, impl=reference)
    assert net.neuron_steps == 2 * 3 * 5 * 4
    assert _net().simulate(X).network.neuron_steps == 0  # no neuron layer


# a module may name a kind without branching on it: a default, or a carrier spec whose kind does not matter
KIND_NAMED_NOT_BRANCHED = {
    "golden/cli/__init__.py": "the demo's default kind",
    "golden/cli/options.py": "--kind's default",
    "golden/vectors/network.py": "an IF spec that only carries the stimulus input format",
}


def test_the_neuron_kind_recipe_names_every_module_that_knows_a_kind_by_name():
    """README, "A neuron kind": the engines ask Kind's properties (has_leak, graded_spike, soft_reset_only), never
    its name; every module that names a kind (``Kind.LIF`` or the string ``"LIF"``) is one the recipe lists, so
    following the recipe reaches every place a new kind must be taught. A new name-dependent branch elsewhere
    fails here, naming its module."""
    import ast
    import re
    from pathlib import Path

    from golden.spec import Kind

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    para = readme[readme.index("**A neuron kind.**"):]
    listed = set(re.findall(r"`(golden/[^`]+?\.(?:py|c))`", para[:para.index("\n\n")]))
    names = {k.value for k in Kind}
    naming = set()
    for path in sorted((root / "golden").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            by_member = (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                         and node.value.id == "Kind" and node.attr in Kind.__members__)
            if by_member or (isinstance(node, ast.Constant) and node.value in names):
                naming.add(path.relative_to(root).as_posix())
    assert naming, "the scan found no module naming a kind: it sees nothing"
    assert naming - listed - set(KIND_NAMED_NOT_BRANCHED) == set()
    assert {p for p in listed if p.endswith(".py")} <= {p.relative_to(root).as_posix()
                                                        for p in (root / "golden").rglob("*.py")}
