"""Profile "codegen" of a whole model: deploy it the way Qualia does, then read the deployment as a Network.

The deployment is Qualia's own path, run by :func:`golden.qualia.deployment.deploy` on any calibrated quantized
model: the activation-range export of ``QuantizationAwareTraining``, the float twin (:mod:`golden.qualia.twin`, by
Qualia's ``Quantized<X>`` <-> ``<X>`` pairing) and ``QualiaCodeGen.convert``. The reading (the converter's formats and
integers as golden layer specs) is :func:`golden.qualia.creaders.network_from_deployment`. Nothing of Qualia
(AGPL-3.0) is copied here.

Refused before deploying, each in one line, only what Qualia's converter refuses or cannot map
(:mod:`golden.qualia.target`): QuantizedATIF, LSQ, a quantype other than 'fxp', a NUMBER_T other than int8 / int16.
A model of other quantizer bits (4, 6, 12) deploys at int8 / int16 as Qualia's converter deploys it.
"""

from __future__ import annotations

from ..errors import DeployError
from ..network.graph import Network
from ..network.layers import NetworkError
from .creaders import check_widths
from .creaders import network_from_deployment as read_deployment
from .deployment import Deployed, Packaged, deploy
from .target import deployable_width


def network_from_deployment(dep) -> Network:
    """The codegen :class:`Network` of a deployed model (:func:`golden.qualia.deployment.deploy`'s result)."""
    return read_deployment(dep)


def network_codegen(model, *, width=None, long_width=None) -> Network:
    """``golden.from_torch(model, profile="codegen", width=, long_width=)``: deploy the way Qualia does, read it.

    ``model``: any calibrated quantized Qualia model (``nn.Module``; its float twin is derived), a
    :class:`golden.qualia.deployment.Packaged` one (golden's test factory), or an already
    :func:`~golden.qualia.deployment.deploy`-ed model.
    Rendering needs no compiler (the C is not compiled here).
    """
    check_widths(width, long_width)
    if isinstance(model, Deployed):
        if (width not in (None, model.width)) or (long_width not in (None, model.long_width)):
            raise NetworkError(f"width/long_width: the model is deployed at int{model.width}/int{model.long_width}; "
                               f"deploy it again to change them")
        return network_from_deployment(model)
    qmodel = model.model if isinstance(model, Packaged) else model
    try:
        deployable_width(qmodel, width)
    except DeployError as e:
        raise NetworkError(str(e)) from None
    refused = None
    try:
        dep = deploy(model, width=width, long_width=long_width)
    except DeployError as e:
        refused = str(e).splitlines()[0]
    if refused is not None:  # raised outside the handler: the failed deployment (and Qualia's log handler
        # that its traceback keeps alive, pointing into the deleted working directory) is released
        raise NetworkError(f"{culprit(qmodel)}the deployment refused it: {refused}")
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
