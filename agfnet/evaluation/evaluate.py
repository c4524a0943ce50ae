"""Evaluating a loaded model on manifest rows: predictions, calibrated metrics and the
evaluation folder (metrics.json, report.md, predictions.csv, plots)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agfnet.constants import HEADLINE_METRICS

__all__ = ["evaluate_model"]


def evaluate_model(
    model: torch.nn.Module,
    info: Any,
    manifest: Any,
    positions: Sequence[int],
    out: str | Path,
    *,
    title: str = "Evaluation",
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
    sampling: Any = None,
) -> dict[str, Any]:
    """Evaluate a loaded model on some manifest rows and write the evaluation folder.

    The checkpoint's temperature is applied to the reported probabilities; the metrics
    of the raw model (temperature 1) are kept under `uncalibrated`. With `sampling`
    (MC dropout or test-time augmentation), the probabilities are the mean over the
    passes of softmax(logits / T); metrics.json gains `sampling` (method, passes, seed,
    mean mutual information and spread, also split by correct and wrong predictions) and
    predictions.csv the columns mutual_information and std_prediction.

    Args:
        model: the network from `load_model`.
        info: its `CheckpointInfo`.
        manifest: a manifest validated against `info.classes`.
        positions: which rows (positions in `manifest.rows`).
        out: the evaluation folder (metrics.json, report.md, predictions.csv, plots).
        title: heading of report.md.
        batch_size: inference batch size.
        device: where to run; None picks a GPU when present.
        progress: show a progress bar.
        sampling: an `agfnet.runtime.stochastic.Sampling`, or None for one pass.

    Returns:
        The metrics dict written to metrics.json.
    """
    from agfnet.data import PairedLesionDataset, TransformConfig, build_transforms
    from agfnet.evaluation.calibration import apply_temperature
    from agfnet.evaluation.metrics import compute_metrics
    from agfnet.evaluation.report import write_evaluation
    from agfnet.runtime.batch import predict
    from agfnet.runtime.device import resolve_device

    transform = build_transforms(TransformConfig(**info.transform), train=False)
    dataset = PairedLesionDataset(
        manifest,
        indices=list(positions),
        transform=transform,
        metadata_spec=info.metadata_spec(),
    )
    preds = predict(
        model,
        dataset,
        batch_size=batch_size,
        device=resolve_device(device),
        progress=progress,
        sampling=sampling,
    )

    def probabilities(temperature: float) -> np.ndarray:
        if preds.pass_logits is None:
            return apply_temperature(preds.logits, temperature)
        return apply_temperature(preds.pass_logits, temperature).mean(axis=0)

    extra: dict[str, Any] = {"temperature": info.temperature, "checkpoint": info.path}
    probs = probabilities(info.temperature)
    columns: dict[str, np.ndarray] = {}
    if preds.pass_logits is not None:
        extra["sampling"], columns = _spread(
            apply_temperature(preds.pass_logits, info.temperature), preds.labels, sampling
        )
    if len(set(preds.labels.tolist()) - {-1}) >= 2:  # else write_evaluation notes why not
        labeled = preds.labels >= 0
        raw = compute_metrics(preds.labels[labeled], probabilities(1.0)[labeled], info.classes)
        extra["uncalibrated"] = {k: raw[k] for k in HEADLINE_METRICS}
    return write_evaluation(
        Path(out),
        rows=preds.rows,
        labels=preds.labels,
        probs=probs,
        classes=info.classes,
        lesion_ids=preds.lesion_ids,
        title=title,
        extra=extra,
        columns=columns,
        **_task_outputs(preds, manifest, positions, info, probs),
    )


def _task_outputs(
    preds: Any, manifest: Any, positions: Sequence[int], info: Any, probs: np.ndarray
) -> dict[str, Any]:
    """`write_evaluation`'s `tasks` and `checklist` for a model with task heads whose
    columns the manifest has ({} otherwise)."""
    from agfnet.evaluation.calibration import apply_temperature
    from agfnet.evaluation.checklist import checklist_report, has_checklist, predicted_classes

    read = list(getattr(manifest, "tasks", []) or [])
    if not preds.task_logits or not read or preds.task_targets is None:
        return {}
    task_classes = {t: info.tasks[t] for t in read}
    task_probs = {t: apply_temperature(preds.task_logits[t], 1.0) for t in read}
    tasks = {
        t: (preds.task_targets[:, i], task_probs[t], task_classes[t]) for i, t in enumerate(read)
    }
    if not has_checklist(task_classes):
        return {"tasks": tasks}
    release = [manifest.rows[i].extra.get("seven_point_score") for i in positions]
    checklist = checklist_report(
        predicted_classes(task_probs, task_classes),
        probs.argmax(axis=1),
        preds.labels,
        info.classes,
        release_score=release if any(release) else None,
    )
    return {"tasks": tasks, "checklist": checklist}


def _spread(
    pass_probs: np.ndarray, labels: np.ndarray, sampling: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """metrics.json's `sampling` block and predictions.csv's spread columns.

    Args:
        pass_probs: float (T, N, K) calibrated probabilities of every pass.
        labels: (N,) class indices, -1 where unlabeled.
        sampling: the `Sampling` that made the passes.

    Returns:
        ({method, passes, seed, mean_mutual_information, mean_std_prediction, and per
        correct/wrong labeled rows mean_mutual_information_correct/_wrong}, {column: (N,)}).
    """
    from agfnet.evaluation.uncertainty import summarize_passes

    summary = summarize_passes(pass_probs)
    predicted = summary.mean.argmax(axis=1)
    std_prediction = summary.std[np.arange(len(predicted)), predicted]
    mi = summary.mutual_information
    block: dict[str, Any] = {
        **sampling.to_dict(),
        "mean_mutual_information": float(mi.mean()),
        "mean_std_prediction": float(std_prediction.mean()),
    }
    labeled = labels >= 0
    correct = labeled & (predicted == labels)
    wrong = labeled & (predicted != labels)
    for name, mask in (("correct", correct), ("wrong", wrong)):
        block[f"mean_mutual_information_{name}"] = float(mi[mask].mean()) if mask.any() else None
    return block, {"mutual_information": mi, "std_prediction": std_prediction}
