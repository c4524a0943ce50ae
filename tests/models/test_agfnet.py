"""AGFNet's timm-style split (features, head), its modules, variants and old checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from agfnet.layers import ProgressiveFusion, QueryAttentionPool, ScoreAttentionPool
from agfnet.models import MODALITIES, create_model
from agfnet.models.agfnet import AttentionGuidedGlobal, GlobalFusion, LocalScale


def test_forward_is_features_then_head() -> None:
    model = create_model("agfnet_tiny", num_classes=3, seed=0).eval()
    x, u = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        features = model.forward_features(x, u)
        logits = model.forward_head(features)
        f = model.forward_head(features, pre_logits=True)
        out = model.forward_output(x, u)
        plain = model(x, u)
    assert len(features.scales) == len(model.encoders.channels)
    for scale, dim in zip(features.scales, model.dims, strict=True):
        for m in MODALITIES:
            h, w = scale.hw[m]
            assert scale.tokens[m].shape == (2, h * w, dim)
            assert scale.desc[m].shape == (2, dim)
            assert scale.saliency[m].shape == (2, h * w)
    assert {m: g.shape for m, g in features.global_desc.items()} == {
        m: (2, model.encoders.channels[-1]) for m in MODALITIES
    }
    assert features.modalities.all()
    assert f.shape == (2, model.config.embed_dim)
    assert torch.equal(logits, out.logits) and torch.equal(plain, out.logits)


def test_agl_is_the_paper_named_module() -> None:
    model = create_model("agfnet_tiny", num_classes=3)
    assert isinstance(model.agl, AttentionGuidedGlobal)
    assert GlobalFusion is AttentionGuidedGlobal
    assert not any(k.startswith("glob.") for k in model.state_dict())


class _Wrapper(nn.Module):
    """A network inside another module, as in the training module (`model.` keys)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


@pytest.mark.parametrize("nested", [False, True])
def test_checkpoints_with_the_former_glob_keys_still_load(nested: bool) -> None:
    source = create_model("agfnet_tiny", num_classes=3, seed=1)
    prefix = "model." if nested else ""
    old = {
        prefix + (f"glob.{k[len('agl.') :]}" if k.startswith("agl.") else k): v
        for k, v in source.state_dict().items()
    }
    assert any(k.startswith(f"{prefix}glob.") for k in old)
    target = create_model("agfnet_tiny", num_classes=3, seed=2)
    (_Wrapper(target) if nested else target).load_state_dict(old)  # strict
    loaded = target.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    assert any(k.startswith(f"{prefix}glob.") for k in old)  # the caller's dict is untouched


def test_local_scale_takes_explicit_arguments() -> None:
    stage = LocalScale(32, 16, 2, saliency="score", kv_size=3)
    assert all(isinstance(p, ScoreAttentionPool) for p in stage.pool.values())
    tokens, hw = stage.tokens({m: torch.randn(2, 32, 5, 4) for m in MODALITIES})
    desc, saliency = stage.describe(stage.attend(tokens, hw))
    assert {d.shape for d in desc.values()} == {(2, 16)}
    assert {s.shape for s in saliency.values()} == {(2, 20)}
    plain = LocalScale(32, 16, use_all=False)
    assert plain.mix is None and plain.pool is None


@pytest.mark.parametrize(
    ("name", "module_cls"),
    [
        ("agfnet_tiny", QueryAttentionPool),
        ("agfnet_score_saliency_tiny", ScoreAttentionPool),
        ("agfnet_progressive_fusion_tiny", ProgressiveFusion),
    ],
)
def test_assumption_variants_are_registered(name: str, module_cls: type[nn.Module]) -> None:
    model = create_model(name, num_classes=3)
    assert any(isinstance(m, module_cls) for m in model.modules())
