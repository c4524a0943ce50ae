"""Training throughput of the CPU presets: pairs per second of one optimiser step of
`agfnet_lite` (the fine-tuning preset, EfficientNet-Lite0 encoders at 160 px, batch 16)
and of `agfnet_tiny` (96 px, batch 16), as `agfnet train` takes it."""

from __future__ import annotations

import time
from typing import Any

import torch

from agfnet.benchmark.common import (
    NUM_CLASSES,
    Plan,
    Reporter,
    make_inputs,
    make_plan,
    make_train_step,
    spread,
    synchronize,
    to_device,
)

#: (registry name, image side, batch) of each preset measured; --quick shrinks both.
PRESETS = {"lite": ("agfnet_lite", 160, 16), "tiny": ("agfnet_tiny", 96, 16)}


def measure_training(
    device: torch.device,
    quick: bool = False,
    *,
    plan: Plan | None = None,
    report: Reporter | None = None,
) -> dict[str, Any]:
    """Seconds per training step and pairs/s of each preset (random init: the weights do
    not change the cost; nothing is read from disk).

    Args:
        device: where to run.
        quick: 64 px, batch 4, two timed steps (a smoke run).
        plan: gives the warm-up and repeat counts.
        report: progress callback.

    Returns:
        {preset: {model, img_size, batch, seconds: spread, pairs_per_s: spread}}.
    """
    from agfnet.models import create_model

    plan = plan or make_plan(quick, device)
    out: dict[str, Any] = {}
    for preset, (name, img_size, batch) in PRESETS.items():
        if quick:
            img_size, batch = 64, 4
        if report:
            report(f"training step of {name} at {img_size} px, batch {batch}")
        model = create_model(name, num_classes=NUM_CLASSES, seed=0, pretrained=False)
        model = to_device(model, device).train()
        step = make_train_step(model, device)
        inputs = make_inputs(batch, img_size, device)
        seconds = []
        for i in range(plan.warmup + plan.repeats):
            synchronize(device)
            start = time.perf_counter()
            step(*inputs)
            synchronize(device)
            if i >= plan.warmup:
                seconds.append(time.perf_counter() - start)
        out[preset] = {
            "model": name,
            "img_size": img_size,
            "batch": batch,
            "seconds": spread(seconds),
            "pairs_per_s": spread([batch / s for s in seconds]),
        }
    return out
