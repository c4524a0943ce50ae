"""The training objective: L = CE(main) + beta*(CE(aux_c) + CE(aux_u)) + lambda_rec*L_rec."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from agfnet.models.output import ModelOutput

__all__ = ["AGFNetLoss", "PairedClassifierLoss"]


class PairedClassifierLoss(nn.Module):
    """The training objective of every registered model (AGFNet's, in full).

    Terms a model does not produce (no auxiliary heads, no FRL) count as 0, so a
    baseline gets plain cross-entropy.
    """

    def __init__(
        self,
        aux_weight: float = 0.5,
        rec_weight: float = 1.0,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        masked_weight: float = 0.0,
    ) -> None:
        """
        Args:
            aux_weight: beta, the weight of each auxiliary head's cross-entropy.
            rec_weight: lambda_rec, the weight of the FRL reconstruction loss.
            label_smoothing: label smoothing of every cross-entropy term.
            class_weights: optional (K,) per-class weights, e.g. against imbalance.
            masked_weight: weight of the cross-entropy of FRL's masked pass
                (`ModelOutput.masked_logits`); 0 by default, as in METHOD.md.
        """
        super().__init__()
        self.aux_weight = aux_weight
        self.rec_weight = rec_weight
        self.masked_weight = masked_weight
        self.label_smoothing = label_smoothing
        weights = (
            None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        )
        self.register_buffer("class_weights", weights)

    def ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of (B, K) logits against (B,) class indices, as configured."""
        weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
        return F.cross_entropy(logits, target, weight=weight, label_smoothing=self.label_smoothing)

    def forward(self, out: ModelOutput, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            out: a model's `forward_output`.
            target: (B,) int64 class indices.

        Returns:
            dict with scalar tensors "loss" (total), "ce" (main head), "aux" (sum of the
            auxiliary heads' cross-entropies, before beta) and "rec" (L_rec, before
            lambda_rec); plus "masked" when masked_weight > 0 and the model produced it.
        """
        ce = self.ce(out.logits, target)
        zero = ce.new_zeros(())
        aux = sum((self.ce(logits, target) for logits in out.aux_logits.values()), zero)
        rec = zero if out.rec_loss is None else out.rec_loss
        terms = {"ce": ce, "aux": aux, "rec": rec}
        loss = ce + self.aux_weight * aux + self.rec_weight * rec
        if self.masked_weight > 0 and out.masked_logits is not None:
            terms["masked"] = self.ce(out.masked_logits, target)
            loss = loss + self.masked_weight * terms["masked"]
        return {"loss": loss, **terms}


#: The former name, kept for existing code (engine/module.py, user scripts).
AGFNetLoss = PairedClassifierLoss
