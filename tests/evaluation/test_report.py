"""write_evaluation: every file, exact CSV columns, unlabeled rows, all-or-nothing writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from agfnet.evaluation import plots
from agfnet.evaluation.metrics import compute_metrics
from agfnet.evaluation.report import FIGURES, write_evaluation

CLASSES = ["BCC", "MEL", "NEV"]


def _predictions(seed: int, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(3), rng.integers(0, 3, n - 3)])
    probs = rng.dirichlet(np.ones(3), size=n)
    return labels, probs


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_writes_every_file_with_consistent_content(tmp_path: Path) -> None:
    labels, probs = _predictions(0)
    rows = list(range(2, 32))
    ids = [f"L{i:03d}" for i in range(30)]
    out = write_evaluation(
        tmp_path,
        rows=rows,
        labels=labels,
        probs=probs,
        classes=CLASSES,
        lesion_ids=ids,
        title="fold 0",
        extra={"temperature": 1.25},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["metrics.json", "report.md", "predictions.csv", *FIGURES]
    )
    for figure in FIGURES:
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == out
    expected = compute_metrics(labels, probs, CLASSES)
    assert {k: saved[k] for k in expected} == expected
    assert saved["temperature"] == 1.25
    assert saved["n_predictions"] == 30 and saved["n_unlabeled"] == 0

    columns, records = _read_csv(tmp_path / "predictions.csv")
    assert columns == [
        "row",
        "lesion_id",
        "label",
        "prediction",
        "prob_BCC",
        "prob_MEL",
        "prob_NEV",
        "confidence",
        "entropy",
    ]
    assert [int(r["row"]) for r in records] == rows
    assert [r["lesion_id"] for r in records] == ids
    assert [r["label"] for r in records] == [CLASSES[i] for i in labels]
    assert [r["prediction"] for r in records] == [CLASSES[i] for i in probs.argmax(axis=1)]
    np.testing.assert_allclose(
        [[float(r[f"prob_{c}"]) for c in CLASSES] for r in records], probs, atol=1e-6
    )
    correct = np.array([r["label"] == r["prediction"] for r in records])
    assert correct.mean() == pytest.approx(saved["accuracy"])

    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# fold 0")
    for figure in FIGURES:
        assert f"]({figure})" in report
    assert "| true \\ predicted | BCC | MEL | NEV |" in report


def test_no_lesion_id_column_without_lesion_ids(tmp_path: Path) -> None:
    labels, probs = _predictions(1, 10)
    write_evaluation(tmp_path, rows=range(1, 11), labels=labels, probs=probs, classes=CLASSES)
    columns, _ = _read_csv(tmp_path / "predictions.csv")
    assert columns[:3] == ["row", "label", "prediction"]


def test_unlabeled_rows_are_predicted_but_not_scored(tmp_path: Path) -> None:
    labels, probs = _predictions(2, 30)
    labels[[5, 9, 20]] = -1
    out = write_evaluation(tmp_path, rows=range(1, 31), labels=labels, probs=probs, classes=CLASSES)
    keep = labels >= 0
    assert out["n"] == 27 and out["n_unlabeled"] == 3 and out["n_predictions"] == 30
    assert out["accuracy"] == compute_metrics(labels[keep], probs[keep], CLASSES)["accuracy"]
    _, records = _read_csv(tmp_path / "predictions.csv")
    assert [i for i, r in enumerate(records) if r["label"] == ""] == [5, 9, 20]
    assert all(r["prediction"] in CLASSES for r in records)


def test_without_labels_only_predictions_are_written(tmp_path: Path) -> None:
    labels, probs = _predictions(3, 12)
    write_evaluation(tmp_path, rows=range(1, 13), labels=labels, probs=probs, classes=CLASSES)
    out = write_evaluation(
        tmp_path, rows=range(1, 13), labels=np.full(12, -1), probs=probs, classes=CLASSES
    )
    assert "no labeled rows" in out["note"] and "accuracy" not in out
    assert json.loads((tmp_path / "metrics.json").read_text()) == out
    # The figures of the earlier, labeled run are gone: the folder describes one run.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json",
        "predictions.csv",
        "report.md",
    ]
    _, records = _read_csv(tmp_path / "predictions.csv")
    assert len(records) == 12 and all(r["label"] == "" for r in records)
    assert "No metrics" in (tmp_path / "report.md").read_text()


def test_a_failing_plot_leaves_the_previous_evaluation_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels, probs = _predictions(4, 20)
    write_evaluation(tmp_path, rows=range(1, 21), labels=labels, probs=probs, classes=CLASSES)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no font")

    monkeypatch.setattr(plots, "plot_roc", broken)
    other_labels, other_probs = _predictions(5, 20)
    with pytest.raises(RuntimeError, match="no font"):
        write_evaluation(
            tmp_path, rows=range(1, 21), labels=other_labels, probs=other_probs, classes=CLASSES
        )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": range(1, 5)}, "rows has 4"),
        ({"lesion_ids": ["a"]}, "lesion_ids has 1"),
        ({"extra": {"accuracy": 1.0}}, "may not overwrite"),
        ({"labels": np.full(10, -2)}, r"\[-1, 3\)"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path: Path, kwargs: dict, match: str) -> None:
    labels, probs = _predictions(6, 10)
    args = {"rows": range(1, 11), "labels": labels, "probs": probs, "classes": CLASSES}
    with pytest.raises(ValueError, match=match):
        write_evaluation(tmp_path / "out", **{**args, **kwargs})
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
