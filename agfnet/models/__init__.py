"""AGFNet, its ablations and baselines behind one registry (plain nn.Modules).

Example:
    model = create_model("agfnet_tiny", num_classes=5)
    logits = model(clinical, ultrasound)
    out = model.forward_output(clinical, ultrasound)
    terms = PairedClassifierLoss()(out, target)
"""

from __future__ import annotations

# Importing the family modules registers their names.
from agfnet.models import agfnet, baselines  # noqa: F401
from agfnet.models.complexity import count_flops, count_params, model_info
from agfnet.models.losses import AGFNetLoss, PairedClassifierLoss
from agfnet.models.output import MODALITIES, ModelOutput
from agfnet.models.registry import create_model, list_models

__all__ = [
    "MODALITIES",
    "AGFNetLoss",
    "ModelOutput",
    "PairedClassifierLoss",
    "count_flops",
    "count_params",
    "create_model",
    "list_models",
    "model_info",
]
