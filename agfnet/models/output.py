"""The typed output every model's `forward_output` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from agfnet.constants import MODALITIES

__all__ = ["MODALITIES", "ModelOutput"]


@dataclass(kw_only=True)
class ModelOutput:
    """What a model returns besides its logits.

    Attributes:
        logits: (B, K) main-head logits; this is the prediction.
        aux_logits: auxiliary-head logits, each (B, K): "clinical" and "ultrasound"
            (deep supervision on each global descriptor). Empty for the baselines.
        masked_logits: (B, K) logits of FRL's masked pass (AGFNet in training only);
            None otherwise.
        rec_loss: scalar FRL reconstruction loss in training mode; None otherwise.
        saliency: modality -> (B, h, w) ALL saliency map on the finest fused scale,
            non-negative, summing to 1 per sample. Empty when the model has none.
        modalities: (B, 2) bool, [clinical, ultrasound]: which inputs the prediction used.
        task_logits: task name -> (B, k_t) logits of each extra task (e.g. the
            seven-point criteria), in the model's `tasks` order. Empty without tasks.
    """

    logits: torch.Tensor
    aux_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    masked_logits: torch.Tensor | None = None
    rec_loss: torch.Tensor | None = None
    saliency: dict[str, torch.Tensor] = field(default_factory=dict)
    modalities: torch.Tensor
    task_logits: dict[str, torch.Tensor] = field(default_factory=dict)
