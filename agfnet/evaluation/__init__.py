"""Evaluation: metrics, calibration, selective prediction, uncertainty, checklist, reports, tables.

The public names are loaded from their submodules on first use (PEP 562), so importing
the package alone does not load torch and torchmetrics.
"""

from __future__ import annotations

from agfnet._lazy import lazy_exports

_EXPORTS = {
    "compute_metrics": "metrics",
    "validate_predictions": "metrics",
    "compute_task_metrics": "metrics",
    "mean_task_accuracy": "metrics",
    "seven_point_score": "checklist",
    "checklist_report": "checklist",
    "fit_temperature": "calibration",
    "apply_temperature": "calibration",
    "expected_calibration_error": "calibration",
    "reliability_bins": "calibration",
    "risk_coverage_curve": "selective",
    "aurc": "selective",
    "accuracy_at_coverage": "selective",
    "predictive_entropy": "uncertainty",
    "summarize_passes": "uncertainty",
    "write_evaluation": "report",
    "summarize_folds": "tables",
    "comparison_table": "tables",
    "write_comparison": "tables",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
