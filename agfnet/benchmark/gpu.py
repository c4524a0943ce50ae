"""GPU block: `agfnet` training and inference throughput with bf16 autocast and
channels_last at large batches, and their peak memory; and the fusion overhead of the
compiled networks (`torch.compile`, as `trainer.compile=auto` trains on a GPU)."""

from __future__ import annotations

import time
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
    synchronize,
)

__all__ = ["measure_gpu", "measure_gpu_compiled"]


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


def _first_call(call: Any, device: torch.device) -> float:
    """Seconds of the first call of a compiled network: mostly its compilation."""
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


def _compiled_batch(
    models: dict[str, torch.nn.Module],
    batch: int,
    plan: Plan,
    device: torch.device,
    report: Reporter | None,
) -> dict[str, Any]:
    """Compiled training steps and inference of `models`, interleaved, at one batch."""
    clinical, ultrasound, labels = make_inputs(batch, plan.img_size, device)
    steps = {
        f: partial(make_train_step(m, device), clinical, ultrasound, labels)
        for f, m in models.items()
    }
    runs = {f: partial(infer, m, clinical, ultrasound) for f, m in models.items()}
    seconds: dict[str, dict[str, list[float]]] = {}
    compile_seconds: dict[str, dict[str, float]] = {f: {} for f in models}
    for kind, calls, train in (("train", steps, True), ("infer", runs, False)):
        for family, model in models.items():
            model.train(train)
            if report:
                report(f"batch {batch}: compiling {kind} of {family}")
            compile_seconds[family][kind] = _first_call(calls[family], device)
        seconds[kind] = interleave(
            calls,
            repeats=plan.repeats,
            warmup=plan.warmup,
            device=device,
            report=prefixed(report, f"compiled {kind}, batch {batch}"),
        )
    return {
        "compile_seconds": compile_seconds,
        **{f"{k}_seconds": {f: spread(v) for f, v in seconds[k].items()} for k in seconds},
        **{f"{k}_overhead": paired_ratio(seconds[k]["agfnet"], seconds[k][BARE]) for k in seconds},
    }


def measure_gpu_compiled(
    device: str | torch.device,
    quick: bool,
    *,
    plan: Plan | None = None,
    report: Reporter | None = None,
    mode: str = "default",
    batches: tuple[int, ...] | None = None,
    backend: str = "inductor",
) -> dict[str, Any]:
    """Fusion overhead of the compiled `agfnet` over the compiled bare backbones on a GPU.

    Both networks are compiled with `agfnet.runtime.compile.compile_model` (one static
    graph per batch size) and timed as `measure_overhead` times them eagerly: training
    steps (forward, `PairedClassifierLoss`, backward, AdamW) and then inference, each
    interleaved round by round, bf16 autocast and channels_last, at each batch of
    `batches`. The first call of each, which compiles, is timed apart.

    Args:
        device: "cuda" ("cpu" only with a `backend` other than "inductor": tests).
        quick: tiny models (when `plan` is not given).
        plan: sizes and repeats; default `make_plan(quick, device)`.
        report: progress callback.
        mode: the `torch.compile` mode ("reduce-overhead": with CUDA graphs).
        batches: batch sizes; default `plan.gpu_batches` (32 and 64).
        backend: `torch.compile` backend.

    Returns:
        dict(gpu, mode, backend, models, bare, img_size, autocast, channels_last,
        batches: batch -> {compile_seconds: family -> {train, infer}, train_seconds /
        infer_seconds: family -> spread, train_overhead / infer_overhead: spread} or
        {error: "out of memory"}, train_overhead / infer_overhead: the largest median
        over the batches measured (None if none was)); on a CPU, dict(skipped=...).
    """
    from agfnet.runtime.compile import compile_model

    device = resolve_device(device)
    if device.type != "cuda" and backend == "inductor":
        return {"skipped": "no GPU in this run (--device cpu)"}
    plan = plan or make_plan(quick, device)
    families = ("agfnet", BARE)
    models = {
        f: compile_model(build_model(f, plan, device), mode, device, backend=backend, dynamic=False)
        for f in families
    }
    results: dict[str, Any] = {}
    for batch in batches or plan.gpu_batches:
        try:
            results[str(batch)] = _compiled_batch(models, batch, plan, device, report)
        except torch.cuda.OutOfMemoryError:
            results[str(batch)] = {"error": "out of memory"}
            torch.cuda.empty_cache()
    measured = [r for r in results.values() if "error" not in r]
    return {
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "mode": mode,
        "backend": backend,
        "models": {f: plan.model_name(f) for f in families},
        "bare": plan.model_name(BARE),
        "img_size": plan.img_size,
        "autocast": "bfloat16" if device.type == "cuda" else None,
        "channels_last": device.type == "cuda",
        "batches": results,
        **{
            key: max((r[key]["median"] for r in measured), default=None)
            for key in ("train_overhead", "infer_overhead")
        },
    }
