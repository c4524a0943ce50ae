"""compute_task_metrics (every task against scikit-learn) and mean_task_accuracy by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from agfnet.evaluation.metrics import (
    compute_metrics,
    compute_task_metrics,
    labeled_metrics,
    mean_task_accuracy,
)

TOL = 1e-6
TASKS = {
    "pigment_network": ["absent", "typical", "atypical"],
    "blue_whitish_veil": ["absent", "present"],
    "shape": ["oval", "round", "star", "square"],
}


def _task(seed: int, n: int, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Labels with every class and some blanks (-1), better-than-chance probabilities."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    labels = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 1.0
    labels[rng.choice(np.arange(k, n), size=5, replace=False)] = -1
    return labels, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _tasks(n: int = 60) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    drawn = {name: _task(i, n, c) for i, (name, c) in enumerate(TASKS.items())}
    return {t: d[0] for t, d in drawn.items()}, {t: d[1] for t, d in drawn.items()}


def test_each_task_is_compute_metrics_of_its_labeled_rows_and_matches_sklearn() -> None:
    labels, probs = _tasks()
    out = compute_task_metrics(labels, probs, TASKS)
    assert list(out) == list(TASKS)
    for name, classes in TASKS.items():
        keep = labels[name] >= 0
        y, p = labels[name][keep], probs[name][keep]
        m = out[name]
        assert m == {
            **compute_metrics(y, p, classes),
            "n_predictions": 60,
            "n_unlabeled": 5,
        }
        pred = p.argmax(axis=1)
        k = len(classes)
        scores = p[:, 1] if k == 2 else p
        assert m["n"] == 55 and m["classes"] == classes
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=TOL)
        assert m["balanced_accuracy"] == pytest.approx(
            skm.balanced_accuracy_score(y, pred), abs=TOL
        )
        assert m["macro_f1"] == pytest.approx(
            skm.f1_score(y, pred, average="macro", zero_division=0), abs=TOL
        )
        assert m["macro_auc"] == pytest.approx(
            skm.roc_auc_score(y, scores, multi_class="ovr"), abs=TOL
        )
        assert m["kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred), abs=TOL)
        assert m["nll"] == pytest.approx(skm.log_loss(y, p, labels=range(k)), abs=TOL)
        assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=range(k)).tolist()


def test_a_task_with_one_class_or_no_value_holds_a_note() -> None:
    probs = np.tile([0.6, 0.4], (4, 1))
    out = compute_task_metrics(
        {"one": np.array([1, 1, -1, 1]), "none": np.full(4, -1)},
        {"one": probs, "none": probs},
        {"one": ["absent", "present"], "none": ["absent", "present"]},
    )
    assert out["one"] == {
        "n": 3,
        "classes": ["absent", "present"],
        "n_predictions": 4,
        "n_unlabeled": 1,
        "note": "the labeled rows hold one class only ('present'): metrics need at least "
        "two classes",
    }
    assert out["none"]["n"] == 0 and "no labeled rows" in out["none"]["note"]
    assert out["one"] == labeled_metrics([1, 1, -1, 1], probs, ["absent", "present"])


def test_bad_task_input_names_the_task() -> None:
    labels, probs = _tasks()
    with pytest.raises(ValueError, match=r"without labels or probabilities: \['shape'\]"):
        compute_task_metrics({t: v for t, v in labels.items() if t != "shape"}, probs, TASKS)
    bad = {**probs, "shape": probs["shape"] * 2}
    with pytest.raises(ValueError, match=r"task 'shape': probs must lie in \[0, 1\]"):
        compute_task_metrics(labels, bad, TASKS)


def test_mean_task_accuracy_by_hand() -> None:
    # Task a: labels 0 1 1 0, predictions 0 1 0 0 -> 3/4; task b: 1 0 / 1 0 -> 1;
    # diagnosis 0.5: (0.5 + 0.75 + 1) / 3 = 0.75.
    out = compute_task_metrics(
        {"a": np.array([0, 1, 1, 0]), "b": np.array([1, 0, -1, -1])},
        {
            "a": np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]]),
            "b": np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5], [0.5, 0.5]]),
        },
        {"a": ["x", "y"], "b": ["x", "y"]},
    )
    assert out["a"]["accuracy"] == 0.75 and out["b"]["accuracy"] == 1.0
    assert mean_task_accuracy(0.5, out) == pytest.approx(0.75)
    assert mean_task_accuracy(0.8, {}) == pytest.approx(0.8)
    # An undefined member makes the mean undefined (not a mean over fewer tasks).
    assert mean_task_accuracy(None, out) is None
    assert mean_task_accuracy(0.5, {**out, "c": {"n": 0, "note": "no labeled rows"}}) is None
