"""Every registered model: output shapes from a case table, and reported channels."""

from __future__ import annotations

import pytest
import torch

from agfnet.models import MODALITIES, create_model, list_models

TINY = list_models("_tiny")
PAPER = list_models("_paper")

# (clinical shape, ultrasound shape, classes): two input sizes, odd class counts, and a
# pair whose two images differ in size.
CASES = [
    ((2, 3, 32, 32), (2, 3, 32, 32), 3),
    ((3, 3, 64, 64), (3, 3, 64, 48), 7),
]


def test_both_sizes_of_every_family_are_registered() -> None:
    families = {n.removesuffix("_tiny") for n in TINY}
    assert families == {n.removesuffix("_paper") for n in PAPER}
    assert families == {
        "agfnet",
        "agfnet_no_frl",
        "agfnet_no_agl",
        "agfnet_no_all",
        "agfnet_no_intra",
        "agfnet_no_inter",
        "agfnet_score_saliency",
        "agfnet_progressive_fusion",
        "agfnet_three_scale",
        "agfnet_narrow",
        "clinical_only",
        "ultrasound_only",
        "late_concat",
        "decision_mean",
        "cross_attn",
    }
    assert set(list_models()) == set(TINY) | set(PAPER) | set(list_models("_lite"))


@pytest.mark.parametrize(("clinical_shape", "ultrasound_shape", "classes"), CASES)
@pytest.mark.parametrize("name", TINY)
def test_tiny_model_output_shapes(name, clinical_shape, ultrasound_shape, classes) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=classes, seed=0)
    clinical, ultrasound = torch.randn(clinical_shape), torch.randn(ultrasound_shape)
    batch = clinical_shape[0]

    out = model.forward_output(clinical, ultrasound)  # training mode
    assert out.logits.shape == (batch, classes)
    assert torch.isfinite(out.logits).all()
    assert out.modalities.shape == (batch, 2) and out.modalities.dtype == torch.bool
    for key, logits in out.aux_logits.items():
        assert key in MODALITIES
        assert logits.shape == (batch, classes)
    if out.masked_logits is not None:
        assert out.masked_logits.shape == (batch, classes)
    if out.rec_loss is not None:
        assert out.rec_loss.dim() == 0 and torch.isfinite(out.rec_loss)

    model.eval()
    with torch.no_grad():
        logits = model(clinical, ultrasound)
        out = model.forward_output(clinical, ultrasound)
    assert isinstance(logits, torch.Tensor) and logits.shape == (batch, classes)
    assert out.rec_loss is None and out.masked_logits is None
    torch.testing.assert_close(out.logits, logits)

    # Saliency is on the finest fused map of each modality, a distribution per sample.
    images = {"clinical": clinical, "ultrasound": ultrasound}
    for modality, sal in out.saliency.items():
        finest = model.encoders.backbone(modality)(images[modality])[0]
        assert sal.shape == (batch, *finest.shape[-2:])
        torch.testing.assert_close(sal.sum(dim=(1, 2)), torch.ones(batch))


@pytest.mark.parametrize("name", TINY)
def test_reported_channels_equal_real_feature_channels(name: str) -> None:
    model = create_model(name, num_classes=3).eval()
    x = torch.randn(1, 3, 64, 64)
    for modality in model.encoders.modalities:
        feats = model.encoders.backbone(modality)(x)
        assert [f.shape[1] for f in feats] == model.encoders.channels
        assert [64 // f.shape[-1] for f in feats] == model.encoders.reductions


@pytest.mark.parametrize("name", PAPER)
def test_paper_models_build_with_resnet50_channels(name: str) -> None:
    # The meta device builds ResNet-50s without memory or initialisation cost.
    with torch.device("meta"):
        model = create_model(name, num_classes=5)
    assert model.default_img_size == 224
    assert model.config.backbone == "resnet50"
    assert model.encoders.channels[-1] == 2048
    if name.startswith(("agfnet", "cross_attn")):
        # AGFNet fuses the last two stages (issue 15), agfnet_three_scale and cross_attn three.
        assert model.encoders.channels == [512, 1024, 2048][-len(model.config.out_indices) :]
        assert len(model.config.out_indices) == (
            3 if "three_scale" in name or "cross" in name else 2
        )


def test_paper_reported_channels_equal_real_feature_channels() -> None:
    with torch.device("meta"):
        model = create_model("agfnet_paper", num_classes=5).eval()
        feats, _ = model.encoders(torch.zeros(1, 3, 224, 224), torch.zeros(1, 3, 224, 224))
    for maps in feats.values():
        assert [f.shape[1] for f in maps] == model.encoders.channels
        assert [224 // f.shape[-1] for f in maps] == model.encoders.reductions == [16, 32]


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER)
def test_paper_model_output_shape(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name, num_classes=7).eval()
        x = torch.zeros(2, 3, 224, 224)
        assert model(x, x).shape == (2, 7)
