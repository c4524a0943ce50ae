"""Calibration: reliability bins, ECE, Brier score, NLL and temperature scaling.

Temperature scaling follows Guo et al., "On calibration of modern neural networks",
ICML 2017: one scalar T divides every logit, fitted by minimising the NLL on held-out
data; it changes confidences but never the predicted class.

The metric functions take validated inputs (`agfnet.evaluation.metrics.validate_predictions`):
labels int (N,) in [0, K), probs float (N, K) with rows summing to 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

# The smallest probability the NLL takes, as in scikit-learn's log_loss: a zero on the
# true class costs -log(eps) = 36.04 nats instead of infinity.
NLL_EPS = float(np.finfo(np.float64).eps)
TEMPERATURE_BOUNDS = (0.05, 20.0)


def reliability_bins(
    labels: np.ndarray, probs: np.ndarray, n_bins: int = 15
) -> list[dict[str, float | int | None]]:
    """Top-class confidence in equal-width bins, with the accuracy of each bin.

    Bin b covers confidences in (b/n_bins, (b+1)/n_bins]: right-closed as in Guo et al.
    (2017), so a confidence of exactly 1.0 falls in the last bin.

    Args:
        labels: int (N,).
        probs: float (N, K).
        n_bins: number of bins.

    Returns:
        One dict per bin: lower, upper, count, confidence (mean top-class probability)
        and accuracy (fraction correct); confidence and accuracy are None for an empty bin.
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(index, weights=correct, minlength=n_bins)
    return [
        {
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": int(count[b]),
            "confidence": float(conf_sum[b] / count[b]) if count[b] else None,
            "accuracy": float(correct_sum[b] / count[b]) if count[b] else None,
        }
        for b in range(n_bins)
    ]


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE: sum over bins of (bin count / N) * |accuracy - mean confidence|.

    Args:
        labels: int (N,).
        probs: float (N, K).
        n_bins: number of equal-width bins on the top-class confidence.

    Returns:
        ECE in [0, 1].
    """
    bins = reliability_bins(labels, probs, n_bins)
    n = sum(b["count"] for b in bins)
    return float(
        sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])
    )


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Multiclass Brier score: mean over samples of sum over classes of (p_k - y_k)^2.

    Args:
        labels: int (N,).
        probs: float (N, K).

    Returns:
        Brier score in [0, 2] (Brier's original multiclass form, not divided by K).
    """
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def negative_log_likelihood(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-probability of the true class, in nats (scikit-learn's log_loss).

    Args:
        labels: int (N,).
        probs: float (N, K).

    Returns:
        NLL >= 0; probabilities are clipped below at `NLL_EPS`.
    """
    true_prob = probs[np.arange(labels.size), labels]
    return float(-np.mean(np.log(np.clip(true_prob, NLL_EPS, 1.0))))


def _as_float64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def fit_temperature(
    logits: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> float:
    """Fit the temperature T that minimises the NLL of softmax(logits / T).

    L-BFGS-B (scipy) on s = log T with the exact gradient, starting at T = 1, in float64:
    deterministic. The NLL is unimodal in s (convex in 1/T), so the minimum is global.

    Args:
        logits: float (N, K), held-out logits (never the training set).
        labels: int (N,) in [0, K).
        bounds: the range T is kept in; a fit that stops at a bound means the data push
            T further (e.g. the lower bound when every held-out sample is right).

    Returns:
        T > 0: above 1 softens an over-confident model, below 1 sharpens it.

    Raises:
        ValueError: mismatched shapes, no samples, non-finite logits or labels outside [0, K).
    """
    z = _as_float64(logits)
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if z.ndim != 2 or y.ndim != 1 or z.shape[0] != y.shape[0]:
        raise ValueError(
            f"fit_temperature needs logits (N, K) and labels (N,); got {z.shape} and {y.shape}"
        )
    if y.size == 0:
        raise ValueError("fit_temperature needs at least one labeled sample; got none")
    if not np.isfinite(z).all():
        raise ValueError("logits hold NaN or infinite values")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(
            f"labels must be integer class indices in [0, {z.shape[1]}); drop unlabeled rows "
            f"(label -1) first"
        )
    rows = np.arange(y.size)

    def nll_and_grad(s: np.ndarray) -> tuple[float, np.ndarray]:
        scaled = z * math.exp(-s[0])
        logp = log_softmax(scaled, axis=1)
        # d scaled / ds = -scaled, so dNLL/ds = mean(scaled_y - sum_k p_k scaled_k).
        grad = np.mean(scaled[rows, y] - np.sum(np.exp(logp) * scaled, axis=1))
        return float(-np.mean(logp[rows, y])), np.array([grad])

    lo, hi = bounds
    result = minimize(
        nll_and_grad,
        x0=np.zeros(1),
        jac=True,
        method="L-BFGS-B",
        bounds=[(math.log(lo), math.log(hi))],
    )
    return float(math.exp(result.x[0]))


def apply_temperature(
    logits: np.ndarray | torch.Tensor, temperature: float
) -> np.ndarray | torch.Tensor:
    """Calibrated probabilities softmax(logits / T) over the last axis.

    Args:
        logits: float (..., K), a numpy array or a tensor.
        temperature: T > 0 from `fit_temperature` (1.0 leaves the model as it is).

    Returns:
        Probabilities (..., K) of the input's kind: a tensor for a tensor (on its device,
        differentiable), else a float64 numpy array.

    Raises:
        ValueError: T is not a positive finite number.
    """
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number; got {temperature}")
    if isinstance(logits, torch.Tensor):
        return torch.softmax(logits / temperature, dim=-1)
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)
