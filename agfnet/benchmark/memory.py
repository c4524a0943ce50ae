"""Memory scaling: peak memory of a forward at 1x and 2x input side.

Peak memory is the largest amount of memory held by tensors allocated during the
forward, above what was held before it (the weights and the input batch are therefore
not counted). On a GPU it is `torch.cuda.max_memory_allocated` minus the allocation at
the start. On CPU it is rebuilt from torch.profiler's memory events
(`profile_memory=True`): every allocation and release of the CPU allocator, in time
order, summed as a running total whose maximum is the peak. This counts exactly what
the tensors hold, unlike the process RSS, which the allocator's caching and the Python
heap blur.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from agfnet.benchmark.common import (
    BARE,
    Plan,
    Reporter,
    autocast,
    build_model,
    infer,
    make_inputs,
    make_plan,
    resolve_device,
    synchronize,
    without_kineto_lines,
)

__all__ = ["measure_memory_scaling", "peak_bytes"]

#: Input sides measured, as multiples of the preset's.
SCALES = (1, 2)


def peak_bytes(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak memory of the tensors allocated while `fn()` runs, above the memory held before.

    Args:
        fn: the work to measure; what it returns stays alive until the peak is read.
        device: where it runs (the GPU allocator's statistics, or CPU profiler events).

    Returns:
        Bytes.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        result = fn()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - start
        del result
        return int(peak)
    from torch.profiler import ProfilerActivity, profile

    with (
        without_kineto_lines(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
        result = fn()
    del result
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    total = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        total += event.nbytes()  # negative for a release
        peak = max(peak, total)
    return int(peak)


def _train_forward(model: nn.Module, clinical: torch.Tensor, ultrasound: torch.Tensor) -> Any:
    # Training mode with autograd: everything kept for the backward pass is held at once.
    model.train()
    with autocast(clinical.device):
        return model.forward_output(clinical, ultrasound)


def _eval_forward(model: nn.Module, clinical: torch.Tensor, ultrasound: torch.Tensor) -> Any:
    model.eval()
    return infer(model, clinical, ultrasound)


def measure_memory_scaling(
    device: str | torch.device,
    quick: bool,
    *,
    plan: Plan | None = None,
    report: Reporter | None = None,
) -> dict[str, Any]:
    """Peak memory of `agfnet` and the bare backbones at the preset's side and twice it.

    Two forwards per model and side: a training-mode forward with autograd (everything
    the backward pass needs is held: the headline) and an eval forward under
    inference_mode (only the live intermediates). Memory linear in image area gives a
    2x/1x ratio near 4; attention quadratic in the token count would approach 16.

    Args:
        device: "cpu" or "cuda".
        quick: tiny models (when `plan` is not given).
        plan: sizes; default `make_plan(quick, device)`.
        report: progress callback.

    Returns:
        dict(batch, img_sizes, method, peak_mb: family -> mode -> {side: MB},
        ratio_2x: family -> mode -> peak(2x) / peak(1x)).
    """
    device = resolve_device(device)
    plan = plan or make_plan(quick, device)
    sides = [plan.img_size * s for s in SCALES]
    forwards = {"train": _train_forward, "eval": _eval_forward}
    peaks: dict[str, dict[str, dict[str, float]]] = {}
    ratios: dict[str, dict[str, float]] = {}
    for family in ("agfnet", BARE):
        model = build_model(family, plan, device)
        peaks[family] = {mode: {} for mode in forwards}
        for side in sides:
            clinical, ultrasound, _ = make_inputs(plan.memory_batch, side, device)
            for mode, forward in forwards.items():
                if report:
                    report(f"{plan.model_name(family)} {mode} forward at {side} px")
                nbytes = peak_bytes(partial(forward, model, clinical, ultrasound), device)
                peaks[family][mode][str(side)] = nbytes / 2**20
        ratios[family] = {
            mode: by_side[str(sides[1])] / by_side[str(sides[0])]
            for mode, by_side in peaks[family].items()
        }
    return {
        "models": {f: plan.model_name(f) for f in peaks},
        "batch": plan.memory_batch,
        "img_sizes": sides,
        "method": (
            "torch.cuda.max_memory_allocated above the allocation at the start"
            if device.type == "cuda"
            else "running total of torch.profiler memory events (profile_memory=True)"
        ),
        "peak_mb": peaks,
        "ratio_2x": ratios,
    }
