"""The Markdown summary of a benchmark run (bench.md beside bench.json)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agfnet.fileio import atomic_write_text

__all__ = ["render_markdown", "write_markdown"]

_UNITS = {"help_seconds": " s"}


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}"


def _iqr(s: dict[str, Any]) -> str:
    """`median (q1-q3)` of a spread."""
    return f"{_fmt(s['median'])} ({_fmt(s['q1'])}-{_fmt(s['q3'])})"


def _headline_table(result: dict[str, Any]) -> list[str]:
    lines = ["| figure | value | target | result |", "| --- | --- | --- | --- |"]
    for key, target in result["targets"].items():
        met = target["met"]
        verdict = "pass" if met else "miss"
        if not target["binding"]:
            verdict += " (not binding)"
        unit = _UNITS.get(key, "")
        lines.append(
            f"| `{key}` | {_fmt(result[key])}{unit} | {target['target']}{unit} | {verdict} |"
        )
    return lines


def _overhead_table(overhead: dict[str, Any]) -> list[str]:
    lines = [
        f"Batch {overhead['batch']} at {overhead['img_size']} px; seconds per call, median "
        "(IQR); ratio to the bare backbones per round, median (IQR).",
        "",
        "| model | train step s | train / bare | inference s | inference / bare |",
        "| --- | --- | --- | --- | --- |",
    ]
    for family, name in overhead["models"].items():
        train = overhead["train_overhead"].get(family)
        infer = overhead["infer_overhead"].get(family)
        lines.append(
            f"| `{name}` | {_iqr(overhead['train_seconds'][family])} | "
            f"{_iqr(train) if train else '1'} | {_iqr(overhead['infer_seconds'][family])} | "
            f"{_iqr(infer) if infer else '1'} |"
        )
    return lines


def _memory_table(memory: dict[str, Any]) -> list[str]:
    small, large = (str(s) for s in memory["img_sizes"])
    lines = [
        f"Batch {memory['batch']}; MiB above the memory held before the forward "
        f"({memory['method']}).",
        "",
        f"| model | forward | {small} px | {large} px | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    for family, name in memory["models"].items():
        for mode, by_side in memory["peak_mb"][family].items():
            lines.append(
                f"| `{name}` | {mode} | {by_side[small]:.1f} | {by_side[large]:.1f} | "
                f"{memory['ratio_2x'][family][mode]:.2f} |"
            )
    return lines


def _throughput_table(throughput: dict[str, Any]) -> list[str]:
    compile_info = throughput["compile"]
    if "compile_seconds" in compile_info:
        note = f"torch.compile took {compile_info['compile_seconds']:.0f} s to compile."
    else:
        note = f"torch.compile: {compile_info.get('error') or compile_info.get('skipped')}."
    lines = [
        f"`{throughput['model']}` at {throughput['img_size']} px, batch "
        f"{throughput['batch']}, {throughput['threads']} intra-op thread(s). {note} ONNX "
        f"Runtime over eager: {_iqr(throughput['onnx_speedup'])} at batch "
        f"{throughput['batch']}, {_iqr(throughput['onnx_speedup_one_pair'])} for one pair.",
        "",
        *_int8_lines(throughput),
        "",
        "| backend | pairs/s | latency p50 ms | latency p95 ms |",
        "| --- | --- | --- | --- |",
    ]
    for backend, figures in throughput["backends"].items():
        latency = throughput["latency_ms"].get(backend)
        p50, p95 = (f"{latency['p50']:.1f}", f"{latency['p95']:.1f}") if latency else ("", "")
        lines.append(f"| {backend} | {_iqr(figures['pairs_per_s'])} | {p50} | {p95} |")
    return lines


def _int8_lines(throughput: dict[str, Any]) -> list[str]:
    int8, fidelity = throughput["int8"], throughput["int8"]["fidelity"]
    return [
        f"int8 ({int8['method']} {int8['format']} of {', '.join(int8['op_types'])}, "
        f"calibrated on {int8['calibration_pairs']} random pairs; "
        f"{int8['bytes'] / 2**20:.1f} MiB, fp32 {int8['fp32_bytes'] / 2**20:.1f} MiB) over "
        f"eager: {_iqr(throughput['int8_speedup'])} for one pair, "
        f"{_iqr(throughput['int8_speedup_batch'])} at batch {throughput['batch']}. On "
        f"{fidelity['n']} other random pairs int8 and fp32 predict the same class for "
        f"{fidelity['agreement']:.3f} of them (max |delta probability| "
        f"{fidelity['max_abs_prob_diff']:.3g}; untrained weights: a check of the quantiser, "
        "not an accuracy).",
    ]


def _loader_lines(loader: dict[str, Any]) -> list[str]:
    return [
        f"Preset `{loader['preset']}`: batch {loader['batch_size']}, "
        f"{loader['num_workers']} workers, {loader['img_size']} px. The loader delivers "
        f"{loader['pairs_per_s']:.1f} pairs/s; an agfnet training step consumes "
        f"{loader['consume_pairs_per_s']:.2f} pairs/s; supply ratio "
        f"{loader['supply_ratio']:.1f}.",
    ]


def _photo_loader_lines(loader: dict[str, Any]) -> list[str]:
    photos, full = loader["photos"], loader["full_decode"]
    return [
        f"Preset `lite` on {photos['size'][0]}x{photos['size'][1]} JPEG pairs (quality "
        f"{photos['quality']}, {photos['mean_bytes'] / 1e3:.0f} kB a file): batch "
        f"{loader['batch_size']}, {loader['num_workers']} workers, {loader['img_size']} px. "
        f"The loader delivers {loader['pairs_per_s']:.1f} pairs/s ({full['pairs_per_s']:.1f} "
        f"decoding at full size: {_iqr(loader['draft_speedup'])} times faster); the lite "
        f"training step consumes {loader['consume_pairs_per_s']:.2f} pairs/s; supply ratio "
        f"{loader['supply_ratio']:.1f} ({full['supply_ratio']:.1f} at full size).",
    ]


def _flops_table(flops: dict[str, Any]) -> list[str]:
    matmul = flops["matmul"]
    lines = [
        f"Training step at batch {flops['batch']}, {flops['img_size']} px; reference: "
        f"{matmul['n']}x{matmul['n']} {matmul['dtype']} matrix product at "
        f"{matmul['flops_per_s']['median'] / 1e9:.1f} GFLOP/s (median).",
        "",
        "| model | GFLOP per step | achieved GFLOP/s | of matmul |",
        "| --- | --- | --- | --- |",
    ]
    for family, gflop in flops["train_step_gflop"].items():
        lines.append(
            f"| {family} | {gflop:.1f} | {_iqr(flops['achieved_gflop_per_s'][family])} | "
            f"{_iqr(flops['of_matmul'][family])} |"
        )
    return lines


def _gpu_table(gpu: dict[str, Any]) -> list[str]:
    if "skipped" in gpu:
        return [gpu["skipped"]]
    lines = [
        f"{gpu['gpu']}, `{gpu['model']}` at {gpu['img_size']} px, {gpu['autocast']} "
        "autocast, channels_last.",
        "",
        "| batch | train pairs/s | train peak MiB | inference pairs/s | inference peak MiB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for batch, figures in gpu["batches"].items():
        if "error" in figures:
            lines.append(f"| {batch} | {figures['error']} | | | |")
            continue
        train, infer = figures["train"], figures["infer"]
        lines.append(
            f"| {batch} | {_iqr(train['pairs_per_s'])} | {train['peak_mb']:.0f} | "
            f"{_iqr(infer['pairs_per_s'])} | {infer['peak_mb']:.0f} |"
        )
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    """The summary: headline figures against their targets, then each measurement.

    Args:
        result: the document `run_benchmark` returns (complete).

    Returns:
        Markdown text.
    """
    machine, details, settings = result["machine"], result["details"], result["settings"]
    mode = "--quick (tiny models: targets not binding)" if settings["quick"] else "full"
    lines = [
        "# agfnet benchmark",
        "",
        f"{result['started']}, {mode} run on {machine['device']}, {result['seconds']:.0f} s. "
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} "
        f"({machine['torch_threads']} thread(s)), load average at start "
        f"{machine['load_average'][0]:.1f}" + (f", GPU {machine['gpu']}" if machine["gpu"] else ""),
        "",
        *_headline_table(result),
        "",
        "## Fusion overhead",
        "",
        *_overhead_table(details["overhead"]),
        "",
        "## Memory scaling",
        "",
        *_memory_table(details["memory"]),
        "",
        "## Inference throughput",
        "",
        *_throughput_table(details["throughput"]),
        "",
        "## Data pipeline",
        "",
        *_loader_lines(details["loader"]),
        "",
        *_photo_loader_lines(details["lite_loader"]),
        "",
        "## FLOPs",
        "",
        *_flops_table(details["flops"]),
        "",
        f"`agfnet --help`: {_iqr(details['help']['seconds'])} s wall time, "
        f"{_iqr(details['help']['cpu_seconds'])} s CPU time.",
    ]
    if "gpu" in details:
        lines += ["", "## GPU", "", *_gpu_table(details["gpu"])]
    lines += ["", "## Definitions", ""]
    lines += [f"- `{key}`: {text}." for key, text in result["definitions"].items()]
    return "\n".join(lines) + "\n"


def write_markdown(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `render_markdown(result)` to `path` atomically (temporary file, then rename).

    Args:
        result: the complete benchmark document.
        path: the .md file.

    Returns:
        The path.
    """
    return atomic_write_text(path, render_markdown(result))
