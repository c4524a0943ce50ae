"""Attention primitives: key/value-pooled attention (cost linear in the query count) and
attention-guided pooling of a token map into one descriptor plus a saliency map."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PooledAttention",
    "QueryAttentionPool",
    "ScoreAttentionPool",
    "create_attention_pool",
    "merge_saliency",
    "pool_tokens",
]


def pool_tokens(x: torch.Tensor, hw: tuple[int, int], max_side: int) -> torch.Tensor:
    """Average-pool the tokens of an h x w map so that at most `max_side` per side remain.

    The window is ceil(h / max_side) x ceil(w / max_side) with the same stride, so a map
    already within the limit is returned unchanged and a larger one shrinks to at most
    max_side**2 tokens whatever the input size: this is what keeps attention linear.

    Args:
        x: (B, h*w, C) tokens in row-major order.
        hw: the map's (h, w).
        max_side: the largest number of pooled tokens per side (M = max_side**2).

    Returns:
        (B, M', C) with M' <= max_side**2.
    """
    h, w = hw
    kh, kw = -(-h // max_side), -(-w // max_side)
    if kh == 1 and kw == 1:
        return x
    b, _, c = x.shape
    grid = x.transpose(1, 2).reshape(b, c, h, w)
    # ceil_mode keeps the border; a partial window is averaged over its valid cells only.
    grid = F.avg_pool2d(grid, (kh, kw), stride=(kh, kw), ceil_mode=True)
    return grid.flatten(2).transpose(1, 2)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) feature map -> (B, h*w, C) tokens in row-major order.

    The gradient that flows back into `x` is made contiguous: PyTorch 2.14 on CPU computes
    a wrong BatchNorm input gradient at batch size 1 when that gradient arrives as the
    transposed view `flatten(2).transpose(1, 2)` produces (the strides of a one-sample
    batch read as channels-last); tests/layers/test_attention.py checks it with gradcheck.
    """
    if x.requires_grad and not torch.compiler.is_compiling():
        x = _ContiguousGrad.apply(x)
    return x.flatten(2).transpose(1, 2)


class PooledAttention(nn.Module):
    """Multi-head attention of N queries over a context pooled to at most M tokens.

    Cost is O(N * M * C) instead of O(N^2 * C) (PVT's spatial-reduction attention, with
    average pooling to a fixed size instead of a fixed stride). Keys and values come from
    `kv`, so a forward hook on `self.kv` sees the pooled key length.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 4,
        *,
        kv_size: int = 7,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        """
        Args:
            dim: token width C; must be divisible by `num_heads`.
            num_heads: attention heads.
            kv_size: the context is pooled to at most kv_size x kv_size tokens.
            qkv_bias: bias on the query, key and value projections.
            attn_drop: dropout on the attention weights (training only).
            proj_drop: dropout after the output projection.
        """
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.kv_size = kv_size
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, context_hw: tuple[int, int]
    ) -> torch.Tensor:
        """
        Args:
            x: (B, N, C) queries.
            context: (B, Nc, C) tokens of an hc x wc map (may be `x` itself).
            context_hw: (hc, wc).

        Returns:
            (B, N, C).
        """
        b, n, c = x.shape
        heads = self.num_heads
        ctx = pool_tokens(context, context_hw, self.kv_size)
        q = self.q(x).reshape(b, n, heads, c // heads).transpose(1, 2)
        k, v = self.kv(ctx).reshape(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        drop = self.attn_drop if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        x = x.transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class QueryAttentionPool(nn.Module):
    """Attention-guided pooling: one learned query per head attends over all N tokens.

    The head-averaged attention weights are the saliency map; cost is O(N * C).
    """

    def __init__(self, dim: int, num_heads: int = 4) -> None:
        """
        Args:
            dim: token width C; must be divisible by `num_heads`.
            num_heads: attention heads.
        """
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Parameter(torch.zeros(num_heads, dim // num_heads))
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.query, std=0.02)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: (B, N, C) tokens.

        Returns:
            descriptor (B, C) and saliency (B, N), non-negative, summing to 1 over N.
        """
        b, n, c = x.shape
        y = self.norm(x)
        k = self.key(y).reshape(b, n, self.num_heads, -1)
        v = self.value(y).reshape(b, n, self.num_heads, -1)
        attn = (torch.einsum("bnhd,hd->bhn", k, self.query) * self.scale).softmax(dim=-1)
        out = torch.einsum("bhn,bnhd->bhd", attn, v).reshape(b, c)
        return self.proj(out), attn.mean(dim=1)


class ScoreAttentionPool(nn.Module):
    """Attention-guided pooling from a learned one-channel score (attention-MIL style).

    A linear score per token, softmax over the N tokens, weighted sum of the tokens.
    """

    def __init__(self, dim: int, num_heads: int = 4) -> None:
        """
        Args:
            dim: token width C.
            num_heads: unused; accepted so that every pool has the same signature.
        """
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        # No bias: the softmax over tokens ignores a constant shift, so it could not learn.
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: (B, N, C) tokens.

        Returns:
            descriptor (B, C) and saliency (B, N), non-negative, summing to 1 over N.
        """
        weights = self.score(self.norm(x)).squeeze(-1).softmax(dim=-1)
        return torch.einsum("bn,bnc->bc", weights, x), weights


_POOLS: dict[str, type[nn.Module]] = {"attention": QueryAttentionPool, "score": ScoreAttentionPool}


def create_attention_pool(kind: str, dim: int, num_heads: int = 4) -> nn.Module:
    """Build an attention-guided pooling module by name.

    Args:
        kind: "attention" (learned query, saliency = attention weights) or "score"
            (learned one-channel score).
        dim: token width.
        num_heads: heads of the "attention" pool.

    Returns:
        A module mapping (B, N, C) to ((B, C), (B, N)).
    """
    return _POOLS[kind](dim, num_heads)


def merge_saliency(maps: list[torch.Tensor], hws: list[tuple[int, int]]) -> torch.Tensor:
    """Average saliency maps of several scales on the first one's grid.

    Args:
        maps: per scale, (B, h_s * w_s) non-negative weights in row-major order.
        hws: per scale, the map's (h_s, w_s); the first sets the output size.

    Returns:
        (B, h_1, w_1): the maps upsampled (bilinear), averaged, summing to 1 per sample.
    """
    up = [
        F.interpolate(m.unflatten(1, hw).unsqueeze(1), hws[0], mode="bilinear", align_corners=False)
        for m, hw in zip(maps, hws, strict=True)
    ]
    avg = torch.stack(up).mean(dim=0).squeeze(1)
    return avg / avg.sum(dim=(1, 2), keepdim=True)
