"""A real Qualia project -> a golden :class:`~golden.network.Network`: the user's config and run, no glue code.

``qualia CONFIG train`` leaves, per quantized model and run ``i``, two artifacts in ``out/learningmodel/``:
``<run name>_r<i>.pth`` (the state_dict the QuantizationAwareTraining postprocessing exports, ``export = true``)
and ``<run name>_r<i>_activations_range.txt`` (one row per quantized layer: bits, q and round mode of its input,
output, weights or potential, bias). The calibrated ranges themselves (each quantizer's ``global_max``) are not
saved: the .txt is the only record of the q's, and it is what Qualia's deployment converter reads.

:func:`from_qualia` rebuilds the model with the installed Qualia, through its own code:

1. the config as Qualia's ``main`` reads it: ``parse_config`` (``[model_template]`` merged into each ``[[model]]``),
   its ``includes`` merged, ``validate_config_dict``;
2. the input/output shapes as Qualia's ``instantiate_model`` sets them: the model's ``params`` if given, else
   the training set Qualia exported (``out/data/<dataset>/train``);
3. the quantized model with ``QuantizationAwareTraining._build_quantized_model`` (Qualia's merge of
   ``params.model.params``, the model's ``update`` and ``params``; the ``Quantized<kind>`` class of the
   learningframework; a strict ``load_state_dict``), fed the run's exported .pth; the run name is the one
   Qualia's ``process_name`` gives once that merge is done, as at train time;
4. each quantizer's calibration from the activation-range file: ``global_max = 2**(bits - 2 - q)`` is a range
   for which Qualia's own scale and ``fractional_bits`` give that q; every row is then read back through
   Qualia's properties (``input_q``, ``activation_q``, ``weights_q``, ``bias_q``, the bits and round modes) and
   must equal the file, and every enabled quantizer must have been restored.

5. the postprocessings around QuantizationAwareTraining, in the config's order: before it, each one's
   ``process_name`` and (on the float model, as ``prepare_deploy`` does) ``process_model``, whose model config QAT
   then receives (FuseBatchNorm turns ``batch_norm`` off); after it, each one's ``process_name`` and
   ``process_model`` on the quantized model (the code its ``__call__`` runs on the run's model), its exported
   ``.pth`` loaded when the run wrote one;

and returns ``golden.from_torch(model.eval(), profile=...)``. For the codegen profile, the deployment's
``timestep_mode`` is recorded, and a run whose model a postprocessing after QAT changed is deployed only if
Qualia's own ``prepare_deploy`` steps can (otherwise refused, naming where Qualia fails).

What the artifacts cannot say: a quantizer whose run-time ``global_max`` was 0 (a layer that never spiked while
it was calibrated) is written as q = bits - 2, like a range in [1, 2), while the run's torch model used scale 1.
The rebuilt model follows the file, as Qualia's deployment does; ``net.meta["qualia_project"]`` says so.
Nor does the file record a QuantizedAdd's two input quantizers: each takes the q of the layer output it
re-quantizes (so that re-quantizing is the identity, as the deployment, which reads only the file, assumes).
The tests compare the rebuilt network with the run's own model (pickled by the test driver), not with a rebuild.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib
import inspect
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import ProjectError

QAT = "QuantizationAwareTraining"
FIELDS = ("input", "activation", "weights", "bias")  # the activation-range file's column groups, in order
PROFILES = ("torch-eval", "codegen")
NOTE = ("rebuilt from the run's .pth and activation-range file; a quantizer the run calibrated to global_max 0 "
        "(scale 1 in torch) is recorded as q = bits - 2 and follows the file, as Qualia's deployment does; a "
        "QuantizedAdd's input quantizers (not recorded) take their producer's output q")


@dataclass(frozen=True)
class Run:
    """The artifacts of one quantized model of one run: what :func:`from_qualia` read."""

    config: str  # the config file, or "<dict>"
    model: str  # the [[model]] name
    index: int  # its position among the config's [[model]] entries
    name: str  # the run name Qualia gave it (postprocessings' process_name)
    iteration: int
    weights: Path  # <QAT's run name>_r<i>.pth
    ranges: Path  # <QAT's run name>_r<i>_activations_range.txt
    postprocessed: tuple = ()  # the postprocessings after QAT that changed the model (e.g. FuseBatchNorm)
    final_weights: Path | None = None  # <name>_r<i>.pth of the changed model, loaded last (when the run exported it)
    deployable: str | None = None  # why Qualia's own prepare_deploy cannot deploy the changed model (None: it can)
    deploy_name: str | None = None  # the run name prepare_deploy gives this entry (it ignores `update`)

    def meta(self) -> dict:
        out = {"config": self.config, "model": self.model, "model_index": self.index, "run_name": self.name,
               "iteration": self.iteration, "weights": str(self.weights), "weights_sha256": _sha256(self.weights),
               "activations_range": str(self.ranges), "activations_range_sha256": _sha256(self.ranges),
               "note": NOTE}
        if self.deploy_name not in (None, self.name):
            out["prepare_deploy_name"] = self.deploy_name
            out["prepare_deploy_note"] = (f"Qualia's prepare_deploy names this [[model]] {self.deploy_name} (from the "
                                          f"QAT postprocessing's own quant_params, ignoring the entry's update) and "
                                          f"deploys that run's weights and ranges, not this run's")
        if self.postprocessed:
            out["postprocessed_after_qat"] = ",".join(self.postprocessed)
            if self.final_weights is not None:
                out["final_weights"] = str(self.final_weights)
                out["final_weights_sha256"] = _sha256(self.final_weights)
        return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- the config
def load_config(config) -> tuple[dict, str]:
    """The config as Qualia's ``main`` reads it: ``parse_config`` (each file's ``[model_template]`` merged into its own
    ``[[model]]`` list), then every file of ``includes`` merged under it (:func:`merge_includes`), then
    ``validate_config_dict``. ``config``: a TOML path, or a dict (parsed already: its ``[model_template]`` is merged
    into its ``[[model]]`` entries first, idempotently)."""
    from qualia_core.utils.merge_dict import merge_dict

    if isinstance(config, dict):
        cfg, where = copy.deepcopy(config), "<dict>"
        models, template = cfg.get("model"), cfg.get("model_template")
        if isinstance(template, dict) and isinstance(models, list) and all(isinstance(m, dict) for m in models):
            cfg["model"] = [merge_dict(m, copy.deepcopy(template)) for m in models]
    else:
        where = str(config)
        cfg = _parse(Path(config), "config")
    cfg = merge_includes(cfg, where)
    models = cfg.get("model")
    if not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models):
        raise ProjectError(f"{where}: no [[model]] entry; a Qualia config lists its models as [[model]] tables")
    return _validated(cfg, where), where


def _parse(path: Path, what: str) -> dict:
    """``qualia_core.utils.config.parse_config`` of one file, its failures as one line."""
    if not path.is_file():
        raise ProjectError(f"{path}: no such {what} file; give the Qualia configuration TOML the run used")
    from qualia_core.utils.config import parse_config

    try:
        cfg, _ = parse_config(path)
    except KeyError as e:  # parse_config merges [model_template] into the [[model]] list it expects
        if e.args == ("model",):
            raise ProjectError(f"{path}: [model_template] but no [[model]] entry; Qualia merges a file's template "
                               f"into that file's own [[model]] tables") from None
        raise ProjectError(f"{path}: not a Qualia TOML configuration (missing {e})") from None
    except Exception as e:  # tomlkit's parse errors have no common base
        raise ProjectError(f"{path}: not a Qualia TOML configuration ({' '.join(str(e).split())})") from None
    return cfg


def include_search_paths(cfg: dict) -> list[Path]:
    """Where Qualia's ``main`` looks for an included file, first match first: the config's own
    ``include_search_paths``, then ``conf/`` in the working directory, then the ``conf/`` beside qualia_core's and
    each ``[bench] plugins`` package (editable installs). Relative paths are relative to the working directory, as
    in ``qualia CONFIG ...`` run from the project directory."""
    from importlib.resources import files

    from qualia_core.utils.path import resources_to_path

    found = [Path("conf")]
    for package in ["qualia_core", *cfg.get("bench", {}).get("plugins", [])]:
        with contextlib.suppress(ModuleNotFoundError, TypeError):
            found.append(resources_to_path(files(package)).parent.parent / "conf")
    return [Path(p) for p in cfg.get("include_search_paths", [])] + found


def merge_includes(cfg: dict, where: str) -> dict:
    """``cfg`` with each file of its ``includes`` merged under it, as Qualia's ``main`` does: looked up with
    ``qualia_core.utils.path.lookup_file`` in :func:`include_search_paths`, parsed with ``parse_config``, merged with
    ``merge_dict(cfg, included, merge_lists=True)`` (the including file wins). Qualia only warns about an include it
    cannot find and runs without it; golden refuses, since the run's configuration cannot then be known."""
    names = cfg.get("includes", [])
    if not names:
        return cfg
    from qualia_core.utils.merge_dict import merge_dict
    from qualia_core.utils.path import lookup_file

    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProjectError(f"{where}: includes must be a list of file names, got {names!r}")
    paths = include_search_paths(cfg)
    for name in names:
        path = lookup_file(search_paths=paths, filename=Path(name))
        if path is None:
            raise ProjectError(f"{where}: included file {name!r} not found in {', '.join(map(str, paths))} (Qualia's "
                               f"search paths, relative to the working directory: run from the project directory, "
                               f"or set include_search_paths)")
        cfg = merge_dict(cfg, _parse(path, "included"), merge_lists=True)
    return cfg


def _validated(cfg: dict, where: str) -> dict:
    """``qualia_core.utils.config.validate_config_dict``, as Qualia's ``main`` runs it before anything else."""
    from qualia_core.utils.config import validate_config_dict

    with _quiet():
        valid = validate_config_dict(cfg)
    if valid is None:
        raise ProjectError(f"{where}: Qualia's validate_config_dict rejects this configuration (Qualia would not "
                           f"run it either); run `qualia CONFIG train` to see its messages")
    return dict(valid)


def select_model(cfg: dict, model, where: str) -> tuple[int, dict]:
    """The ``[[model]]`` entry named ``model`` (or at index ``model``); the only enabled one when ``model`` is None."""
    entries = list(enumerate(cfg["model"]))
    enabled = [(i, m) for i, m in entries if not m.get("disabled", False)]
    names = ", ".join(f"{i}:{m.get('name')}" for i, m in enabled) or "none"
    if model is None:
        if len(enabled) != 1:
            raise ProjectError(f"{where}: {len(enabled)} enabled [[model]] entries ({names}); pick one with "
                               f"model=NAME or INDEX (--model)")
        return enabled[0]
    if isinstance(model, int) or (isinstance(model, str) and model.isdigit()):
        k = int(model)
        if not 0 <= k < len(entries):
            raise ProjectError(f"model: index {k} is not a [[model]] entry of {where} (0..{len(entries) - 1})")
        return entries[k]
    found = [(i, m) for i, m in entries if m.get("name") == model]
    if not found:
        raise ProjectError(f"model: {model!r} is not a [[model]] name of {where} (enabled: {names})")
    if len(found) > 1:
        raise ProjectError(f"model: {len(found)} [[model]] entries of {where} are named {model!r} (indices "
                           f"{', '.join(str(i) for i, _ in found)}); pick one by its index (--model INDEX)")
    return found[0]


def _component(cfg: dict, package: str, kind: str):
    """``kind`` in Qualia's ``package`` (e.g. 'postprocessing'), a plugin's winning over qualia_core's, as
    ``qualia_core.utils.plugin.load_plugins`` merges them."""
    plugins = list(cfg.get("bench", {}).get("plugins", []))
    for owner in [*reversed(plugins), "qualia_core"]:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # some packages print their optional dependencies
                mod = importlib.import_module(f"{owner}.{package}")
        except ModuleNotFoundError as e:
            if e.name is not None and (e.name == owner or e.name.startswith(f"{owner}.")):
                continue
            raise ProjectError(f"{owner}.{package}: cannot be imported ({e})") from None
        if hasattr(mod, kind):
            return getattr(mod, kind)
    raise ProjectError(f"{package} kind {kind!r}: not found in qualia_core or the plugins {plugins} "
                       f"([bench] plugins)")


def _postprocessings(cfg: dict, where: str):
    """(the postprocessings before QuantizationAwareTraining, QAT's class, its params, the ones after)."""
    pps = cfg.get("postprocessing", [])
    idx = [k for k, p in enumerate(pps) if p.get("kind") == QAT]
    if len(idx) != 1:
        raise ProjectError(f"{where}: {len(idx)} [[postprocessing]] of kind {QAT!r}; golden rebuilds the one "
                           f"quantized model that postprocessing builds (add exactly one)")
    k = idx[0]
    return pps[:k], _component(cfg, "postprocessing", QAT), dict(pps[k].get("params", {})), pps[k + 1:]


# ---------------------------------------------------------------- shapes Qualia gave the model
def _array_shape(path: Path) -> tuple:
    """The shape of an array Qualia's RawData.export wrote (blosc2-packed, or np.savez when uncompressed)."""
    import numpy as np

    try:
        import blosc2

        chunk = blosc2.open(str(path))
        packed = chunk.vlmeta["__pack_tensor__"]
        return tuple(int(n) for n in packed[1])
    except Exception:  # not a blosc2 frame: Qualia's uncompressed export is a plain .npz
        pass
    try:
        with np.load(path) as z:
            return tuple(z[z.files[0]].shape)
    except Exception as e:
        raise ProjectError(f"{path}: cannot read the array Qualia exported ({e})") from None


def _shapes(cfg: dict, entry: dict, run_dir: Path, input_shape) -> tuple[tuple, tuple]:
    """(input_shape, output_shape) as ``qualia_core.qualia.instantiate_model`` gives them to the model."""
    params = entry.get("params", {})
    ins = input_shape if input_shape is not None else params.get("input_shape")
    outs = params.get("output_shape")
    if ins is None or outs is None:
        data = run_dir / "data"
        kind = cfg.get("dataset", {}).get("kind")
        train = data / str(kind) / "train"
        if not (train / "data.npz").is_file():
            found = sorted(data.glob("*/train/data.npz"))
            if len(found) != 1:
                raise ProjectError(f"{data}: no training set Qualia exported ({len(found)} found) to take the model's "
                                   f"input/output shapes from; run `qualia CONFIG preprocess_data` there, or give "
                                   f"input_shape= (--input-shape) and params.output_shape")
            train = found[0].parent
        if ins is None:
            ins = _array_shape(train / "data.npz")[1:]
        if outs is None:
            outs = _array_shape(train / "labels.npz")[1:]
    return tuple(int(n) for n in ins), tuple(int(n) for n in outs)


# ---------------------------------------------------------------- the run's files
def _iterations(cfg: dict) -> range:
    bench = cfg.get("bench", {})
    first, last = int(bench.get("first_run", 0)), int(bench.get("last_run", 0))
    return range(first, last + 1)


def _locate(learning: Path, name: str, runs: range, iteration) -> tuple[int, Path, Path]:
    """(i, .pth, activation-range file) of run name ``name``."""
    if iteration is not None:
        candidates = [int(iteration)]
    else:
        candidates = [i for i in runs if (learning / f"{name}_r{i}.pth").is_file()]
        if not candidates:
            raise ProjectError(f"{learning}: no {name}_r<i>.pth for runs {runs.start}..{runs.stop - 1}; run `qualia "
                               f"CONFIG train` with export = true on the {QAT} postprocessing (Qualia's "
                               f"prepare_deploy loads this file too), or point run_dir (--run-dir) at its out/")
        if len(candidates) > 1:
            raise ProjectError(f"{learning}: runs {', '.join(map(str, candidates))} of {name} are there; pick one "
                               f"with iteration= (--run)")
    i = candidates[0]
    pth, ranges = learning / f"{name}_r{i}.pth", learning / f"{name}_r{i}_activations_range.txt"
    for path, what in ((pth, f"export = true on the {QAT} postprocessing"), (ranges, f"the {QAT} postprocessing")):
        if not path.is_file():
            raise ProjectError(f"{path}: not found; Qualia writes it with {what} (`qualia CONFIG train`); check "
                               f"run_dir (--run-dir), the model and the run")
    return i, pth, ranges


class _ExportedWeights:
    """What QuantizationAwareTraining copies into the quantized model: here, the run's exported state_dict.

    Qualia names the file only inside ``_build_quantized_model`` (the model's ``update`` may change the bits,
    and with them the run name), so the name is resolved when Qualia asks for the weights."""

    def __init__(self, resolve):
        self._resolve = resolve

    def state_dict(self):
        return self._resolve()


def _load_state_dict(path: Path):
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ProjectError(f"{path}: not a state_dict torch can load ({' '.join(str(e).split())[:200]})") from None


# ---------------------------------------------------------------- calibration from the activation-range file
def _ranges(path: Path) -> dict:
    rows = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split(",")
        if len(cols) != 12:
            raise ProjectError(f"{path}:{n}: expected 12 comma-separated fields (name, 4 bits, 4 q, 3 round modes) "
                               f"as QuantizationAwareTraining writes them, got {len(cols)}")
        rows[cols[0]] = cols
    return rows


def _quantized_layers(model) -> dict:
    """{the name the activation-range file uses: module}, named as QuantizationAwareTraining names them."""
    from qualia_core.learningmodel.pytorch.layers.quantized_layers import quantized_layers
    from qualia_core.learningmodel.pytorch.layers.QuantizedLayer import QuantizedLayer
    from torch.fx.graph import _Namespace, _snake_case

    namespace, out = _Namespace(), {}
    for name, m in model.named_modules():
        if name:
            name = namespace.create_name(_snake_case(name), m)
        if isinstance(m, (QuantizedLayer, *quantized_layers)):
            out[name] = m
    return out


def _quantizer_of(module, field: str):
    attr = {"input": "quantizer_input", "activation": "quantizer_act", "weights": "quantizer_w",
            "bias": "quantizer_bias"}[field]
    qz = getattr(module, attr, None)
    if qz is None and field == "weights":  # the neurons report their potential's quantizer as the weights'
        qz = getattr(module, "quantizer_v", None)
    return qz


def _row_of(module, name: str) -> list:
    """The row QuantizationAwareTraining would write for ``module``, read through Qualia's own properties."""
    m = module
    return [name, *(str(v) for v in (m.input_bits, m.activation_bits, m.weights_bits, m.bias_bits, m.input_q,
                                    m.activation_q, m.weights_q, m.bias_q, m.input_round_mode,
                                    m.activation_round_mode, m.weights_round_mode))]


def _refuse_unsupported(model, run: str) -> None:
    from qualia_core.learningmodel.pytorch.layers.Quantizer import Quantizer

    for name, qz in model.named_modules():
        if isinstance(qz, Quantizer) and qz.quant_enable:
            if qz.LSQ:
                raise ProjectError(f"{run}: {name} has LSQ = true (a learned scale, no power of two); golden models "
                                   f"fixed-point quantizers, and Qualia's own converter (QualiaCodeGen) refuses LSQ "
                                   f"models too")
            if qz.quantype != "fxp":
                raise ProjectError(f"{run}: {name} has quantype = {qz.quantype!r}; golden models 'fxp' only, and "
                                   f"Qualia's own converter (QualiaCodeGen) refuses other quantypes too")


def restore_ranges(model, path: Path) -> None:
    """Set every quantizer's range so that Qualia's own q's equal the activation-range file's; check every row."""
    import torch
    from qualia_core.learningmodel.pytorch.layers.Quantizer import Quantizer

    rows, layers = _ranges(path), _quantized_layers(model)
    missing = sorted(set(layers) - set(rows))
    extra = sorted(set(rows) - set(layers))
    if missing or extra:
        raise ProjectError(f"{path}: its layers do not match the model the config builds (not in the file: "
                           f"{missing or 'none'}; not in the model: {extra or 'none'}); was the config changed "
                           f"after the run?")
    restored = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Qualia's torch.tensor(tensor) UserWarning
        for name, module in layers.items():
            row = rows[name]
            for field, q in zip(FIELDS, row[5:9]):
                qz = _quantizer_of(module, field)
                if q == "None" or qz is None or not qz.quant_enable:
                    continue
                qz.global_max = torch.tensor(math.ldexp(1.0, int(qz.bits) - 2 - int(q)))
                restored.add(id(qz))
            got = _row_of(module, name)
            if got != row:
                diff = [f"column {k + 1}: file {a} != model {b}" for k, (a, b) in enumerate(zip(row, got)) if a != b]
                raise ProjectError(f"{path}: layer {name} disagrees with the model the config builds "
                                   f"({'; '.join(diff)}); was the config changed after the run?")
    restored |= _restore_add_inputs(model, restored)
    left = [n for n, qz in model.named_modules()
            if isinstance(qz, Quantizer) and qz.quant_enable and id(qz) not in restored and qz.force_q is None]
    if left:
        raise ProjectError(f"{path}: no range recorded for quantizer(s) {', '.join(left)}; Qualia's file lists every "
                           f"quantized layer, so this model is not the one the run calibrated")


def _graph(model):
    """golden's layer graph of a Qualia model: [(name, module, producer names)], output (torch.fx, layers as leaves)."""
    from .network import graph

    return graph(model)


def _restore_add_inputs(model, restored: set) -> set:
    """A QuantizedAdd's two input quantizers are the ones Qualia's file does not record: each gets the q of the
    layer output it re-quantizes (its producer's ``activation_q``), so that re-quantizing is the identity, as
    Qualia's deployment (which reads only the file) assumes."""
    import torch
    from qualia_core.learningmodel.pytorch.layers.QuantizedAdd import QuantizedAdd

    adds = [m for m in model.modules() if isinstance(m, QuantizedAdd)]
    if not adds:
        return set()
    done = set()
    order, _ = _graph(model)
    for name, module, srcs in order:
        if not isinstance(module, QuantizedAdd):
            continue
        for attr, src in zip(("quantizer_input_a", "quantizer_input_b"), srcs):
            qz = getattr(module, attr)
            if not qz.quant_enable or id(qz) in restored:
                continue
            producer = dict(model.named_modules()).get(src)
            q = getattr(producer, "activation_q", None)
            if q is None:
                raise ProjectError(f"{name}.{attr}: its input {src!r} records no output q in the activation-range "
                                   f"file, and Qualia does not record the Add's own input ranges")
            qz.global_max = torch.tensor(math.ldexp(1.0, int(qz.bits) - 2 - int(q)))
            done.add(id(qz))
    return done


# ---------------------------------------------------------------- the rebuild
def rebuild(config, *, model=None, run_dir="out", iteration=None, input_shape=None):
    """(the quantized torch model in ``.eval()``, :class:`Run`): the model of ``config``'s run, as Qualia built it."""
    qmodel, run, _ = _rebuild(config, model, run_dir, iteration, input_shape)
    return qmodel, run


def _rebuild(config, model, run_dir, iteration, input_shape):
    with _quiet():
        return _rebuild_quietly(config, model, run_dir, iteration, input_shape)


QUIET_LOGGERS = ("qualia_core", "qualia_plugin_snn", "spikingjelly", "lightning", "pytorch_lightning")


@contextlib.contextmanager
def _quiet():
    """Qualia as a library: its prints (model summaries, missing TensorFlow) and log lines silenced, so that
    golden's one line is the only error; its CSV loggers (QuantizationAwareTraining opens one when constructed)
    write into a temporary directory, removed after, never into the user's ``logs/``."""
    import logging
    import tempfile

    loggers = [logging.getLogger(n) for n in QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    with tempfile.TemporaryDirectory(prefix="golden-qualia-logs-") as tmp, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        for lg in loggers:
            lg.setLevel(logging.CRITICAL + 1)
        logpath = None
        try:
            from qualia_core.utils.logger import Logger

            logpath, Logger.logpath = Logger.logpath, Path(tmp)
            yield
        finally:
            if logpath is not None:
                Logger.logpath = logpath
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
            for name in list(logging.root.manager.loggerDict):  # the file handlers opened in tmp
                lg = logging.getLogger(name)
                for h in list(lg.handlers):
                    if isinstance(h, logging.FileHandler) and h.baseFilename.startswith(tmp):
                        h.close()
                        lg.removeHandler(h)


def _rebuild_quietly(config, model, run_dir, iteration, input_shape):
    cfg, where = load_config(config)
    index, entry = select_model(cfg, model, where)
    entry = _checked_entry(copy.deepcopy(entry), index, where)
    deployed_entry = copy.deepcopy(entry)  # prepare_deploy instantiates the model from the config's own entry
    before, qat_cls, qat_params, after = _postprocessings(cfg, where)
    run_dir = Path(run_dir)
    learning = run_dir / "learningmodel"
    if not learning.is_dir():
        raise ProjectError(f"{learning}: no such directory; run_dir (--run-dir) is the out/ directory Qualia's run "
                           f"wrote (its learningmodel/ holds the .pth and activation-range files)")
    framework = _framework(cfg, entry, where)
    for p in (*before, *after):  # prepare_deploy lets every postprocessing change the framework first
        framework = _postprocessing(cfg, p).process_framework(framework)
    shapes = _shapes(cfg, entry, run_dir, input_shape)
    for e in (entry, deployed_entry):  # what instantiate_model adds to the entry before QAT reads it
        params = e.setdefault("params", {})
        params["input_shape"], params["output_shape"] = shapes
        if "iteration" in inspect.signature(getattr(framework.learningmodels, e["kind"])).parameters:
            params["iteration"] = int(iteration) if iteration is not None else _iterations(cfg).start
    entry, run_name = _before_qat(cfg, before, framework, entry, where)
    try:
        qat = qat_cls(**qat_params)
    except ValueError:
        raise ProjectError(f"{where}: the {QAT} postprocessing needs params.model.params.quant_params (a "
                           f"table)") from None
    qmodel, (name, i, pth, ranges) = _build(qat, framework, entry, where,
                                            lambda n: _locate(learning, n, _iterations(cfg), iteration), run_name)
    _refuse_unsupported(qmodel, name)
    restore_ranges(qmodel, ranges)
    qmodel, final, changed, final_pth = _after_qat(cfg, after, framework, qmodel.eval(), entry, name, i, learning,
                                                   where)
    run = Run(where, entry["name"], index, final, i, pth, ranges, tuple(changed), final_pth,
              deploy_name=_deploy_name(cfg, (*before, *after), qat_cls(**qat_params), entry["name"], before))
    if changed:
        run = dataclasses.replace(run, deployable=_deploy_path_error(cfg, (*before, {"kind": QAT}, *after),
                                                                     framework, deployed_entry, final, i, learning))
    return qmodel.eval(), run, cfg


def _deploy_name(cfg: dict, pps: list, qat, name: str, before: list) -> str:
    """The run name ``prepare_deploy`` gives the entry: every postprocessing as the config constructs it, QAT's
    from its own ``quant_params`` (prepare_deploy ignores the entry's ``update``, which training applied)."""
    for k, p in enumerate(pps):
        if k == len(before):
            name = qat.process_name(name)
        name = _postprocessing(cfg, p).process_name(name)
    return qat.process_name(name) if len(pps) == len(before) else name


def _changes_model(pp) -> bool:
    """Whether a postprocessing changes the model (its class overrides ``process_model``, as FuseBatchNorm does)."""
    from qualia_core.postprocessing.PostProcessing import PostProcessing

    return type(pp).process_model is not PostProcessing.process_model


def _float_model(framework, entry: dict, where: str):
    """The float model ``instantiate_model`` makes from the entry (its params copied: some templates edit them)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(framework.learningmodels, entry["kind"])(**copy.deepcopy(entry.get("params", {})))
    except (RuntimeError, TypeError, KeyError, AttributeError, ValueError) as e:
        raise ProjectError(f"{where}: Qualia cannot build the float {entry['kind']!r} {entry['name']!r} from this "
                           f"config ({' '.join(str(e).split())[:300]})") from None


def _process_model(pp, kind: str, model, entry: dict, framework, where: str):
    """``pp.process_model(model, entry, framework)``: what the postprocessing does to the model and its config."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pp.process_model(model, entry, framework=framework)
    except Exception as e:  # Qualia's tracing and fusing raise anything
        raise ProjectError(f"{where}: Qualia's {kind} cannot process {entry['name']!r} ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:300]})") from None


def _before_qat(cfg: dict, before: list, framework, entry: dict, where: str) -> tuple[dict, str]:
    """(the model config QAT receives, the run name before QAT's suffix): each postprocessing before QAT renames the
    run (``process_name``) and may change the model config with the model (FuseBatchNorm turns ``batch_norm`` off
    once it has folded each BatchNorm into its convolution), followed through its ``process_model`` on the float
    model, as Qualia's prepare_deploy does."""
    name = entry["name"]
    pps = [(p.get("kind"), _postprocessing(cfg, p)) for p in before]
    if any(_changes_model(pp) for _, pp in pps):
        fmodel = _float_model(framework, entry, where)
        for kind, pp in pps:
            fmodel, entry = _process_model(pp, kind, fmodel, entry, framework, where)
    for _, pp in pps:
        name = pp.process_name(name)
    return entry, name


def _after_qat(cfg: dict, after: list, framework, qmodel, entry: dict, name: str, i: int, learning: Path, where: str):
    """(the run's final model, its run name, the postprocessings after QAT that changed it, the .pth last loaded):
    each postprocessing after QAT renames the run and may change the quantized model (``process_model``, the code
    its ``__call__`` runs on the run's model: FuseBatchNorm re-traces it and folds the BatchNorms whose types match
    its patterns); where the run exported the changed model (``export = true``), that state_dict is loaded into it,
    strictly."""
    changed, loaded = [], None
    for p in after:
        kind, pp = p.get("kind"), _postprocessing(cfg, p)
        name = pp.process_name(name)
        if not _changes_model(pp):
            continue
        qmodel, entry = _process_model(pp, kind, qmodel, entry, framework, where)
        changed.append(str(kind))
        pth = learning / f"{name}_r{i}.pth"
        if p.get("export", False) and pth.is_file():
            try:
                qmodel.load_state_dict(_load_state_dict(pth), strict=True)
            except RuntimeError as e:
                why = " ".join(str(e).split())[:300]
                raise ProjectError(f"{pth}: does not load into the model {kind} makes of this run ({why}); was the "
                                   f"config changed after the run?") from None
            loaded = pth
    return qmodel, name, changed, loaded


def _deploy_path_error(cfg: dict, pps: list, framework, entry: dict, name: str, i: int, learning: Path) -> str | None:
    """Why Qualia's own ``prepare_deploy`` cannot deploy this run (None when it can), found by its own steps: the
    float model of the config's entry, every postprocessing's ``process_model`` in order, the final run name's
    .pth loaded strictly, then the converter's activation-range file of that name."""
    where = "prepare_deploy"
    try:
        model = _float_model(framework, entry, where)
        for p in pps:
            model, entry = _process_model(_postprocessing(cfg, p) if p.get("kind") != QAT else _Identity(),
                                          p.get("kind"), model, entry, framework, where)
    except ProjectError as e:
        return str(e)
    pth = learning / f"{name}_r{i}.pth"
    if not pth.is_file():
        return f"it loads {pth}, which the run did not write"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_state_dict(_load_state_dict(pth), strict=True)
    except RuntimeError as e:
        return (f"it loads {pth} into the float model the postprocessings make, and torch refuses: "
                f"{' '.join(str(e).split())[:240]}")
    ranges = learning / f"{name}_r{i}_activations_range.txt"
    if not ranges.is_file():
        return f"its converter reads {ranges}, which the run did not write"
    return None


class _Identity:
    """QuantizationAwareTraining's ``process_model`` (the base class's: the model unchanged)."""

    @staticmethod
    def process_model(model, entry, framework):
        return model, entry


def _checked_entry(entry: dict, index: int, where: str) -> dict:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ProjectError(f"{where}: [[model]] {index} has no name; Qualia names its files after it")
    if "kind" not in entry:
        raise ProjectError(f"{where}: [[model]] {name!r} has no kind (e.g. 'SCNN'), nor has [model_template]")
    return entry


def _framework(cfg: dict, entry: dict, where: str):
    """The config's learningframework, instantiated as ``qualia_core.main.qualia`` does."""
    fw_cfg = cfg.get("learningframework", {})
    if "kind" not in fw_cfg:
        raise ProjectError(f"{where}: no [learningframework] kind (e.g. 'SpikingJelly')")
    framework = _component(cfg, "learningframework", fw_cfg["kind"])(**fw_cfg.get("params", {}))
    if getattr(framework.learningmodels, entry["kind"], None) is None:
        raise ProjectError(f"{where}: model kind {entry['kind']!r} is not a model of {fw_cfg['kind']}")
    return framework


def _build(qat, framework, entry: dict, where: str, locate, run_name: str):
    """(the quantized model Qualia's ``_build_quantized_model`` makes, loaded with the run's exported weights;
    (run name, i, .pth, activation-range file)). The run name is the one ``process_name`` gives once Qualia has
    merged the entry's quantization params (its ``update`` may change the bits), as at train time."""
    found = []

    def weights():  # called by Qualia once it has merged the quantization params (so qat.lsq is the model's)
        if qat.lsq:
            raise ProjectError(f"{where}: [[model]] {entry['name']!r} is quantized with LSQ = true (a learned "
                               f"scale, no power of two); golden models fixed-point quantizers, and Qualia's own "
                               f"converter (QualiaCodeGen) refuses LSQ models too")
        name = qat.process_name(run_name)
        found.append((name, *locate(name)))
        return _load_state_dict(found[-1][2])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            qmodel, _ = qat._build_quantized_model(_ExportedWeights(weights), framework, entry)
        except ProjectError:
            raise
        except (RuntimeError, TypeError, KeyError, AttributeError) as e:
            raise ProjectError(f"{where}: Qualia cannot build {entry['kind']!r} {entry['name']!r} from this config "
                               f"and run ({' '.join(str(e).split())[:300]})") from None
    return qmodel, found[-1]


def _postprocessing(cfg: dict, p: dict):
    return _component(cfg, "postprocessing", p.get("kind", ""))(**dict(p.get("params", {})))


def _codegen_overrides(cfg: dict, overrides: dict) -> dict:
    """The deployment's NUMBER_T / LONG_NUMBER_T as the config's [deploy] gives them (overrides win)."""
    deploy = cfg.get("deploy", {})
    out = dict(overrides)
    quantize = [q for q in deploy.get("quantize", []) if q != "float32"]
    if "width" not in out and len(quantize) == 1 and quantize[0] in ("int8", "int16"):
        out["width"] = int(quantize[0][3:])
    long_width = deploy.get("converter", {}).get("params", {}).get("long_width")
    if "long_width" not in out and long_width is not None:
        out["long_width"] = int(long_width)
    return out


def from_qualia(config, *, model=None, run_dir="out", profile: str = "torch-eval", iteration=None,
                input_shape=None, **overrides):
    """The golden :class:`~golden.network.Network` of a real Qualia project's quantized model.

    ``config``: the Qualia configuration the run used (a TOML path, or the parsed dict); ``model``: the
    ``[[model]]`` name or index (required when several are enabled); ``run_dir``: the ``out/`` directory the
    run wrote; ``iteration``: the run ``i`` (required when several runs are there); ``input_shape``: when
    neither the config nor Qualia's exported training set gives it. ``profile``: "torch-eval" (the model in
    ``.eval()``) or "codegen" (the C Qualia deploys; NUMBER_T and LONG_NUMBER_T from ``[deploy]`` unless
    ``width`` / ``long_width`` are given). Raises :class:`golden.errors.ProjectError` naming the cause and the fix.
    """
    if profile not in PROFILES:
        raise ProjectError(f"profile: {profile!r} is not one from_qualia builds (expected one of: "
                           f"{', '.join(PROFILES)})")
    qmodel, run, cfg = _rebuild(config, model, run_dir, iteration, input_shape)
    from ..torch_bridge import from_torch

    mode = None
    if profile == "codegen":
        mode = timestep_mode(cfg, run.config)
        _refuse_undeployable(run)
        overrides = _codegen_overrides(cfg, overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Qualia's torch.tensor(tensor) copy warning, on every read
        net = from_torch(qmodel, profile=profile, **overrides)
    net.meta["qualia_project"] = run.meta()
    if mode is not None:
        net.meta["timestep_mode"] = mode
        net.meta["timesteps"] = int(qmodel.timesteps)
    return net


TIMESTEP_MODES = ("duplicate", "iterate")


def timestep_mode(cfg: dict, where: str) -> str:
    """The deployment's ``[deploy] converter.params.timestep_mode`` (QualiaCodeGen's default: 'duplicate').

    It changes nothing in the generated ``cnn()``: the converter writes ``MODEL_INPUT_TIMESTEP_MODE_<MODE>`` into
    ``model.hh``, and the main loop of qualia-codegen-plugin-snn's examples reads it: 'duplicate' calls ``cnn()``
    ``MODEL_INPUT_TIMESTEPS`` times on one static frame per sample, 'iterate' on the sample's
    ``MODEL_INPUT_TIMESTEPS`` frames in turn, then ``reset()``. The codegen network records it, and golden's
    network vectors follow it (a 'duplicate' network's stimulus is one frame per sample, repeated)."""
    params = cfg.get("deploy", {}).get("converter", {}).get("params", {})
    mode = params.get("timestep_mode", "duplicate")
    if mode not in TIMESTEP_MODES:
        raise ProjectError(f"{where}: [deploy] converter.params.timestep_mode = {mode!r}; QualiaCodeGen's main loop "
                           f"knows {' and '.join(repr(m) for m in TIMESTEP_MODES)} (any other stops its build at "
                           f"'Unknown input timestep mode')")
    return mode


def _refuse_undeployable(run: Run) -> None:
    """A run whose model a postprocessing after QAT changed: deployed only as Qualia's prepare_deploy would."""
    if not run.postprocessed:
        return
    if run.deployable is not None:
        raise ProjectError(f"{run.name}: Qualia's own prepare_deploy cannot deploy this run either ("
                           f"{', '.join(run.postprocessed)} after {QAT}): {run.deployable}")
    raise ProjectError(f"{run.name}: {', '.join(run.postprocessed)} after {QAT} changed the model Qualia deploys; "
                       f"golden's codegen profile does not deploy such a model yet (use profile='torch-eval')")
