"""The typed output every model's `forward_output` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["MODALITIES", "ModelOutput"]

#: Column order of every (B, 2) modality mask: `present`, `ModelOutput.modalities`.
MODALITIES: tuple[str, str] = ("clinical", "ultrasound")


@dataclass(kw_only=True)
class ModelOutput:
    """What a model returns besides its logits.

    Attributes:
        logits: (B, K) main-head logits; this is the prediction.
        aux_logits: auxiliary-head logits, each (B, K): "clinical" and "ultrasound"
            (deep supervision on each global descriptor) and, for AGFNet in training,
            "masked" (the FRL masked pass). Empty for the baselines.
        rec_loss: scalar FRL reconstruction loss in training mode; None otherwise.
        saliency: modality -> (B, h, w) ALL saliency map on the finest fused scale,
            non-negative, summing to 1 per sample. Empty when the model has none.
        modalities: (B, 2) bool, [clinical, ultrasound]: which inputs the prediction used.
    """

    logits: torch.Tensor
    aux_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    rec_loss: torch.Tensor | None = None
    saliency: dict[str, torch.Tensor] = field(default_factory=dict)
    modalities: torch.Tensor
