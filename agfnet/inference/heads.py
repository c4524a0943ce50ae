"""Inference for the task heads and the metadata inputs: encoding the metadata a caller
gives, and turning task logits into the `Prediction` fields (criteria, checklist score)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from agfnet.errors import UserError

__all__ = ["MetadataReport", "encode_metadata", "metadata_fields", "task_fields"]

#: Per pair, (fields missing, categorical fields with a value unseen in training).
MetadataReport = tuple[list[str], list[str]]


def encode_metadata(
    spec: Any, values: Sequence[Mapping[str, Any] | None], name: str
) -> tuple[dict[str, torch.Tensor] | None, list[MetadataReport | None]]:
    """The metadata inputs of a batch, and per pair which fields were missing or unknown.

    Args:
        spec: the model's `agfnet.data.MetadataSpec`, or None for a model without metadata.
        values: per pair, field -> raw value ({field: "value"}, as a form or a manifest
            row gives it); a blank, None or left-out field is missing, a categorical
            value unseen in training unknown. None: nothing given.
        name: the model, for messages.

    Returns:
        ({"cat": int64 (B, F_cat), "num": float32 (B, F_num), "num_present": bool (B,
        F_num)}, or None for a model without metadata), and per pair (missing fields,
        unknown fields) (None without metadata).

    Raises:
        UserError: a field the model does not use, or a numeric field's value that is
            not a number.
    """
    from agfnet.data.metadata import CATEGORICAL, UNKNOWN_CODE

    given = [dict(v or {}) for v in values]
    names = [] if spec is None else spec.names
    stray = sorted({k for v in given for k in v if k not in names})
    if stray:
        uses = f"uses the metadata {', '.join(names)}" if names else "uses no metadata"
        raise UserError(f"metadata {', '.join(stray)}: {name} {uses}; give only those fields")
    if spec is None:
        return None, [None] * len(given)
    codes, reports = [], []
    for v in given:
        try:
            codes.append(spec.encode_tensors(v))
        except ValueError as err:
            raise UserError(str(err)) from None
        missing = [f.name for f in spec.fields if not str(v.get(f.name) or "").strip()]
        unknown = [
            f.name
            for f in spec.fields
            if f.kind == CATEGORICAL and f.code(v.get(f.name)) == UNKNOWN_CODE
        ]
        reports.append((missing, unknown))
    batch = {k: torch.stack([c[k] for c in codes]) for k in ("cat", "num", "num_present")}
    return batch, reports


def task_fields(
    tasks: Mapping[str, Sequence[str]],
    task_logits: Mapping[str, np.ndarray],
    n: int,
    checklist: bool,
) -> list[dict[str, Any]]:
    """Per pair, the `Prediction` fields of the task heads.

    Args:
        tasks: task -> its class names; {} for a model without task heads.
        task_logits: task -> float (B, k_t) logits.
        n: B.
        checklist: whether the tasks are the seven criteria (`has_checklist`).

    Returns:
        B dicts: {} without tasks; else "tasks" (task -> {"prediction", "probabilities"},
        softmax of the logits) and, with `checklist`, "seven_point_score" and
        "checklist_melanoma" (score >= the checklist's threshold).
    """
    if not tasks:
        return [{} for _ in range(n)]
    from agfnet.evaluation.calibration import apply_temperature
    from agfnet.evaluation.checklist import THRESHOLD, predicted_classes, seven_point_score

    probs = {name: apply_temperature(task_logits[name], 1.0) for name in tasks}
    predicted = predicted_classes(probs, tasks)
    scores = seven_point_score(predicted) if checklist else None
    out = []
    for i in range(n):
        fields: dict[str, Any] = {
            "tasks": {
                name: {
                    "prediction": predicted[name][i],
                    "probabilities": {
                        c: float(v) for c, v in zip(classes, probs[name][i], strict=True)
                    },
                }
                for name, classes in tasks.items()
            }
        }
        if scores is not None:
            fields["seven_point_score"] = int(scores[i])
            fields["checklist_melanoma"] = bool(scores[i] >= THRESHOLD)
        out.append(fields)
    return out


def metadata_fields(report: MetadataReport | None) -> dict[str, Any]:
    """The `Prediction` fields of one pair's metadata report ({} without metadata)."""
    if report is None:
        return {}
    return {"metadata_missing": list(report[0]), "metadata_unknown": list(report[1])}
