"""Names shared by every layer: modalities and metric lists (standard library only).

Defined once here so that the data layer, the models, the evaluation reports, the CLI
and the web app agree on them; importing this module costs nothing (no torch).
"""

from __future__ import annotations

__all__ = [
    "HEADLINE_METRICS",
    "LOWER_IS_BETTER",
    "MODALITIES",
    "ROBUSTNESS_METRICS",
    "TABLE_METRICS",
    "higher_is_better",
]

#: The two image slots of a pair, in the order every tensor and flag follows.
MODALITIES: tuple[str, str] = ("clinical", "ultrasound")

#: Columns of the cross-validation and comparison tables.
TABLE_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "macro_auc",
    "kappa",
    "ece",
    "nll",
    "brier",
    "aurc",
)

#: Metrics repeated under `uncalibrated` in metrics.json (temperature 1, the raw model).
HEADLINE_METRICS: tuple[str, ...] = (*TABLE_METRICS, "accuracy_at_90_coverage")
HEADLINE_KEYS = HEADLINE_METRICS  # its name in agfnet <= 0.1 (agfnet.engine.evaluate)

#: What each robustness condition reports, from `compute_metrics`.
ROBUSTNESS_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "ece",
    "nll",
    "brier",
    "mean_confidence",
    "mean_entropy",
)

#: Every metric or measure that is better when lower; all others are better when higher.
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {
        "ece",
        "ece_before_temperature",
        "nll",
        "brier",
        "aurc",
        "mean_entropy",
        "mean_entropy_correct",
    }
)


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` is better (False for losses and errors)."""
    return metric not in LOWER_IS_BETTER
