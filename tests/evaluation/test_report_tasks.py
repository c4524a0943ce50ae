"""write_evaluation with tasks and the checklist; without them, the outputs of before.

fixtures/write_evaluation_before_tasks.json holds the inputs and the three text outputs
of `write_evaluation` as they were before tasks existed (written by that code).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agfnet.evaluation.checklist import (
    CHECKLIST_CLASSES,
    checklist_report,
    predicted_classes,
    seven_point_score,
)
from agfnet.evaluation.metrics import compute_task_metrics, to_jsonable
from agfnet.evaluation.report import FIGURES, write_evaluation

BEFORE = json.loads(
    (Path(__file__).parent / "fixtures/write_evaluation_before_tasks.json").read_text()
)
TEXTS = ("metrics.json", "report.md", "predictions.csv")


def _inputs(case: str) -> dict[str, Any]:
    args = dict(BEFORE[case]["inputs"])
    args["labels"] = np.array(args["labels"])
    args["probs"] = np.array(args["probs"])
    if "columns" in args:
        args["columns"] = {k: np.array(v) for k, v in args["columns"].items()}
    return args


def _criteria(n: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """The seven criteria: labels with every class and blanks, random probabilities."""
    rng = np.random.default_rng(seed)
    tasks = {}
    for name, classes in CHECKLIST_CLASSES.items():
        k = len(classes)
        labels = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
        labels[rng.integers(k, n)] = -1
        tasks[name] = (labels, rng.dirichlet(np.ones(k), size=n), list(classes))
    return tasks


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@pytest.mark.parametrize("case", sorted(BEFORE))
@pytest.mark.parametrize("tasks", [None, {}])
def test_without_tasks_the_outputs_are_those_of_before(
    tmp_path: Path, case: str, tasks: dict | None
) -> None:
    out = write_evaluation(tmp_path, **_inputs(case), tasks=tasks)
    for name in TEXTS:
        assert (tmp_path / name).read_bytes() == BEFORE[case]["outputs"][name].encode("utf-8")
    assert "tasks" not in out and "mean_task_accuracy" not in out and "checklist" not in out


def test_tasks_and_checklist_add_their_keys_columns_and_sections(tmp_path: Path) -> None:
    args = _inputs("full")
    n = len(args["rows"])
    tasks = _criteria(n)
    predicted = predicted_classes({t: v[1] for t, v in tasks.items()}, CHECKLIST_CLASSES)
    report = checklist_report(
        predicted, args["probs"].argmax(axis=1), args["labels"], args["classes"], [3] * n
    )
    out = write_evaluation(tmp_path / "with", **args, tasks=tasks, checklist=report)
    plain = write_evaluation(tmp_path / "without", **args)
    saved = json.loads((tmp_path / "with/metrics.json").read_text())
    assert saved == out

    # metrics.json: the diagnosis as before, then tasks, mean_task_accuracy and checklist.
    assert {
        k: v for k, v in out.items() if k not in ("tasks", "mean_task_accuracy", "checklist")
    } == plain
    assert list(out["tasks"]) == list(CHECKLIST_CLASSES)
    assert out["tasks"] == compute_task_metrics(
        {t: v[0] for t, v in tasks.items()},
        {t: v[1] for t, v in tasks.items()},
        {t: v[2] for t, v in tasks.items()},
    )
    assert set(out["tasks"]["streaks"]) == set(plain) - {"temperature", "checkpoint"}
    accuracies = [out["accuracy"], *(m["accuracy"] for m in out["tasks"].values())]
    assert out["mean_task_accuracy"] == pytest.approx(sum(accuracies) / 8)
    assert out["checklist"] == to_jsonable(report)
    keys = list(out)
    assert keys.index("n_unlabeled") < keys.index("tasks") < keys.index("temperature")

    # predictions.csv: the columns of before, then label_, pred_, prob_ per task, the score.
    before, before_rows = _read_csv(tmp_path / "without/predictions.csv")
    columns, records = _read_csv(tmp_path / "with/predictions.csv")
    task_columns = [
        col
        for t, classes in CHECKLIST_CLASSES.items()
        for col in (f"label_{t}", f"pred_{t}", *(f"prob_{t}_{c}" for c in classes))
    ]
    assert columns == [*before, *task_columns, "seven_point_score"]
    assert [{k: r[k] for k in before} for r in records] == before_rows
    for t, (labels, probs, classes) in tasks.items():
        assert [r[f"label_{t}"] for r in records] == [classes[i] if i >= 0 else "" for i in labels]
        assert [r[f"pred_{t}"] for r in records] == predicted[t]
        np.testing.assert_allclose(
            [[float(r[f"prob_{t}_{c}"]) for c in classes] for r in records], probs, atol=1e-6
        )
        right = [r[f"label_{t}"] == r[f"pred_{t}"] for r in records if r[f"label_{t}"]]
        assert np.mean(right) == pytest.approx(out["tasks"][t]["accuracy"])
    scores = [int(r["seven_point_score"]) for r in records]
    assert scores == seven_point_score(predicted).tolist()

    # report.md: the report of before, plus the task table and the checklist block.
    text = (tmp_path / "with/report.md").read_text()
    assert "## Tasks" in text and "| diagnosis | 12 |" in text
    assert all(f"| {t} | " in text for t in CHECKLIST_CLASSES)
    assert "Mean task accuracy (the diagnosis and 7 tasks)" in text
    assert "## Seven-point checklist" in text and "Melanoma (MEL) detection" in text
    assert "| diagnosis head predicts MEL |" in text and "| release's score >= 3 |" in text
    assert text.index("## Tasks") < text.index("## Additional information")
    for figure in FIGURES:
        assert (tmp_path / "with" / figure).is_file()


def test_tasks_without_checklist_and_unlabeled_diagnosis(tmp_path: Path) -> None:
    args = _inputs("no_labels")
    tasks = {"streaks": _criteria(len(args["rows"]))["streaks"]}
    out = write_evaluation(tmp_path, **args, tasks=tasks)
    assert "checklist" not in out and out["tasks"]["streaks"]["accuracy"] is not None
    # The diagnosis has no accuracy, so neither has the mean.
    assert out["mean_task_accuracy"] is None
    columns, _ = _read_csv(tmp_path / "predictions.csv")
    assert columns[-5:] == [
        "label_streaks",
        "pred_streaks",
        "prob_streaks_absent",
        "prob_streaks_regular",
        "prob_streaks_irregular",
    ]
    text = (tmp_path / "report.md").read_text()
    assert "- diagnosis: no labeled rows" in text and "## Seven-point checklist" not in text


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"tasks": {"t": ([0, 1], np.full((2, 2), 0.5), ["a", "b"])}}, "task 't' has 2 rows"),
        (
            {"tasks": {"t": (np.zeros(12, int), np.full((12, 2), 0.7), ["a", "b"])}},
            "task 't': each row",
        ),
        (
            {
                "tasks": {"NEV": (np.zeros(12, int), np.full((12, 2), 0.5), ["x", "y"])},
                "classes": ["BCC", "MEL", "NEV_x"],
            },
            r"named as other columns: \['prob_NEV_x'\]",
        ),
        ({"checklist": {"n": 12}}, "a checklist needs the tasks"),
    ],
)
def test_bad_tasks_write_nothing(tmp_path: Path, change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_evaluation(tmp_path / "out", **{**_inputs("unlabeled_rows"), **change})
    assert not (tmp_path / "out").exists()
