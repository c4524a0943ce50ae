"""Gated intra/inter-modality attention blocks: the mixing step of ALL (and of the FRL
decoder and the cross-attention baseline)."""

from __future__ import annotations

import torch
from timm.layers import LayerScale, Mlp
from torch import nn

from agfnet.layers.attention import PooledAttention

__all__ = ["BidirectionalBlock", "GatedAttentionBlock"]


class GatedAttentionBlock(nn.Module):
    """Pre-norm block: x + g_a*Attn(x, R(x)) + g_b*Attn(x, R(ctx)), then x + g_f*FFN(x).

    Attn(q, R(kv)) is `PooledAttention`; the intra term attends over the block's own
    tokens, the inter term over the other modality's. The gates g are per-channel
    learned scales (LayerScale, CaiT) that start at `gate_init`, so a freshly added block
    barely disturbs the backbone features it refines.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 4,
        *,
        kv_size: int = 7,
        mlp_ratio: float = 4.0,
        intra: bool = True,
        inter: bool = True,
        gate_init: float = 0.1,
        drop: float = 0.0,
    ) -> None:
        """
        Args:
            dim: token width C.
            num_heads: attention heads.
            kv_size: keys/values are pooled to at most kv_size x kv_size tokens.
            mlp_ratio: FFN hidden width / C.
            intra: keep the intra-modality term.
            inter: keep the inter-modality term.
            gate_init: initial value of every gate.
            drop: dropout on attention weights and projections.
        """
        super().__init__()
        if not (intra or inter):
            raise ValueError("a GatedAttentionBlock needs the intra term, the inter term or both")

        def attention() -> PooledAttention:
            return PooledAttention(dim, num_heads, kv_size=kv_size, attn_drop=drop, proj_drop=drop)

        self.norm = nn.LayerNorm(dim)
        self.intra = attention() if intra else None
        self.gate_intra = LayerScale(dim, gate_init) if intra else None
        self.norm_ctx = nn.LayerNorm(dim) if inter else None
        self.inter = attention() if inter else None
        self.gate_inter = LayerScale(dim, gate_init) if inter else None
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.gate_mlp = LayerScale(dim, gate_init)

    def forward(
        self,
        x: torch.Tensor,
        x_hw: tuple[int, int],
        context: torch.Tensor,
        context_hw: tuple[int, int],
    ) -> torch.Tensor:
        """
        Args:
            x: (B, N, C) tokens of an h x w map.
            x_hw: (h, w).
            context: (B, Nc, C) the other modality's tokens.
            context_hw: their (hc, wc).

        Returns:
            (B, N, C).
        """
        y = self.norm(x)
        # Both terms read the same normalised input: L = T + g_a*A + g_b*B, not sequential.
        update = torch.zeros_like(x)
        if self.intra is not None:
            update = update + self.gate_intra(self.intra(y, y, x_hw))
        if self.inter is not None:
            update = update + self.gate_inter(self.inter(y, self.norm_ctx(context), context_hw))
        x = x + update
        return x + self.gate_mlp(self.mlp(self.norm_mlp(x)))


class BidirectionalBlock(nn.Module):
    """Two `GatedAttentionBlock`s, one per stream, each using the other as its context.

    Both read the inputs before either update, so the result does not depend on order.
    """

    def __init__(self, dim: int, names: tuple[str, str], num_heads: int = 4, **kwargs) -> None:
        """
        Args:
            dim: token width C.
            names: the two stream names (e.g. ("clinical", "ultrasound")).
            num_heads: attention heads.
            **kwargs: the remaining `GatedAttentionBlock` options.
        """
        super().__init__()
        self.names = tuple(names)
        self.blocks = nn.ModuleDict(
            {n: GatedAttentionBlock(dim, num_heads, **kwargs) for n in names}
        )

    def forward(
        self, x: dict[str, torch.Tensor], hw: dict[str, tuple[int, int]]
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            x: stream name -> (B, N_s, C) tokens.
            hw: stream name -> the map's (h, w).

        Returns:
            stream name -> (B, N_s, C).
        """
        a, b = self.names
        other = {a: b, b: a}
        return {n: self.blocks[n](x[n], hw[n], x[other[n]], hw[other[n]]) for n in self.names}
