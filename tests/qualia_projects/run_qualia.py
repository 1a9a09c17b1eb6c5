"""Run Qualia's own pipeline (its ``qualia`` command's ``main``) on project directories: the proofs' real artifacts.

    python tests/qualia_projects/run_qualia.py [--record DIR] ACTIONS WORKDIR:CONFIG[:ACTIONS] ...

``ACTIONS`` is a comma-separated list (e.g. ``preprocess_data,train``); a project's own list, if given,
replaces it (e.g. ``...:preprocess_data,train,prepare_deploy`` to also run Qualia's deployment converter).
For each project, in its WORKDIR (Qualia writes ``out/`` and ``logs/`` relative to the working directory),
``qualia_core.main.main`` runs with ``argv = [CONFIG, ACTION]``, exactly as ``qualia CONFIG ACTION`` does. One
process runs them all (Qualia's imports cost seconds); run it with ``PYTHONHASHSEED`` and
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` set to the configs' ``[bench] seed``, or Qualia re-executes the interpreter
to set them.

Two things around Qualia, nothing inside it:

- qualia-plugin-snn's event-data packages (``dataset``, ``preprocessing``) import ``spikingjelly.datasets``,
  which imports torchvision, which this environment removes (see the README). When that import fails for
  that reason only, ``spikingjelly.datasets`` is registered as a stub whose functions raise if called, so
  that Qualia's plugin loader proceeds; the projects here use qualia_core's MNIST loader.
- ``--record DIR``: after each QuantizationAwareTraining or FuseBatchNorm postprocessing, the model it returns (the
  run's real model, calibrated, in memory only in Qualia's process) is pickled whole with ``torch.save`` to
  ``DIR/<run name>_r<i>.pt``, so that the tests compare golden with the run's own model, not a rebuild.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


def stub_spikingjelly_datasets() -> bool:
    """Register the stub when (and only when) ``spikingjelly.datasets`` fails for want of torchvision."""
    try:
        import spikingjelly.datasets  # noqa: F401
        return False
    except ModuleNotFoundError as e:
        if e.name != "torchvision":
            raise

    def missing(*_a, **_k):
        raise RuntimeError("spikingjelly.datasets needs torchvision, which is not installed")

    pkg = types.ModuleType("spikingjelly.datasets")
    pkg.__path__ = []
    for name in ("integrate_events_segment_to_frame", "cal_fixed_frames_number_segment_index",
                 "integrate_events_by_fixed_duration"):
        setattr(pkg, name, missing)
    sub = types.ModuleType("spikingjelly.datasets.dvs128_gesture")
    sub.DVS128Gesture = missing
    sys.modules["spikingjelly.datasets"] = pkg
    sys.modules["spikingjelly.datasets.dvs128_gesture"] = sub
    return True


def portable(model):
    """``model`` as ``torch.save`` can pickle it: a torch.fx GraphModule (what FuseBatchNorm returns) holds the
    string annotation ``_torch_Tensor_`` of the model's forward among its code's globals, which its pickler cannot
    name, and Qualia's tracer (which torch would re-trace it with when loading) takes arguments; the same graph over
    the same modules, annotations dropped, is saved instead, re-traced by torch's default tracer when loaded (the
    attributes Qualia copies onto it kept)."""
    import copy

    from torch.fx import GraphModule

    if not isinstance(model, GraphModule):
        return model
    graph = copy.deepcopy(model.graph)
    for node in graph.nodes:
        node.type = None
    out = GraphModule(model, graph)
    out._tracer_cls, out._tracer_extras = None, {}  # unpickled by re-tracing its code: torch's default tracer
    for attr in ("timesteps", "step_mode", "is_snn", "input_shape", "output_shape"):
        if hasattr(model, attr):
            setattr(out, attr, getattr(model, attr))
    return out


def record_quantized_models(directory: Path) -> None:
    """Wrap QuantizationAwareTraining.__call__ and FuseBatchNorm.__call__ (qualia-plugin-snn's, which Qualia
    resolves): same result, and the returned model pickled into ``directory`` as ``<run name>_r<i>.pt``."""
    import torch
    from qualia_core.postprocessing.QuantizationAwareTraining import QuantizationAwareTraining
    from qualia_plugin_snn.postprocessing.FuseBatchNorm import FuseBatchNorm

    for cls in (QuantizationAwareTraining, FuseBatchNorm):
        original = cls.__call__

        def call(self, trainresult, model_conf, original=original):
            result, conf = original(self, trainresult, model_conf)
            target = (Path.cwd() / directory).resolve()
            target.mkdir(parents=True, exist_ok=True)
            torch.save(portable(result.model), target / f"{result.name}_r{result.i}.pt")
            return result, conf

        cls.__call__ = call


def main(argv: list[str]) -> int:
    import os

    record = None
    if argv[:1] == ["--record"]:
        record, argv = Path(argv[1]), argv[2:]
    actions, projects = argv[0].split(","), argv[1:]
    stub_spikingjelly_datasets()
    script = sys.argv[0]
    sys.argv = [script]  # qualia_core reads sys.argv at import
    import qualia_core.main as qualia_main

    if record is not None:
        record_quantized_models(record)
    home = Path.cwd()
    for project in projects:
        workdir, config, *own = project.split(":")
        os.chdir(home / workdir)
        try:
            for action in (own[0].split(",") if own else actions):
                sys.argv = [script, config, action]
                rc = qualia_main.main()
                if rc:
                    print(f"run_qualia: {project}: qualia {config} {action} returned {rc}", file=sys.stderr)
                    return rc
        finally:
            os.chdir(home)
    return 0


if __name__ == "__main__":  # Lightning's workers re-import this file: nothing runs at import
    sys.exit(main(sys.argv[1:]))
