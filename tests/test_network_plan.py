"""A network layer's kernel is chosen before the run and kept (issue 20, item 2): no call compiles in mid-use.

Not timing tests: they check *when* kernels are chosen and compiled (counting Numba compiles), and that the
choice changes no value.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba.core import dispatcher

from golden import kernels
from golden.network import graph, npkernels
from golden.network.demo import load, stimulus
from golden.simulate import kernel_args


@pytest.fixture
def compiles(monkeypatch):
    """The list of every Numba compile from here on (dispatcher, signature), cache loads included."""
    seen = []
    real = dispatcher.Dispatcher.compile

    def counted(self, sig):
        seen.append((self.py_func.__qualname__, sig))
        return real(self, sig)

    monkeypatch.setattr(dispatcher.Dispatcher, "compile", counted)
    return seen


def _outs(trace) -> dict:
    return {name: (lt.out.copy(), None if lt.v is None else lt.v.copy()) for name, lt in trace.layers.items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k][0], b[k][0]) and
                                        (a[k][1] is None or np.array_equal(a[k][1], b[k][1])) for k in a)


def test_the_plan_is_chosen_before_the_run_and_the_second_call_compiles_nothing(monkeypatch, compiles):
    """Call 1 plans (and compiles what it plans) before any layer runs; calls 2 and 3 on the same shapes take the
    same plan object and compile nothing, whatever ran before (no neuron-step counter decides)."""
    net = load()
    x = stimulus(net, 3, 5, seed=1)
    monkeypatch.setattr(graph, "SPECIALISE_AT", 3 * 5 * 50)  # neuron1 (64 neurons) specialised, neuron2 (48) not
    monkeypatch.setattr(npkernels, "TINY", 0)  # every other layer on the Numba family (compiled by call 1)
    plan = net.plan(3, 5)
    assert plan == {"layers.neuron1": graph.SPECIALISED, "layers.neuron2": graph.GENERIC,
                    **{n.name: graph.NUMBA for n in net.nodes if "neuron" not in n.name}}
    code, consts = kernel_args(net["layers.neuron1"].layer.spec)
    assert kernels.has_specialised(code, consts)  # made by the plan, before any simulate
    first = _outs(net.simulate(x))
    assert net.plan(3, 5) is plan
    for _ in range(2):
        compiles.clear()
        assert _same(_outs(net.simulate(x)), first)
        assert compiles == [] and net.plan(3, 5) is plan
    for _ in range(50):  # many more neuron-steps than SPECIALISE_AT, on another shape: the plan of (3, 5) holds
        net.simulate(x[:1, :1])
    compiles.clear()
    assert _same(_outs(net.simulate(x)), first) and compiles == [] and net.plan(3, 5) == plan


def test_a_plan_is_a_function_of_the_shapes_and_changes_no_value(monkeypatch):
    """A layer whose share of one call reaches SPECIALISE_AT is specialised, a smaller one generic; a network that
    ran other shapes first plans the same; specialise() takes every layer to its specialised kernel; every choice
    gives the same trace."""
    net = load()
    x = stimulus(net, 2, 4, seed=2)
    monkeypatch.setattr(graph, "SPECIALISE_AT", 1 << 30)  # nothing large enough: generic, as a property campaign
    monkeypatch.setattr(kernels, "has_specialised", lambda code, c: False)
    assert {v for k, v in net.plan(2, 4).items() if "neuron" in k} == {graph.GENERIC}
    generic = _outs(net.simulate(x))
    monkeypatch.setattr(graph, "SPECIALISE_AT", 1)  # everything large enough
    other = load()
    other.simulate(x[:1, :2])
    neurons = lambda plan: {v for k, v in plan.items() if "neuron" in k}  # noqa: E731
    assert neurons(other.plan(2, 4)) == {graph.SPECIALISED} == neurons(load().plan(2, 4))
    assert _same(_outs(other.simulate(x)), generic)
    monkeypatch.setattr(graph, "SPECIALISE_AT", 1 << 30)
    monkeypatch.undo()  # has_specialised back: specialise() makes every kernel, and later plans take them
    net.specialise()
    assert neurons(net.plan(2, 4)) == {graph.SPECIALISED}
    assert _same(_outs(net.simulate(x)), generic)


def test_synaptic_layers_choose_their_route_from_the_weights_once(monkeypatch, compiles):
    """The GEMM route's range analysis (sum |w| per output) runs once per read-only weight array, the Conv1d's view
    of it included, not once per call: the second call of a network computes no bound and compiles nothing."""
    from golden.network import gemm

    net = load()
    x = stimulus(net, 2, 3, seed=3)
    monkeypatch.setattr(npkernels, "TINY", 0)  # the Numba family, whose Linear / Conv may take the GEMM route
    sums = []
    real = gemm.row_sums
    monkeypatch.setattr(gemm, "row_sums", lambda w: sums.append(np.shape(w)) or real(w))
    first = _outs(net.simulate(x))
    assert len(sums) == 3  # the first call: one bound per Linear / Conv weight array (its route, chosen)
    compiles.clear()
    sums.clear()
    assert _same(_outs(net.simulate(x)), first)
    assert sums == [] and compiles == []
