"""Cross-validation tables: per-fold metrics as mean +- std, and paired tests between models.

Folds are paired by position: fold i of a model is compared with fold i of the reference
(they must share the same splits). Two paired tests per metric: Student's paired t-test
(`scipy.stats.ttest_rel`) and the Wilcoxon signed-rank test (`scipy.stats.wilcoxon`),
both two-sided. With n non-zero differences the exact Wilcoxon p-value cannot fall below
2 / 2**n, so with 5 folds or fewer it can never reach p < 0.05; the tables say so.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from agfnet.constants import LOWER_IS_BETTER, TABLE_METRICS
from agfnet.evaluation.metrics import finite_or_none
from agfnet.evaluation.plots import plot_comparison
from agfnet.fileio import atomic_write_text

DEFAULT_METRICS = TABLE_METRICS
ALPHA = 0.05
#: Added to the tables when a fold has it (a model with tasks): the 8-task "avg".
TASK_METRIC = "mean_task_accuracy"


def with_task_metric(
    results: Mapping[str, Sequence[Mapping[str, Any]]], metrics: Sequence[str]
) -> tuple[dict[str, list[Mapping[str, Any]]], tuple[str, ...]]:
    """`results` and `metrics`, with `mean_task_accuracy` when some fold reports it.

    Args:
        results: {model: [fold metrics dict, ...]}.
        metrics: the metric keys asked for.

    Returns:
        (results, metrics): unchanged when no fold has `mean_task_accuracy` or `metrics`
        names it already; else the metric appended, and null in the folds without it (a
        model without tasks), so that its cells read n/a.
    """
    folds = {model: list(per_fold) for model, per_fold in results.items()}
    if TASK_METRIC in metrics or not any(TASK_METRIC in f for fs in folds.values() for f in fs):
        return folds, tuple(metrics)
    filled = {model: [{TASK_METRIC: None, **f} for f in fs] for model, fs in folds.items()}
    return filled, (*metrics, TASK_METRIC)


def summarize_folds(
    per_fold: Sequence[Mapping[str, Any]], metrics: Sequence[str] = DEFAULT_METRICS
) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation (ddof=1) over folds of each metric.

    A null value (an undefined metric in that fold) is left out of that metric's mean.

    Args:
        per_fold: one metrics dict per fold (e.g. `compute_metrics` output).
        metrics: the keys to summarise.

    Returns:
        {metric: {"mean", "std", "n", "values"}}: n = folds with a value; std is None for
        n < 2, mean and std None for n = 0; values lists every fold (None kept).

    Raises:
        ValueError: no folds, or a fold without one of `metrics`.
    """
    if not per_fold:
        raise ValueError("summarize_folds needs at least one fold; got none")
    summary = {}
    for metric in metrics:
        missing = [i for i, fold in enumerate(per_fold) if metric not in fold]
        if missing:
            raise ValueError(f"fold {missing[0]} has no {metric!r} (keys: {sorted(per_fold[0])})")
        values = [None if f[metric] is None else float(f[metric]) for f in per_fold]
        present = np.array([v for v in values if v is not None], dtype=np.float64)
        summary[metric] = {
            "mean": finite_or_none(present.mean()) if present.size else None,
            "std": finite_or_none(present.std(ddof=1)) if present.size > 1 else None,
            "n": int(present.size),
            "values": values,
        }
    return summary


def paired_tests(
    values: Sequence[float | None], reference: Sequence[float | None]
) -> dict[str, Any]:
    """Two-sided paired t-test and Wilcoxon signed-rank test of `values` against `reference`.

    Args:
        values: (F,) one metric per fold for the model (None: undefined, pair dropped).
        reference: (F,) the same metric per fold for the reference model.

    Returns:
        {"n_pairs", "mean_difference", "p_ttest", "p_wilcoxon", "notes"}; a p-value is None
        where the test is undefined, and `notes` says why or warns about too few folds.

    Raises:
        ValueError: the two sequences differ in length.
    """
    if len(values) != len(reference):
        raise ValueError(
            f"paired tests need as many folds on both sides; got {len(values)} and {len(reference)}"
        )
    pairs = np.array(
        [(a, b) for a, b in zip(values, reference, strict=True) if a is not None and b is not None],
        dtype=np.float64,
    ).reshape(-1, 2)
    diff = pairs[:, 0] - pairs[:, 1]
    result: dict[str, Any] = {
        "n_pairs": int(diff.size),
        "mean_difference": finite_or_none(diff.mean()) if diff.size else None,
        "p_ttest": None,
        "p_wilcoxon": None,
        "notes": [],
    }
    if diff.size < 2:
        result["notes"].append(f"{diff.size} paired fold(s): no test is possible")
        return result
    if np.all(diff == diff[0]):
        result["notes"].append("the differences are all equal: the t-test is undefined")
    else:
        result["p_ttest"] = finite_or_none(stats.ttest_rel(pairs[:, 0], pairs[:, 1]).pvalue)
    nonzero = int(np.count_nonzero(diff))
    if nonzero == 0:
        result["notes"].append("every difference is zero: the Wilcoxon test is undefined")
        return result
    result["p_wilcoxon"] = finite_or_none(stats.wilcoxon(pairs[:, 0], pairs[:, 1]).pvalue)
    if 2.0 / 2**nonzero >= ALPHA:
        result["notes"].append(
            f"{nonzero} non-zero differences: the Wilcoxon p-value cannot go below "
            f"{2.0 / 2**nonzero:.4g}, so it can never reach p < {ALPHA} (6 folds or more needed)"
        )
    return result


def format_mean_std(summary: Mapping[str, Any], digits: int = 4) -> str:
    """ "mean ± std" of a `summarize_folds` entry ("n/a" where undefined)."""
    if summary["mean"] is None:
        return "n/a"
    std = "n/a" if summary["std"] is None else f"{summary['std']:.{digits}f}"
    return f"{summary['mean']:.{digits}f} ± {std}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def comparison_table(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    reference: str | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Mean +- std per model and metric, with paired tests against a reference model.

    Args:
        results: {model: [fold metrics dict, ...]}, every model over the same folds in the
            same order.
        reference: the model the others are tested against; default the first one.
        metrics: the metric keys to tabulate; `mean_task_accuracy` is appended when a
            fold has it (see `with_task_metric`).

    Returns:
        (markdown, csv_rows, data):
        markdown: a table of mean ± std, a table of p-values (t-test / Wilcoxon) and notes;
        csv_rows: one dict per model with `model`, `n_folds`, then per metric
            `<metric>_mean`, `<metric>_std`, `<metric>_p_ttest`, `<metric>_p_wilcoxon`
            (None where undefined, and for the reference's own p-values);
        data: {"reference", "metrics", "models": {model: {"n_folds", "summary", "tests"}}},
            JSON-serialisable.

    Raises:
        ValueError: no models, an unknown reference, or models with different fold counts.
    """
    if not results:
        raise ValueError("comparison_table needs at least one model; got none")
    results, metrics = with_task_metric(results, metrics)
    models = list(results)
    reference = models[0] if reference is None else reference
    if reference not in results:
        raise ValueError(f"reference {reference!r} is not among the models {models}")
    models = [reference] + [m for m in models if m != reference]
    n_ref = len(results[reference])
    wrong = {m: len(results[m]) for m in models if len(results[m]) != n_ref}
    if wrong:
        raise ValueError(
            f"every model needs as many folds as the reference {reference!r} ({n_ref}); got {wrong}"
        )
    summaries = {model: summarize_folds(results[model], metrics) for model in models}
    tests = {
        model: {
            m: paired_tests(summaries[model][m]["values"], summaries[reference][m]["values"])
            for m in metrics
        }
        for model in models[1:]
    }
    data: dict[str, Any] = {
        "reference": reference,
        "metrics": list(metrics),
        "models": {
            model: {
                "n_folds": len(results[model]),
                "summary": summaries[model],
                "tests": tests.get(model, {}),
            }
            for model in models
        },
    }
    csv_rows = []
    for model in models:
        row: dict[str, Any] = {"model": model, "n_folds": len(results[model])}
        for m in metrics:
            test = tests.get(model, {}).get(m, {})
            row[f"{m}_mean"] = summaries[model][m]["mean"]
            row[f"{m}_std"] = summaries[model][m]["std"]
            row[f"{m}_p_ttest"] = test.get("p_ttest")
            row[f"{m}_p_wilcoxon"] = test.get("p_wilcoxon")
        csv_rows.append(row)

    arrows = [f"{m} {'↓' if m in LOWER_IS_BETTER else '↑'}" for m in metrics]
    lines = ["Mean ± standard deviation over folds (↑ higher is better, ↓ lower is better).", ""]
    lines += ["| model | folds | " + " | ".join(arrows) + " |", "|" + " --- |" * (len(metrics) + 2)]
    for model in models:
        cells = [format_mean_std(summaries[model][m]) for m in metrics]
        lines.append(f"| {model} | {len(results[model])} | " + " | ".join(cells) + " |")
    notes = sorted(
        {n for by_metric in tests.values() for t in by_metric.values() for n in t["notes"]}
    )
    if len(models) > 1:
        lines += ["", f"Paired two-sided p-values against `{reference}` (t-test / Wilcoxon).", ""]
        lines += ["| model | " + " | ".join(metrics) + " |", "|" + " --- |" * (len(metrics) + 1)]
        for model in models[1:]:
            cells = [
                f"{_p(tests[model][m]['p_ttest'])} / {_p(tests[model][m]['p_wilcoxon'])}"
                for m in metrics
            ]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Notes:", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n", csv_rows, data


def write_comparison(
    out_dir: str | Path,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    reference: str | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    plot_metrics: Sequence[str] = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc"),
    stem: str = "comparison",
    title: str = "Model comparison",
) -> dict[str, Any]:
    """Write `<stem>.md`, `<stem>.csv`, `<stem>.json` and `<stem>.png` (bars) atomically.

    Args:
        out_dir: folder to write into (created if needed).
        results: {model: [fold metrics dict, ...]}, as for `comparison_table`.
        reference: model the others are tested against; default the first.
        metrics: metric keys of the tables.
        plot_metrics: metric keys of the bar plot.
        stem: file name stem.
        title: heading of the Markdown file.

    Returns:
        The dict written to `<stem>.json`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, rows, data = comparison_table(results, reference, metrics)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    summaries = {m: summarize_folds(results[m], plot_metrics) for m in data["models"]}
    plot_comparison(summaries, out_dir / f"{stem}.png", metrics=plot_metrics)
    atomic_write_text(out_dir / f"{stem}.csv", buffer.getvalue())
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(data, indent=2, allow_nan=False) + "\n")
    atomic_write_text(
        out_dir / f"{stem}.md", f"# {title}\n\n{markdown}\n![comparison]({stem}.png)\n"
    )
    return data
