"""Whole networks: layer specs, their kernels and references, the ``Network`` graph and its simulation.

    net = golden.network.Network.load("net/")        # or golden.from_torch(model) on a Qualia model
    trace = net.simulate(net.quantize_input(x))      # x: (samples, steps, *input_shape), channels-first
    trace.layers["layers.neuron1"].spikes            # every layer's raw outputs, (S, T, *out_shape)

    net_c = golden.from_torch(built, profile="codegen", width=8, long_width=32)   # the C Qualia deploys
    diff_networks(net_torch, net_c, x_raw).first     # first divergence per sample and its cause
"""

# ``demo`` is the function (the embedded network's run). Imported here, after the submodule of the same name, so
# the package attribute stays the function whatever imports ``golden.network.demo`` later.
from .demo import run as demo
from .diff import CAUSES, NetworkDiff, diff_networks
from .graph import INPUT, LayerTrace, Network, Node, Trace
from .layers import (
    LAYERS,
    Add,
    BatchNorm,
    Conv,
    Flatten,
    GlobalSumPool,
    Identity,
    Layer,
    Linear,
    MaxPool,
    NetworkError,
    Neuron,
    Weighted,
    float32_bound,
    register,
)

__all__ = ["CAUSES", "INPUT", "LAYERS", "Add", "BatchNorm", "Conv", "Flatten", "GlobalSumPool", "Identity", "Layer",
           "LayerTrace", "Linear", "MaxPool", "Network", "NetworkDiff", "NetworkError", "Neuron", "Node", "Trace",
           "Weighted", "demo", "diff_networks", "float32_bound", "load", "register"]


def load(directory) -> Network:
    """A saved network directory (network.toml + weights.npz), hashes checked."""
    return Network.load(directory)


