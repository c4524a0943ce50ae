"""`agfnet predict` and `agfnet export` on real checkpoints: JSON and table output, batch CSV,
clear errors, ONNX round trip."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agfnet.cli.app import app


def run(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_json_output_has_the_api_fields(fusion_ckpt: Path, pair) -> None:
    result = run(
        "predict",
        "--checkpoint",
        fusion_ckpt,
        "--clinical",
        pair[0],
        "--ultrasound",
        pair[1],
        "--json",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"probabilities", "prediction", "uncertainty", "modalities"}
    assert sum(out["probabilities"].values()) == pytest.approx(1.0)
    assert out["prediction"] == max(out["probabilities"], key=out["probabilities"].get)
    assert set(out["uncertainty"]) == {
        "entropy",
        "normalized_entropy",
        "max_probability",
        "certainty",
    }
    assert out["modalities"] == {"clinical": True, "ultrasound": True}

    from agfnet.inference import Predictor

    assert out == Predictor.from_checkpoint(fusion_ckpt, "cpu").predict(*pair).to_dict()


def test_table_output_lists_every_class(fusion_ckpt: Path, pair) -> None:
    result = run(
        "predict", "--checkpoint", fusion_ckpt, "--clinical", pair[0], "--ultrasound", pair[1]
    )
    assert result.exit_code == 0, result.output
    for name in ("BCC", "SCC", "MEL", "SK", "NEV", "prediction:", "certainty", "modalities used"):
        assert name in result.stdout


def _manifest_without_labels(synth_dir: Path, tmp_path: Path) -> Path:
    """The synthetic manifest, labels dropped, row 4's ultrasound cell blank."""
    with open(synth_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    path = tmp_path / "unlabelled.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, ["clinical", "ultrasound", "lesion_id"])
        writer.writeheader()
        for i, r in enumerate(rows, start=1):
            writer.writerow(
                {
                    "clinical": str(synth_dir / r["clinical"]),
                    "ultrasound": "" if i == 4 else str(synth_dir / r["ultrasound"]),
                    "lesion_id": r["lesion_id"],
                }
            )
    return path


def test_batch_prediction_writes_one_row_per_manifest_row(
    dropout_ckpt: Path, synth_dir: Path, tmp_path: Path
) -> None:
    manifest = _manifest_without_labels(synth_dir, tmp_path)
    out = tmp_path / "pred.csv"
    result = run(
        "predict",
        "--checkpoint",
        dropout_ckpt,
        "--data",
        manifest,
        "--out",
        out,
        "--batch-size",
        "4",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    classes = ["BCC", "SCC", "MEL", "SK", "NEV"]
    assert list(rows[0]) == [
        "row",
        "lesion_id",
        "prediction",
        *(f"prob_{c}" for c in classes),
        "entropy",
        "modalities",
    ]
    assert summary["rows"] == len(rows) == 15
    assert [int(r["row"]) for r in rows] == list(range(1, 16))
    with open(manifest, newline="") as f:
        assert [r["lesion_id"] for r in rows] == [m["lesion_id"] for m in csv.DictReader(f)]
    assert [r["modalities"] for r in rows].count("clinical") == 1
    assert rows[3]["modalities"] == "clinical"
    probs = np.array([[float(r[f"prob_{c}"]) for c in classes] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert [r["prediction"] for r in rows] == [classes[i] for i in probs.argmax(axis=1)]
    assert sum(summary["predicted"].values()) == 15


def test_batch_prediction_refuses_rows_missing_a_needed_image(
    fusion_ckpt: Path, synth_dir: Path, tmp_path: Path
) -> None:
    manifest = _manifest_without_labels(synth_dir, tmp_path)
    result = run(
        "predict", "--checkpoint", fusion_ckpt, "--data", manifest, "--out", tmp_path / "p.csv"
    )
    assert result.exit_code == 2
    assert "row 4: the ultrasound image is missing" in result.stderr
    assert "model.overrides.modality_dropout" in result.stderr
    assert not (tmp_path / "p.csv").exists()


def test_a_bad_image_exits_2_naming_it(fusion_ckpt: Path, pair, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = run("predict", "--checkpoint", fusion_ckpt, "--clinical", bad, "--ultrasound", pair[1])
    assert result.exit_code == 2
    assert "error:" in result.stderr and "corrupt.jpg" in result.stderr
    assert "Traceback" not in result.output


def test_a_missing_image_is_refused_without_modality_dropout(fusion_ckpt: Path, pair) -> None:
    result = run("predict", "--checkpoint", fusion_ckpt, "--clinical", pair[0])
    assert result.exit_code == 2
    assert "ultrasound image is missing" in result.stderr
    assert "without modality dropout" in result.stderr


def test_a_malicious_checkpoint_is_refused(
    tmp_path: Path, pair, write_malicious_checkpoint: Callable[[Path, Path], Path]
) -> None:
    marker = tmp_path / "payload-ran"
    evil = write_malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    result = run("predict", "--checkpoint", evil, "--clinical", pair[0], "--ultrasound", pair[1])
    assert result.exit_code == 2
    assert "not a safe agfnet checkpoint" in result.stderr
    assert "Traceback" not in result.output
    assert not marker.exists()


def test_predict_with_onnx_prints_what_the_checkpoint_prints(
    onnx_export, dropout_ckpt: Path, pair
) -> None:
    images = ["--clinical", pair[0], "--ultrasound", pair[1], "--json"]
    by_onnx = run("predict", "--onnx", onnx_export[0], *images)
    by_torch = run("predict", "--checkpoint", dropout_ckpt, *images, "--device", "cpu")
    assert by_onnx.exit_code == 0, by_onnx.output
    a, b = json.loads(by_onnx.stdout), json.loads(by_torch.stdout)
    assert a["prediction"] == b["prediction"] and a["modalities"] == b["modalities"]
    np.testing.assert_allclose(
        list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-4
    )


def test_cam_overlays_are_written_for_the_predicted_class(
    make_checkpoint: Callable[..., Path], pair, tmp_path: Path
) -> None:
    # 64 px: at 32 px the last stage is 1 x 1 and every CAM is flat. Three fused scales
    # (the default before issue 15): with two, this seeded checkpoint's clinical CAM is
    # all zero (issue 15 section 3 report).
    ckpt = make_checkpoint(
        "cam64",
        overrides=(
            "data.img_size=64",
            "model.overrides.modality_dropout=0.2",
            "model.overrides.out_indices=[-3,-2,-1]",
        ),
    )
    images = ["--clinical", pair[0], "--ultrasound", pair[1]]
    result = run("predict", "--checkpoint", ckpt, *images, "--cam", tmp_path / "cam", "--json")
    assert result.exit_code == 0, result.output
    prediction = json.loads(result.stdout)
    saved = json.loads((tmp_path / "cam" / "explanation.json").read_text())
    assert {k: saved[k] for k in prediction} == prediction
    assert saved["cam"]["target"] == prediction["prediction"]
    for m in ("clinical", "ultrasound"):
        overlay = Image.open(tmp_path / "cam" / f"{m}_cam.png")
        original = Image.open(pair[0 if m == "clinical" else 1]).convert("RGB")
        assert overlay.size == original.size and overlay.mode == "RGB"
        assert np.abs(np.asarray(overlay, float) - np.asarray(original, float)).mean() > 1

    from agfnet.inference import Predictor

    explanation = Predictor.from_checkpoint(ckpt, "cpu").explain(pair[0], None)
    assert set(explanation.maps) == {"clinical"}  # the missing image gets no map
    cam = explanation.maps["clinical"]
    assert cam.shape == (64, 64) and cam.min() >= 0 and cam.max() == pytest.approx(1, abs=1e-5)
