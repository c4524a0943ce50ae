"""Workflows built from training, evaluation and explanations: `agfnet evaluate`,
`robustness`, `analyze` and `demo` (the layer above `engine`, `evaluation`, `explain`
and `inference`; see docs/architecture.md). Names are imported lazily (PEP 562)."""

from __future__ import annotations

from agfnet._lazy import lazy_exports

_EXPORTS = {
    "run_analysis": "analyze",
    "run_demo": "demo",
    "evaluate_checkpoint": "evaluate",
    "run_robustness": "robustness",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
