"""`agfnet analyze`: certainty, focus and robustness per model and fold of a comparison."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.engine.analyze import run_analysis
from agfnet.engine.compare import run_compare
from agfnet.errors import UserError

MODELS = ["agfnet_tiny", "agfnet_no_frl_tiny"]


@pytest.fixture(scope="module")
def compared(manifest_path: Path, tiny_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analyze") / "cmp"
    # 64 px: at 32 px the last stage is 1x1 and CAMs are refused as flat.
    config = tiny_config("data.img_size=64", epochs=1)
    run_compare(config, manifest_path, out, models=MODELS, n_folds=2)
    return out


@pytest.fixture(scope="module")
def analysis(compared: Path, manifest_path: Path) -> tuple[dict, Path]:
    out = compared.parent / "analysis"
    return run_analysis(compared, manifest_path, out, n_explain=6, severity=2), out


def test_every_measure_for_every_model_and_fold(analysis, compared: Path) -> None:
    result, out = analysis
    assert result["models"] == MODELS and result["folds"] == ["fold_0", "fold_1"]
    measures = set(result["measures"])
    expected = {
        "accuracy",
        "ece",
        "ece_before_temperature",
        "mean_entropy_correct",
        "mean_entropy_wrong",
        "error_detection_auroc",
        "gradcam_energy_inside_clinical",
        "gradcam_energy_inside_ultrasound",
        "gradcam_pointing_game_clinical",
        "attention_energy_inside_ultrasound",
        "accuracy_clinical_noise",
        "accuracy_ultrasound_blur",
        "accuracy_both_noise",
        "mean_corruption_accuracy_both",
    }
    assert expected <= measures, sorted(expected - measures)
    for model in MODELS:
        for k, fold in enumerate(result["per_fold"][model]):
            fold_dir = f"fold_{k}"
            # Certainty is recomputed from the fold's held-out predictions: same accuracy.
            saved = json.loads((compared / model / fold_dir / "test" / "metrics.json").read_text())
            assert fold["accuracy"] == pytest.approx(saved["accuracy"])
            assert fold["ece_before_temperature"] == saved["uncalibrated"]["ece"]
            focus = json.loads((out / model / fold_dir / "explain" / "focus.json").read_text())
            assert focus["n"] == 6
            assert fold["gradcam_energy_inside_clinical"] == pytest.approx(
                focus["focus"]["gradcam"]["clinical"]["energy_inside"]
            )
            rob = json.loads(
                (out / model / fold_dir / "robustness" / "robustness.json").read_text()
            )
            noise = next(r for r in rob["conditions"] if r["condition"] == "clinical/noise/2")
            assert fold["accuracy_clinical_noise"] == noise["accuracy"]
            with open(compared / "folds.csv", newline="") as f:
                held_out = sum(r["fold"] == str(k) for r in csv.DictReader(f))
            assert rob["n"] == held_out  # every held-out row of the fold, corrupted
    summary = result["summary"]["accuracy"]
    for model in MODELS:
        values = [f["accuracy"] for f in result["per_fold"][model]]
        assert summary[model]["mean"] == pytest.approx(sum(values) / 2)
    assert "p_ttest" in result["tests"][MODELS[1]]["accuracy"]


def test_tables_list_each_measure(analysis) -> None:
    result, out = analysis
    md = (out / "analysis.md").read_text()
    assert f"| measure | {MODELS[0]} | {MODELS[1]} | p vs {MODELS[0]}" in md
    assert "| ece ↓ |" in md and "| accuracy ↑ |" in md
    with open(out / "analysis.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(result["measures"])
    assert list(rows[0])[:5] == ["measure", "model", "mean", "std", "n"]


def test_refusals(compared: Path, manifest_path: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not an `agfnet compare` folder"):
        run_analysis(tmp_path, manifest_path, tmp_path / "a")
    with pytest.raises(UserError, match="late_concat_tiny: not in the comparison"):
        run_analysis(compared, manifest_path, tmp_path / "a", models=["late_concat_tiny"])
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            "--compare",
            str(tmp_path),
            "--data",
            str(manifest_path),
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert result.exit_code == 2 and "compare.json" in result.output
