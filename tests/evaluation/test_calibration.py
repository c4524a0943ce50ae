"""ECE, Brier and NLL on a worked example; temperature scaling on synthetic logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax
from sklearn.metrics import log_loss
from torchmetrics.functional.classification import multiclass_calibration_error

from agfnet.evaluation.calibration import (
    TEMPERATURE_BOUNDS,
    apply_temperature,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from agfnet.evaluation.uncertainty import predictive_entropy

# Five samples, three classes. Top-class confidence, 15 bins of width 1/15:
#   A 0.90 right, B 0.88 wrong -> bin 13 (0.867, 0.933]: conf 0.89, acc 0.5
#   C 0.50 right               -> bin 7  (0.467, 0.533]
#   D 0.45 wrong               -> bin 6  (0.400, 0.467]
#   E 0.62 right               -> bin 9  (0.600, 0.667]
# ECE = 2/5*|0.5-0.89| + 1/5*|1-0.50| + 1/5*|0-0.45| + 1/5*|1-0.62|
#     = 0.156 + 0.100 + 0.090 + 0.076 = 0.422
# Brier, sum over classes of (p - onehot)^2 per sample:
#   A .01+.0036+.0016 = .0152   B .7744+.81+.0004 = 1.5848   C .04+.25+.09 = .38
#   D .2025+.0625+.49 = .755    E .01+.0784+.1444 = .2328    mean = 2.9678/5 = 0.59356
LABELS = np.array([0, 1, 1, 2, 2])
PROBS = np.array(
    [
        [0.90, 0.06, 0.04],
        [0.88, 0.10, 0.02],
        [0.20, 0.50, 0.30],
        [0.45, 0.25, 0.30],
        [0.10, 0.28, 0.62],
    ]
)


def test_ece_matches_the_hand_computation() -> None:
    assert expected_calibration_error(LABELS, PROBS, 15) == pytest.approx(0.422, abs=1e-12)
    # torchmetrics agrees away from bin edges (it differs only on an edge, see the docs).
    tm = multiclass_calibration_error(torch.tensor(PROBS), torch.tensor(LABELS), 3, n_bins=15)
    assert float(tm) == pytest.approx(0.422, abs=1e-6)


def test_reliability_bins_hold_the_worked_example() -> None:
    bins = reliability_bins(LABELS, PROBS, 15)
    filled = {i: b for i, b in enumerate(bins) if b["count"]}
    assert sorted(filled) == [6, 7, 9, 13]
    assert filled[13]["count"] == 2
    assert filled[13]["confidence"] == pytest.approx(0.89)
    assert filled[13]["accuracy"] == pytest.approx(0.5)
    assert all(b["confidence"] is None and b["accuracy"] is None for b in bins if not b["count"])
    assert bins[0]["lower"] == 0.0 and bins[-1]["upper"] == 1.0


def test_bins_are_right_closed() -> None:
    # Confidence 0.5 with 10 bins lies on the edge of (0.4, 0.5] and (0.5, 0.6]; 1.0 is
    # in the last bin.
    labels = np.array([0, 0])
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    counts = [b["count"] for b in reliability_bins(labels, probs, 10)]
    assert counts[4] == 1 and counts[9] == 1 and sum(counts) == 2


def test_brier_matches_the_hand_computation() -> None:
    assert brier_score(LABELS, PROBS) == pytest.approx(0.59356, abs=1e-12)


def test_nll_matches_sklearn_log_loss() -> None:
    assert negative_log_likelihood(LABELS, PROBS) == pytest.approx(log_loss(LABELS, PROBS))
    # A zero on the true class is clipped, not infinite.
    zero = np.array([[1.0, 0.0]])
    assert negative_log_likelihood(np.array([1]), zero) == pytest.approx(-np.log(2.2204e-16), 1e-4)


def _calibrated(seed: int, n: int = 4000, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(n, k))
    labels = np.argmax(logits + rng.gumbel(size=(n, k)), axis=1)  # Gumbel-max sampling
    return logits, labels


def test_temperature_near_one_on_calibrated_data() -> None:
    logits, labels = _calibrated(0)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.08)


def test_temperature_softens_over_confident_logits_and_lowers_nll() -> None:
    logits, labels = _calibrated(1)
    sharp = 3.0 * logits  # the same model, three times over-confident
    t = fit_temperature(sharp, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    before = negative_log_likelihood(labels, softmax(sharp, axis=1))
    calibrated = apply_temperature(sharp, t)
    after = negative_log_likelihood(labels, calibrated)
    assert after < before - 0.1
    assert (calibrated.argmax(axis=1) == sharp.argmax(axis=1)).all()
    # The fit is a minimum: a little warmer or colder is worse, and the first-order
    # condition of the NLL in T says mean entropy = NLL there.
    for other in (t * 1.02, t / 1.02):
        assert negative_log_likelihood(labels, apply_temperature(sharp, other)) > after
    assert predictive_entropy(calibrated).mean() == pytest.approx(after, abs=1e-4)


def test_fit_is_deterministic_and_takes_tensors() -> None:
    logits, labels = _calibrated(2, n=500)
    t = fit_temperature(logits, labels)
    assert fit_temperature(logits, labels) == t
    tensor = torch.tensor(logits, requires_grad=True)
    assert fit_temperature(tensor, torch.tensor(labels)) == pytest.approx(t, rel=1e-6)


def test_fit_sharpens_within_bounds_when_every_sample_is_right() -> None:
    # The NLL keeps falling as T -> 0; the fit stops where it is flat, never below the bound.
    logits = np.array([[3.0, 0.0], [0.0, 3.0], [2.0, -1.0]])
    assert TEMPERATURE_BOUNDS[0] <= fit_temperature(logits, np.array([0, 1, 0])) < 0.5


def test_apply_temperature_keeps_the_input_kind() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    probs = apply_temperature(logits, 2.0)
    assert isinstance(probs, torch.Tensor)
    assert torch.allclose(probs, torch.softmax(logits / 2.0, dim=-1))
    np.testing.assert_allclose(apply_temperature(logits.numpy(), 2.0), probs.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(logits, 0.0)


@pytest.mark.parametrize(
    ("logits", "labels", "match"),
    [
        (np.zeros((3, 2)), np.array([0, 1]), "logits"),
        (np.zeros((0, 2)), np.zeros(0, int), "at least one"),
        (np.full((2, 2), np.nan), np.array([0, 1]), "NaN"),
        (np.zeros((2, 2)), np.array([0, -1]), "unlabeled"),
    ],
)
def test_fit_refuses_bad_input(logits: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_temperature(logits, labels)
