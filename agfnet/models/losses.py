"""The training objective: L = CE(main) + beta*(CE(aux_c) + CE(aux_u)) + lambda_rec*L_rec,
plus sum_t w_t*CE(task_t) for the extra tasks (e.g. the seven-point criteria)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from agfnet.models.output import ModelOutput

__all__ = ["AGFNetLoss", "PairedClassifierLoss"]


class PairedClassifierLoss(nn.Module):
    """The training objective of every registered model (AGFNet's, in full).

    Terms a model does not produce (no auxiliary heads, no FRL) count as 0, so a
    baseline gets plain cross-entropy; the task terms exist only for a model with tasks.
    """

    def __init__(
        self,
        aux_weight: float = 0.5,
        rec_weight: float = 1.0,
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        masked_weight: float = 0.0,
        task_weight: float = 1.0,
        task_weights: Mapping[str, float] | None = None,
    ) -> None:
        """
        Args:
            aux_weight: beta, the weight of each auxiliary head's cross-entropy.
            rec_weight: lambda_rec, the weight of the FRL reconstruction loss.
            label_smoothing: label smoothing of every cross-entropy term.
            class_weights: optional (K,) per-class weights, e.g. against imbalance.
            masked_weight: weight of the cross-entropy of FRL's masked pass
                (`ModelOutput.masked_logits`); 0 by default, as in METHOD.md.
            task_weight: w_t of every task's cross-entropy (config loss.task_weight).
            task_weights: per-task w_t overriding task_weight (config loss.task_weights).
        """
        super().__init__()
        self.aux_weight = aux_weight
        self.rec_weight = rec_weight
        self.masked_weight = masked_weight
        self.label_smoothing = label_smoothing
        self.task_weight = task_weight
        self.task_weights = dict(task_weights or {})
        weights = (
            None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        )
        self.register_buffer("class_weights", weights)

    def ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of (B, K) logits against (B,) class indices, as configured."""
        weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
        return F.cross_entropy(logits, target, weight=weight, label_smoothing=self.label_smoothing)

    def task_ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of (B, k) task logits over the rows whose (B,) target is not
        -1 (a criterion left blank); 0, not NaN, when every row is blank."""
        valid = target >= 0
        ce = F.cross_entropy(
            logits, target.clamp(min=0), reduction="none", label_smoothing=self.label_smoothing
        )
        return (ce * valid).sum() / valid.sum().clamp(min=1)

    def forward(
        self, out: ModelOutput, target: torch.Tensor, task_targets: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            out: a model's `forward_output`.
            target: (B,) int64 class indices.
            task_targets: (B, T) int64, one column per task in `out.task_logits` order
                (the model's `tasks` order), -1 where unknown; needed with tasks.

        Returns:
            dict with scalar tensors "loss" (total), "ce" (main head), "aux" (sum of the
            auxiliary heads' cross-entropies, before beta) and "rec" (L_rec, before
            lambda_rec); plus "masked" when masked_weight > 0 and the model produced it;
            plus, for a model with tasks, "task/<name>" (each task's cross-entropy) and
            "tasks" (sum_t w_t * task/<name>, added to the total as it is).

        Raises:
            ValueError: the model has tasks and task_targets is missing or has another
                number of columns, or task_weights names a task the model does not have.
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
        if out.task_logits:
            terms.update(self.task_terms(out.task_logits, task_targets))
            loss = loss + terms["tasks"]
        return {"loss": loss, **terms}

    def task_terms(
        self, task_logits: Mapping[str, torch.Tensor], task_targets: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """The task terms of `forward`: each task's cross-entropy and their weighted sum."""
        names = list(task_logits)
        if task_targets is None or task_targets.shape[-1] != len(names):
            got = None if task_targets is None else tuple(task_targets.shape)
            raise ValueError(
                f"the model predicts tasks {names}: pass task_targets (B, "
                f"{len(names)}) in that order, -1 where unknown (got {got})"
            )
        unknown = sorted(set(self.task_weights) - set(names))
        if unknown:
            raise ValueError(f"task_weights name {unknown}, not tasks of the model: {names}")
        terms = {
            f"task/{name}": self.task_ce(task_logits[name], task_targets[:, i])
            for i, name in enumerate(names)
        }
        weights = [self.task_weights.get(name, self.task_weight) for name in names]
        terms["tasks"] = sum(w * terms[f"task/{n}"] for w, n in zip(weights, names, strict=True))
        return terms


#: The former name, kept for existing code (engine/module.py, user scripts).
AGFNetLoss = PairedClassifierLoss
