"""`run_benchmark`: run every measurement, assemble bench.json, write bench.md beside it."""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agfnet.benchmark.common import BARE, Plan, Reporter, make_plan, resolve_device
from agfnet.errors import UserError

__all__ = [
    "DEFINITIONS",
    "FIGURES",
    "HEADLINES",
    "TARGETS",
    "Target",
    "machine_info",
    "run_benchmark",
]


@dataclass(frozen=True)
class Target:
    """A headline figure's target: `value <op> limit`.

    Attributes:
        op: "<=", ">=" or "<".
        limit: the bound.
    """

    op: str
    limit: float

    def met(self, value: float) -> bool:
        """Returns: whether `value` meets the target."""
        return {
            "<=": value <= self.limit,
            ">=": value >= self.limit,
            "<": value < self.limit,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g}"


#: The targets of the issue (CPU, paper architecture at 224 px; not binding with --quick).
TARGETS: dict[str, Target] = {
    "train_overhead": Target("<=", 1.20),
    "infer_overhead": Target("<=", 1.10),
    "memory_ratio_2x": Target("<=", 4.5),
    "onnx_speedup": Target(">=", 1.3),
    "int8_speedup": Target(">=", 2.0),
    "int8_speedup_batch8": Target(">=", 2.0),
    "loader_supply_ratio": Target(">=", 2.0),
    "lite_loader_supply_ratio": Target(">=", 2.0),
    "flops_efficiency_ratio": Target(">=", 0.8),
    "help_seconds": Target("<", 0.5),
}
#: GPU-only targets (binding on a GPU at paper size): the compiled fusion overheads.
GPU_TARGETS: dict[str, Target] = {
    "gpu_compiled_train_overhead": Target("<=", 1.3),
    "gpu_compiled_infer_overhead": Target("<=", 1.2),
}
#: The headline keys, in report order.
HEADLINES: tuple[str, ...] = tuple(TARGETS)
#: Top-level figures reported without a target.
FIGURES: tuple[str, ...] = ("int8_agreement", "lite_train_pairs_per_s", "tiny_train_pairs_per_s")

#: What every headline and detail figure means (written into the JSON).
DEFINITIONS: dict[str, str] = {
    "train_overhead": (
        "median over interleaved rounds r of T_train(agfnet)_r / T_train(bare)_r, where "
        "T_train is the wall time of one training step (forward, PairedClassifierLoss, backward, "
        "AdamW step) on the same batch, and `bare` is the two timm encoders agfnet uses, "
        "each with global average pooling and a linear head (registry: decision_mean)"
    ),
    "infer_overhead": (
        "median over rounds of T_infer(agfnet)_r / T_infer(bare)_r, T_infer = eval-mode "
        "forward under torch.inference_mode on the same batch"
    ),
    "memory_ratio_2x": (
        "peak memory of an agfnet training-mode forward (autograd on, everything kept for "
        "backward) at twice the preset's input side over the same at the preset's side; "
        "peak = most memory held by tensors allocated during the forward, above what was "
        "held before it (weights and inputs excluded). CPU: running total of "
        "torch.profiler memory events; GPU: torch.cuda.max_memory_allocated. Linear in "
        "area: ~4; quadratic attention: ~16"
    ),
    "onnx_speedup": (
        "median over rounds of T(eager PyTorch on CPU)_r / T(ONNX Runtime CPU)_r on the "
        "same batch of pairs, i.e. ONNX Runtime pairs/s over eager pairs/s; both with the "
        "same intra-op thread count"
    ),
    "int8_speedup": (
        "median over rounds of T(eager PyTorch on CPU)_r / T(int8 ONNX Runtime CPU)_r for one "
        "pair, same intra-op thread count; the int8 file is agfnet.inference.quantize's static "
        "QDQ quantisation (Conv, MatMul, Gemm; weights int8 per channel, activations uint8; "
        "convolutions with under 32 output channels kept fp32) "
        "of the timed ONNX file, calibrated on random pairs, as `agfnet export --quantize "
        "int8` writes it"
    ),
    "int8_speedup_batch8": (
        "the same ratio on the batch of onnx_speedup (8 pairs on the CPU; with --device cuda "
        "the CPU backends run at the GPU batch, see details.throughput.batch)"
    ),
    "int8_agreement": (
        "share of random pairs (seeded, 2 x the throughput batch, not the calibration pairs) "
        "whose int8 and fp32 ONNX predictions (argmax of probabilities) agree, with the "
        "untrained network of the timings: a numerical-fidelity check of the quantiser, not "
        "an accuracy (`agfnet export --quantize int8 --data` measures that on labeled rows)"
    ),
    "lite_train_pairs_per_s": (
        "median pairs/s of one training step (forward, loss, backward, AdamW) of agfnet_lite "
        "(the lite preset: EfficientNet-Lite0 encoders, 160 px, batch 16; --quick: 64 px, "
        "batch 4) on random inputs, as `agfnet train --config lite` takes it, without the "
        "loader (details.training)"
    ),
    "tiny_train_pairs_per_s": "the same for agfnet_tiny (the tiny preset: 96 px, batch 16)",
    "gpu_compiled_train_overhead": (
        "GPU only: median over interleaved rounds of T_train(compiled agfnet) / T_train("
        "compiled bare backbones), bf16 and channels_last, the worse of batch 32 and 64 "
        "(details.gpu_compiled)"
    ),
    "gpu_compiled_infer_overhead": "GPU only: the same ratio for inference",
    "loader_supply_ratio": (
        "pairs/s delivered by the training DataLoader of the preset (its batch size and "
        "num_workers, training augmentation), iterated alone, over the pairs/s one agfnet "
        "training step consumes (batch / median step time of train_overhead)"
    ),
    "lite_loader_supply_ratio": (
        "pairs/s delivered by the training DataLoader of the lite preset (its num_workers and "
        "augmentation, at the side and batch of lite_train_pairs_per_s: 160 px, batch 16; "
        "--quick: 64 px, batch 4) on pairs of 768x512 JPEG photographs (quality 90), decoded "
        "at a reduced DCT scale where the transform allows it, iterated alone, over "
        "lite_train_pairs_per_s of the same run; details.lite_loader.full_decode gives the "
        "same loader decoding at full size, timed in interleaved epochs"
    ),
    "flops_efficiency_ratio": (
        "median over rounds of [F(agfnet) / T_train(agfnet)_r] / [F(bare) / T_train(bare)_r], "
        "F = FLOPs of one training step (forward + backward) counted by "
        "torch.utils.flop_counter; details.flops.of_matmul gives each over the FLOP/s of a "
        "square matrix product timed in the same run"
    ),
    "help_seconds": (
        "median wall time of `agfnet --help` in a fresh process (after one warm-up run)"
    ),
    "spread": (
        "every timed figure is a dict: median, q1, q3, iqr (= q3 - q1), min, max, n and "
        "the samples, over interleaved rounds after discarded warm-up rounds"
    ),
    "pairs_per_s": "pairs (one clinical + one ultrasound image) per second",
}


def _cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """The machine the figures come from.

    Args:
        device: the run's device.

    Returns:
        dict(cpu, cores, usable_cores, memory_gb, load_average (1, 5, 15 min), platform,
        python, torch, timm, onnxruntime, device, gpu, torch_threads).
    """
    import onnxruntime
    import timm

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gb": _memory_gb(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "onnxruntime": onnxruntime.__version__,
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
    }


def _headlines(details: dict[str, Any]) -> dict[str, float]:
    """The headline figures, picked out of the measurements' details."""
    return {
        "train_overhead": details["overhead"]["train_overhead"]["agfnet"]["median"],
        "infer_overhead": details["overhead"]["infer_overhead"]["agfnet"]["median"],
        "memory_ratio_2x": details["memory"]["ratio_2x"]["agfnet"]["train"],
        "onnx_speedup": details["throughput"]["onnx_speedup"]["median"],
        "int8_speedup": details["throughput"]["int8_speedup"]["median"],
        "int8_speedup_batch8": details["throughput"]["int8_speedup_batch"]["median"],
        "int8_agreement": details["throughput"]["int8"]["fidelity"]["agreement"],
        "lite_train_pairs_per_s": details["training"]["lite"]["pairs_per_s"]["median"],
        "tiny_train_pairs_per_s": details["training"]["tiny"]["pairs_per_s"]["median"],
        "loader_supply_ratio": details["loader"]["supply_ratio"],
        "lite_loader_supply_ratio": details["lite_loader"]["supply_ratio"],
        "flops_efficiency_ratio": details["flops"]["efficiency_ratio"]["median"],
        "help_seconds": details["help"]["seconds"]["median"],
        **_gpu_headlines(details),
    }


def _gpu_headlines(details: dict[str, Any]) -> dict[str, float]:
    """`gpu_compiled_*_overhead` when the compiled GPU block ran (the worse of its batch
    sizes; a batch that ran out of memory gives no figure)."""
    compiled = details.get("gpu_compiled") or {}
    out = {}
    for kind in ("train", "infer"):
        value = compiled.get(f"{kind}_overhead")
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[f"gpu_compiled_{kind}_overhead"] = float(value)
    return out


def _steps(
    device: torch.device, plan: Plan, workdir: Path
) -> list[tuple[str, Callable[[dict[str, Any], Reporter], dict[str, Any]]]]:
    """(name, run(details so far, report) -> details) of every measurement, in order."""
    from agfnet.benchmark.flops import measure_flops
    from agfnet.benchmark.gpu import measure_gpu, measure_gpu_compiled
    from agfnet.benchmark.help_time import measure_help
    from agfnet.benchmark.loader import measure_loader, measure_photo_loader
    from agfnet.benchmark.memory import measure_memory_scaling
    from agfnet.benchmark.overhead import measure_overhead
    from agfnet.benchmark.throughput import measure_throughput
    from agfnet.benchmark.training import measure_training

    quick = plan.quick

    def consume(details: dict[str, Any]) -> float:
        # Pairs/s of an agfnet training step, from the overhead measurement of this run.
        return plan.train_batch / details["overhead"]["train_seconds"]["agfnet"]["median"]

    def lite_loader(details: dict[str, Any], report: Reporter) -> dict[str, Any]:
        # The loader at the lite training step's side and batch, over its pairs/s.
        lite = details["training"]["lite"]
        return measure_photo_loader(
            device,
            quick,
            consume_pairs_per_s=lite["pairs_per_s"]["median"],
            img_size=lite["img_size"],
            batch_size=lite["batch"],
            plan=plan,
            workdir=workdir,
            report=report,
        )

    def step_samples(details: dict[str, Any]) -> dict[str, list[float]]:
        return {f: s["samples"] for f, s in details["overhead"]["train_seconds"].items()}

    steps = [
        ("help", lambda d, r: measure_help(device, quick, plan=plan, report=r)),
        ("overhead", lambda d, r: measure_overhead(device, quick, plan=plan, report=r)),
        (
            "flops",
            lambda d, r: measure_flops(
                device, quick, train_seconds=step_samples(d), plan=plan, report=r
            ),
        ),
        ("memory", lambda d, r: measure_memory_scaling(device, quick, plan=plan, report=r)),
        ("training", lambda d, r: measure_training(device, quick, plan=plan, report=r)),
        (
            "throughput",
            lambda d, r: measure_throughput(device, quick, plan=plan, workdir=workdir, report=r),
        ),
        (
            "loader",
            lambda d, r: measure_loader(
                device,
                quick,
                consume_pairs_per_s=consume(d),
                plan=plan,
                workdir=workdir,
                report=r,
            ),
        ),
        ("lite_loader", lite_loader),
    ]
    if device.type == "cuda":
        steps.append(("gpu", lambda d, r: measure_gpu(device, quick, plan=plan, report=r)))
    if device.type == "cuda" and plan.compile:
        steps.append(
            ("gpu_compiled", lambda d, r: measure_gpu_compiled(device, quick, plan=plan, report=r))
        )
    return steps


def _settings(plan: Plan) -> dict[str, Any]:
    """The plan, JSON-ready, with the registry names of the compared models."""
    return {
        **dataclasses.asdict(plan),
        "models": {f: plan.model_name(f) for f in ("agfnet", BARE)},
    }


def _result(
    started: str,
    machine: dict[str, Any],
    plan: Plan,
    details: dict[str, Any],
    step_seconds: dict[str, float],
    complete: bool,
) -> dict[str, Any]:
    """The JSON document: headlines first, then targets, definitions, settings, details."""
    heads = _headlines(details) if complete else {}
    binding = not plan.quick and machine["device"] == "cpu"
    targets = {
        key: {
            "target": str(target),
            "met": target.met(heads[key]) if key in heads else None,
            # The targets are for CPU at paper size; help time always counts.
            "binding": binding or key == "help_seconds",
        }
        for key, target in TARGETS.items()
    }
    gpu_binding = not plan.quick and machine["device"] == "cuda"
    targets |= {
        key: {"target": str(target), "met": target.met(heads[key]), "binding": gpu_binding}
        for key, target in GPU_TARGETS.items()
        if key in heads
    }
    finite = all(math.isfinite(v) for v in heads.values())
    return {
        **heads,
        "machine": machine,
        "complete": complete and finite,
        "started": started,
        "seconds": sum(step_seconds.values()),
        "step_seconds": dict(step_seconds),
        "targets": targets,
        "definitions": DEFINITIONS,
        "settings": _settings(plan),
        "details": details,
    }


def run_benchmark(
    out: str | os.PathLike,
    *,
    device: str = "cpu",
    quick: bool = False,
    threads: int = 0,
    compile: bool | None = None,
    repeats: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every measurement and write OUT (JSON) and OUT with suffix .md (Markdown).

    The JSON is rewritten atomically after each measurement (with "complete": false), so
    a long run that is interrupted keeps what it measured; the Markdown is written at
    the end.

    Args:
        out: the JSON file to write.
        device: "cpu" or "cuda".
        quick: tiny models and few repeats (a smoke run of under 2 minutes on 2 cores).
        threads: torch (and ONNX Runtime) intra-op threads; 0 keeps torch's setting.
        compile: time torch.compile too; None: in the full run only.
        repeats: timed rounds of every comparison; None: the plan's default.
        progress: show a progress bar.

    Returns:
        The JSON document: the headline keys of `HEADLINES` and `FIGURES`, `machine`, `complete`,
        `targets`, `definitions`, `settings` and `details` (one entry per measurement).

    Raises:
        UserError: an unknown device, a GPU asked for where there is none, a negative
            thread count or an OUT that is not a .json file.
    """
    from agfnet.benchmark.report import write_markdown
    from agfnet.fileio import write_json

    out = Path(out)
    if out.suffix != ".json":
        raise UserError(
            f"--out {out}: give a .json file name (the Markdown summary is written beside "
            "it with the suffix .md)"
        )
    if threads < 0:
        raise UserError(f"--threads {threads}: give a positive count, or 0 for torch's default")
    resolved = resolve_device(device)
    plan = make_plan(quick, resolved, repeats=repeats, compile=compile)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    machine = machine_info(resolved)
    details: dict[str, Any] = {}
    step_seconds: dict[str, float] = {}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="agfnet-bench-") as workdir,
            _progress(progress) as bar,
        ):
            steps = _steps(resolved, plan, Path(workdir))
            task = bar.add_task("benchmark", total=len(steps)) if bar else None
            for i, (name, run) in enumerate(steps, 1):

                def report(message: str, i: int = i, name: str = name) -> None:
                    if bar:
                        bar.update(task, description=f"[{i}/{len(steps)}] {name}: {message}")

                report("starting")
                step_start = time.perf_counter()
                details[name] = run(details, report)
                step_seconds[name] = time.perf_counter() - step_start
                if bar:
                    bar.advance(task)
                partial = _result(started, machine, plan, details, step_seconds, False)
                write_json(out, partial)
    finally:
        torch.set_num_threads(previous_threads)
    machine["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result = _result(started, machine, plan, details, step_seconds, True)
    write_json(out, result)
    write_markdown(result, out.with_suffix(".md"))
    return result


def _progress(enabled: bool) -> Any:
    """A rich progress bar (description, bar, elapsed time), or a null context."""
    import contextlib

    if not enabled:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=False
    )
