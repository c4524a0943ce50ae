"""Missing modalities: absent embeddings, the present mask, and what each model reports."""

from __future__ import annotations

import pytest
import torch

from agfnet.errors import UserError
from agfnet.models import create_model

FUSION = ["agfnet_tiny", "late_concat_tiny", "decision_mean_tiny", "cross_attn_tiny"]


@pytest.mark.parametrize("name", FUSION)
def test_one_modality_is_enough_with_modality_dropout(name: str) -> None:
    model = create_model(name, num_classes=3, seed=0, modality_dropout=0.2).eval()
    assert model.supports_missing
    present = torch.tensor([[True, False], [False, True], [True, True]])
    x, u = torch.randn(3, 3, 64, 64), torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        out = model.forward_output(x, u, present)
        # What is in a missing image's slot does not matter: it is never used.
        noisy = model.forward_output(
            torch.where(present[:, 0, None, None, None], x, torch.randn_like(x)),
            torch.where(present[:, 1, None, None, None], u, torch.randn_like(u)),
            present,
        )
    assert torch.isfinite(out.logits).all()
    assert torch.equal(out.modalities, present)
    torch.testing.assert_close(noisy.logits, out.logits)


@pytest.mark.parametrize("name", FUSION)
def test_missing_modality_is_refused_without_modality_dropout(name: str) -> None:
    model = create_model(name, num_classes=3).eval()
    assert not model.supports_missing
    x = torch.randn(2, 3, 32, 32)
    ok = model.forward_output(x, x, torch.ones(2, 2, dtype=torch.bool))
    assert ok.modalities.all()
    with pytest.raises(UserError, match="modality_dropout"):
        model.forward_output(x, x, torch.tensor([[True, True], [True, False]]))


def test_a_pair_with_no_image_is_refused() -> None:
    model = create_model("agfnet_tiny", num_classes=3, modality_dropout=0.2).eval()
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(UserError, match="neither image"):
        model.forward_output(x, x, torch.tensor([[True, True], [False, False]]))


@pytest.mark.parametrize(("name", "used"), [("clinical_only_tiny", 0), ("ultrasound_only_tiny", 1)])
def test_single_modality_models_ignore_the_other_input(name: str, used: int) -> None:
    model = create_model(name, num_classes=3, seed=0).eval()
    assert model.supports_missing
    images = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)]
    other = list(images)
    other[1 - used] = torch.randn(2, 3, 32, 32)
    present = torch.ones(2, 2, dtype=torch.bool)
    present[:, 1 - used] = False
    with torch.no_grad():
        out = model.forward_output(*images, present)
        torch.testing.assert_close(model(*other), out.logits)
    expected = torch.zeros(2, 2, dtype=torch.bool)
    expected[:, used] = True
    assert torch.equal(out.modalities, expected)
    present[0, used] = False
    with pytest.raises(UserError, match="lack"):
        model.forward_output(*images, present)


def test_single_modality_models_refuse_fusion_options() -> None:
    with pytest.raises(UserError, match="modality_dropout"):
        create_model("clinical_only_tiny", num_classes=3, modality_dropout=0.2)
    with pytest.raises(UserError, match="share_encoder"):
        create_model("ultrasound_only_tiny", num_classes=3, share_encoder=True)


def test_modality_dropout_in_training_hides_one_modality_and_reports_it() -> None:
    torch.manual_seed(0)
    model = create_model("agfnet_tiny", num_classes=3, modality_dropout=0.9)
    x = torch.randn(16, 3, 32, 32)
    used = model.forward_output(x, x).modalities
    assert used.any(1).all()
    assert (~used.all(1)).sum() >= 8  # about 14 of 16 expected
    model.eval()
    assert model.forward_output(x, x).modalities.all()  # no dropout at inference
