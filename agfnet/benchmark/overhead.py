"""Fusion overhead: step time of `agfnet` (and two other fusions) over the bare backbones."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from agfnet.benchmark.common import (
    BARE,
    Plan,
    Reporter,
    build_model,
    infer,
    interleave,
    make_inputs,
    make_plan,
    make_train_step,
    paired_ratio,
    prefixed,
    resolve_device,
    spread,
)

__all__ = ["FAMILIES", "measure_overhead"]

#: The models timed: AGFNet, the bare backbones, and two fusions for comparison.
FAMILIES = ("agfnet", BARE, "late_concat", "cross_attn")


def measure_overhead(
    device: str | torch.device,
    quick: bool,
    *,
    plan: Plan | None = None,
    report: Reporter | None = None,
) -> dict[str, Any]:
    """Training-step and inference time of each of `FAMILIES`, interleaved, same inputs.

    A training step is forward + `PairedClassifierLoss` + backward + AdamW step on one batch of
    `plan.train_batch` pairs; inference is an eval-mode forward under inference_mode on
    the same batch. Each model's ratio to the bare backbones is taken round by round.

    Args:
        device: "cpu" or "cuda".
        quick: tiny models (when `plan` is not given).
        plan: sizes and repeats; default `make_plan(quick, device)`.
        report: progress callback.

    Returns:
        dict(models, batch, img_size, train_seconds / infer_seconds: family -> spread of
        seconds per call, train_overhead / infer_overhead: family -> spread of the
        per-round time ratio to the bare backbones). Each spread keeps its samples,
        round by round.
    """
    device = resolve_device(device)
    plan = plan or make_plan(quick, device)
    models = {f: build_model(f, plan, device) for f in FAMILIES}
    clinical, ultrasound, labels = make_inputs(plan.train_batch, plan.img_size, device)

    steps = {f: make_train_step(m, device) for f, m in models.items()}
    train = interleave(
        {f: partial(step, clinical, ultrasound, labels) for f, step in steps.items()},
        repeats=plan.repeats,
        warmup=plan.warmup,
        device=device,
        report=prefixed(report, "train step"),
    )
    for model in models.values():
        model.eval()
    inference = interleave(
        {f: partial(infer, m, clinical, ultrasound) for f, m in models.items()},
        repeats=plan.repeats,
        warmup=plan.warmup,
        device=device,
        report=prefixed(report, "inference"),
    )
    others = [f for f in FAMILIES if f != BARE]
    return {
        "models": {f: plan.model_name(f) for f in FAMILIES},
        "bare": plan.model_name(BARE),
        "batch": plan.train_batch,
        "img_size": plan.img_size,
        "train_seconds": {f: spread(train[f]) for f in FAMILIES},
        "infer_seconds": {f: spread(inference[f]) for f in FAMILIES},
        "train_overhead": {f: paired_ratio(train[f], train[BARE]) for f in others},
        "infer_overhead": {f: paired_ratio(inference[f], inference[BARE]) for f in others},
    }
