"""A small transformer over a fixed set of typed tokens with a class token (the AGL fuser)."""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

__all__ = ["TokenTransformer"]


class TokenTransformer(nn.Module):
    """[cls, t_1, ..., t_T] + a learned embedding per slot -> pre-norm blocks -> cls output.

    Slot embeddings tell the blocks which token is which (self-attention alone is blind to
    order), so "clinical global" and "ultrasound local" stay distinguishable.
    """

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        *,
        depth: int = 1,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
    ) -> None:
        """
        Args:
            dim: token width D.
            num_tokens: T, the number of input tokens (the class token comes on top).
            depth: transformer blocks.
            num_heads: attention heads per block.
            mlp_ratio: FFN hidden width / D.
            drop: dropout on attention weights and projections.
        """
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.slot_embed = nn.Parameter(torch.zeros(1, num_tokens + 1, dim))
        self.blocks = nn.Sequential(
            *(
                Block(
                    dim,
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=True,
                    proj_drop=drop,
                    attn_drop=drop,
                )
                for _ in range(depth)
            )
        )
        self.norm = nn.LayerNorm(dim)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.slot_embed, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """
        Args:
            tokens: (B, T, D).

        Returns:
            (B, D): the normalised class-token output.
        """
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.slot_embed
        return self.norm(self.blocks(x)[:, 0])
