"""Risk-coverage curve, AURC and accuracy at coverage on worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from agfnet.evaluation.selective import accuracy_at_coverage, aurc, risk_coverage_curve


def test_aurc_hand_example() -> None:
    # Sorted by confidence: right, wrong, right, wrong.
    # risk at k = 1..4: 0/1, 1/2, 1/3, 2/4 -> AURC = (0 + 1/2 + 1/3 + 1/2) / 4 = 1/3.
    confidence = np.array([0.6, 0.8, 0.9, 0.7])
    correct = np.array([False, False, True, True])
    curve = risk_coverage_curve(confidence, correct)
    np.testing.assert_allclose(curve.coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve.risk, [0.0, 1 / 2, 1 / 3, 1 / 2])
    np.testing.assert_allclose(curve.threshold, [0.9, 0.8, 0.7, 0.6])
    assert aurc(confidence, correct) == pytest.approx(1 / 3)


def test_ties_count_by_expectation_whatever_the_order() -> None:
    # Two samples tied at 0.9, one right one wrong: accepting one of them errs half the
    # time. risk = 0.5, 1/2, 1/3 -> AURC = 4/9.
    confidence = np.array([0.9, 0.9, 0.5])
    for correct in ([True, False, True], [False, True, True]):
        curve = risk_coverage_curve(confidence, np.array(correct))
        np.testing.assert_allclose(curve.risk, [0.5, 0.5, 1 / 3])
        assert aurc(confidence, np.array(correct)) == pytest.approx(4 / 9)


def test_perfect_ranking_gives_the_minimal_aurc() -> None:
    rng = np.random.default_rng(0)
    n = 40
    correct = rng.random(n) < 0.7
    errors = int((~correct).sum())
    perfect = np.where(correct, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.5, n))
    k = np.arange(1, n + 1)
    minimum = np.mean(np.maximum(0, k - (n - errors)) / k)
    assert aurc(perfect, correct) == pytest.approx(minimum)
    for _ in range(50):
        assert aurc(rng.permutation(perfect), correct) >= minimum - 1e-12


def test_accuracy_at_90_coverage_hand_example() -> None:
    # 10 samples; the 9 most confident hold one error -> 8/9. All 10 hold two -> 0.8.
    confidence = np.linspace(1.0, 0.1, 10)
    correct = np.array([True] * 3 + [False] + [True] * 5 + [False])
    assert accuracy_at_coverage(confidence, correct, 0.9) == pytest.approx(8 / 9)
    assert accuracy_at_coverage(confidence, correct, 1.0) == pytest.approx(0.8)
    # ceil(0.5 * 7) = 4 accepted: the first four, one error.
    assert accuracy_at_coverage(confidence[:7], correct[:7], 0.5) == pytest.approx(3 / 4)


@pytest.mark.parametrize(
    ("confidence", "correct", "kwargs", "match"),
    [
        (np.zeros(0), np.zeros(0, bool), {}, "at least one"),
        (np.ones(3), np.ones(2, bool), {}, "one length"),
        (np.array([np.nan, 1.0]), np.ones(2, bool), {}, "NaN"),
        (np.ones(2), np.ones(2, bool), {"coverage": 0.0}, "coverage"),
        (np.ones(2), np.ones(2, bool), {"coverage": 1.5}, "coverage"),
    ],
)
def test_bad_input(confidence: np.ndarray, correct: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        accuracy_at_coverage(confidence, correct, **kwargs)
