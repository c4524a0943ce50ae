"""Deprecated alias: batch prediction moved to `agfnet.runtime`, `evaluate_model` to
`agfnet.evaluation.evaluate`, `evaluate_checkpoint` to `agfnet.workflows.evaluate`."""

from __future__ import annotations

from agfnet._lazy import moved_names

__getattr__ = moved_names(
    __name__,
    {
        "HEADLINE_KEYS": "agfnet.constants",
        "Predictions": "agfnet.runtime.batch",
        "predict": "agfnet.runtime.batch",
        "resolve_device": "agfnet.runtime.device",
        "split_positions": "agfnet.runtime.selection",
        "evaluate_model": "agfnet.evaluation.evaluate",
        "evaluate_checkpoint": "agfnet.workflows.evaluate",
    },
)
