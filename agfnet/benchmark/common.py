"""Shared pieces of `agfnet benchmark`: the run plan, the device, inputs, models and timing.

Timing follows one method everywhere: the variants being compared are run in interleaved
rounds (A B C, then C B A, ...), after warm-up rounds that are not kept, so that a load
change on a shared machine hits every variant alike; a ratio is taken per round, between
calls made seconds apart, and the median over rounds is reported with its interquartile
range.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agfnet.errors import UserError

__all__ = [
    "BARE",
    "NUM_CLASSES",
    "Plan",
    "Reporter",
    "autocast",
    "build_model",
    "infer",
    "interleave",
    "make_inputs",
    "make_plan",
    "make_train_step",
    "paired_ratio",
    "prefixed",
    "resolve_device",
    "spread",
    "synchronize",
    "to_device",
    "without_kineto_lines",
]

#: Classes of every benchmarked head (the synthetic benchmark's five).
NUM_CLASSES = 5
#: The "bare backbones": the two timm encoders agfnet uses, each with GAP + a linear head,
#: trained jointly (logits averaged). The registry's `decision_mean` is exactly that.
BARE = "decision_mean"

#: Called with a short description of the sub-step a measurement is on (progress bar).
Reporter = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """Sizes and repeat counts of one benchmark run.

    Attributes:
        quick: the `--quick` smoke run (tiny models) rather than the paper preset.
        size: registry size suffix of every model, "tiny" or "paper".
        config: training preset the loader defaults come from ("tiny" or "paper").
        img_size: input side S in pixels (the preset's).
        train_batch: pairs per timed training step (fusion overhead, FLOP/s).
        infer_batch: pairs per timed inference call (throughput).
        memory_batch: pairs of the peak-memory forward.
        warmup: rounds run before the timed ones and discarded.
        repeats: timed rounds.
        latency_samples: single-pair calls timed per backend (p50, p95).
        loader_batches: batches per loader epoch.
        loader_epochs: timed loader epochs (after one warm-up epoch).
        matmul_n: side of the square matrices of the reference matrix product.
        help_repeats: timed `agfnet --help` runs (after one warm-up run).
        compile: measure `torch.compile` too (its compilation takes minutes on a CPU).
        gpu_batches: batch sizes of the GPU throughput block (CUDA only).
    """

    quick: bool
    size: str
    config: str
    img_size: int
    train_batch: int
    infer_batch: int
    memory_batch: int
    warmup: int
    repeats: int
    latency_samples: int
    loader_batches: int
    loader_epochs: int
    matmul_n: int
    help_repeats: int
    compile: bool
    gpu_batches: tuple[int, ...]

    def model_name(self, family: str) -> str:
        """Registry name of `family` ("agfnet", "decision_mean", ...) at this plan's size."""
        return f"{family}_{self.size}"


def make_plan(
    quick: bool,
    device: torch.device,
    *,
    repeats: int | None = None,
    compile: bool | None = None,
) -> Plan:
    """The sizes of a run: tiny models for `--quick`, the paper preset otherwise.

    Args:
        quick: the smoke run (finishes in under 2 minutes on 2 CPU cores).
        device: where models run; GPU batches are larger.
        repeats: timed rounds; None: 5 (3 with `quick`).
        compile: measure torch.compile; None: only in the full run.

    Returns:
        The `Plan`.
    """
    from agfnet.models.registry import SIZE_PRESETS

    size = "tiny" if quick else "paper"
    gpu = device.type == "cuda"
    return Plan(
        quick=quick,
        size=size,
        config=size,
        img_size=int(SIZE_PRESETS[size]["img_size"]),
        train_batch=32 if gpu else (8 if quick else 4),
        infer_batch=64 if gpu else 8,
        memory_batch=2,
        warmup=1,
        repeats=repeats if repeats is not None else (3 if quick else 5),
        latency_samples=10 if quick else 20,
        loader_batches=4 if quick else 8,
        loader_epochs=2 if quick else 3,
        matmul_n=(4096 if gpu else 1024) if quick else (8192 if gpu else 2048),
        help_repeats=3 if quick else 5,
        compile=(not quick) if compile is None else compile,
        gpu_batches=(32, 64),
    )


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device of `--device`.

    Args:
        device: "cpu" or "cuda".

    Returns:
        The device.

    Raises:
        UserError: another name, or "cuda" where torch sees no GPU.
    """
    name = str(device)
    if name == "cpu":
        return torch.device("cpu")
    if name in ("cuda", "cuda:0"):
        if not torch.cuda.is_available():
            raise UserError(
                "--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is "
                "False); run with --device cpu, or on a machine with a GPU and a CUDA build "
                "of torch"
            )
        return torch.device("cuda")
    raise UserError(f"--device {name!r} is not supported: use cpu or cuda")


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock interval covers it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU (as `agfnet train` runs there); full precision on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _memory_format(device: torch.device) -> torch.memory_format:
    # channels_last suits the GPU's tensor-core convolutions; on CPU the default is kept.
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def to_device(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` moved to `device`, in channels_last on a GPU (as `agfnet train` runs it)."""
    return model.to(device=device, memory_format=_memory_format(device))


def build_model(family: str, plan: Plan, device: torch.device) -> nn.Module:
    """A freshly initialised registered model, on `device`, in training mode.

    Args:
        family: "agfnet", "decision_mean", "late_concat", "cross_attn", ...
        plan: gives the size preset.
        device: target device (channels_last on a GPU).

    Returns:
        The model.
    """
    from agfnet.models import create_model

    return to_device(create_model(plan.model_name(family), num_classes=NUM_CLASSES, seed=0), device)


def make_inputs(
    batch: int, img_size: int, device: torch.device, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded random inputs of one batch.

    Args:
        batch: B.
        img_size: S.
        device: target device.
        seed: generator seed.

    Returns:
        clinical (B, 3, S, S), ultrasound (B, 3, S, S), float32; labels (B,) int64.
    """
    gen = torch.Generator().manual_seed(seed)
    fmt = _memory_format(device)
    clinical, ultrasound = (
        torch.randn(batch, 3, img_size, img_size, generator=gen)
        .to(device)
        .contiguous(memory_format=fmt)
        for _ in range(2)
    )
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=gen).to(device)
    return clinical, ultrasound, labels


def make_train_step(
    model: nn.Module, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]:
    """One optimiser step as `agfnet train` takes it: forward, loss, backward, AdamW.

    The loss weights are the training defaults (auxiliary 0.5, reconstruction 1.0); a
    model without auxiliary heads or FRL pays only for its cross-entropy.

    Args:
        model: a registered model in training mode.
        device: its device (bf16 autocast on a GPU).

    Returns:
        step(clinical, ultrasound, labels).
    """
    from agfnet.models import PairedClassifierLoss

    criterion = PairedClassifierLoss(aux_weight=0.5, rec_weight=1.0).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

    def step(clinical: torch.Tensor, ultrasound: torch.Tensor, labels: torch.Tensor) -> None:
        with autocast(device):
            loss = criterion(model.forward_output(clinical, ultrasound), labels)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def infer(model: nn.Module, clinical: torch.Tensor, ultrasound: torch.Tensor) -> torch.Tensor:
    """Logits of an eval-mode model under `torch.inference_mode` (and autocast on a GPU),
    as the predictor computes them.

    Args:
        model: a registered model in eval mode.
        clinical: (B, 3, S, S).
        ultrasound: (B, 3, S, S).

    Returns:
        (B, K) logits.
    """
    with torch.inference_mode(), autocast(clinical.device):
        return model(clinical, ultrasound)


def prefixed(report: Reporter | None, prefix: str) -> Reporter | None:
    """`report` with `prefix: ` put before every message (None stays None)."""
    if report is None:
        return None
    return lambda message: report(f"{prefix}: {message}")


def interleave(
    calls: dict[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int,
    device: torch.device,
    report: Reporter | None = None,
) -> dict[str, list[float]]:
    """Wall-clock seconds of each call, measured in interleaved rounds.

    Round r runs every call once, in the given order when r is even and reversed when r
    is odd (A B C, C B A, ...), so no variant always follows the same neighbour. The
    first `warmup` rounds are discarded.

    Args:
        calls: name -> a call taking no arguments.
        repeats: timed rounds.
        warmup: discarded rounds before them.
        device: GPU work is synchronised around each call.
        report: progress callback.

    Returns:
        name -> `repeats` durations in seconds, round by round.
    """
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        if report:
            kind = "warm-up" if r < warmup else f"round {r - warmup + 1}/{repeats}"
            report(f"{', '.join(names)}: {kind}")
        for name in names if r % 2 == 0 else names[::-1]:
            synchronize(device)
            start = time.perf_counter()
            calls[name]()
            synchronize(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def spread(samples: list[float]) -> dict[str, Any]:
    """Median and spread of repeated measurements.

    Args:
        samples: the values (at least one).

    Returns:
        dict(median, q1, q3, iqr, min, max, n, samples); with one sample q1 = q3 = it.
    """
    values = [float(v) for v in samples]
    q1, q3 = (
        statistics.quantiles(values, n=4, method="inclusive")[::2]
        if len(values) > 1
        else (values[0], values[0])
    )
    return {
        "median": statistics.median(values),
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "samples": values,
    }


def paired_ratio(numerator: list[float], denominator: list[float]) -> dict[str, Any]:
    """The ratio of two interleaved measurements, round by round.

    Args:
        numerator: per-round values of A.
        denominator: per-round values of B, same rounds.

    Returns:
        `spread` of A_r / B_r over the rounds r; its median is the reported ratio.
    """
    return spread([a / b for a, b in zip(numerator, denominator, strict=True)])


# The start/stop lines Kineto (the profiler's backend) writes to the C-level stderr.
_KINETO_LINE = re.compile(r"^[A-Z]+:\d{4}-\d\d-\d\d [\d:]+ \d+:\d+ \w+\.cpp:\d+\]")


@contextlib.contextmanager
def without_kineto_lines() -> Iterator[None]:
    """Hold back the lines Kineto prints to file descriptor 2 at every profiler start and
    stop (this torch build ignores KINETO_LOG_LEVEL for them); anything else written to
    stderr meanwhile is passed on afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(ln for ln in lines if not _KINETO_LINE.match(ln)))
