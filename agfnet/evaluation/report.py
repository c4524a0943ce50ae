"""Write an evaluation folder: metrics.json, report.md, predictions.csv and four figures."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agfnet.evaluation import plots
from agfnet.evaluation.checklist import (
    CHECKLIST,
    has_checklist,
    predicted_classes,
    seven_point_score,
)
from agfnet.evaluation.metrics import (
    compute_task_metrics,
    labeled_metrics,
    mean_task_accuracy,
    to_jsonable,
    validate_predictions,
)
from agfnet.evaluation.uncertainty import predictive_entropy
from agfnet.fileio import install_files

FIGURES = ("confusion_matrix.png", "roc.png", "reliability.png", "risk_coverage.png")
OUTPUTS = ("metrics.json", "report.md", "predictions.csv", *FIGURES)
HEADLINE = (
    ("accuracy", "fraction correct"),
    ("balanced_accuracy", "mean sensitivity over classes"),
    ("macro_f1", "mean F1 over classes"),
    ("macro_auc", "mean one-vs-rest ROC AUC"),
    ("kappa", "Cohen's kappa"),
    ("ece", "expected calibration error, 15 bins (lower is better)"),
    ("nll", "negative log-likelihood, nats (lower is better)"),
    ("brier", "Brier score, 0-2 (lower is better)"),
    ("aurc", "area under the risk-coverage curve (lower is better)"),
    ("accuracy_at_90_coverage", "accuracy on the 90% most confident"),
    ("mean_entropy", "mean predictive entropy, nats"),
    ("mean_entropy_correct", "... of the correct predictions"),
    ("mean_entropy_wrong", "... of the wrong predictions"),
    ("error_detection_auroc", "ROC AUC of entropy for spotting wrong predictions (0.5 chance)"),
)
TASK_TABLE = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "kappa", "ece")
#: One task of `write_evaluation`: (labels int (N,), -1 where blank; probs (N, k); classes).
TaskPredictions = tuple[np.ndarray | Sequence[int], np.ndarray, Sequence[str]]


def format_value(value: Any, digits: int = 4) -> str:
    """A table cell: "n/a" for None, floats to `digits` decimals, anything else as str."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4
) -> list[str]:
    """The lines of a Markdown table; cells through `format_value`."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(format_value(v, digits) for v in row) + " |" for row in rows]


def predictions_csv(
    rows: Sequence[int],
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    lesion_ids: Sequence[str] | None = None,
    labels: np.ndarray | None = None,
    confidence: bool = True,
    columns: Mapping[str, Sequence[Any]] | None = None,
) -> str:
    """The text of a predictions.csv: one line per row, probabilities to 6 decimals.

    Columns: row, [lesion_id], [label], prediction, prob_<class> per class, [confidence],
    entropy (nats), then `columns` in order (numbers to 6 decimals, text as is, None blank).

    Args:
        rows: the 1-based manifest row numbers.
        probs: float (N, K) probabilities.
        classes: class names (the prob_ columns, in order).
        lesion_ids: a lesion_id column; None for none.
        labels: int (N,) class indices, -1 where unlabeled, for a label column; None for none.
        confidence: write the max probability as a confidence column.
        columns: extra per-row columns, name -> N values.

    Returns:
        The CSV text ("\n" line ends).
    """
    columns = dict(columns or {})
    prediction = probs.argmax(axis=1)
    entropy = predictive_entropy(probs)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "row",
            *(["lesion_id"] if lesion_ids is not None else []),
            *(["label"] if labels is not None else []),
            "prediction",
            *(f"prob_{c}" for c in classes),
            *(["confidence"] if confidence else []),
            "entropy",
            *columns,
        ]
    )

    def cell(value: Any) -> str:
        if value is None:
            return ""
        return value if isinstance(value, str) else f"{float(value):.6f}"

    for i in range(len(rows)):
        writer.writerow(
            [
                rows[i],
                *([lesion_ids[i]] if lesion_ids is not None else []),
                *([classes[labels[i]] if labels[i] >= 0 else ""] if labels is not None else []),
                classes[prediction[i]],
                *(f"{v:.6f}" for v in probs[i]),
                *([f"{probs[i].max():.6f}"] if confidence else []),
                f"{entropy[i]:.6f}",
                *(cell(v[i]) for v in columns.values()),
            ]
        )
    return buffer.getvalue()


def _report_markdown(metrics: Mapping[str, Any], title: str, extra: Mapping[str, Any]) -> str:
    lines = [f"# {title or 'Evaluation'}", ""]
    summary = (
        f"{metrics['n_predictions']} predictions, {metrics['n']} labeled rows evaluated"
        f" ({metrics['n_unlabeled']} unlabeled rows are in predictions.csv only)."
    )
    lines += [summary, ""]
    if "note" in metrics:
        lines += [f"**No metrics:** {metrics['note']}", ""]
    else:
        classes = metrics["classes"]
        lines += ["## Headline", ""]
        lines += markdown_table(
            ["metric", "value", "meaning"],
            [(key, metrics[key], meaning) for key, meaning in HEADLINE],
        )
        lines += ["", "## Per class", ""]
        keys = ("sensitivity", "specificity", "precision", "f1", "auc", "support")
        lines += markdown_table(
            ["class", *keys], [(c, *(metrics["per_class"][c][k] for k in keys)) for c in classes]
        )
        lines += ["", "## Confusion matrix", "", "Rows: true class; columns: predicted class.", ""]
        lines += markdown_table(
            ["true \\ predicted", *classes],
            [(c, *row) for c, row in zip(classes, metrics["confusion_matrix"], strict=True)],
        )
        lines += ["", "![confusion matrix](confusion_matrix.png)", ""]
        lines += ["## ROC", "", "![ROC curves](roc.png)", ""]
        lines += [
            "## Calibration",
            "",
            f"ECE {format_value(metrics['ece'])}, NLL {format_value(metrics['nll'])}, "
            f"Brier {format_value(metrics['brier'])}, mean confidence "
            f"{format_value(metrics['mean_confidence'])} "
            f"against accuracy {format_value(metrics['accuracy'])}.",
            "",
            "![reliability diagram](reliability.png)",
            "",
            "## Selective prediction",
            "",
            f"AURC {format_value(metrics['aurc'])}; answering only the 90% most confident cases "
            f"gives accuracy {format_value(metrics['accuracy_at_90_coverage'])}.",
            "",
            "![risk-coverage curve](risk_coverage.png)",
            "",
        ]
    if "tasks" in metrics:
        lines += _tasks_markdown(metrics)
    if "checklist" in metrics:
        lines += _checklist_markdown(metrics["checklist"])
    if extra:
        lines += ["## Additional information", "", "```json"]
        lines += [json.dumps(to_jsonable(extra), indent=2, allow_nan=False), "```", ""]
    files = ["metrics.json", "predictions.csv"] + ([] if "note" in metrics else list(FIGURES))
    lines += ["## Files", "", *(f"- [{f}]({f})" for f in files), ""]
    return "\n".join(lines)


def _tasks_markdown(metrics: Mapping[str, Any]) -> list[str]:
    """report.md's task table: the diagnosis, then every task, and their mean accuracy."""
    blocks = {"diagnosis": metrics, **metrics["tasks"]}
    lines = ["## Tasks", ""]
    lines += markdown_table(
        ["task", "n", *TASK_TABLE],
        [(t, m["n"], *(m.get(k) for k in TASK_TABLE)) for t, m in blocks.items()],
    )
    notes = [f"- {t}: {m['note']}" for t, m in blocks.items() if "note" in m]
    lines += ["", *notes, *([""] if notes else [])]
    lines += [
        f"Mean task accuracy (the diagnosis and {len(metrics['tasks'])} tasks): "
        f"{format_value(metrics['mean_task_accuracy'])}.",
        "",
    ]
    return lines


def _checklist_markdown(report: Mapping[str, Any]) -> list[str]:
    """report.md's seven-point checklist block (`checklist.checklist_report` output)."""
    threshold = report["threshold"]
    lines = ["## Seven-point checklist", ""]
    lines += [
        f"The score of each row from its predicted criteria; melanoma is suspected at a "
        f"score of {threshold} or more. Mean score {format_value(report['mean_score'])}.",
        "",
    ]
    lines += markdown_table(
        ["criterion", "value", "points"],
        [(c["task"], c["value"], c["points"]) for c in report["criteria"]],
    )
    counts = report["score_counts"]
    lines += ["", *markdown_table(["score", *map(str, range(len(counts)))], [("rows", *counts)])]
    agreement = report["release_agreement"]
    if agreement is not None:
        lines += [
            "",
            f"Against the release's score ({agreement['n']} rows with one): exact agreement "
            f"{format_value(agreement['exact_agreement'])}, mean absolute difference "
            f"{format_value(agreement['mean_abs_difference'])}, same side of {threshold} "
            f"{format_value(agreement['decision_agreement'])}.",
        ]
    detection = report["melanoma_detection"]
    if detection is None:
        return [*lines, "", f"**{report['note']}**", ""]
    rules = {
        "checklist": f"predicted criteria, score >= {threshold}",
        "diagnosis_head": f"diagnosis head predicts {report['melanoma']}",
        "release_checklist": f"release's score >= {threshold}",
    }
    keys = ("n", "sensitivity", "specificity")
    lines += ["", f"Melanoma ({report['melanoma']}) detection on the labeled rows:", ""]
    lines += markdown_table(
        ["rule", *keys], [(rules[r], *(d[k] for k in keys)) for r, d in detection.items()]
    )
    return [*lines, ""]


def _task_arrays(
    tasks: Mapping[str, TaskPredictions], n: int
) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """Every task's predictions, checked (the error names the task) and of `n` rows."""
    out = {}
    for name, (labels, probs, classes) in tasks.items():
        try:
            y, p = validate_predictions(labels, probs, classes, allow_unlabeled=True)
        except ValueError as error:
            raise ValueError(f"task {name!r}: {error}") from error
        if y.size != n:
            raise ValueError(f"task {name!r} has {y.size} rows but there are {n} predictions")
        out[name] = (y, p, list(classes))
    return out


def task_columns(
    task_probs: Mapping[str, np.ndarray],
    task_classes: Mapping[str, Sequence[str]],
    *,
    task_labels: Mapping[str, np.ndarray] | None = None,
    score: bool = False,
) -> dict[str, list[Any]]:
    """The task columns of a predictions.csv (for `predictions_csv(columns=...)`).

    Args:
        task_probs: task -> float (N, k_t) probabilities.
        task_classes: task -> its k_t class names.
        task_labels: task -> int (N,) true classes, -1 where blank, for label_<task>
            columns; None for none.
        score: add `seven_point_score`, the checklist's score of the predicted criteria
            (the tasks must hold the seven criteria).

    Returns:
        {column: N cells}: per task [label_<task>], pred_<task> and prob_<task>_<class>
        per class, then [seven_point_score].
    """
    predicted = predicted_classes(task_probs, task_classes)
    columns: dict[str, list[Any]] = {}
    for name, p in task_probs.items():
        classes = task_classes[name]
        if task_labels is not None:
            columns[f"label_{name}"] = [classes[i] if i >= 0 else None for i in task_labels[name]]
        columns[f"pred_{name}"] = predicted[name]
        columns.update({f"prob_{name}_{c}": list(p[:, k]) for k, c in enumerate(classes)})
    if score:
        columns["seven_point_score"] = [str(v) for v in seven_point_score(predicted)]
    return columns


def write_evaluation(
    out_dir: str | Path,
    *,
    rows: Sequence[int],
    labels: np.ndarray | Sequence[int],
    probs: np.ndarray,
    classes: Sequence[str],
    lesion_ids: Sequence[str] | None = None,
    title: str = "",
    extra: Mapping[str, Any] | None = None,
    columns: Mapping[str, np.ndarray] | None = None,
    tasks: Mapping[str, TaskPredictions] | None = None,
    checklist: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate predictions and write the evaluation folder.

    Metrics use the labeled rows only (label >= 0); rows labeled -1 appear in
    predictions.csv with an empty label. Without labeled rows, or with one class only among
    them, metrics.json holds the counts and a `note` saying why there are no metrics, and
    no figure is written. Every file is first written to a temporary folder inside
    `out_dir` and moved into place only once all of them succeeded, so a failure (a plot,
    a disk error) leaves the folder as it was; outputs of an earlier run that this run
    does not produce (figures, for unlabeled data) are removed.

    Args:
        out_dir: the evaluation folder (created if needed).
        rows: (N,) 1-based manifest row numbers, written as the `row` column.
        labels: int (N,) class indices, -1 for unlabeled rows.
        probs: float (N, K) softmax probabilities (after temperature scaling, if any).
        classes: the K class names.
        lesion_ids: (N,) strings for a `lesion_id` column, or None for no such column.
        title: heading of report.md.
        extra: JSON-serialisable entries merged into metrics.json (e.g. temperature,
            checkpoint, metrics before calibration); may not reuse a metric key.
        columns: extra per-row columns of predictions.csv, name -> float (N,) (e.g. the
            spread of stochastic passes).
        tasks: task -> (labels int (N,), -1 where blank; probs float (N, k); class
            names): metrics.json gains `tasks.<task>` (the diagnosis's keys, see
            `metrics.labeled_metrics`) and `mean_task_accuracy`; predictions.csv the
            columns label_<task>, pred_<task> and prob_<task>_<class>; report.md a task
            table. None or empty: the outputs are exactly those without tasks.
        checklist: `checklist.checklist_report` of these predictions, written as
            metrics.json's `checklist` and a report.md block; predictions.csv gains
            `seven_point_score`. Needs `tasks` with the seven criteria.

    Returns:
        The dict written to metrics.json.

    Raises:
        ValueError: invalid predictions (see `metrics.validate_predictions`; for a task,
            named), `rows`, `lesion_ids` or a task of the wrong length, `extra` reusing
            a metric key, task columns named as other columns, or a checklist without
            the seven criteria among the tasks.
    """
    names = list(classes)
    y, p = validate_predictions(labels, probs, names, allow_unlabeled=True)
    rows = list(rows)
    if len(rows) != y.size:
        raise ValueError(f"rows has {len(rows)} entries but there are {y.size} predictions")
    for name, values in (columns or {}).items():
        if len(values) != y.size:
            raise ValueError(
                f"column {name!r} has {len(values)} entries but there are {y.size} predictions"
            )
    if lesion_ids is not None:
        lesion_ids = [str(v) for v in lesion_ids]
        if len(lesion_ids) != y.size:
            raise ValueError(
                f"lesion_ids has {len(lesion_ids)} entries but there are {y.size} predictions"
            )
    task_arrays = _task_arrays(tasks or {}, y.size)
    task_labels = {t: a[0] for t, a in task_arrays.items()}
    task_probs = {t: a[1] for t, a in task_arrays.items()}
    task_classes = {t: a[2] for t, a in task_arrays.items()}
    if checklist is not None and not has_checklist(task_classes):
        raise ValueError(
            "a checklist needs the tasks "
            f"{[f'{c.task} (with {c.value!r})' for c in CHECKLIST]}; got {sorted(task_arrays)}"
        )
    columns = dict(columns or {})
    if task_arrays:
        added = task_columns(
            task_probs, task_classes, task_labels=task_labels, score=checklist is not None
        )
        header = ["row", "lesion_id", "label", "prediction", "confidence", "entropy"]
        clash = sorted(set(added) & {*header, *(f"prob_{c}" for c in names), *columns})
        if clash:
            raise ValueError(f"task columns of predictions.csv named as other columns: {clash}")
        columns.update(added)
    metrics = labeled_metrics(y, p, names)
    labeled = y >= 0
    if task_arrays:
        metrics["tasks"] = compute_task_metrics(task_labels, task_probs, task_classes)
        metrics["mean_task_accuracy"] = mean_task_accuracy(
            metrics.get("accuracy"), metrics["tasks"]
        )
    if checklist is not None:
        metrics["checklist"] = to_jsonable(checklist)
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(metrics))
    if clash:
        raise ValueError(f"extra may not overwrite metrics.json keys: {clash}")
    metrics.update(to_jsonable(extra))

    with install_files(out_dir, OUTPUTS) as stage:
        (stage / "metrics.json").write_text(
            json.dumps(metrics, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        (stage / "predictions.csv").write_text(
            predictions_csv(rows, p, names, lesion_ids=lesion_ids, labels=y, columns=columns),
            encoding="utf-8",
            newline="",
        )
        (stage / "report.md").write_text(_report_markdown(metrics, title, extra), encoding="utf-8")
        if "note" not in metrics:
            y_l, p_l = y[labeled], p[labeled]
            plots.plot_confusion_matrix(metrics["confusion_matrix"], names, stage / FIGURES[0])
            plots.plot_roc(y_l, p_l, names, stage / FIGURES[1])
            plots.plot_reliability(
                metrics["reliability_bins"], stage / FIGURES[2], ece=metrics["ece"]
            )
            plots.plot_risk_coverage(p_l.max(axis=1), p_l.argmax(axis=1) == y_l, stage / FIGURES[3])
    return metrics
