"""Deprecated alias: `agfnet.engine.demo` moved to `agfnet.workflows.demo`."""

from __future__ import annotations

from agfnet._lazy import moved_names

__getattr__ = moved_names(
    __name__, dict.fromkeys(("DEMO_MODELS", "run_demo"), "agfnet.workflows.demo")
)
