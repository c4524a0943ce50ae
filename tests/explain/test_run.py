"""The `agfnet explain` job on a tiny synthetic set with a freshly written checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.errors import UserError

# The checkpoint's input size: 48 px gives the tiny backbone a 2x2 last stage (32 px
# would give 1x1, whose CAM is flat). The synthetic images are 32 px and get resized.
IMG = 48
CLASSES = ["BCC", "MEL", "NEV", "SCC", "SK"]


def write_checkpoint(path: Path, model: str) -> Path:
    """A checkpoint of a freshly initialised `model`, laid out by the checkpoint contract
    (docs/architecture.md): the explain job must not care whether the weights are
    trained, and this takes a second instead of a training run."""
    import agfnet
    from agfnet.data import TransformConfig
    from agfnet.engine.checkpoint import META_KEY, MODEL_PREFIX, atomic_save
    from agfnet.engine.config import config_to_dict, load_config
    from agfnet.models import create_model

    config = load_config("tiny", [f"data.img_size={IMG}"], model=model)
    net = create_model(model, num_classes=len(CLASSES), seed=0)
    meta = {
        "build_spec": net.build_spec,
        "classes": CLASSES,
        "transform": TransformConfig(img_size=IMG).model_dump(),
        "config": config_to_dict(config),
        "temperature": 1.0,
        "version": agfnet.__version__,
    }
    state = {MODEL_PREFIX + k: v for k, v in net.state_dict().items()}
    atomic_save({"state_dict": state, "hyper_parameters": {META_KEY: meta}, "epoch": 0}, path)
    return path


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from agfnet.data.synth import generate

    out = tmp_path_factory.mktemp("explain") / "synth"
    generate(out, n_per_class=2, size=32, seed=0, workers=1)
    return out


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "agfnet.ckpt", "agfnet_tiny")


def _explain(*args: str) -> object:
    return CliRunner().invoke(app, ["explain", *args])


def test_explain_command_writes_overlays_focus_and_index(synth: Path, ckpt: Path, tmp_path):
    out = tmp_path / "ex"
    args = ["--checkpoint", str(ckpt), "--data", str(synth / "manifest.csv"), "--out", str(out)]
    result = _explain(*args, "--n", "4", "--method", "gradcam++", "--attention")
    assert result.exit_code == 0, result.output
    assert "4 rows explained" in result.output
    # One line per map and modality, with its verdict against chance.
    assert result.output.count("rows: ") == 4 and "lift" in result.output

    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert overlays == [f"row{i:05d}.png" for i in range(1, 5)]
    with Image.open(out / "overlays" / overlays[0]) as image:
        assert image.width > image.height * 0.8  # two columns, two lines of panels
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    focus = json.loads((out / "focus.json").read_text())
    assert focus["n"] == 4 and focus["kinds"] == ["gradcam++", "attention"]
    assert focus["layers"]["clinical"] == [
        "encoders.backbones.clinical.layer2",
        "encoders.backbones.clinical.layer3",
    ]
    # The map's own resolution is recorded, and a map under 7 x 7 is flagged on the page.
    assert focus["map_size"] == {"clinical": [IMG // 8] * 2, "ultrasound": [IMG // 8] * 2}
    # No mask columns in the synthetic manifest: the masks/ folder convention finds them.
    assert focus["rows_with_mask"] == {"clinical": 4, "ultrasound": 4}
    for r in focus["rows"]:
        assert r["prediction"] in CLASSES and 0 < r["probability"] <= 1
        for kind in focus["kinds"]:
            for m in ("clinical", "ultrasound"):
                s = r["focus"][kind][m]
                assert s["energy_inside"] is None or 0 <= s["energy_inside"] <= 1
    # mask_fraction is the lesion share of the mask resized to the input size.
    mask = Image.open(synth / "masks" / "ultrasound" / "L00002.png").resize((IMG, IMG), 0)
    fraction = (np.asarray(mask) > 0).mean()
    row2 = focus["rows"][1]["focus"]["attention"]["ultrasound"]
    assert row2["mask_fraction"] == pytest.approx(fraction)
    # Summary means are the means of the defined per-row values.
    for kind, by_modality in focus["focus"].items():
        for m, s in by_modality.items():
            values = [
                r["focus"][kind][m]["energy_inside"]
                for r in focus["rows"]
                if r["focus"][kind][m]["energy_inside"] is not None
            ]
            assert s["n"] == 4 and s["n_undefined"] == 4 - len(values)
            assert s["energy_inside"] == (pytest.approx(np.mean(values)) if values else None)
            # ... and against chance: never "beats chance" on 4 rows (4 of 4 is p = 1/16).
            assert s["verdict"] in ("does not beat chance", "not significantly above chance")
    # Attention maps are never flat, so they are always scored.
    assert focus["focus"]["attention"]["clinical"]["n_undefined"] == 0

    with open(out / "explanations.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert [int(r["row"]) for r in lines] == [1, 2, 3, 4]
    assert [r["label"] for r in lines] == ["BCC", "SCC", "MEL", "SK"]
    assert float(lines[1]["ultrasound_attention_energy_inside"]) == pytest.approx(
        row2["energy_inside"]
    )
    assert lines[1]["ultrasound_attention_pointing_game"] in ("0", "1")

    index = (out / "index.md").read_text()
    assert all(f"(overlays/{name})" in index for name in overlays)
    assert "what the model used, not where the lesion is" in index
    assert ("only 6x6 cells" in index) == (IMG // 8 < 7)
    assert (out / "index.html").read_text().count("<img ") == 4

    # A second run into the same folder replaces the outputs.
    assert _explain(*args, "--n", "2").exit_code == 0
    assert len(list((out / "overlays").iterdir())) == 2
    assert json.loads((out / "focus.json").read_text())["kinds"] == ["layercam"]


def test_mask_columns_win_over_the_folder_convention(synth: Path, ckpt: Path, tmp_path):
    from agfnet.explain.run import run_explain

    with open(synth / "manifest.csv", newline="") as f:
        rows = [
            {**r, "clinical_mask": f"masks/clinical/{r['lesion_id']}.png", "ultrasound_mask": ""}
            for r in csv.DictReader(f)
        ]
    manifest = synth / "with_masks.csv"

    def write(rows: list[dict]) -> None:
        with open(manifest, "w", newline="") as f:
            writer = csv.DictWriter(f, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    write(rows)
    summary = run_explain(ckpt, manifest, tmp_path / "a", n=3, method="layercam")
    assert summary["rows_with_mask"] == {"clinical": 3, "ultrasound": 0}
    assert list(summary["focus"]["layercam"]) == ["clinical"]

    rows[1]["clinical_mask"] = "masks/clinical/nope.png"
    write(rows)
    with pytest.raises(UserError, match=r"row 2, column 'clinical_mask'.*nope\.png"):
        run_explain(ckpt, manifest, tmp_path / "b", n=3)
    assert not (tmp_path / "b" / "focus.json").exists()
    assert not [p for p in (tmp_path / "b").iterdir()]


def test_user_errors(synth: Path, ckpt: Path, tmp_path: Path) -> None:
    data = ["--data", str(synth / "manifest.csv"), "--out", str(tmp_path / "x")]
    result = _explain("--checkpoint", str(ckpt), *data, "--method", "scorecam")
    assert result.exit_code == 2 and "gradcam, gradcam++, layercam" in result.output
    result = _explain("--checkpoint", str(ckpt), *data, "--layer", "photo=layer4")
    assert result.exit_code == 2 and "MODALITY=DOTTED.NAME" in result.output
    baseline = write_checkpoint(tmp_path / "late.ckpt", "late_concat_tiny")
    result = _explain("--checkpoint", str(baseline), *data, "--n", "2", "--attention")
    assert result.exit_code == 2 and "no attention" in result.output
