"""Selective prediction: the risk-coverage curve, its area (AURC) and accuracy at a coverage.

A selective classifier answers only for the samples it is most confident about. Sorting
the samples by confidence (descending) and accepting the top k gives coverage k/N and
risk = errors among those k / k (Geifman & El-Yaniv, "Selective classification for deep
neural networks", NeurIPS 2017). Samples with equal confidence cannot be ordered, so the
error count inside a tied group is its expectation over every order of the group:
the result is deterministic and does not depend on the input order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class RiskCoverageCurve(NamedTuple):
    """The risk-coverage curve at every k = 1..N accepted samples.

    Attributes:
        coverage: float64 (N,): k / N.
        risk: float64 (N,): (expected) error rate among the k most confident samples.
        threshold: float64 (N,): confidence of the k-th most confident sample.
    """

    coverage: np.ndarray
    risk: np.ndarray
    threshold: np.ndarray


def risk_coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> RiskCoverageCurve:
    """Risk at every coverage, most confident samples first, ties by expectation.

    Args:
        confidence: float (N,): any score where higher means "more likely right", e.g. the
            top-class probability.
        correct: bool (N,): whether each prediction is right.

    Returns:
        A `RiskCoverageCurve` of N points.

    Raises:
        ValueError: empty or mismatched inputs, or non-finite confidences.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    err = ~np.asarray(correct, dtype=bool)
    if conf.ndim != 1 or conf.shape != err.shape:
        raise ValueError(
            f"confidence and correct must be 1-D arrays of one length; "
            f"got shapes {conf.shape} and {err.shape}"
        )
    if conf.size == 0:
        raise ValueError("no samples: the risk-coverage curve needs at least one prediction")
    if not np.isfinite(conf).all():
        raise ValueError("confidence holds NaN or infinite values")
    n = conf.size
    # Groups of equal confidence, most confident first.
    levels, group = np.unique(-conf, return_inverse=True)
    size = np.bincount(group, minlength=levels.size)
    errors = np.bincount(group, weights=err, minlength=levels.size)
    end = np.cumsum(size)
    start = end - size
    errors_before = np.cumsum(errors) - errors
    k = np.arange(1, n + 1)
    g = np.searchsorted(end, k, side="left")  # group holding the k-th accepted sample
    expected_errors = errors_before[g] + (k - start[g]) * errors[g] / size[g]
    return RiskCoverageCurve(coverage=k / n, risk=expected_errors / k, threshold=-levels[g])


def aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk-coverage curve: the mean risk over k = 1..N (lower is better).

    Args:
        confidence: float (N,).
        correct: bool (N,).

    Returns:
        AURC in [0, 1]. With E errors ranked last (a perfect confidence), it takes its
        minimum, mean over k of max(0, k - (N - E)) / k.
    """
    return float(risk_coverage_curve(confidence, correct).risk.mean())


def accuracy_at_coverage(
    confidence: np.ndarray, correct: np.ndarray, coverage: float = 0.9
) -> float:
    """Accuracy on the ceil(coverage * N) most confident samples.

    Args:
        confidence: float (N,).
        correct: bool (N,).
        coverage: fraction of samples to accept, in (0, 1].

    Returns:
        Accuracy in [0, 1] (an expectation when the cut falls inside a tied group).

    Raises:
        ValueError: coverage outside (0, 1].
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1]; got {coverage}")
    curve = risk_coverage_curve(confidence, correct)
    n = curve.risk.size
    # The small slack keeps 0.9 * 10 at 9 accepted samples despite binary rounding.
    k = min(max(math.ceil(coverage * n - 1e-9), 1), n)
    return float(1.0 - curve.risk[k - 1])
