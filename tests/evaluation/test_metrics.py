"""compute_metrics against scikit-learn, its conventions, and its refusal of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

from agfnet.evaluation.metrics import ENTROPY_DECIMALS, compute_metrics

REQUIRED_KEYS = {
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
    "mean_entropy",
    "confusion_matrix",
}
TOL = 1e-6


def _random_predictions(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 1.0  # better than chance, still many errors
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


def _assert_matches_sklearn(labels: np.ndarray, probs: np.ndarray) -> None:
    k = probs.shape[1]
    classes = [f"c{i}" for i in range(k)]
    m = compute_metrics(labels, probs, classes)
    pred = probs.argmax(axis=1)
    assert m["n"] == labels.size and m["classes"] == classes
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred), abs=TOL)
    assert m["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(labels, pred), abs=TOL
    )
    assert m["macro_f1"] == pytest.approx(
        skm.f1_score(labels, pred, average="macro", zero_division=0), abs=TOL
    )
    # scikit-learn takes the positive-class column alone for two classes.
    scores = probs[:, 1] if k == 2 else probs
    assert m["macro_auc"] == pytest.approx(
        skm.roc_auc_score(labels, scores, multi_class="ovr"), abs=TOL
    )
    assert m["kappa"] == pytest.approx(skm.cohen_kappa_score(labels, pred), abs=TOL)
    assert m["nll"] == pytest.approx(skm.log_loss(labels, probs, labels=range(k)), abs=TOL)
    cm = skm.confusion_matrix(labels, pred, labels=range(k))
    assert m["confusion_matrix"] == cm.tolist()
    recall = skm.recall_score(labels, pred, average=None, labels=range(k), zero_division=0)
    precision = skm.precision_score(labels, pred, average=None, labels=range(k), zero_division=0)
    f1 = skm.f1_score(labels, pred, average=None, labels=range(k), zero_division=0)
    for c, name in enumerate(classes):
        pc = m["per_class"][name]
        negatives = cm.sum() - cm[c].sum()
        specificity = (negatives - (cm[:, c].sum() - cm[c, c])) / negatives
        assert pc["support"] == int((labels == c).sum())
        assert pc["sensitivity"] == pytest.approx(recall[c], abs=TOL)
        assert pc["specificity"] == pytest.approx(specificity, abs=TOL)
        # Never predicted: precision is 0/0, reported as null (scikit-learn says 0).
        expected_precision = None if cm[:, c].sum() == 0 else pytest.approx(precision[c], abs=TOL)
        assert pc["precision"] == expected_precision
        assert pc["f1"] == pytest.approx(f1[c], abs=TOL)
        assert pc["auc"] == pytest.approx(skm.roc_auc_score(labels == c, probs[:, c]), abs=TOL)
    # Entropy of correct and of wrong predictions, and how well it flags the wrong ones.
    entropy = -(probs * np.log(np.where(probs > 0, probs, 1))).sum(axis=1)
    wrong = pred != labels
    for key, rows in (("mean_entropy_correct", ~wrong), ("mean_entropy_wrong", wrong)):
        expected = pytest.approx(entropy[rows].mean(), abs=TOL) if rows.any() else None
        assert m[key] == expected
    if wrong.any() and not wrong.all():
        assert m["error_detection_auroc"] == pytest.approx(
            skm.roc_auc_score(wrong, np.round(entropy, ENTROPY_DECIMALS)), abs=1e-5
        )
    else:
        assert m["error_detection_auroc"] is None


@pytest.mark.parametrize(("seed", "n", "k"), [(0, 60, 3), (1, 97, 5), (2, 40, 7)])
def test_every_metric_matches_sklearn(seed: int, n: int, k: int) -> None:
    _assert_matches_sklearn(*_random_predictions(seed, n, k))


@st.composite
def _labeled_probs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    k = draw(st.integers(2, 5))
    extra = draw(st.lists(st.integers(0, k - 1), max_size=25))
    labels = np.array(draw(st.permutations([*range(k), *extra])), dtype=np.int64)
    # Coarse values make ties in confidence and in class scores likely: both sides must
    # break them the same way (argmax: first class; AUC: ties count one half).
    weights = draw(arrays(np.float64, (labels.size, k), elements=st.sampled_from([0.1, 0.5, 1, 2])))
    return labels, weights / weights.sum(axis=1, keepdims=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_labeled_probs())
def test_property_matches_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    _assert_matches_sklearn(*data)


def test_accuracy_is_micro_and_balanced_accuracy_is_macro_recall() -> None:
    # 8 samples of class 0 all right, 2 of class 1 both wrong: micro 0.8, macro recall 0.5.
    labels = np.array([0] * 8 + [1] * 2)
    probs = np.tile([0.7, 0.3], (10, 1))
    m = compute_metrics(labels, probs, ["a", "b"])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["balanced_accuracy"] == pytest.approx(0.5)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_class_absent_from_labels_is_left_out_of_macro_averages() -> None:
    labels, probs = _random_predictions(3, 50, 3)
    labels = np.where(labels == 2, 0, labels)  # class 2 is never the truth, still predicted
    assert (probs.argmax(axis=1) == 2).any()
    m = compute_metrics(labels, probs, ["a", "b", "c"])
    absent = m["per_class"]["c"]
    assert absent["support"] == 0
    assert absent["sensitivity"] is None and absent["auc"] is None
    assert absent["precision"] == 0.0 and absent["f1"] == 0.0
    pred = probs.argmax(axis=1)
    aucs = [skm.roc_auc_score(labels == c, probs[:, c]) for c in (0, 1)]
    assert m["macro_auc"] == pytest.approx(np.mean(aucs), abs=TOL)
    assert m["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(labels, pred), abs=TOL
    )
    assert m["macro_f1"] == pytest.approx(
        skm.f1_score(labels, pred, labels=[0, 1], average="macro"), abs=TOL
    )


def test_output_is_strict_json_with_every_key() -> None:
    labels, probs = _random_predictions(4, 30, 4)
    m = compute_metrics(labels, probs, ["a", "b", "c", "d"])
    assert set(m) >= REQUIRED_KEYS
    assert set(m["per_class"]["a"]) == {
        "sensitivity",
        "specificity",
        "precision",
        "f1",
        "auc",
        "support",
    }
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_accepts_float32_probs_that_sum_to_one_within_tolerance() -> None:
    labels, probs = _random_predictions(5, 30, 3)
    m32 = compute_metrics(labels, probs.astype(np.float32), ["a", "b", "c"])
    assert m32["nll"] == pytest.approx(compute_metrics(labels, probs, ["a", "b", "c"])["nll"])


GOOD_LABELS = np.array([0, 1, 2, 1])
GOOD_PROBS = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])


@pytest.mark.parametrize(
    ("labels", "probs", "classes", "match"),
    [
        (GOOD_LABELS, GOOD_PROBS[:, :1], ["a"], "at least two distinct"),
        (GOOD_LABELS, GOOD_PROBS, ["a", "a", "b"], "at least two distinct"),
        (np.zeros(0, int), np.zeros((0, 3)), ["a", "b", "c"], "N = 0"),
        (GOOD_LABELS[:3], GOOD_PROBS, ["a", "b", "c"], "3 rows but probs has 4"),
        (GOOD_LABELS, GOOD_PROBS, ["a", "b"], "3 columns but classes lists 2"),
        (GOOD_LABELS, GOOD_PROBS[0], ["a", "b", "c"], "shape"),
        (GOOD_LABELS.astype(float), GOOD_PROBS, ["a", "b", "c"], "integer"),
        (np.array([0, 1, 3, 1]), GOOD_PROBS, ["a", "b", "c"], r"in \[0, 3\)"),
        (np.array([0, 1, -1, 1]), GOOD_PROBS, ["a", "b", "c"], "unlabeled"),
        (GOOD_LABELS, GOOD_PROBS * 2, ["a", "b", "c"], r"\[0, 1\]"),
        (GOOD_LABELS, GOOD_PROBS * 0.9, ["a", "b", "c"], "sum to 1"),
        (GOOD_LABELS, np.log(GOOD_PROBS), ["a", "b", "c"], "not logits"),
        (GOOD_LABELS, np.where(GOOD_PROBS > 0.75, np.nan, GOOD_PROBS), ["a", "b", "c"], "NaN"),
        (np.array([1, 1, 1, 1]), GOOD_PROBS, ["a", "b", "c"], "one class only"),
    ],
)
def test_bad_input_raises_a_clear_value_error(
    labels: np.ndarray, probs: np.ndarray, classes: list[str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        compute_metrics(labels, probs, classes)
