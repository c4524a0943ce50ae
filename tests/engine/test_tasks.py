"""Training and evaluation with task heads and metadata (issue 14), end to end on the
synthetic benchmark, whose latent attributes are task columns and `site`/`age` metadata."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from agfnet.data.synth import TASK_COLUMNS

TASKS = ["colour", "depth"]  # two of the seven, to keep it small


@pytest.fixture(scope="module")
def task_run(tiny_config, manifest_path: Path, tmp_path_factory: pytest.TempPathFactory):
    from agfnet.engine.train import fit

    config = tiny_config(
        f"data.tasks=[{','.join(TASKS)}]",
        "data.metadata=[site,age]",
        "monitor.metric=val/mean_task_accuracy",
        "monitor.mode=max",
        epochs=1,
    )
    out = tmp_path_factory.mktemp("tasks") / "run"
    return fit(config, manifest_path, out, command="pytest task_run")


def test_the_checkpoint_holds_the_tasks_and_the_metadata_spec(task_run) -> None:
    from agfnet.runtime import load_model

    _, info = load_model(task_run.best_checkpoint)
    assert list(info.tasks) == TASKS
    assert all(len(c) >= 2 for c in info.tasks.values())
    spec = info.metadata_spec()
    assert [f.name for f in spec.fields] == ["site", "age"]
    assert {f.name: f.kind for f in spec.fields} == {"site": "categorical", "age": "numeric"}
    assert info.build_spec["tasks"] == {t: len(c) for t, c in info.tasks.items()}
    metrics = task_run.metrics
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_mean_task_accuracy_is_logged_and_monitored(task_run) -> None:
    with open(task_run.out / "logs" / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    logged = [r for r in rows if r.get("val/mean_task_accuracy")]
    assert logged, "val/mean_task_accuracy was never logged"
    row = logged[-1]
    parts = [float(row["val/accuracy"])] + [float(row[f"val/task/{t}/accuracy"]) for t in TASKS]
    assert float(row["val/mean_task_accuracy"]) == pytest.approx(sum(parts) / len(parts), abs=1e-6)


def test_evaluate_reports_every_task(task_run, manifest_path: Path, tmp_path: Path) -> None:
    from agfnet.workflows.evaluate import evaluate_checkpoint

    best = task_run.best_checkpoint
    metrics = evaluate_checkpoint(best, manifest_path, tmp_path / "ev", split=None)
    assert set(metrics["tasks"]) == set(TASKS)
    task_acc = [metrics["tasks"][t]["accuracy"] for t in TASKS]
    expected = (metrics["accuracy"] + sum(task_acc)) / (1 + len(TASKS))
    assert metrics["mean_task_accuracy"] == pytest.approx(expected)
    with open(tmp_path / "ev" / "predictions.csv", newline="") as f:
        header = next(csv.reader(f))
    assert {f"pred_{t}" for t in TASKS} <= set(header)
    assert any(h.startswith("prob_colour_") for h in header)
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["mean_task_accuracy"] == pytest.approx(expected)


def test_a_run_without_tasks_keeps_the_old_checkpoint(trained_run) -> None:
    from agfnet.runtime import load_model

    _, info = load_model(trained_run.best_checkpoint)
    assert info.tasks == {} and info.metadata_spec() is None
    assert "tasks" not in info.build_spec and "metadata" not in info.build_spec


def test_the_synthetic_benchmark_names_seven_tasks() -> None:
    assert set(TASKS) <= set(TASK_COLUMNS) and len(TASK_COLUMNS) == 7
