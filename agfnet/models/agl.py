"""AGL, AGFNet's attention-guided global fusion: [cls, gc, gu, zc, zu] (plus, with
metadata, one metadata token: our extension) through a small transformer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import Mlp
from torch import nn

from agfnet.constants import MODALITIES
from agfnet.layers import TokenTransformer

__all__ = ["AttentionGuidedGlobal", "GlobalFusion"]


class AttentionGuidedGlobal(nn.Module):
    """AGL: [cls, gc, gu, zc, zu, *extra] through a small transformer; f is the cls output.

    Without AGL (the agfnet_no_agl ablation) f = MLP(LN([gc; gu; zc; zu; *extra])).
    `extra` holds the metadata token when the model has metadata (docs/method.md, "Tasks
    and metadata"); it gets its own slot embedding like every other token.
    """

    def __init__(
        self,
        global_dim: int,
        dim: int,
        *,
        use_agl: bool,
        depth: int,
        num_heads: int,
        extra_tokens: int = 0,
    ) -> None:
        """
        Args:
            global_dim: channels of the global descriptors gc, gu (deepest backbone stage).
            dim: D, width of the local descriptors zc, zu, of the extra tokens and of f.
            use_agl: the transformer (True) or the MLP ablation (False).
            depth: transformer blocks.
            num_heads: transformer heads.
            extra_tokens: tokens added after [gc, gu, zc, zu] (1 with metadata).
        """
        super().__init__()
        n = 4 + extra_tokens
        self.proj = nn.ModuleDict({m: nn.Linear(global_dim, dim) for m in MODALITIES})
        if use_agl:
            self.fuse = TokenTransformer(dim, n, depth=depth, num_heads=num_heads)
        else:
            self.fuse = nn.Sequential(nn.Flatten(1), nn.LayerNorm(n * dim), Mlp(n * dim, dim, dim))

    def forward(
        self,
        g: dict[str, torch.Tensor],
        z: dict[str, torch.Tensor],
        extra: Sequence[torch.Tensor] = (),
    ) -> torch.Tensor:
        """
        Args:
            g: modality -> (B, C_last) global descriptor.
            z: modality -> (B, D) fused local descriptor.
            extra: the extra tokens, each (B, D) (the metadata vector).

        Returns:
            (B, D) fused representation f.
        """
        tokens = [self.proj[m](g[m]) for m in MODALITIES] + [z[m] for m in MODALITIES]
        return self.fuse(torch.stack([*tokens, *extra], dim=1))


#: The former name of `AttentionGuidedGlobal`.
GlobalFusion = AttentionGuidedGlobal
