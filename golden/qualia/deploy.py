"""Profile "codegen" of a whole model: deploy it the way Qualia does, then read the deployment as a Network.

The deployment path itself (activation-range export, float twin, ``QualiaCodeGen.convert``) is Qualia's, run by
:func:`golden.refs.codegen_model.deploy`; the reading (the converter's formats and integers as golden layer specs)
is :func:`golden.network.codegen.network_from_deployment`. Nothing of Qualia (AGPL-3.0) is copied here.
"""

from __future__ import annotations

from ..network.codegen import check_widths
from ..network.codegen import network_from_deployment as _read_deployment
from ..network.graph import Network
from ..network.layers import NetworkError


def network_from_deployment(dep) -> Network:
    """The codegen :class:`Network` of a deployed model (:func:`golden.refs.codegen_model.deploy`'s result)."""
    return _read_deployment(dep)


def network_codegen(model, *, width=None, long_width=None) -> Network:
    """``golden.from_torch(model, profile="codegen", width=, long_width=)``: deploy the way Qualia does, read it.

    ``model``: a :class:`golden.refs.qualia_models.Built` (the calibrated quantized model and the float twin
    template Qualia's deployment loads its weights into) or an already :func:`~golden.refs.codegen_model.deploy`-ed
    model. A bare quantized ``nn.Module`` is refused: the converter needs the float twin.
    """
    check_widths(width, long_width)
    from golden.refs import codegen_model as cm
    from golden.refs.qualia_models import Built

    if isinstance(model, cm.Deployed):
        if (width not in (None, model.width)) or (long_width not in (None, model.long_width)):
            raise NetworkError(f"width/long_width: the model is deployed at int{model.width}/int{model.long_width}; "
                               f"deploy it again to change them")
        dep = model
    elif isinstance(model, Built):
        if model.config["kind"] == "ATIF":
            raise NetworkError("model: its neurons are QuantizedATIF, which qualia-codegen has no C mapping for; "
                               "use profile='torch-eval'")
        refused = None
        try:
            dep = cm.deploy(model, width=width, long_width=long_width)
        except cm.DeployError as e:
            refused = str(e).splitlines()[0]
        if refused is not None:  # raised outside the handler: the failed deployment (and Qualia's log handler
            # that its traceback keeps alive, pointing into the deleted working directory) is released
            raise NetworkError(f"{culprit(model.model)}the deployment refused it: {refused}")
    else:
        raise NetworkError(f"model: profile 'codegen' needs a golden.refs.qualia_models.Built or a deployed model "
                           f"(the converter loads the weights into the float twin template), got "
                           f"{type(model).__name__}")
    return network_from_deployment(dep)


def culprit(model) -> str:
    """'<layer> (<type>): weights q = <q> < 0: ' for the first layer whose exported weights q is negative.

    qualia-codegen-core quantizes with ``1 << q`` and raises on a negative q (measured: a BatchNorm channel whose
    input never varies gets alpha ~ gamma / sqrt(eps)); otherwise 'model: '.
    """
    for name, m in model.named_modules():
        q = getattr(m, "weights_q", None)
        if isinstance(q, int) and q < 0:
            return f"{name} ({type(m).__name__}): weights q = {q} < 0, which qualia-codegen cannot export: "
    return "model: "
