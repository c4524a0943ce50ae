"""Fold summaries against numpy, comparison tables, and paired tests against scipy."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from agfnet.evaluation.tables import comparison_table, summarize_folds, write_comparison

METRICS = ("accuracy", "macro_f1")


def _folds(seed: int, n: int, shift: float = 0.0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [
        {"accuracy": a + shift, "macro_f1": f + shift}
        for a, f in zip(rng.uniform(0.6, 0.8, n), rng.uniform(0.5, 0.7, n), strict=True)
    ]


def test_summary_matches_numpy() -> None:
    folds = _folds(0, 5)
    summary = summarize_folds(folds, METRICS)
    for m in METRICS:
        values = np.array([f[m] for f in folds])
        assert summary[m]["mean"] == pytest.approx(values.mean())
        assert summary[m]["std"] == pytest.approx(values.std(ddof=1))
        assert summary[m]["n"] == 5 and summary[m]["values"] == values.tolist()


def test_summary_skips_nulls_and_needs_two_folds_for_std() -> None:
    folds = [{"macro_auc": 0.8}, {"macro_auc": None}, {"macro_auc": 0.6}]
    s = summarize_folds(folds, ["macro_auc"])["macro_auc"]
    assert s["mean"] == pytest.approx(0.7) and s["n"] == 2
    assert s["std"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    one = summarize_folds([{"accuracy": 0.9}], ["accuracy"])["accuracy"]
    assert one["mean"] == 0.9 and one["std"] is None
    with pytest.raises(ValueError, match="fold 1 has no 'accuracy'"):
        summarize_folds([{"accuracy": 0.9}, {"nll": 1.0}], ["accuracy"])


def test_comparison_columns_and_p_values_match_scipy() -> None:
    ref, other = _folds(1, 8), _folds(2, 8, shift=0.03)
    markdown, rows, data = comparison_table({"agfnet": ref, "late_concat": other}, metrics=METRICS)
    assert list(rows[0]) == [
        "model",
        "n_folds",
        "accuracy_mean",
        "accuracy_std",
        "accuracy_p_ttest",
        "accuracy_p_wilcoxon",
        "macro_f1_mean",
        "macro_f1_std",
        "macro_f1_p_ttest",
        "macro_f1_p_wilcoxon",
    ]
    assert [r["model"] for r in rows] == ["agfnet", "late_concat"]
    assert rows[0]["accuracy_p_ttest"] is None
    for m in METRICS:
        a = [f[m] for f in other]
        b = [f[m] for f in ref]
        assert rows[1][f"{m}_p_ttest"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
        assert rows[1][f"{m}_p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
        assert rows[1][f"{m}_mean"] == pytest.approx(np.mean(a))
    assert data["models"]["late_concat"]["tests"]["accuracy"]["n_pairs"] == 8
    assert "±" in markdown and "against `agfnet`" in markdown
    assert "cannot go below" not in markdown  # 8 folds can reach p < 0.05
    json.dumps(data, allow_nan=False)


def test_few_folds_carry_a_wilcoxon_note_and_reference_can_be_chosen() -> None:
    results = {"a": _folds(3, 5), "b": _folds(4, 5)}
    markdown, rows, data = comparison_table(results, reference="b", metrics=METRICS)
    assert [r["model"] for r in rows] == ["b", "a"]
    assert "cannot go below 0.0625" in markdown
    assert data["models"]["a"]["tests"]["accuracy"]["p_wilcoxon"] >= 0.0625


def test_identical_models_have_undefined_tests() -> None:
    folds = _folds(5, 6)
    _, rows, data = comparison_table({"a": folds, "b": folds}, metrics=METRICS)
    assert rows[1]["accuracy_p_ttest"] is None and rows[1]["accuracy_p_wilcoxon"] is None
    assert data["models"]["b"]["tests"]["accuracy"]["notes"]


@pytest.mark.parametrize(
    ("results", "reference", "match"),
    [
        ({}, None, "at least one model"),
        ({"a": _folds(0, 3)}, "z", "not among"),
        ({"a": _folds(0, 3), "b": _folds(1, 4)}, None, "as many folds"),
    ],
)
def test_comparison_refuses(results: dict, reference: str | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        comparison_table(results, reference, METRICS)


def test_write_comparison_writes_four_files(tmp_path: Path) -> None:
    results = {"a": _folds(6, 5), "b": _folds(7, 5)}
    data = write_comparison(tmp_path, results, metrics=METRICS, plot_metrics=METRICS)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "comparison.csv",
        "comparison.json",
        "comparison.md",
        "comparison.png",
    ]
    with (tmp_path / "comparison.csv").open(newline="") as f:
        records = list(csv.DictReader(f))
    assert [r["model"] for r in records] == ["a", "b"]
    assert records[0]["accuracy_p_ttest"] == ""
    assert float(records[1]["accuracy_mean"]) == pytest.approx(
        data["models"]["b"]["summary"]["accuracy"]["mean"]
    )
    assert json.loads((tmp_path / "comparison.json").read_text()) == data


def test_mean_task_accuracy_is_carried_when_a_fold_has_it() -> None:
    tasks = [{**f, "mean_task_accuracy": f["accuracy"] - 0.1} for f in _folds(8, 5)]
    plain = _folds(9, 5)
    markdown, rows, data = comparison_table({"tasks": tasks, "plain": plain}, metrics=METRICS)
    assert data["metrics"] == [*METRICS, "mean_task_accuracy"]
    assert list(rows[0])[-4:] == [
        "mean_task_accuracy_mean",
        "mean_task_accuracy_std",
        "mean_task_accuracy_p_ttest",
        "mean_task_accuracy_p_wilcoxon",
    ]
    expected = np.mean([f["mean_task_accuracy"] for f in tasks])
    assert rows[0]["mean_task_accuracy_mean"] == pytest.approx(expected)
    # A model without tasks reads n/a, and there is nothing to pair.
    assert rows[1]["mean_task_accuracy_mean"] is None
    assert rows[1]["mean_task_accuracy_p_ttest"] is None
    assert "mean_task_accuracy ↑" in markdown
    # Named already: not twice; no fold has it: the tables of before.
    _, _, again = comparison_table({"tasks": tasks}, metrics=(*METRICS, "mean_task_accuracy"))
    assert again["metrics"] == [*METRICS, "mean_task_accuracy"]
    _, _, before = comparison_table({"plain": plain}, metrics=METRICS)
    assert before["metrics"] == list(METRICS)
