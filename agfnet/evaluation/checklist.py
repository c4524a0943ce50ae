"""The seven-point checklist (Argenziano et al., Arch Dermatol 1998) scored from predicted criteria.

Each of the seven dermoscopic criteria is a task of the model, named and valued as
`agfnet import derm7pt` writes them (the groupings of the derm7pt package's
`Derm7PtDatasetGroupInfrequent`). Three major criteria count 2 points, four minor ones 1
point; a score of 3 or more suspects melanoma. `checklist_report` puts that rule beside
the diagnosis head, and beside the release's own score where the manifest carries it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CHECKLIST",
    "CHECKLIST_CLASSES",
    "CHECKLIST_TASKS",
    "MAX_SCORE",
    "THRESHOLD",
    "Criterion",
    "checklist_report",
    "has_checklist",
    "predicted_classes",
    "seven_point_score",
]


@dataclass(frozen=True)
class Criterion:
    """One criterion of the checklist: `points` when task `task` takes the value `value`."""

    task: str
    value: str
    points: int

    @property
    def major(self) -> bool:
        """Whether this is one of the three major criteria (2 points)."""
        return self.points == 2


#: The seven criteria: three major (2 points), then four minor (1 point).
CHECKLIST: tuple[Criterion, ...] = (
    Criterion("pigment_network", "atypical", 2),
    Criterion("blue_whitish_veil", "present", 2),
    Criterion("vascular_structures", "irregular", 2),
    Criterion("pigmentation", "irregular", 1),
    Criterion("streaks", "irregular", 1),
    Criterion("dots_and_globules", "irregular", 1),
    Criterion("regression_structures", "present", 1),
)
CHECKLIST_TASKS: tuple[str, ...] = tuple(c.task for c in CHECKLIST)
#: The values of each criterion, as the Derm7pt importer writes them.
CHECKLIST_CLASSES: dict[str, tuple[str, ...]] = {
    "pigment_network": ("absent", "typical", "atypical"),
    "streaks": ("absent", "regular", "irregular"),
    "pigmentation": ("absent", "regular", "irregular"),
    "regression_structures": ("absent", "present"),
    "dots_and_globules": ("absent", "regular", "irregular"),
    "blue_whitish_veil": ("absent", "present"),
    "vascular_structures": ("absent", "regular", "irregular"),
}
MAX_SCORE = sum(c.points for c in CHECKLIST)
#: The score from which the checklist suspects melanoma.
THRESHOLD = 3


def has_checklist(task_classes: Mapping[str, Sequence[str]]) -> bool:
    """Whether the tasks include the seven criteria, named and valued as the importer does.

    Args:
        task_classes: task -> its class names (e.g. `Manifest.task_classes`).

    Returns:
        True when every criterion is a task whose classes are among the importer's values
        and include the value that scores (so that no point is out of reach).
    """
    return all(
        c.task in task_classes
        and c.value in task_classes[c.task]
        and set(task_classes[c.task]) <= set(CHECKLIST_CLASSES[c.task])
        for c in CHECKLIST
    )


def predicted_classes(
    task_probs: Mapping[str, np.ndarray], task_classes: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """The predicted class name of every task and row (the argmax, first class on a tie).

    Args:
        task_probs: task -> float (N, k_t) probabilities.
        task_classes: task -> its k_t class names.

    Returns:
        {task: N class names}, in `task_probs` order.
    """
    return {
        name: [task_classes[name][i] for i in np.asarray(p).argmax(axis=1)]
        for name, p in task_probs.items()
    }


def seven_point_score(predicted: Mapping[str, Sequence[str]]) -> np.ndarray:
    """The seven-point score of every row from its criteria.

    Args:
        predicted: task -> (N,) class names of each row; must hold the seven criteria
            (further tasks are ignored).

    Returns:
        int64 (N,) scores in [0, 10].

    Raises:
        ValueError: a criterion missing, criteria of different lengths, or a value that
            is not one of the criterion's (`CHECKLIST_CLASSES`).
    """
    missing = [t for t in CHECKLIST_TASKS if t not in predicted]
    if missing:
        raise ValueError(
            f"the seven-point score needs the tasks {list(CHECKLIST_TASKS)}; missing {missing}"
        )
    lengths = {t: len(predicted[t]) for t in CHECKLIST_TASKS}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"the criteria have different numbers of rows: {lengths}")
    score = np.zeros(lengths[CHECKLIST_TASKS[0]], dtype=np.int64)
    for c in CHECKLIST:
        values = np.asarray(predicted[c.task], dtype=object)
        unknown = [i for i, v in enumerate(values) if v not in CHECKLIST_CLASSES[c.task]]
        if unknown:
            raise ValueError(
                f"{c.task} row {unknown[0]} holds {values[unknown[0]]!r}; expected one of "
                f"{list(CHECKLIST_CLASSES[c.task])}"
            )
        score += c.points * (values == c.value)
    return score


def _release_scores(values: Sequence[Any], n: int) -> np.ndarray:
    """The release's scores as float (N,), NaN where missing (None, blank or NaN)."""
    if len(values) != n:
        raise ValueError(f"release_score has {len(values)} entries but there are {n} rows")
    out = np.full(n, np.nan)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"release_score row {i} holds {value!r}, not a number") from None
    return out


def _detection(flagged: np.ndarray, melanoma: np.ndarray) -> dict[str, Any]:
    """Sensitivity and specificity of `flagged` (bool (N,)) for `melanoma` (bool (N,))."""
    tp, fn = int((flagged & melanoma).sum()), int((~flagged & melanoma).sum())
    tn, fp = int((~flagged & ~melanoma).sum()), int((flagged & ~melanoma).sum())
    return {
        "n": int(melanoma.size),
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "tp": tp,
        "fn": fn,
        "tn": tn,
        "fp": fp,
    }


def checklist_report(
    predicted_tasks: Mapping[str, Sequence[str]],
    diagnosis_pred: np.ndarray | Sequence[int],
    diagnosis_labels: np.ndarray | Sequence[int],
    classes: Sequence[str],
    release_score: Sequence[Any] | None = None,
    melanoma: str = "MEL",
    threshold: int = THRESHOLD,
) -> dict[str, Any]:
    """The checklist scored from the predicted criteria, against the release and the head.

    Args:
        predicted_tasks: task -> (N,) predicted class names (`predicted_classes`).
        diagnosis_pred: int (N,) predicted diagnosis class indices.
        diagnosis_labels: int (N,) true diagnosis class indices, -1 where unlabeled.
        classes: the diagnosis class names.
        release_score: (N,) the release's seven-point score per row (a number, a numeric
            string, or None / blank / NaN where missing); None for none.
        melanoma: the diagnosis class that the checklist screens for.
        threshold: the score from which the checklist flags melanoma.

    Returns:
        A JSON-ready dict: criteria (task, value, points), threshold, melanoma, n,
        mean_score, score_counts (rows per score 0..10), release_agreement (None without
        release scores; else n rows with one, exact_agreement, mean_abs_difference,
        decision_agreement: same side of the threshold), melanoma_detection (None, with a
        `note`, when `melanoma` is not a class or no row is labeled; else over the labeled
        rows: checklist (score >= threshold), diagnosis_head (predicted `melanoma`) and,
        with release scores, release_checklist (the release's score >= threshold, on the
        labeled rows that have one), each {n, sensitivity, specificity, tp, fn, tn, fp},
        None where a rate has no row to count).

    Raises:
        ValueError: see `seven_point_score`; arrays of different lengths; a release score
            that is not a number.
    """
    score = seven_point_score(predicted_tasks)
    n = score.size
    pred, labels = np.asarray(diagnosis_pred), np.asarray(diagnosis_labels)
    if pred.shape != (n,) or labels.shape != (n,):
        raise ValueError(
            f"diagnosis_pred {pred.shape} and diagnosis_labels {labels.shape} must both be "
            f"({n},), one entry per row of the criteria"
        )
    report: dict[str, Any] = {
        "criteria": [{"task": c.task, "value": c.value, "points": c.points} for c in CHECKLIST],
        "threshold": threshold,
        "melanoma": melanoma,
        "n": n,
        "mean_score": float(score.mean()) if n else None,
        "score_counts": np.bincount(score, minlength=MAX_SCORE + 1).tolist(),
        "release_agreement": None,
        "melanoma_detection": None,
    }
    release = None if release_score is None else _release_scores(release_score, n)
    if release is not None:
        given = np.isfinite(release)
        ours, theirs = score[given], release[given]
        agreement: dict[str, Any] = {"n": int(given.sum())}
        agreement["exact_agreement"] = float((ours == theirs).mean()) if given.any() else None
        agreement["mean_abs_difference"] = (
            float(np.abs(ours - theirs).mean()) if given.any() else None
        )
        same_side = (ours >= threshold) == (theirs >= threshold)
        agreement["decision_agreement"] = float(same_side.mean()) if given.any() else None
        report["release_agreement"] = agreement
    names = list(classes)
    labeled = labels >= 0
    if melanoma not in names or not labeled.any():
        report["note"] = (
            f"no melanoma detection: {melanoma!r} is not a diagnosis class ({names})"
            if melanoma not in names
            else "no melanoma detection: no row has a diagnosis label"
        )
        return report
    is_mel = labels == names.index(melanoma)
    detection = {
        "checklist": _detection((score >= threshold)[labeled], is_mel[labeled]),
        "diagnosis_head": _detection((pred == names.index(melanoma))[labeled], is_mel[labeled]),
    }
    if release is not None:
        rows = labeled & np.isfinite(release)
        detection["release_checklist"] = _detection(release[rows] >= threshold, is_mel[rows])
    report["melanoma_detection"] = detection
    return report
