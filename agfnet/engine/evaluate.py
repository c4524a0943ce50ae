"""Inference over a manifest and the evaluation of a checkpoint (`agfnet evaluate`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from agfnet.errors import UserError

# Metrics repeated under `uncalibrated` in metrics.json (temperature 1, the raw model).
HEADLINE_KEYS = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "macro_auc",
    "kappa",
    "ece",
    "nll",
    "brier",
    "aurc",
    "accuracy_at_90_coverage",
)


@dataclass(frozen=True)
class Predictions:
    """Model outputs over a dataset, in dataset order.

    Args:
        logits: float64 (N, K) raw logits (no temperature).
        labels: int64 (N,) class indices (-1 where a row has no label).
        rows: the 1-based manifest row numbers.
        lesion_ids: the manifest `lesion_id` of each row ("" when absent).
    """

    logits: np.ndarray
    labels: np.ndarray
    rows: list[int]
    lesion_ids: list[str]


def resolve_device(device: str | None = None) -> torch.device:
    """`device`, or the first GPU when there is one, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: Any,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = False,
) -> Predictions:
    """Run a network over every sample of a `PairedLesionDataset`.

    Args:
        model: an `agfnet.models` network (its `forward_output` is used, so pairs with a
            missing modality go through the model's own handling).
        dataset: yields the dicts of the data contract.
        batch_size: samples per forward pass.
        device: where to run.
        num_workers: loader workers.
        progress: show a progress bar.

    Returns:
        `Predictions` with logits (N, K).
    """
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    logits, labels, rows, lesion_ids = [], [], [], []
    if progress:
        from rich.progress import track

        loader = track(loader, description="predicting", total=len(loader))
    for batch in loader:
        out = model.forward_output(
            batch["clinical"].to(device),
            batch["ultrasound"].to(device),
            present=batch["present"].to(device),
        )
        logits.append(out.logits.float().cpu())
        labels.append(batch["label"])
        rows += [int(r) for r in batch["row"]]
        lesion_ids += [str(s) for s in batch["lesion_id"]]
    return Predictions(
        logits=torch.cat(logits).double().numpy(),
        labels=torch.cat(labels).long().numpy(),
        rows=rows,
        lesion_ids=lesion_ids,
    )


def split_positions(manifest: Any, split: str | None) -> list[int]:
    """Positions of the rows of `split` (`train`, `val`, `test`); all rows if None or no column.

    Args:
        manifest: a validated `agfnet.data.Manifest`.
        split: wanted value of the `split` column.

    Returns:
        Positions in `manifest.rows`.
    """
    everything = list(range(len(manifest.rows)))
    if split is None or not manifest.has_split:
        return everything
    chosen = [i for i, r in enumerate(manifest.rows) if r.split == split]
    if not chosen:
        found = sorted({r.split for r in manifest.rows if r.split})
        raise UserError(
            f"the manifest has no row with split '{split}' (its splits: {', '.join(found)}); "
            "pass --split with one of them"
        )
    return chosen


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
) -> dict[str, Any]:
    """Evaluate a loaded model on some manifest rows and write the evaluation folder.

    The checkpoint's temperature is applied to the reported probabilities; the metrics
    of the raw model (temperature 1) are kept under `uncalibrated`.

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

    Returns:
        The metrics dict written to metrics.json.
    """
    from agfnet.data import PairedLesionDataset, TransformConfig, build_transforms
    from agfnet.evaluation.calibration import apply_temperature
    from agfnet.evaluation.metrics import compute_metrics
    from agfnet.evaluation.report import write_evaluation

    transform = build_transforms(TransformConfig(**info.transform), train=False)
    dataset = PairedLesionDataset(manifest, indices=list(positions), transform=transform)
    preds = predict(
        model, dataset, batch_size=batch_size, device=resolve_device(device), progress=progress
    )
    extra: dict[str, Any] = {"temperature": info.temperature, "checkpoint": info.path}
    if len(set(preds.labels.tolist()) - {-1}) >= 2:  # else write_evaluation notes why not
        labeled = preds.labels >= 0
        raw = compute_metrics(
            preds.labels[labeled], apply_temperature(preds.logits[labeled], 1.0), info.classes
        )
        extra["uncalibrated"] = {k: raw[k] for k in HEADLINE_KEYS}
    return write_evaluation(
        Path(out),
        rows=preds.rows,
        labels=preds.labels,
        probs=apply_temperature(preds.logits, info.temperature),
        classes=info.classes,
        lesion_ids=preds.lesion_ids,
        title=title,
        extra=extra,
    )


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str | None = "test",
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a trained checkpoint on a manifest (the `agfnet evaluate` command).

    Args:
        checkpoint: a best.ckpt / last.ckpt of `agfnet train`.
        data: manifest CSV; labels must be classes of the checkpoint.
        out: evaluation folder to write.
        split: rows of this `split` value when the manifest has the column; None or a
            manifest without the column evaluates every row.
        batch_size: inference batch size.
        device: where to run; None picks a GPU when present.
        progress: show a progress bar.

    Returns:
        The metrics dict written to OUT/metrics.json.
    """
    from agfnet.data import read_manifest
    from agfnet.engine.checkpoint import load_model
    from agfnet.engine.train import check_modalities

    model, info = load_model(checkpoint)
    manifest = read_manifest(
        data, classes=info.classes, require_labels=True, allow_missing_modality=True
    )
    positions = split_positions(manifest, split)
    check_modalities(manifest, positions, model)
    title = (
        f"Evaluation of {Path(checkpoint).name} ({info.build_spec['name']}) on {Path(data).name}"
    )
    if split and manifest.has_split:
        title += f", split {split}"
    return evaluate_model(
        model,
        info,
        manifest,
        positions,
        out,
        title=title,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
