"""Display names from the checkpoint: a model trained on dermoscopic images says so in the
predictor's description, `agfnet predict`'s text and CAM output, and the ONNX metadata."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.inference import Predictor

DERM_OVERRIDE = "data.modality_names.ultrasound=Dermoscopic image"
DERM = {"clinical": "Clinical photograph", "ultrasound": "Dermoscopic image"}
DEFAULT = {"clinical": "Clinical photograph", "ultrasound": "Ultrasound image"}


@pytest.fixture(scope="module")
def derm_ckpt(make_checkpoint: Callable[..., Path]) -> Path:
    """agfnet_tiny whose training config names the second image dermoscopic."""
    return make_checkpoint("derm", overrides=(DERM_OVERRIDE,))


@pytest.fixture(scope="module")
def derm_ckpt_64(make_checkpoint: Callable[..., Path]) -> Path:
    """The same at 64 px, the smallest size whose Grad-CAM maps are not flat."""
    return make_checkpoint("derm64", overrides=(DERM_OVERRIDE, "data.img_size=64"))


def run(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_the_checkpoint_carries_the_names_to_the_predictor(
    derm_ckpt: Path, fusion_ckpt: Path
) -> None:
    derm = Predictor.from_checkpoint(derm_ckpt, device="cpu")
    assert derm.modality_names == DERM
    assert derm.describe()["modality_names"] == DERM
    assert Predictor.from_checkpoint(fusion_ckpt, device="cpu").modality_names == DEFAULT


def test_a_checkpoint_from_before_the_setting_gets_the_defaults(
    derm_ckpt: Path, tmp_path: Path
) -> None:
    import torch

    from agfnet.runtime.checkpoint import atomic_save

    ckpt = torch.load(derm_ckpt, weights_only=True)
    del ckpt["hyper_parameters"]["agfnet"]["config"]["data"]["modality_names"]
    old = tmp_path / "old.ckpt"
    atomic_save(ckpt, old)
    assert Predictor.from_checkpoint(old, device="cpu").modality_names == DEFAULT


def test_predict_names_the_dermoscopic_image(
    derm_ckpt: Path, derm_ckpt_64: Path, pair, tmp_path: Path
) -> None:
    images = ("--clinical", pair[0], "--ultrasound", pair[1], "--device", "cpu")
    table = run("predict", "--checkpoint", derm_ckpt, *images)
    assert table.exit_code == 0, table.output
    assert "modalities used: Clinical photograph, Dermoscopic image" in table.stdout
    assert "Ultrasound image" not in table.output

    cams = run("predict", "--checkpoint", derm_ckpt_64, *images, "--cam", tmp_path / "cam")
    assert cams.exit_code == 0, cams.output
    assert f"Dermoscopic image: {tmp_path / 'cam' / 'ultrasound_cam.png'}" in cams.stdout
    assert "Ultrasound image" not in cams.output
    explanation = json.loads((tmp_path / "cam" / "explanation.json").read_text())
    assert explanation["cam"]["titles"] == DERM
    assert explanation["modalities"] == {"clinical": True, "ultrasound": True}  # API fields


def test_predict_with_the_default_names(fusion_ckpt: Path, pair) -> None:
    result = run(
        "predict", "--checkpoint", fusion_ckpt, "--clinical", pair[0], "--ultrasound", pair[1]
    )
    assert result.exit_code == 0, result.output
    assert "modalities used: Clinical photograph, Ultrasound image" in result.stdout


class _Session:
    """Just what `OnnxPredictor.__init__` asks of an onnxruntime session."""

    def get_inputs(self) -> list:
        return []


def test_the_onnx_metadata_carries_the_names(derm_ckpt: Path) -> None:
    from agfnet.inference.export import _metadata
    from agfnet.inference.onnx_runtime import OnnxPredictor
    from agfnet.runtime.checkpoint import load_model

    model, info = load_model(derm_ckpt)
    meta = _metadata(info, model, 32)
    assert json.loads(meta["modality_names"]) == DERM
    assert OnnxPredictor(_Session(), meta, "m.onnx").describe()["modality_names"] == DERM
    del meta["modality_names"]  # a file exported before the setting
    assert OnnxPredictor(_Session(), meta, "m.onnx").modality_names == DEFAULT
