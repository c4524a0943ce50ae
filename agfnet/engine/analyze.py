"""Deprecated alias: `agfnet.engine.analyze` moved to `agfnet.workflows.analyze`."""

from __future__ import annotations

from agfnet._lazy import moved_names

__getattr__ = moved_names(
    __name__, dict.fromkeys(("analyze_fold", "run_analysis"), "agfnet.workflows.analyze")
)
