"""A loaded model under every robustness condition: one prediction pass per condition,
its metrics, agreement with the clean pass, and mCE-style summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from agfnet.constants import MODALITIES
from agfnet.errors import UserError
from agfnet.evaluation.corruptions import CORRUPTIONS, FAMILIES, MAX_SEVERITY
from agfnet.evaluation.robustness.conditions import (
    METRIC_KEYS,
    NOT_EVALUATED,
    NOT_SUPPORTED,
    OK,
    TARGETS,
    Condition,
    CorruptedPairs,
    build_conditions,
)
from agfnet.progress import StepBar


def _positions_for(condition: Condition, manifest: Any, positions: Sequence[int]) -> list[int]:
    """Rows a condition can be evaluated on: all, except that removing a modality needs
    the other one present."""
    if condition.dropped is None:
        return list(positions)
    other = 1 - MODALITIES.index(condition.dropped)
    return [i for i in positions if manifest.rows[i].present[other]]


def _record(
    condition: Condition,
    status: str,
    *,
    reason: str | None = None,
    scores: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    record = {
        "condition": condition.name,
        "target": condition.target,
        "family": condition.family,
        "corruption": condition.label,
        "severity": condition.severity if condition.family in FAMILIES else None,
        "parameters": {
            m: CORRUPTIONS[c].params(condition.severity) for m, c in condition.corruptions.items()
        },
        "status": status,
        "reason": reason,
        "n": 0,
        **dict.fromkeys(METRIC_KEYS),
        "accuracy_drop": None,
        "relative_accuracy_drop": None,
        "agreement_with_clean": None,
    }
    record.update(scores or {})
    return record


def _scores(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    clean_prediction: np.ndarray | None,
) -> dict[str, Any]:
    """Metrics of one condition and, given the clean predictions of the same rows
    (None for the clean pass itself), its drop from clean and its agreement with it."""
    from agfnet.evaluation.metrics import compute_metrics

    metrics = compute_metrics(labels, probs, classes)
    scores = {"n": metrics["n"], **{k: metrics[k] for k in METRIC_KEYS}}
    if clean_prediction is not None:
        prediction = probs.argmax(1)
        # In float64 from the predictions, so that an unchanged accuracy drops by exactly 0.
        clean_accuracy = float(np.mean(clean_prediction == labels))
        drop = clean_accuracy - float(np.mean(prediction == labels))
        scores["accuracy_drop"] = drop
        scores["relative_accuracy_drop"] = drop / clean_accuracy if clean_accuracy else None
        scores["agreement_with_clean"] = float(np.mean(prediction == clean_prediction))
    return scores


def _run_condition(
    model: torch.nn.Module,
    info: Any,
    manifest: Any,
    positions: Sequence[int],
    condition: Condition,
    clean_prediction: np.ndarray | None,
    *,
    transform: Any,
    seed: int,
    batch_size: int,
    device: torch.device,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """One pass. Returns its record and its predicted classes over the rows it ran on
    (None when it was not run); `clean_prediction` (N,) is that of the clean pass over
    `positions` (None for the clean pass itself)."""
    from agfnet.evaluation.calibration import apply_temperature
    from agfnet.runtime.batch import predict

    chosen = _positions_for(condition, manifest, positions)
    if condition.dropped and not model.supports_missing:
        reason = (
            f"model {info.build_spec['name']} was built without modality dropout and cannot "
            "replace a missing image; train it with model.overrides.modality_dropout > 0 "
            "to measure this"
        )
        return _record(condition, NOT_SUPPORTED, reason=reason), None
    if len({manifest.rows[i].target for i in chosen}) < 2:
        reason = f"{len(chosen)} rows have the other image, with fewer than two classes"
        return _record(condition, NOT_EVALUATED, reason=reason), None
    dataset = CorruptedPairs(manifest, chosen, transform, condition, seed)
    try:
        preds = predict(model, dataset, batch_size=batch_size, device=device)
    except UserError as err:
        if not condition.dropped:
            raise
        # The model refuses the input: a single-modality model losing its only one.
        return _record(condition, NOT_SUPPORTED, reason=str(err)), None
    probs = apply_temperature(preds.logits, info.temperature)
    reference = None
    if clean_prediction is not None:
        reference = clean_prediction[np.isin(positions, chosen)]
    scores = _scores(preds.labels, probs, info.classes, reference)
    return _record(condition, OK, scores=scores), probs.argmax(1)


def summarize(records: Sequence[Mapping[str, Any]], clean_accuracy: float) -> dict[str, Any]:
    """mCE-style figures per target over the corruption conditions evaluated.

    Per family f, CE_f is the mean error over severities and the relative CE_f the mean
    increase in error over clean, as in Hendrycks and Dietterich (ICLR 2019) but not
    normalised by a baseline model (divide two models' figures to get that).

    Args:
        records: the condition records (as in robustness.json).
        clean_accuracy: accuracy of the clean pass.

    Returns:
        {target or "all": {mean_corruption_accuracy, mean_corruption_error,
        relative_mean_corruption_error, mean_relative_accuracy_drop, mean_ece,
        corruption_error {family: CE_f}, relative_corruption_error {family: ...},
        worst {condition, accuracy}, n_conditions}}.
    """
    summary: dict[str, Any] = {}
    for target in (*TARGETS, "all"):
        chosen = [
            r
            for r in records
            if r["family"] in FAMILIES and r["status"] == OK and target in (r["target"], "all")
        ]
        if not chosen:
            continue
        error = {
            f: [1.0 - r["accuracy"] for r in chosen if r["family"] == f]
            for f in FAMILIES
            if any(r["family"] == f for r in chosen)
        }
        ce = {f: float(np.mean(e)) for f, e in error.items()}
        rce = {f: v - (1.0 - clean_accuracy) for f, v in ce.items()}
        relative = [r["relative_accuracy_drop"] for r in chosen]
        worst = min(chosen, key=lambda r: r["accuracy"])
        summary[target] = {
            "mean_corruption_accuracy": float(np.mean([r["accuracy"] for r in chosen])),
            "mean_corruption_error": float(np.mean(list(ce.values()))),
            "relative_mean_corruption_error": float(np.mean(list(rce.values()))),
            "mean_relative_accuracy_drop": (
                float(np.mean(relative)) if None not in relative else None
            ),
            "mean_ece": float(np.mean([r["ece"] for r in chosen])),
            "corruption_error": ce,
            "relative_corruption_error": rce,
            "worst": {"condition": worst["condition"], "accuracy": worst["accuracy"]},
            "n_conditions": len(chosen),
        }
    return summary


def evaluate_robustness(
    model: torch.nn.Module,
    info: Any,
    manifest: Any,
    positions: Sequence[int],
    *,
    severities: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run a loaded model on some manifest rows under every condition.

    A missing-modality condition is "not supported" when the model was built without
    modality dropout (it has no absent embedding to stand in), or when the model refuses
    it (a single-modality model losing its only input); it is evaluated on the rows whose
    other image is present.

    Args:
        model: the network from `load_model`.
        info: its `CheckpointInfo` (classes, transform, temperature, build_spec).
        manifest: a labeled manifest validated against `info.classes`.
        positions: the rows (positions in `manifest.rows`).
        severities: severities to run, in 1..MAX_SEVERITY.
        seed: seed of the corruptions (each row and modality gets its own stream).
        batch_size: inference batch size.
        device: where to run; None picks a GPU when present.
        progress: show a progress bar (one step per condition).

    Returns:
        The content of robustness.json: settings, `clean` (metrics), `conditions` (one
        record per condition, clean first), `summary` (see `summarize`), `families`,
        `corruptions` (their parameters per severity).

    Raises:
        UserError: fewer than two classes among the rows' labels.
    """
    from agfnet.data import TransformConfig, build_transforms
    from agfnet.runtime.device import resolve_device

    labels_all = np.array([manifest.rows[i].target for i in positions])
    if np.unique(labels_all[labels_all >= 0]).size < 2:
        raise UserError(
            f"{manifest.path}: the {len(positions)} rows evaluated hold fewer than two classes; "
            "robustness metrics need labels of at least two classes (use --split all or "
            "another manifest)"
        )
    conditions = build_conditions(severities)
    common = {
        "transform": build_transforms(TransformConfig(**info.transform), train=False),
        "seed": seed,
        "batch_size": batch_size,
        "device": resolve_device(device),
    }
    records: list[dict[str, Any]] = []
    clean_prediction = None
    bar = StepBar("robustness", len(conditions), enabled=progress).start()
    try:
        for condition in conditions:
            bar.describe(f"robustness: {condition.name}")
            record, prediction = _run_condition(
                model, info, manifest, positions, condition, clean_prediction, **common
            )
            if condition.family == "clean":
                clean_prediction = prediction
            records.append(record)
            bar.advance()
    finally:
        bar.stop()
    clean = {k: records[0][k] for k in ("n", *METRIC_KEYS)}
    return {
        "checkpoint": info.path,
        "model": info.build_spec["name"],
        "classes": list(info.classes),
        "temperature": info.temperature,
        "seed": seed,
        "severities": list(severities),
        "n": len(positions),
        "supports_missing": bool(model.supports_missing),
        "clean": clean,
        "conditions": records,
        "summary": summarize(records, clean["accuracy"]),
        "families": {f: dict(pair) for f, pair in FAMILIES.items()},
        "corruptions": {
            c.name: {
                "modality": c.modality,
                "description": c.description,
                "parameters": {str(s): c.params(s) for s in range(1, MAX_SEVERITY + 1)},
            }
            for c in CORRUPTIONS.values()
        },
    }
