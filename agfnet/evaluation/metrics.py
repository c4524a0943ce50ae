"""Classification metrics of one set of predictions (and of its tasks): `metrics.json`.

Counting metrics come from torchmetrics (scikit-learn is the test oracle); calibration,
selective prediction and entropy from the sibling modules. Conventions (documented in
docs/commands/evaluate.md):

- accuracy is micro (plain fraction correct); balanced_accuracy is the macro recall.
- Macro averages (balanced_accuracy, macro_f1, macro_auc) run over the classes present in
  `labels`; a class absent from `labels` has sensitivity, auc (and f1 when it is never
  predicted either) null in `per_class`.
- The prediction is the argmax of `probs` (the first class on a tie).
- Every value is a plain Python number, string, list or dict; an undefined value is None
  (JSON null), never NaN.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.functional import classification as tmc

from agfnet.evaluation.calibration import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)
from agfnet.evaluation.selective import accuracy_at_coverage, aurc
from agfnet.evaluation.uncertainty import predictive_entropy

ECE_BINS = 15
# Decimals of the entropy ranked by error_detection_auroc (ties closer than this).
ENTROPY_DECIMALS = 6
SELECTIVE_COVERAGE = 0.9
# Rows of `probs` must sum to 1 within this: loose enough for float16 softmax outputs,
# tight enough to catch logits or unnormalised scores.
PROB_SUM_TOL = 1e-3


def validate_predictions(
    labels: np.ndarray | Sequence[int],
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    allow_unlabeled: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Check predictions and return them as int64 labels and float64 probabilities.

    Args:
        labels: int (N,) class indices in [0, K); -1 (unlabeled) too if `allow_unlabeled`.
        probs: float (N, K), softmax outputs.
        classes: the K class names, in column order.
        allow_unlabeled: accept -1 labels.

    Returns:
        (labels int64 (N,), probs float64 (N, K) clipped to [0, 1]).

    Raises:
        ValueError: naming what is wrong: fewer than two classes, mismatched shapes, no
            rows, non-integer or out-of-range labels, non-finite values, probabilities
            outside [0, 1] or rows not summing to 1.
    """
    names = list(classes)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"classes must list at least two distinct names; got {names}")
    y = np.asarray(labels)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or y.ndim != 1:
        raise ValueError(
            f"expected labels of shape (N,) and probs of shape (N, K); got {y.shape} and {p.shape}"
        )
    if p.shape[0] != y.shape[0]:
        raise ValueError(f"labels has {y.shape[0]} rows but probs has {p.shape[0]}")
    if p.shape[1] != len(names):
        raise ValueError(f"probs has {p.shape[1]} columns but classes lists {len(names)} names")
    if y.size == 0:
        raise ValueError("no predictions to evaluate (N = 0)")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices; got dtype {y.dtype}")
    low = -1 if allow_unlabeled else 0
    bad = np.flatnonzero((y < low) | (y >= len(names)))
    if bad.size:
        hint = "" if allow_unlabeled else " (unlabeled rows, -1, must be dropped first)"
        raise ValueError(
            f"labels must be in [{low}, {len(names)}){hint}; index {bad[0]} holds {y[bad[0]]}"
        )
    if not np.isfinite(p).all():
        raise ValueError("probs hold NaN or infinite values")
    if p.min() < -1e-6 or p.max() > 1 + 1e-6:
        raise ValueError(
            f"probs must lie in [0, 1]; found values in [{p.min():.4g}, {p.max():.4g}]: "
            "pass softmax probabilities, not logits"
        )
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > PROB_SUM_TOL:
        raise ValueError(
            f"each row of probs must sum to 1 (softmax outputs); row {worst} sums to "
            f"{sums[worst]:.6g}"
        )
    return y.astype(np.int64), np.clip(p, 0.0, 1.0)


def finite_or_none(value: float) -> float | None:
    """A float, or None for NaN and infinities (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars and arrays to Python types, paths to strings and NaN/inf to None."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite_or_none(obj)
    return obj


def _from_float32(value: torch.Tensor | np.ndarray) -> np.ndarray:
    """torchmetrics ratios are float32: keep their shortest decimal (0.28, not 0.2800000011)."""
    flat = np.asarray(value, dtype=np.float32).ravel()
    return np.array([float(str(v)) for v in flat]).reshape(np.shape(value))


def _per_class_stats(y: torch.Tensor, p: torch.Tensor, k: int) -> dict[str, np.ndarray]:
    """Per-class torchmetrics values (K,), before undefined ones are nulled."""
    common = {"num_classes": k, "average": None}
    with warnings.catch_warnings():
        # An absent class gets AUROC 0 with this warning; it is replaced by None below.
        warnings.filterwarnings("ignore", message="No positive samples in targets")
        auc = tmc.multiclass_auroc(p, y, **common)
    return {
        "sensitivity": _from_float32(tmc.multiclass_recall(p, y, **common)),
        "specificity": _from_float32(tmc.multiclass_specificity(p, y, **common)),
        "precision": _from_float32(tmc.multiclass_precision(p, y, **common)),
        "f1": _from_float32(tmc.multiclass_f1_score(p, y, **common)),
        "auc": _from_float32(auc),
    }


def _error_auroc(entropy: np.ndarray, correct: np.ndarray) -> float | None:
    """ROC AUC of `entropy` as a detector of wrong predictions; None without both kinds.

    The Mann-Whitney form in float64 (ties count one half): the probability that a wrong
    prediction has a higher entropy than a right one. Entropies are rounded to 1e-6 nats
    first, so two rows with the same probabilities in another order (whose entropies
    differ in the last bits) tie.
    """
    from scipy.stats import rankdata

    wrong = ~correct
    n_wrong, n_right = int(wrong.sum()), int(correct.sum())
    if n_wrong == 0 or n_right == 0:
        return None
    ranks = rankdata(np.round(entropy, ENTROPY_DECIMALS))
    return float((ranks[wrong].sum() - n_wrong * (n_wrong + 1) / 2) / (n_wrong * n_right))


def compute_metrics(
    labels: np.ndarray | Sequence[int], probs: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Every metric of `metrics.json` for labeled predictions.

    Args:
        labels: int (N,) class indices in [0, K); at least two classes present.
        probs: float (N, K) softmax probabilities, columns in `classes` order.
        classes: the K class names.

    Returns:
        A JSON-serialisable dict with n, classes, accuracy, balanced_accuracy, macro_f1,
        macro_auc, kappa, ece, nll, brier, aurc, accuracy_at_90_coverage, mean_confidence,
        mean_entropy, mean_entropy_correct, mean_entropy_wrong (None without such rows),
        error_detection_auroc (ROC AUC of the entropy as a score for "this prediction is
        wrong"; 0.5 is chance; None when every prediction is right or every one wrong),
        per_class {name: sensitivity, specificity, precision, f1, auc,
        support}, confusion_matrix (K x K, rows true, columns predicted) and
        reliability_bins (15 dicts, see `calibration.reliability_bins`).

    Raises:
        ValueError: invalid inputs (see `validate_predictions`), or labels of one class only.
    """
    names = list(classes)
    y, p = validate_predictions(labels, probs, names)
    present = np.bincount(y, minlength=len(names)) > 0
    if present.sum() < 2:
        raise ValueError(
            f"labels contain one class only ({names[int(np.argmax(present))]!r}): balanced "
            "accuracy, AUC and kappa need at least two classes among the labels"
        )
    k = len(names)
    ty, tp = torch.from_numpy(y), torch.from_numpy(p)
    cm = tmc.multiclass_confusion_matrix(tp, ty, num_classes=k).numpy()
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    stats = _per_class_stats(ty, tp, k)
    # The 0/0 cases, where torchmetrics returns 0. With two classes present every class
    # has negatives, so specificity is always defined.
    undefined = {
        "sensitivity": support == 0,
        "specificity": np.zeros(k, dtype=bool),
        "precision": predicted == 0,
        "f1": (support == 0) & (predicted == 0),
        "auc": support == 0,
    }
    per_class = {
        name: {
            **{
                key: None if undefined[key][c] else finite_or_none(values[c])
                for key, values in stats.items()
            },
            "support": int(support[c]),
        }
        for c, name in enumerate(names)
    }
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    entropy = predictive_entropy(p)
    return {
        "n": int(y.size),
        "classes": names,
        "accuracy": float(
            _from_float32(tmc.multiclass_accuracy(tp, ty, num_classes=k, average="micro"))
        ),
        "balanced_accuracy": float(stats["sensitivity"][present].mean()),
        "macro_f1": float(stats["f1"][present].mean()),
        "macro_auc": float(stats["auc"][present].mean()),
        "kappa": finite_or_none(_from_float32(tmc.multiclass_cohen_kappa(tp, ty, num_classes=k))),
        "ece": expected_calibration_error(y, p, ECE_BINS),
        "nll": negative_log_likelihood(y, p),
        "brier": brier_score(y, p),
        "aurc": aurc(confidence, correct),
        "accuracy_at_90_coverage": accuracy_at_coverage(confidence, correct, SELECTIVE_COVERAGE),
        "mean_confidence": float(confidence.mean()),
        "mean_entropy": float(entropy.mean()),
        "mean_entropy_correct": float(entropy[correct].mean()) if correct.any() else None,
        "mean_entropy_wrong": float(entropy[~correct].mean()) if not correct.all() else None,
        "error_detection_auroc": _error_auroc(entropy, correct),
        "per_class": per_class,
        "confusion_matrix": cm.astype(int).tolist(),
        "reliability_bins": reliability_bins(y, p, ECE_BINS),
    }


def labeled_metrics(
    labels: np.ndarray | Sequence[int], probs: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """`compute_metrics` of the labeled rows, with the counts; a `note` where undefined.

    Args:
        labels: int (N,) class indices, -1 for unlabeled rows.
        probs: float (N, K) softmax probabilities.
        classes: the K class names.

    Returns:
        `compute_metrics` of the rows labeled >= 0, then n_predictions (N) and n_unlabeled;
        without labeled rows, or with one class only among them, {n, classes,
        n_predictions, n_unlabeled, note} instead, the note saying why there are no metrics.

    Raises:
        ValueError: invalid inputs (see `validate_predictions`, -1 accepted).
    """
    names = list(classes)
    y, p = validate_predictions(labels, probs, names, allow_unlabeled=True)
    labeled = y >= 0
    counts = {"n_predictions": int(y.size), "n_unlabeled": int((~labeled).sum())}
    present = np.unique(y[labeled])
    if present.size >= 2:
        return {**compute_metrics(y[labeled], p[labeled], names), **counts}
    note = (
        "no labeled rows (every label is -1): only predictions were written"
        if present.size == 0
        else f"the labeled rows hold one class only ({names[present[0]]!r}): "
        "metrics need at least two classes"
    )
    return {"n": int(labeled.sum()), "classes": names, **counts, "note": note}


def compute_task_metrics(
    task_labels: Mapping[str, np.ndarray | Sequence[int]],
    task_probs: Mapping[str, np.ndarray],
    task_classes: Mapping[str, Sequence[str]],
) -> dict[str, dict[str, Any]]:
    """Every metric of each task (e.g. a seven-point criterion), as for the diagnosis.

    Args:
        task_labels: task -> int (N,) class indices, -1 where the row has no value.
        task_probs: task -> float (N, k_t) softmax probabilities.
        task_classes: task -> its k_t class names; its order is the output's.

    Returns:
        {task: `labeled_metrics`}: the rows without a value (-1) are dropped per task;
        a task with one class only among its values holds a `note` instead of metrics.

    Raises:
        ValueError: a task missing from `task_labels` or `task_probs`, or invalid
            predictions of a task (the message names it).
    """
    missing = sorted(set(task_classes) - (set(task_labels) & set(task_probs)))
    if missing:
        raise ValueError(f"tasks without labels or probabilities: {missing}")
    out = {}
    for name, classes in task_classes.items():
        try:
            out[name] = labeled_metrics(task_labels[name], task_probs[name], classes)
        except ValueError as error:
            raise ValueError(f"task {name!r}: {error}") from error
    return out


def mean_task_accuracy(
    diagnosis_accuracy: float | None, task_metrics: Mapping[str, Mapping[str, Any]]
) -> float | None:
    """The mean accuracy over the diagnosis and every task: Derm7pt's 8-task "avg".

    Args:
        diagnosis_accuracy: accuracy of the diagnosis head (None: undefined).
        task_metrics: `compute_task_metrics` output.

    Returns:
        (diagnosis_accuracy + sum of the task accuracies) / (1 + number of tasks); None
        when the diagnosis or a task has no accuracy (a `note`), since a mean over fewer
        tasks would not compare with the anchors' figures.
    """
    values = [diagnosis_accuracy, *(m.get("accuracy") for m in task_metrics.values())]
    if any(v is None for v in values):
        return None
    return float(np.mean(values))
