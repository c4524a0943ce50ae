"""`agfnet robustness`: a checkpoint under image corruptions and missing modalities.

Every condition is one pass over the same manifest rows: clean; each corruption family
(`corruptions.FAMILIES`) on the photograph, on the ultrasound image, and on both at once,
at each severity; and each modality removed. The corruptions act on the decoded images,
before the checkpoint's evaluation transform, through `CorruptedPairs`, a wrapper of
`PairedLesionDataset`. The checkpoint's temperature is applied to every probability.
"""

from __future__ import annotations

from agfnet._lazy import moved_names
from agfnet.evaluation.robustness.conditions import (
    METRIC_KEYS,
    TARGETS,
    Condition,
    CorruptedPairs,
    build_conditions,
    parse_severities,
)
from agfnet.evaluation.robustness.evaluate import evaluate_robustness, summarize
from agfnet.evaluation.robustness.report import OUTPUTS, plot_robustness, write_robustness

__all__ = [
    "METRIC_KEYS",
    "OUTPUTS",
    "TARGETS",
    "Condition",
    "CorruptedPairs",
    "build_conditions",
    "evaluate_robustness",
    "parse_severities",
    "plot_robustness",
    "summarize",
    "write_robustness",
]

# `run_robustness` (the command) moved to the workflows layer.
__getattr__ = moved_names(__name__, {"run_robustness": "agfnet.workflows.robustness"})
