"""Task heads: one linear classifier per extra task (e.g. each seven-point criterion) on
the representation the diagnosis head reads."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["TaskHeads"]


class TaskHeads(nn.Module):
    """Dropout, then a `Linear(dim, k_t)` per task: the multi-task heads of Kawahara et al.
    and FusionM4Net, all reading the one shared representation."""

    def __init__(self, dim: int, tasks: Mapping[str, int], drop_rate: float = 0.0) -> None:
        """
        Args:
            dim: width of the representation.
            tasks: task name -> number of classes k_t, in output order.
            drop_rate: dropout before the heads (the diagnosis head's rate).
        """
        super().__init__()
        self.drop = nn.Dropout(drop_rate)
        self.heads = nn.ModuleDict({name: nn.Linear(dim, k) for name, k in tasks.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, dim) -> task name -> (B, k_t) logits."""
        x = self.drop(x)
        return {name: head(x) for name, head in self.heads.items()}
