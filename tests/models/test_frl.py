"""FRL runs in training only, never changes inference, and re-runs only ALL."""

from __future__ import annotations

import pytest
import torch

from agfnet.models import create_model


def _calls(module: torch.nn.Module) -> list[int]:
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_decoder_runs_in_training_and_never_in_eval() -> None:
    model = create_model("agfnet_tiny", num_classes=3, seed=0)
    calls = _calls(model.frl.decoder)
    x = torch.randn(2, 3, 64, 64)
    out = model.forward_output(x, x)
    assert len(calls) == 1
    assert out.rec_loss is not None and out.rec_loss > 0 and torch.isfinite(out.rec_loss)
    assert out.masked_logits.shape == (2, 3)
    assert set(out.aux_logits) == {"clinical", "ultrasound"}

    model.eval()
    with torch.no_grad():
        model(x, x)
        out = model.forward_output(x, x)
    assert len(calls) == 1
    assert out.rec_loss is None and out.masked_logits is None


def test_eval_output_is_identical_with_and_without_frl() -> None:
    with_frl = create_model("agfnet_tiny", num_classes=5, seed=3).eval()
    without = create_model("agfnet_no_frl_tiny", num_classes=5, seed=4).eval()
    result = without.load_state_dict(with_frl.state_dict(), strict=False)
    assert not result.missing_keys
    assert result.unexpected_keys and all(k.startswith("frl.") for k in result.unexpected_keys)
    x, u = torch.randn(3, 3, 64, 64), torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        a, b = with_frl.forward_output(x, u), without.forward_output(x, u)
    assert torch.equal(a.logits, b.logits)
    for m in a.saliency:
        assert torch.equal(a.saliency[m], b.saliency[m])


def test_masked_pass_reuses_the_backbone_features() -> None:
    model = create_model("agfnet_tiny", num_classes=3, seed=0)
    backbone_calls = _calls(model.encoders.backbone("clinical"))
    mix_calls = _calls(model.local[-1].mix)
    x = torch.randn(2, 3, 64, 64)
    model.forward_output(x, x)
    assert len(backbone_calls) == 1  # the backbones are not run again
    assert len(mix_calls) == 2  # ALL at the deepest scale: normal pass + masked pass


@pytest.mark.parametrize("mask", ["random", "attention"])
def test_reconstruction_loss_trains_down(mask: str) -> None:
    torch.manual_seed(0)
    model = create_model("agfnet_tiny", num_classes=3, seed=0, frl_mask=mask)
    optimizer = torch.optim.Adam(model.frl.parameters(), lr=3e-3)
    x, u = torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = model.forward_output(x, u).rec_loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5


def test_no_all_ablation_masks_at_random() -> None:
    model = create_model("agfnet_no_all_tiny", num_classes=3, seed=0)
    assert model.config.frl_mask == "attention"  # falls back to random: no saliency
    x = torch.randn(2, 3, 64, 64)
    out = model.forward_output(x, x)
    assert out.saliency == {} and torch.isfinite(out.rec_loss)
