"""`agfnet analyze`: certainty, focus and robustness per model and fold of a comparison."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.engine.compare import run_compare
from agfnet.errors import UserError
from agfnet.workflows.analyze import run_analysis

MODELS = ["agfnet_tiny", "agfnet_no_frl_tiny", "late_concat_tiny"]


@pytest.fixture(scope="module")
def compared(manifest_path: Path, tiny_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analyze") / "cmp"
    # 64 px: at 32 px the stride-16 stage is 2x2 and the maps too coarse to score.
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
        "layercam_energy_inside_clinical",
        "layercam_energy_inside_ultrasound",
        "layercam_pointing_game_clinical",
        "layercam_lift_clinical",
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
            # Certainty is that of the fold's held-out predictions.
            saved = json.loads((compared / model / fold_dir / "test" / "metrics.json").read_text())
            assert fold["accuracy"] == pytest.approx(saved["accuracy"])
            assert fold["ece_before_temperature"] == saved["uncalibrated"]["ece"]
            focus = json.loads((out / model / fold_dir / "explain" / "focus.json").read_text())
            assert focus["n"] == 6
            assert fold["layercam_energy_inside_clinical"] == pytest.approx(
                focus["focus"]["layercam"]["clinical"]["energy_inside"]
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
    assert f"| measure | {MODELS[0]} | {MODELS[1]} | {MODELS[2]} | p vs {MODELS[0]}" in md
    assert "| ece ↓ |" in md and "| accuracy ↑ |" in md
    with open(out / "analysis.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * len(result["measures"])
    assert list(rows[0])[:5] == ["measure", "model", "mean", "std", "n"]


def test_refusals(compared: Path, manifest_path: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not an `agfnet compare` folder"):
        run_analysis(tmp_path, manifest_path, tmp_path / "a")
    with pytest.raises(UserError, match="clinical_only_tiny: not in the comparison"):
        run_analysis(compared, manifest_path, tmp_path / "a", models=["clinical_only_tiny"])
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


def test_a_model_without_attention_gets_na_not_a_missing_row(analysis) -> None:
    result, out = analysis
    # late_concat_tiny has no ALL: its attention measures are None, the others' are kept.
    attention = result["summary"]["attention_energy_inside_clinical"]
    assert attention["late_concat_tiny"]["mean"] is None
    assert attention["agfnet_tiny"]["mean"] is not None
    row = next(
        line
        for line in (out / "analysis.md").read_text().splitlines()
        if line.startswith("| attention_energy_inside_clinical")
    )
    assert row.split("|")[4].strip() == "n/a"


def test_analyze_command(compared: Path, manifest_path: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            "--compare",
            str(compared),
            "--data",
            str(manifest_path),
            "--out",
            str(tmp_path / "cli"),
            "--models",
            "late_concat_tiny,agfnet_tiny",
            "--n-explain",
            "2",
            "--severity",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "accuracy: late_concat_tiny" in result.output
    saved = json.loads((tmp_path / "cli" / "analysis.json").read_text())
    assert saved["models"] == ["late_concat_tiny", "agfnet_tiny"]
    assert saved["settings"]["severity"] == 1


def test_fixed_split_uses_the_rows_the_models_were_tested_on(
    manifest_path: Path, tiny_config, tmp_path: Path
) -> None:
    rows = list(csv.DictReader(manifest_path.open(newline="")))
    for row in rows:  # by patient: a patient stays in one split
        row["split"] = ("train", "train", "val", "test")[int(row["patient_id"][1:]) % 4]
    split_manifest = manifest_path.parent / "manifest_split_for_analyze.csv"
    with open(split_manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "cmp"
    config = tiny_config("data.img_size=64", epochs=1)
    run_compare(config, split_manifest, out, models=["late_concat_tiny"])
    # The manifest without the split column is the same data: the rows come from the
    # comparison's own predictions, not from the column.
    result = run_analysis(out, manifest_path, tmp_path / "a", n_explain=2)
    assert result["folds"] == ["fixed"]
    tested = sum(r["split"] == "test" for r in rows)
    rob = json.loads(
        (
            tmp_path / "a" / "late_concat_tiny" / "fixed" / "robustness" / "robustness.json"
        ).read_text()
    )
    assert rob["n"] == tested
    # Another manifest (a test row relabelled) is refused before anything runs.
    first_test = next(i for i, r in enumerate(rows) if r["split"] == "test")
    rows[first_test]["label"] = next(
        r["label"] for r in rows if r["label"] != rows[first_test]["label"]
    )
    other = manifest_path.parent / "relabelled_for_analyze.csv"
    with open(other, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(UserError, match=f"row {first_test + 1} of .* does not match"):
        run_analysis(out, other, tmp_path / "b")
    assert not (tmp_path / "b").exists()
