"""Multi-scale fusion: one descriptor per scale -> one vector (the last step of ALL)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConcatFusion", "ProgressiveFusion", "create_scale_fusion"]


class ConcatFusion(nn.Module):
    """Multi-scale fusion: z = W [LN(l_1); ...; LN(l_S)]."""

    def __init__(self, dims: list[int], out_dim: int) -> None:
        """
        Args:
            dims: d_s of each scale.
            out_dim: D.
        """
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.proj = nn.Linear(sum(dims), out_dim)

    def forward(self, descs: list[torch.Tensor]) -> torch.Tensor:
        """list of (B, d_s), fine to coarse -> (B, D)."""
        return self.proj(torch.cat([n(d) for n, d in zip(self.norms, descs, strict=True)], -1))


class ProgressiveFusion(nn.Module):
    """Multi-scale fusion from fine to coarse: z_s = GELU(W_s [z_{s-1}; LN(l_s)])."""

    def __init__(self, dims: list[int], out_dim: int) -> None:
        """
        Args:
            dims: d_s of each scale, fine to coarse.
            out_dim: D.
        """
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.steps = nn.ModuleList(
            nn.Linear(d + (out_dim if i else 0), out_dim) for i, d in enumerate(dims)
        )

    def forward(self, descs: list[torch.Tensor]) -> torch.Tensor:
        """list of (B, d_s), fine to coarse -> (B, D)."""
        z = descs[0].new_zeros(descs[0].shape[0], 0)
        for norm, step, d in zip(self.norms, self.steps, descs, strict=True):
            z = F.gelu(step(torch.cat([z, norm(d)], -1)))
        return z


_FUSIONS: dict[str, type[nn.Module]] = {"concat": ConcatFusion, "progressive": ProgressiveFusion}


def create_scale_fusion(kind: str, dims: list[int], out_dim: int) -> nn.Module:
    """Build a multi-scale fusion module by name.

    Args:
        kind: "concat" (`ConcatFusion`) or "progressive" (`ProgressiveFusion`).
        dims: d_s of each scale, fine to coarse.
        out_dim: D.

    Returns:
        A module mapping a list of (B, d_s) descriptors to (B, D).
    """
    return _FUSIONS[kind](dims, out_dim)
