"""Pooled attention and attention-guided pooling: oracles, bounds and linear cost."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from agfnet.layers import (
    GatedAttentionBlock,
    PooledAttention,
    QueryAttentionPool,
    ScoreAttentionPool,
    map_to_tokens,
    merge_saliency,
    pool_tokens,
)
from agfnet.models import count_flops


def _grid_tokens(b: int, c: int, h: int, w: int) -> torch.Tensor:
    return torch.randn(b, h * w, c)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (3, 5), (7, 7), (12, 12), (13, 9), (56, 56)])
def test_pool_tokens_never_exceeds_the_cap(h: int, w: int) -> None:
    x = _grid_tokens(2, 4, h, w)
    out = pool_tokens(x, (h, w), 7)
    assert out.shape[0] == 2 and out.shape[2] == 4
    assert out.shape[1] <= 49
    if h <= 7 and w <= 7:
        assert torch.equal(out, x)


def test_pool_tokens_averages_each_window_over_its_valid_cells() -> None:
    # 13 x 9 with at most 7 per side: windows of 2 x 2, the last row/column partial.
    h, w = 13, 9
    x = _grid_tokens(1, 3, h, w)
    out = pool_tokens(x, (h, w), 7)
    grid = x[0].reshape(h, w, 3)
    rows, cols = range(0, h, 2), range(0, w, 2)
    expected = torch.stack(
        [grid[r : r + 2, c : c + 2].reshape(-1, 3).mean(0) for r in rows for c in cols]
    )
    assert out.shape[1] == len(rows) * len(cols)
    torch.testing.assert_close(out[0], expected)


def test_pooled_attention_matches_explicit_softmax_attention() -> None:
    torch.manual_seed(0)
    attn = PooledAttention(16, num_heads=4, kv_size=3).eval()
    x, ctx = torch.randn(2, 10, 16), torch.randn(2, 36, 16)
    out = attn(x, ctx, (6, 6))

    pooled = pool_tokens(ctx, (6, 6), 3)
    assert pooled.shape[1] == 9
    q = attn.q(x).reshape(2, 10, 4, 4).transpose(1, 2)
    k, v = attn.kv(pooled).reshape(2, 9, 2, 4, 4).permute(2, 0, 3, 1, 4)
    weights = (q @ k.transpose(-1, -2) / math.sqrt(4)).softmax(-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 10, 16))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("side", [4, 12, 40])
def test_pooled_attention_key_length_is_bounded(side: int) -> None:
    attn = PooledAttention(8, num_heads=2, kv_size=7)
    seen = []
    attn.kv.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
    x = torch.randn(1, side * side, 8)
    assert attn(x, x, (side, side)).shape == x.shape
    assert seen == [math.ceil(side / math.ceil(side / 7)) ** 2]
    assert seen[0] <= 49


@pytest.mark.parametrize("pool_cls", [QueryAttentionPool, ScoreAttentionPool])
def test_attention_pool_saliency_is_a_distribution_that_follows_the_tokens(pool_cls) -> None:
    torch.manual_seed(0)
    pool = pool_cls(8, 2)
    x = torch.randn(3, 20, 8)
    desc, sal = pool(x)
    assert desc.shape == (3, 8) and sal.shape == (3, 20)
    assert (sal >= 0).all()
    torch.testing.assert_close(sal.sum(-1), torch.ones(3))
    # Permuting the tokens permutes the saliency and leaves the descriptor unchanged.
    perm = torch.randperm(20)
    desc_p, sal_p = pool(x[:, perm])
    torch.testing.assert_close(desc_p, desc, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sal_p, sal[:, perm])


def test_score_pool_descriptor_is_the_saliency_weighted_sum() -> None:
    pool = ScoreAttentionPool(8)
    x = torch.randn(2, 5, 8)
    desc, sal = pool(x)
    torch.testing.assert_close(desc, (sal.unsqueeze(-1) * x).sum(1))


def _block_flops(side: int, kv_size: int) -> int:
    block = GatedAttentionBlock(16, 4, kv_size=kv_size)
    x = torch.zeros(1, side * side, 16, device="meta")
    block = block.to("meta")
    return count_flops(lambda: block(x, (side, side), x, (side, side)))


def test_block_cost_is_linear_in_area_and_quadratic_without_pooling() -> None:
    # Sides that pool to exactly 7 x 7: FLOPs per token stay (almost) constant.
    per_token = [_block_flops(side, 7) / side**2 for side in (14, 28, 56)]
    assert max(per_token) / min(per_token) < 1.05  # the pooled K/V projection is a constant
    # Between those sides the pooled map has 6 x 6 or 7 x 7 tokens: never more.
    assert _block_flops(32, 7) / 32**2 <= per_token[0] * 1.01
    # The same block attending to every token (no pooling) grows much faster.
    assert _block_flops(28, 1000) / _block_flops(14, 1000) > 6


@pytest.mark.parametrize("train", [True, False])
def test_tokens_of_a_batchnorm_map_get_the_right_gradient_at_batch_size_one(train: bool) -> None:
    # PyTorch 2.14 on CPU gets this gradient wrong without map_to_tokens' guard.
    bn = nn.BatchNorm2d(3).double().train(train)
    x = torch.randn(1, 3, 2, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: map_to_tokens(bn(t)).mean(1), (x,))
    assert map_to_tokens(x).shape == (1, 4, 3)


def test_merge_saliency_averages_on_the_finest_grid_and_sums_to_one() -> None:
    fine = torch.rand(2, 6 * 4).softmax(-1)
    coarse = torch.rand(2, 3 * 2).softmax(-1)
    merged = merge_saliency([fine, coarse], [(6, 4), (3, 2)])
    assert merged.shape == (2, 6, 4) and (merged >= 0).all()
    torch.testing.assert_close(merged.sum(dim=(1, 2)), torch.ones(2))
    # One scale: the map itself, reshaped.
    torch.testing.assert_close(merge_saliency([fine], [(6, 4)]), fine.unflatten(1, (6, 4)))
