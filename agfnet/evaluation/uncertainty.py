"""Predictive uncertainty: entropy of one prediction, and spread over stochastic passes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of each probability vector, in nats (0 log 0 taken as 0).

    Args:
        probs: float (..., K), each row a probability vector.

    Returns:
        float64 (...): between 0 (one class certain) and log K (uniform).
    """
    p = np.asarray(probs, dtype=np.float64)
    # where=p>0 gives 0 log 0 = 0 without a warning; the output defaults to 0 there.
    plogp = np.multiply(p, np.log(p, where=p > 0, out=np.zeros_like(p)))
    return np.maximum(-plogp.sum(axis=-1), 0.0)


@dataclass(frozen=True)
class PassSummary:
    """Summary of T stochastic passes (MC dropout, test-time augmentation) over N samples.

    Attributes:
        mean: float64 (N, K): the mean probability, the prediction to report.
        std: float64 (N, K): the standard deviation over passes (ddof=0) per class.
        entropy: float64 (N,): entropy of `mean` (total uncertainty), nats.
        expected_entropy: float64 (N,): mean entropy of the single passes (aleatoric part).
        mutual_information: float64 (N,): entropy - expected_entropy (epistemic part,
            the disagreement between passes); 0 when every pass agrees.
    """

    mean: np.ndarray
    std: np.ndarray
    entropy: np.ndarray
    expected_entropy: np.ndarray
    mutual_information: np.ndarray


def summarize_passes(prob_stack: np.ndarray | Sequence[np.ndarray]) -> PassSummary:
    """Mean, spread and entropy decomposition of a stack of stochastic predictions.

    Args:
        prob_stack: float (T, N, K), or a sequence of T arrays (N, K): the softmax output
            of each pass.

    Returns:
        A `PassSummary`.

    Raises:
        ValueError: the stack is not (T, N, K) with T >= 1, or holds non-finite values.
    """
    stack = np.asarray(prob_stack, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise ValueError(
            f"prob_stack must have shape (passes, samples, classes) with at least one pass; "
            f"got shape {stack.shape}"
        )
    if not np.isfinite(stack).all():
        raise ValueError("prob_stack holds NaN or infinite values")
    mean = stack.mean(axis=0)
    entropy = predictive_entropy(mean)
    expected = predictive_entropy(stack).mean(axis=0)
    return PassSummary(
        mean=mean,
        std=stack.std(axis=0),
        entropy=entropy,
        expected_entropy=expected,
        # Entropy is concave, so entropy >= expected; the clip only removes rounding noise.
        mutual_information=np.maximum(entropy - expected, 0.0),
    )
