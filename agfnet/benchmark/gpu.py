"""GPU block: `agfnet` training and inference throughput with bf16 autocast and
channels_last at large batches, and their peak memory."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from agfnet.benchmark.common import (
    Plan,
    Reporter,
    build_model,
    infer,
    interleave,
    make_inputs,
    make_plan,
    make_train_step,
    prefixed,
    resolve_device,
    spread,
)

__all__ = ["measure_gpu"]


def _timed_with_peak(
    call: Any, plan: Plan, device: torch.device, report: Reporter | None
) -> tuple[list[float], float]:
    """Per-round seconds of `call` and the peak memory allocated meanwhile, in MiB
    (weights, optimiser state and activations: what has to fit on the card)."""
    torch.cuda.reset_peak_memory_stats(device)
    seconds = interleave(
        {"call": call}, repeats=plan.repeats, warmup=plan.warmup, device=device, report=report
    )["call"]
    return seconds, torch.cuda.max_memory_allocated(device) / 2**20


def measure_gpu(
    device: str | torch.device,
    quick: bool,
    *,
    plan: Plan | None = None,
    report: Reporter | None = None,
) -> dict[str, Any]:
    """Pairs/s and peak memory of `agfnet` training steps and inference on a GPU, at each
    of `plan.gpu_batches`, with bf16 autocast and channels_last (as `agfnet train` runs).

    Args:
        device: must be "cuda".
        quick: tiny models (when `plan` is not given).
        plan: sizes and repeats; default `make_plan(quick, device)`.
        report: progress callback.

    Returns:
        dict(gpu, model, img_size, autocast, channels_last, batches: batch -> {train /
        infer: {pairs_per_s: spread, peak_mb}} or {error: "out of memory"}); for a CPU
        device, dict(skipped=...).
    """
    device = resolve_device(device)
    if device.type != "cuda":
        return {"skipped": "no GPU in this run (--device cpu)"}
    plan = plan or make_plan(quick, device)
    model = build_model("agfnet", plan, device)
    step = make_train_step(model, device)
    batches: dict[str, Any] = {}
    for batch in plan.gpu_batches:
        clinical, ultrasound, labels = make_inputs(batch, plan.img_size, device)
        try:
            model.train()
            train, train_peak = _timed_with_peak(
                partial(step, clinical, ultrasound, labels),
                plan,
                device,
                prefixed(report, f"GPU training, batch {batch}"),
            )
            model.eval()
            inference, infer_peak = _timed_with_peak(
                partial(infer, model, clinical, ultrasound),
                plan,
                device,
                prefixed(report, f"GPU inference, batch {batch}"),
            )
        except torch.cuda.OutOfMemoryError:
            batches[str(batch)] = {"error": "out of memory"}
            torch.cuda.empty_cache()
            continue
        batches[str(batch)] = {
            "train": {"pairs_per_s": spread([batch / t for t in train]), "peak_mb": train_peak},
            "infer": {
                "pairs_per_s": spread([batch / t for t in inference]),
                "peak_mb": infer_peak,
            },
        }
    return {
        "gpu": torch.cuda.get_device_name(device),
        "model": plan.model_name("agfnet"),
        "img_size": plan.img_size,
        "autocast": "bfloat16",
        "channels_last": True,
        "batches": batches,
    }
