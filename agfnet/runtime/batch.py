"""Batch prediction: the one place a trained network is run over preprocessed pairs.

`forward_batch` runs one batch (logits and the modalities each prediction used);
`predict` runs a whole dataset through it, with several stochastic passes per batch
(`agfnet.runtime.stochastic`: MC dropout, test-time augmentation) when asked. Evaluation,
calibration, robustness, explanations, the `Predictor` and the web app all predict here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

__all__ = ["Predictions", "forward_batch", "predict"]


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
    task_logits: dict[str, np.ndarray] = field(default_factory=dict)
    task_targets: np.ndarray | None = None


def batch_metadata(batch: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    """The metadata inputs of a collated batch (`forward_output(metadata=...)`), or None
    when the dataset encodes no metadata."""
    if "meta_cat" not in batch or batch["meta_cat"].shape[-1] + batch["meta_num"].shape[-1] == 0:
        return None
    return {
        "cat": batch["meta_cat"],
        "num": batch["meta_num"],
        "num_present": batch["meta_num_present"],
    }


def _to(metadata: Mapping[str, torch.Tensor] | None, device: Any) -> dict | None:
    return None if metadata is None else {k: v.to(device) for k, v in metadata.items()}


@torch.no_grad()
def forward_batch(
    model: torch.nn.Module,
    clinical: torch.Tensor,
    ultrasound: torch.Tensor,
    present: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
    metadata: Mapping[str, torch.Tensor] | None = None,
    *,
    with_tasks: bool = False,
) -> tuple[np.ndarray, ...]:
    """Run a network (in its current mode) on one preprocessed batch.

    Args:
        model: an `agfnet.models` network; its `forward_output` is used, so pairs with a
            missing modality go through the model's own handling.
        clinical: float32 (B, 3, S, S), preprocessed; zeros where missing.
        ultrasound: float32 (B, 3, S, S), likewise.
        present: bool (B, 2), [clinical, ultrasound] given; None for both.
        device: where the model is.
        metadata: the metadata inputs ({"cat", "num", "num_present"}, see
            `batch_metadata`) of a model built with metadata; None: none or all missing.
        with_tasks: also return the task heads' logits.

    Returns:
        logits float64 (B, K) (no temperature), and used bool (B, 2): which modalities
        each prediction used; with `with_tasks`, a third item: task -> float64 (B, k).
    """
    if present is not None:
        present = present.to(device)
    extra = {} if metadata is None else {"metadata": _to(metadata, device)}
    out = model.forward_output(clinical.to(device), ultrasound.to(device), present=present, **extra)
    result = (out.logits.double().cpu().numpy(), out.modalities.cpu().numpy())
    if not with_tasks:
        return result
    tasks = getattr(out, "task_logits", None) or {}
    return (*result, {k: v.double().cpu().numpy() for k, v in tasks.items()})


def _logits(
    model: torch.nn.Module,
    clinical: torch.Tensor,
    ultrasound: torch.Tensor,
    *,
    present: torch.Tensor,
    device: str | torch.device,
    metadata: Mapping[str, torch.Tensor] | None = None,
) -> np.ndarray:
    return forward_batch(model, clinical, ultrasound, present, device, metadata)[0]


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
        model: an `agfnet.models` network (put in eval mode on `device`).
        dataset: yields the dicts of the data contract.
        batch_size: samples per forward pass.
        device: where to run.
        num_workers: loader workers.
        progress: show a progress bar.
        sampling: an `agfnet.runtime.stochastic.Sampling` (MC dropout or test-time
            augmentation) for several passes per batch; None for one.

    Returns:
        `Predictions` with logits (N, K) (and pass_logits (T, N, K) with `sampling`).
    """
    from agfnet.runtime.stochastic import sample_logits

    model = model.to(device).eval()
    # Task heads run in one deterministic pass (also under --mc / --tta).
    has_tasks = bool(getattr(model, "tasks", None))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    logits, labels, rows, lesion_ids = [], [], [], []
    if progress:
        from rich.progress import track

        loader = track(loader, description="predicting", total=len(loader))
    tasks: dict[str, list[np.ndarray]] = {}
    task_targets = []
    for batch in loader:
        metadata = batch_metadata(batch)
        run = partial(_logits, model, present=batch["present"], device=device, metadata=metadata)
        clinical, ultrasound = batch["clinical"], batch["ultrasound"]
        plain = None
        if sampling is None or has_tasks:
            plain = forward_batch(
                model, clinical, ultrasound, batch["present"], device, metadata, with_tasks=True
            )
            for name, value in plain[2].items():
                tasks.setdefault(name, []).append(value)
        if sampling is None:
            logits.append(plain[0][None])
        else:
            logits.append(sample_logits(run, clinical, ultrasound, sampling, model))
        labels.append(batch["label"])
        if "task_targets" in batch:
            task_targets.append(batch["task_targets"])
        rows += [int(r) for r in batch["row"]]
        lesion_ids += [str(s) for s in batch["lesion_id"]]
    stack = np.concatenate(logits, axis=1)
    return Predictions(
        logits=stack.mean(axis=0),
        labels=torch.cat(labels).long().numpy(),
        rows=rows,
        lesion_ids=lesion_ids,
        pass_logits=stack if sampling is not None else None,
        task_logits={k: np.concatenate(v) for k, v in tasks.items()},
        task_targets=torch.cat(task_targets).long().numpy() if task_targets else None,
    )
