"""Gated intra/inter blocks and the token transformer."""

from __future__ import annotations

import pytest
import torch

from agfnet.layers import BidirectionalBlock, GatedAttentionBlock, TokenTransformer


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_gates_start_at_gate_init_and_zero_gates_make_an_identity() -> None:
    block = GatedAttentionBlock(8, 2, gate_init=0.1)
    gammas = [block.gate_intra.gamma, block.gate_inter.gamma, block.gate_mlp.gamma]
    assert all(torch.allclose(g, torch.full_like(g, 0.1)) for g in gammas)
    identity = GatedAttentionBlock(8, 2, gate_init=0.0)
    x, ctx = torch.randn(2, 9, 8), torch.randn(2, 4, 8)
    assert torch.equal(identity(x, (3, 3), ctx, (2, 2)), x)
    assert not torch.equal(block(x, (3, 3), ctx, (2, 2)), x)


def test_inter_term_reads_the_context_and_intra_only_ignores_it() -> None:
    torch.manual_seed(0)
    x, ctx, other = torch.randn(1, 9, 8), torch.randn(1, 16, 8), torch.randn(1, 16, 8)
    intra_only = GatedAttentionBlock(8, 2, inter=False, gate_init=1.0)
    assert torch.equal(intra_only(x, (3, 3), ctx, (4, 4)), intra_only(x, (3, 3), other, (4, 4)))
    inter_only = GatedAttentionBlock(8, 2, intra=False, gate_init=1.0)
    assert not torch.allclose(
        inter_only(x, (3, 3), ctx, (4, 4)), inter_only(x, (3, 3), other, (4, 4))
    )


def test_dropping_a_term_removes_its_parameters() -> None:
    full = _params(GatedAttentionBlock(8, 2))
    assert _params(GatedAttentionBlock(8, 2, intra=False)) < full
    assert _params(GatedAttentionBlock(8, 2, inter=False)) < full
    with pytest.raises(ValueError, match="intra"):
        GatedAttentionBlock(8, 2, intra=False, inter=False)


def test_bidirectional_block_handles_two_map_sizes_and_is_order_free() -> None:
    torch.manual_seed(0)
    block = BidirectionalBlock(8, ("a", "b"), 2, gate_init=1.0)
    x = {"a": torch.randn(2, 12, 8), "b": torch.randn(2, 20, 8)}
    hw = {"a": (3, 4), "b": (4, 5)}
    out = block(x, hw)
    assert out["a"].shape == (2, 12, 8) and out["b"].shape == (2, 20, 8)
    swapped = block({"b": x["b"], "a": x["a"]}, hw)
    assert torch.equal(swapped["a"], out["a"]) and torch.equal(swapped["b"], out["b"])


def test_token_transformer_returns_the_class_token_and_knows_the_slots() -> None:
    torch.manual_seed(0)
    fuser = TokenTransformer(16, 4, depth=1, num_heads=4).eval()
    tokens = torch.randn(3, 4, 16)
    out = fuser(tokens)
    assert out.shape == (3, 16)
    # Slot embeddings: swapping two input tokens changes the fused output.
    assert not torch.allclose(fuser(tokens[:, [1, 0, 2, 3]]), out)
