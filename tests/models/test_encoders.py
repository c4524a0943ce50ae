"""Encoders: any timm backbone, local pretrained weights, sharing, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from agfnet.errors import UserError
from agfnet.models import count_params, create_model
from agfnet.models.encoders import ModalityEncoders, create_backbone


def test_pretrained_file_loads_the_saved_weights(tmp_path: Path) -> None:
    source = timm.create_model("test_resnet")
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    model = create_model(
        "agfnet_tiny",
        num_classes=3,
        backbone="test_resnet",
        backbone_kwargs={},
        pretrained_file=str(path),
    )
    # The spec rebuilds the architecture without needing the weight file again.
    assert "pretrained_file" not in model.build_spec["overrides"]
    expected = source.state_dict()
    for modality in ("clinical", "ultrasound"):
        loaded = model.encoders.backbone(modality).state_dict()
        assert loaded, "empty backbone"
        for key, value in loaded.items():
            assert torch.equal(value, expected[key]), key


def test_missing_or_unloadable_weights_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        create_backbone("test_resnet", out_indices=(-1,), pretrained_file=tmp_path / "nope.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save(timm.create_model("test_efficientnet").state_dict(), wrong)
    with pytest.raises(UserError, match="pretrained_file"):
        create_backbone("test_resnet", out_indices=(-1,), pretrained_file=wrong)
    # Hub weights with the hub unreachable (HF_HUB_OFFLINE in tests).
    with pytest.raises(UserError, match="pretrained=False"):
        create_backbone("test_resnet", out_indices=(-1,), pretrained=True)


def test_unknown_backbone_and_bad_stage_index_are_user_errors() -> None:
    with pytest.raises(UserError, match="Did you mean resnet50"):
        create_backbone("resnet5O", out_indices=(-1,))
    with pytest.raises(UserError, match="out_indices"):
        create_backbone("test_convnext", out_indices=(2, 3, 4))


@pytest.mark.parametrize("backbone", ["test_convnext", "test_efficientnet"])
def test_other_timm_backbones_work_and_report_their_channels(backbone: str) -> None:
    model = create_model("agfnet_tiny", num_classes=5, backbone=backbone, backbone_kwargs={})
    x = torch.randn(2, 3, 64, 64)
    out = model.forward_output(x, x)
    assert out.logits.shape == (2, 5) and torch.isfinite(out.rec_loss)
    feats = model.encoders.backbone("clinical")(x)
    assert (
        [f.shape[1] for f in feats]
        == model.encoders.channels
        == timm.create_model(
            backbone, features_only=True, out_indices=model.config.out_indices
        ).feature_info.channels()
    )


def test_shared_encoder_is_one_backbone() -> None:
    separate = ModalityEncoders("test_resnet", out_indices=(-1,))
    shared = ModalityEncoders("test_resnet", out_indices=(-1,), share=True)
    one = count_params(create_backbone("test_resnet", out_indices=(-1,)))
    assert count_params(separate) == 2 * one and count_params(shared) == one
    assert shared.backbone("clinical") is shared.backbone("ultrasound")
    model = create_model("late_concat_tiny", num_classes=3, share_encoder=True)
    x = torch.randn(2, 3, 32, 32)
    assert model(x, x).shape == (2, 3)
