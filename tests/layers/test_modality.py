"""Modality dropout and the absent embedding."""

from __future__ import annotations

import torch

from agfnet.layers import AbsentEmbedding, drop_modalities


def test_modality_dropout_hides_one_modality_of_full_pairs_at_rate_p() -> None:
    torch.manual_seed(0)
    n = 20000
    present = torch.ones(n, 2, dtype=torch.bool)
    present[:1000, 1] = False  # these have one image only: never dropped further
    out = drop_modalities(present, 0.3)
    assert out.any(1).all()  # never both hidden
    assert torch.equal(out[:1000], present[:1000])
    assert not (out & ~present).any()  # only hides, never adds
    dropped = (~out[1000:]).any(1).float().mean().item()
    assert abs(dropped - 0.3) < 0.02
    which = (~out[1000:]).float().sum(0)
    assert abs(which[0] / which.sum() - 0.5) < 0.03


def test_no_dropout_at_p_zero() -> None:
    present = torch.ones(50, 2, dtype=torch.bool)
    assert torch.equal(drop_modalities(present, 0.0), present)


def test_absent_embedding_replaces_only_absent_samples_on_maps_and_vectors() -> None:
    absent = AbsentEmbedding(4)
    keep = torch.tensor([True, False, True])
    maps = torch.randn(3, 4, 2, 5)
    out = absent(maps, keep)
    assert torch.equal(out[keep], maps[keep])
    assert torch.equal(out[1], absent.embedding.detach().view(4, 1, 1).expand(4, 2, 5))
    vectors = torch.randn(3, 4)
    out = absent(vectors, keep)
    assert torch.equal(out[1], absent.embedding.detach())
    assert torch.equal(out[0], vectors[0])
