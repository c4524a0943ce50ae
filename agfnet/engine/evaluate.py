"""Inference over a manifest and the evaluation of a checkpoint (`agfnet evaluate`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
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
        pass_logits: float64 (T, N, K) raw logits of each stochastic pass (`--mc` /
            `--tta`), None for one pass; `logits` is then their mean.
    """

    logits: np.ndarray
    labels: np.ndarray
    rows: list[int]
    lesion_ids: list[str]
    pass_logits: np.ndarray | None = None


def resolve_device(device: str | None = None) -> torch.device:
    """`device`, or the first GPU when there is one, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _forward_logits(
    model: torch.nn.Module,
    device: str | torch.device,
    present: torch.Tensor,
    clinical: torch.Tensor,
    ultrasound: torch.Tensor,
) -> np.ndarray:
    out = model.forward_output(clinical.to(device), ultrasound.to(device), present=present)
    return out.logits.double().cpu().numpy()


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: Any,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = False,
    sampling: Any = None,
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
        sampling: an `agfnet.inference.stochastic.Sampling` (MC dropout or test-time
            augmentation) for several passes per batch; None for one.

    Returns:
        `Predictions` with logits (N, K) (and pass_logits (T, N, K) with `sampling`).
    """
    from agfnet.inference.stochastic import sample_logits

    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    logits, labels, rows, lesion_ids = [], [], [], []
    if progress:
        from rich.progress import track

        loader = track(loader, description="predicting", total=len(loader))
    for batch in loader:
        run = partial(_forward_logits, model, device, batch["present"].to(device))
        clinical, ultrasound = batch["clinical"], batch["ultrasound"]
        if sampling is None:
            logits.append(run(clinical, ultrasound)[None])
        else:
            logits.append(sample_logits(run, clinical, ultrasound, sampling, model))
        labels.append(batch["label"])
        rows += [int(r) for r in batch["row"]]
        lesion_ids += [str(s) for s in batch["lesion_id"]]
    stack = np.concatenate(logits, axis=1)
    return Predictions(
        logits=stack.mean(axis=0),
        labels=torch.cat(labels).long().numpy(),
        rows=rows,
        lesion_ids=lesion_ids,
        pass_logits=stack if sampling is not None else None,
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
        sampling: an `agfnet.inference.stochastic.Sampling`, or None for one pass.

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
        extra["uncalibrated"] = {k: raw[k] for k in HEADLINE_KEYS}
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
    )


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


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str | None = "test",
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
    sampling: Any = None,
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
        sampling: an `agfnet.inference.stochastic.Sampling` (`--mc N` / `--tta N`), or
            None for one deterministic pass.

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
        sampling=sampling,
    )
