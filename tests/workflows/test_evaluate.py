"""`agfnet evaluate`: the evaluation folder of a checkpoint, checked against scikit-learn."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    f1_score,
    log_loss,
)

from agfnet.errors import UserError
from agfnet.workflows.evaluate import evaluate_checkpoint


@pytest.fixture(scope="module")
def evaluation(trained_run, manifest_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "eval"
    return out, evaluate_checkpoint(trained_run.best_checkpoint, manifest_path, out, split=None)


def _predictions(out: Path) -> list[dict[str, str]]:
    with open(out / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_evaluation_files_and_keys(evaluation) -> None:
    out, metrics = evaluation
    for name in (
        "metrics.json",
        "report.md",
        "predictions.csv",
        "confusion_matrix.png",
        "roc.png",
        "reliability.png",
        "risk_coverage.png",
    ):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for key in (
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "macro_auc",
        "kappa",
        "ece",
        "nll",
        "brier",
        "n",
        "classes",
        "per_class",
        "aurc",
        "accuracy_at_90_coverage",
        "temperature",
        "uncalibrated",
        "checkpoint",
    ):
        assert key in on_disk, key
    assert on_disk["n"] == 40


def test_prediction_columns(evaluation) -> None:
    out, metrics = evaluation
    header = list(_predictions(out)[0])
    probs = [f"prob_{c}" for c in metrics["classes"]]
    assert header[:4] == ["row", "lesion_id", "label", "prediction"]
    assert header[4 : 4 + len(probs)] == probs
    assert sorted(int(r["row"]) for r in _predictions(out)) == list(range(1, 41))


def test_metrics_equal_sklearn_on_the_predictions(evaluation) -> None:
    out, metrics = evaluation
    rows = _predictions(out)
    classes = metrics["classes"]
    y = np.array([classes.index(r["label"]) for r in rows])
    pred = np.array([classes.index(r["prediction"]) for r in rows])
    probs = np.array([[float(r[f"prob_{c}"]) for c in classes] for r in rows])
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert metrics["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert metrics["kappa"] == pytest.approx(cohen_kappa_score(y, pred), abs=1e-6)
    probs = probs / probs.sum(axis=1, keepdims=True)  # undo the 6-digit rounding of the CSV
    assert metrics["nll"] == pytest.approx(log_loss(y, probs, labels=range(len(classes))), abs=1e-4)


def test_temperature_changes_confidence_not_decisions(evaluation, trained_run) -> None:
    from agfnet.engine.checkpoint import read_checkpoint

    _, metrics = evaluation
    stored = read_checkpoint(trained_run.best_checkpoint)["hyper_parameters"]["agfnet"]
    assert metrics["temperature"] == pytest.approx(stored["temperature"])
    raw = metrics["uncalibrated"]
    assert raw["accuracy"] == metrics["accuracy"]
    assert raw["nll"] != pytest.approx(metrics["nll"])


def test_label_unknown_to_the_checkpoint_names_the_row(
    trained_run, manifest_path, tmp_path: Path
) -> None:
    lines = manifest_path.read_text().splitlines()
    header, first, *rest = lines
    cols = first.split(",")
    cols[header.split(",").index("label")] = "ANGIOMA"
    bad = manifest_path.parent / "bad_label.csv"
    bad.write_text("\n".join([header, ",".join(cols), *rest]) + "\n")
    with pytest.raises(UserError, match=r"(?s)row 1\b.*ANGIOMA|ANGIOMA.*row 1\b"):
        evaluate_checkpoint(trained_run.best_checkpoint, bad, tmp_path / "ev", split=None)
    assert not (tmp_path / "ev").exists()


def test_split_selection(trained_run, manifest_path, tmp_path: Path) -> None:
    with open(manifest_path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # by patient: a patient may not span two splits
        r["split"] = "test" if int(r["patient_id"][1:]) % 2 else "train"
    path = manifest_path.parent / "with_split.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    test_rows = sorted(i for i, r in enumerate(rows, 1) if r["split"] == "test")
    metrics = evaluate_checkpoint(trained_run.best_checkpoint, path, tmp_path / "ev", split="test")
    assert metrics["n"] == len(test_rows) < len(rows)
    assert sorted(int(r["row"]) for r in _predictions(tmp_path / "ev")) == test_rows
    with pytest.raises(UserError, match="no row with split 'val'"):
        evaluate_checkpoint(trained_run.best_checkpoint, path, tmp_path / "ev2", split="val")


def test_evaluate_command(trained_run, manifest_path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agfnet.cli.app import app

    out = tmp_path / "ev"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--checkpoint",
            str(trained_run.best_checkpoint),
            "--data",
            str(manifest_path),
            "--out",
            str(out),
            "--split",
            "all",
            "--batch-size",
            "16",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"accuracy {metrics['accuracy']:.4f}" in result.output
    assert metrics["n"] == 40
