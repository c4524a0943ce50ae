"""FRL pieces: token masking, the decoder and the reconstruction loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agfnet.layers import FeatureReconstruction, ReconstructionDecoder, choose_masked


@pytest.mark.parametrize(
    ("n", "ratio", "count"), [(9, 0.5, 4), (49, 0.5, 24), (1, 0.5, 1), (10, 0.3, 3)]
)
def test_mask_count_is_round_ratio_n_and_at_least_one(n: int, ratio: float, count: int) -> None:
    mask = choose_masked(5, n, ratio)
    assert mask.dtype == torch.bool and mask.shape == (5, n)
    assert mask.sum(1).tolist() == [count] * 5


def test_attention_masking_prefers_salient_tokens_but_stays_random() -> None:
    torch.manual_seed(0)
    n, trials = 16, 4000
    saliency = torch.full((trials, n), 0.1 / (n - 1))
    saliency[:, 0] = 0.9
    salient = choose_masked(trials, n, 0.25, saliency).float().mean(0)
    uniform = choose_masked(trials, n, 0.25).float().mean(0)
    assert salient[0] > 0.97  # the hot spot is masked almost always
    assert abs(uniform[0].item() - 0.25) < 0.04  # random masking: 4 of 16
    # The other three masked tokens are spread over the rest, not fixed.
    assert salient[1:].min() > 0.1


def test_masks_differ_between_samples() -> None:
    mask = choose_masked(8, 49, 0.5)
    assert len({tuple(row.tolist()) for row in mask}) > 1


def test_loss_counts_only_masked_positions_against_normalised_targets() -> None:
    torch.manual_seed(0)
    target = {"a": torch.randn(2, 6, 8), "b": torch.randn(2, 6, 8)}
    normed = {k: F.layer_norm(v, (8,)) for k, v in target.items()}
    masks = {k: torch.zeros(2, 6, dtype=torch.bool) for k in target}
    masks["a"][:, :2] = True
    masks["b"][0, 3] = True
    assert FeatureReconstruction.loss(normed, target, masks).item() == pytest.approx(0.0, abs=1e-6)

    pred = {k: v.clone() for k, v in normed.items()}
    pred["a"][:, 4:] += 5.0  # unmasked positions: no effect
    assert FeatureReconstruction.loss(pred, target, masks).item() == pytest.approx(0.0, abs=1e-6)
    pred["b"][0, 3] += 1.0  # one masked token of 5, every channel off by 1
    assert FeatureReconstruction.loss(pred, target, masks).item() == pytest.approx(1 / 5, rel=1e-5)


def test_loss_does_not_backpropagate_into_the_targets() -> None:
    target = {"a": torch.randn(1, 4, 8, requires_grad=True)}
    pred = {"a": torch.randn(1, 4, 8, requires_grad=True)}
    FeatureReconstruction.loss(pred, target, {"a": torch.ones(1, 4, dtype=torch.bool)}).backward()
    assert target["a"].grad is None and pred["a"].grad is not None


def test_mask_replaces_exactly_the_masked_tokens_with_the_mask_token() -> None:
    frl = FeatureReconstruction(8, ("a", "b"), mask_mode="random", decoder_dim=16)
    tokens = {"a": torch.randn(3, 9, 8), "b": torch.randn(3, 4, 8)}
    masked, masks = frl.mask(tokens, None)
    for k in tokens:
        m = masks[k]
        assert torch.equal(masked[k][~m], tokens[k][~m])
        assert torch.equal(masked[k][m], frl.mask_token[k].detach().expand(int(m.sum()), 8))


def test_decoder_reconstructs_every_position_of_both_streams() -> None:
    decoder = ReconstructionDecoder(8, 16, ("a", "b"), num_heads=4)
    out = decoder(
        {"a": torch.randn(2, 12, 8), "b": torch.randn(2, 6, 8)}, {"a": (3, 4), "b": (2, 3)}
    )
    assert out["a"].shape == (2, 12, 8) and out["b"].shape == (2, 6, 8)
    # Positions make identical inputs decode differently at different places.
    same = decoder({"a": torch.ones(1, 4, 8), "b": torch.ones(1, 4, 8)}, {"a": (2, 2), "b": (2, 2)})
    assert not torch.allclose(same["a"][0, 0], same["a"][0, 3])
    with pytest.raises(ValueError, match="multiple of 4"):
        ReconstructionDecoder(8, 18, ("a", "b"), num_heads=2)
