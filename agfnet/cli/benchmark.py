"""`agfnet benchmark`: measure speed and memory against the performance targets."""

from __future__ import annotations

from pathlib import Path

import typer


def benchmark(
    out: Path = typer.Option(
        Path("bench.json"),
        "--out",
        "-o",
        help="JSON file to write; the Markdown summary goes beside it (same name, .md).",
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Tiny models, few repeats, no torch.compile: a smoke run (under 2 minutes on "
        "2 CPU cores) whose targets are not binding.",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: int = typer.Option(
        0,
        "--threads",
        help="Intra-op threads of torch and ONNX Runtime; 0 keeps torch's default (one per "
        "core). On a shared, loaded machine 1 gives steadier figures.",
    ),
    compile: bool | None = typer.Option(
        None,
        "--compile/--no-compile",
        help="Also time torch.compile (compiling takes minutes on a CPU). Default: on in "
        "the full run, off with --quick.",
    ),
) -> None:
    """Measure fusion overhead, memory scaling, inference throughput (eager, torch.compile,
    ONNX Runtime), data-loader supply, FLOP/s and `agfnet --help` time.

    Writes OUT (JSON: the headline ratios train_overhead, infer_overhead,
    memory_ratio_2x, onnx_speedup, loader_supply_ratio, flops_efficiency_ratio,
    help_seconds, the machine, the targets with pass/miss, definitions and every detail)
    and OUT.md beside it (the table of headline figures against the targets). Without
    --quick it measures the paper preset (ResNet-50 encoders, 224 px): about 10 minutes
    on 2 CPU cores. See docs/performance.md.

    Example: agfnet benchmark --quick --out out/bench.json
    """
    from agfnet.errors import UserError

    if device not in ("cpu", "cuda"):
        raise UserError(f"--device {device!r} is not supported: use cpu or cuda")

    from agfnet.benchmark import HEADLINES, run_benchmark

    result = run_benchmark(
        out, device=device, quick=quick, threads=threads, compile=compile, progress=True
    )
    for key in HEADLINES:
        target = result["targets"][key]
        verdict = "pass" if target["met"] else "miss"
        if not target["binding"]:
            verdict += " (not binding)"
        typer.echo(f"{key:24s} {result[key]:10.3g}   target {target['target']:8s} {verdict}")
    typer.echo(f"wrote {out} and {out.with_suffix('.md')}")
