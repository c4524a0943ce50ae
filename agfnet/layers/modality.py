"""Missing-modality support: a learned "absent" embedding and modality dropout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AbsentEmbedding", "drop_modalities"]


class AbsentEmbedding(nn.Module):
    """A learned vector that stands in for the features of a missing modality."""

    def __init__(self, channels: int) -> None:
        """
        Args:
            channels: C, the channel count of the features it replaces.
        """
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(channels))
        nn.init.trunc_normal_(self.embedding, std=0.02)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: (B, C, ...) channel-first features (a map or a vector).
            keep: (B,) bool, False where the modality is absent.

        Returns:
            x with every absent sample replaced by the embedding, broadcast over space.
        """
        extra = (1,) * (x.dim() - 2)
        emb = self.embedding.to(x.dtype).view(1, -1, *extra)
        return torch.where(keep.view(-1, 1, *extra), x, emb)


def drop_modalities(present: torch.Tensor, p: float) -> torch.Tensor:
    """Modality dropout: with probability p per sample, hide one of its two modalities.

    Only samples with both modalities are touched, and the dropped one is chosen
    uniformly, so a sample never loses its last image.

    Args:
        present: (B, 2) bool availability.
        p: drop probability per sample.

    Returns:
        (B, 2) bool, a subset of `present`.
    """
    b = present.shape[0]
    drop = (torch.rand(b, device=present.device) < p) & present.all(dim=1)
    which = F.one_hot(torch.randint(0, 2, (b,), device=present.device), 2).bool()
    return present & ~(which & drop.unsqueeze(1))
