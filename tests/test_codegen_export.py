"""The export check: ``golden.from_torch(module, profile="codegen", ...)`` holds the integers qualia-codegen writes.

A tiny real Qualia model (qualia-plugin-snn's ``QuantizedSMLP``: Flatten ->
QuantizedLinear -> QuantizedLIFNode / QuantizedIFNode -> QuantizedLinear,
unforced fixed-point quantizers) is calibrated in train mode. Then the real
deployment chain runs, unmodified, into a temporary directory:

1. ``QuantizationAwareTraining``'s own activation-range export writes
   ``out/learningmodel/<name>_activations_range.txt`` (every layer's q's and
   round modes);
2. qualia-codegen-plugin-snn's ``TorchModelGraph`` traces the model and
   qualia-plugin-snn's ``QualiaCodeGen`` postprocessing annotates it with that
   file and runs qualia-codegen's ``Converter``, which quantizes the
   hyperparameters and writes ``weights/<layer>.c`` and ``<layer>.c``.

The generated files are parsed: the neuron layer's ``v_threshold``,
``v_reset`` and ``reciprocal_tau`` integers, and its ``#define``s
(INPUT/WEIGHTS/OUTPUT_SCALE_FACTOR, NUMBER_T, LONG_NUMBER_T, SOFTRESET,
DECAY_INPUT, OUTPUT_ROUND_MODE). ``from_torch`` must give the same integers
and the same formats and modes; its ``q_in`` is the previous layer's output q,
which is what the C layer is fed.

The converter is run on the model in two ways:

- the quantized model itself, its quantized layers mapped to the float ones
  exactly as qualia-plugin-snn's own ``EnergyEstimationMetric`` does (the
  converter then reads the module's current hyperparameters, as from_torch
  does): the integers must match, always;
- the way ``qualia prepare_deploy`` does it: the *float* twin (``SMLP`` with
  the configured neuron parameters) with the quantized model's state_dict
  loaded. The spiking neuron's hyperparameters are not in the state_dict, so
  the C gets the configured values. They match too, unless calibration
  re-quantized a hyperparameter at a coarser q than it had before
  (``test_prepare_deploy_hyperparameter_drift`` shows one: an upstream quirk). This drift is common: in
  about half of the CASES below one of v_threshold, v_reset, 1/tau ends one LSB away from the configured
  value, so the deployed C and the quantized model that was evaluated in PyTorch differ by that LSB;
  ``golden.codegen`` of the configured values always gives the deployed integers.

Nothing is written into the repository: the outputs go to pytest's tmp_path.
"""

from __future__ import annotations

import copy
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import golden
from golden.spec import Kind

from proofs import record, requires

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        from qualia_codegen_core.graph.ActivationsRange import ActivationsRange
        from qualia_codegen_plugin_snn.graph import TorchModelGraph
        from qualia_core.postprocessing.QuantizationAwareTraining import QuantizationAwareTraining
        from qualia_plugin_snn.learningmodel.pytorch.layers import quantized_SNN_layers as qsjn
        from qualia_plugin_snn.learningmodel.pytorch.layers.spikingjelly import quantized_layers as qsjl
        from qualia_plugin_snn.learningmodel.pytorch.QuantizedSMLP import QuantizedSMLP
        from qualia_plugin_snn.learningmodel.pytorch.SMLP import SMLP
        from qualia_plugin_snn.postprocessing.QualiaCodeGen import QualiaCodeGen
        from spikingjelly.activation_based import functional
        from spikingjelly.activation_based import layer as sjl
        from spikingjelly.activation_based import neuron as sjn
        from torch import nn
    STACK = True
except Exception:
    STACK = False

pytestmark = requires(None if STACK else "the torch / spikingjelly / Qualia stack does not import")

INPUT_SHAPE = (2, 4)  # Flatten needs a (samples, channels) input; 8 features
UNITS = 8  # QuantizedSMLP with one hidden layer requires units == prod(input_shape) (its last Linear's in_features)
NEURON = "layers_neuron1"  # the traced name, as the activation-range export and the generated C spell it


def quant_params(bits: int, round_v: str, round_act: str) -> dict:
    return {"quant_enable": True, "LSQ": False, "quantype": "fxp", "range_setting": "minmax", "is_asymmetric": False,
            "bits": bits, "roundtype": "nearest", "force_q": None,
            "v": {"roundtype": round_v}, "act": {"roundtype": round_act}}


def neuron_conf(kind: str, *, tau, v_threshold, v_reset, decay_input) -> dict:
    params = {"v_threshold": v_threshold, "v_reset": False if v_reset is None else v_reset, "step_mode": "s",
              "detach_reset": True}
    if Kind(kind).has_leak:
        params.update(tau=tau, decay_input=decay_input)
    return {"kind": f"{kind}Node", "params": params}


def calibrated_model(kind, *, bits, round_v="nearest", round_act="nearest", tau=3.0, v_threshold=0.8, v_reset=-0.25,
                     decay_input=True, gain=3.0, seed=0, steps=4, batches=3):
    """A QuantizedSMLP whose quantizers were calibrated in train mode (the neuron must have spiked, else Qualia's
    quantizer_act keeps global_max == 0, which from_torch refuses)."""
    conf = neuron_conf(kind, tau=tau, v_threshold=v_threshold, v_reset=v_reset, decay_input=decay_input)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = QuantizedSMLP(input_shape=INPUT_SHAPE, output_shape=(3,), units=[UNITS],
                              quant_params=quant_params(bits, round_v, round_act), timesteps=steps,
                              neuron=copy.deepcopy(conf))
        model.train()
        with torch.no_grad():
            for _ in range(batches):
                functional.reset_net(model)
                for _ in range(steps):
                    model(gain * torch.randn(16, *INPUT_SHAPE))
    model.eval()
    return model, conf


# ------------------------------------------------------------------------------------------------- the converter
def _export_activation_ranges(model, workdir: Path, name: str) -> Path:
    """QuantizationAwareTraining's own exporter (a private method; it uses nothing of ``self``)."""
    (workdir / "out" / "learningmodel").mkdir(parents=True, exist_ok=True)
    export = QuantizationAwareTraining._QuantizationAwareTraining__export_activation_ranges
    import os

    cwd = os.getcwd()
    os.chdir(workdir)  # it writes to out/learningmodel/ relative to the working directory
    try:
        export(None, model, name)
    finally:
        os.chdir(cwd)
    return workdir / "out" / "learningmodel" / f"{name}_activations_range.txt"


def _quantized_layer_mapping():
    """The quantized layers mapped to their float counterparts, as qualia-plugin-snn's EnergyEstimationMetric maps
    them for its own TorchModelGraph conversion of a quantized model."""
    M = TorchModelGraph.MODULE_MAPPING
    return {sjl.Flatten: M[nn.Flatten], qsjl.QuantizedLinear: M[nn.Linear],
            qsjn.QuantizedLIFNode: M[sjn.LIFNode], qsjn.QuantizedIFNode: M[sjn.IFNode]}


def run_converter(model, workdir: Path, *, width: int, long_width: int, deploy_model=None) -> dict:
    """Run the real chain; returns the neuron layer's exported integers and #defines.

    ``deploy_model``: convert that model (the float twin) instead, with ``model``'s activation ranges, as
    ``qualia prepare_deploy`` does.
    """
    ranges = _export_activation_ranges(model, workdir, "golden_export")
    quantize = {8: "int8", 16: "int16"}.get(width, "int16")  # QualiaCodeGen knows int8/int16; width is passed below
    qcg = QualiaCodeGen(quantize=quantize, long_width=long_width)
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if deploy_model is None:
                functional.set_step_mode(model, "s")
                graph = TorchModelGraph(model).convert(custom_layers=_quantized_layer_mapping())
            else:
                graph = qcg.convert_model_to_modelgraph(deploy_model)
            assert graph is not None, "TorchModelGraph conversion failed"
            ar = ActivationsRange().load(ranges, "input")
            graph = qcg._annotate_modelgraph_with_quantization(graph, ar, number_type=int, width=width,
                                                               long_width=long_width)
            out = workdir / ("gen_deploy" if deploy_model is not None else "gen")
            h = qcg.convert_modelgraph_to_c(graph, output_path=out)
    finally:
        logging.disable(logging.NOTSET)
    assert isinstance(h, str) and h, "qualia-codegen's Converter failed"
    layer = f"cnn_{NEURON}"
    weights = (out / "weights" / f"{layer}.c").read_text()
    ints = {m.group(1): int(m.group(2)) for m in re.finditer(rf"\b{layer}_(\w+) = (-?\d+);", weights)}
    code = (out / f"{layer}.c").read_text()
    defines = dict(re.findall(r"^#define (\w+) +(\S+)\s*$", code, flags=re.M))
    return {"ints": ints, "defines": defines, "weights_text": weights}


def spec_fields(spec) -> dict:
    out = {"v_threshold": spec.v_threshold, "reciprocal_tau": spec.reciprocal_tau}
    if spec.reset == "hard":
        out["v_reset"] = spec.v_reset
    if not spec.kind.has_leak:
        out.pop("reciprocal_tau")
    return out


def check_against(spec, exported: dict, kind: str, *, width: int, long_width: int, q_in: int) -> None:
    want = exported["ints"]
    got = spec_fields(spec)
    record("codegen export", "qualia-codegen's converter (the integers it exports)", len(want),
           sum(got.get(k) != v for k, v in want.items()), unit="exported integers")
    assert got == want, (f"from_torch integers {got} != qualia-codegen's {want}\n{exported['weights_text']}\n"
                         f"{spec.to_toml()}")
    d = exported["defines"]
    ctype = {8: "int8_t", 16: "int16_t", 32: "int32_t", 64: "int64_t"}
    assert d["NUMBER_T"] == ctype[width] and spec.fmt_v.bits == width
    assert d["LONG_NUMBER_T"] == ctype[long_width] and spec.acc_bits == long_width
    assert int(d["INPUT_SCALE_FACTOR"]) == spec.fmt_in.frac == q_in
    assert int(d["WEIGHTS_SCALE_FACTOR"]) == spec.fmt_v.frac
    assert int(d["OUTPUT_SCALE_FACTOR"]) == spec.fmt_out.frac
    assert int(d["TMP_SCALE_FACTOR"]) == spec.work_frac
    assert d["OUTPUT_ROUND_MODE"] == {"RND": "ROUND_MODE_NEAREST", "TRN": "ROUND_MODE_FLOOR"}[spec.round]
    assert int(d["SOFTRESET"]) == (spec.reset == "soft")
    if spec.kind.has_leak:
        assert int(d["DECAY_INPUT"]) == spec.decay_input


CASES = [
    # kind, bits/width, long_width, round_v, round_act, tau, v_threshold, v_reset, decay_input
    ("LIF", 8, 16, "nearest", "nearest", 3.0, 0.8, -0.25, True),
    ("LIF", 8, 16, "floor", "floor", 1.7, 0.55, None, True),
    ("LIF", 8, 32, "nearest", "floor", 7.3, 1.3, 0.1, False),
    ("LIF", 8, 16, "floor", "nearest", 2.0, 0.9, None, False),
    ("IF", 8, 16, "nearest", "nearest", None, 0.7, -0.3, True),
    ("IF", 8, 16, "floor", "nearest", None, 1.1, None, True),
    ("LIF", 16, 32, "nearest", "nearest", 3.0, 0.8, -0.25, True),
    ("LIF", 16, 64, "floor", "nearest", 5.5, 0.37, None, False),
    ("IF", 16, 32, "nearest", "floor", None, 0.8, 0.2, True),
    ("LIF", 32, 64, "nearest", "nearest", 3.0, 0.8, -0.25, True),
    ("IF", 32, 64, "floor", "floor", None, 0.6, None, True),
]


@pytest.mark.parametrize(("kind", "width", "long_width", "round_v", "round_act", "tau", "vth", "vr", "decay"), CASES)
def test_from_torch_matches_converter(tmp_path, kind, width, long_width, round_v, round_act, tau, vth, vr, decay):
    model, _ = calibrated_model(kind, bits=width, round_v=round_v, round_act=round_act, tau=tau, v_threshold=vth,
                                v_reset=vr, decay_input=decay)
    exported = run_converter(model, tmp_path, width=width, long_width=long_width)
    q_in = model.layers["fc1"].activation_q  # the C layer is fed the previous layer's output, at its q
    spec = golden.from_torch(model.layers["neuron1"], profile="codegen", width=width, long_width=long_width,
                             q_in=q_in)
    check_against(spec, exported, kind, width=width, long_width=long_width, q_in=q_in)


def _deploy_twin(model, conf):
    """What ``qualia prepare_deploy`` converts: the float model of the same config, with the trained state_dict."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twin = SMLP(input_shape=INPUT_SHAPE, output_shape=(3,), units=[UNITS], timesteps=4, neuron=copy.deepcopy(conf))
        twin.load_state_dict(model.state_dict(), strict=False)
    return twin


@pytest.mark.parametrize("case", [c for c in CASES if c[1] != 32])  # QualiaCodeGen deploys int8 / int16 only
def test_prepare_deploy_path(tmp_path, case):
    """The deployment path: integers equal from_torch's whenever no hyperparameter drifted during calibration,
    i.e. the configured value and the module's current one quantize alike at the final q_v."""
    kind, width, long_width, round_v, round_act, tau, vth, vr, decay = case
    model, conf = calibrated_model(kind, bits=width, round_v=round_v, round_act=round_act, tau=tau, v_threshold=vth,
                                   v_reset=vr, decay_input=decay)
    exported = run_converter(model, tmp_path, width=width, long_width=long_width,
                             deploy_model=_deploy_twin(model, conf))
    lif = model.layers["neuron1"]
    q_in = model.layers["fc1"].activation_q
    spec = golden.from_torch(lif, profile="codegen", width=width, long_width=long_width, q_in=q_in)
    config = golden.codegen(kind, width=width, long_width=long_width, q_v=spec.fmt_v.frac, q_in=q_in,
                            q_out=spec.fmt_out.frac, tau=tau, v_threshold=vth, v_reset=vr, decay_input=decay,
                            round=round_v, round_out=round_act)
    # the C of the deployed float twin is golden.codegen of the *configured* values, always
    check_against(config, exported, kind, width=width, long_width=long_width, q_in=q_in)
    if spec_fields(config) == spec_fields(spec):
        check_against(spec, exported, kind, width=width, long_width=long_width, q_in=q_in)


def test_prepare_deploy_hyperparameter_drift(tmp_path):
    """Upstream quirk: calibration re-quantizes the hyperparameters at every q it passes through.

    tau = 3 at 8 bits: the first calibration step sees global_max = 0.8 (the threshold), so q_v = 7 and 1/tau
    becomes 43/128; once v grows past 1, q_v = 6 and 43/128 re-quantizes to 22/64 (a double rounding). The quantized
    model (what torch-eval runs, and what from_torch reads) now leaks by 22/64, but ``prepare_deploy`` converts the
    float twin built from the config, and the C leaks by round(64/3) = 21/64.
    """
    model, conf = calibrated_model("LIF", bits=8, tau=3.0, v_threshold=0.8, v_reset=-0.25, decay_input=True, gain=1.0)
    lif = model.layers["neuron1"]
    assert lif.quantizer_v.fractional_bits == 6
    q_in = model.layers["fc1"].activation_q
    spec = golden.from_torch(lif, profile="codegen", width=8, long_width=16, q_in=q_in)
    deployed = run_converter(model, tmp_path, width=8, long_width=16, deploy_model=_deploy_twin(model, conf))
    direct = run_converter(model, tmp_path, width=8, long_width=16)
    assert spec.reciprocal_tau == direct["ints"]["reciprocal_tau"] == 22
    assert deployed["ints"]["reciprocal_tau"] == 21, "the drift is gone upstream: update docs/quirks.md"
    assert float(np.float32(1 / lif.tau)) * 64 == 22  # the module itself holds the drifted value
    # and golden.codegen of the configured values is what prepare_deploy's C holds
    config = golden.codegen("LIF", width=8, long_width=16, q_v=6, q_in=q_in, q_out=spec.fmt_out.frac, tau=3.0,
                            v_threshold=0.8, v_reset=-0.25)
    assert spec_fields(config) == deployed["ints"]
