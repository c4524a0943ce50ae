"""Start-up cost of the command line: wall time of `agfnet --help` in a fresh process."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from agfnet.benchmark.common import Plan, Reporter, make_plan, resolve_device, spread

__all__ = ["help_command", "measure_help"]


def help_command() -> list[str]:
    """The `agfnet --help` command line: the console script installed beside this Python,
    else the one on PATH, else `python -m agfnet`."""
    beside = Path(sys.executable).with_name("agfnet")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside), "--help"]
    found = shutil.which("agfnet")
    return [found, "--help"] if found else [sys.executable, "-m", "agfnet", "--help"]


def measure_help(
    device: str | torch.device,
    quick: bool,
    *,
    plan: Plan | None = None,
    report: Reporter | None = None,
) -> dict[str, Any]:
    """Wall time of `agfnet --help` from process start to exit, one warm-up run first.

    The warm-up run fills the file-system cache, so the timed runs measure the import
    and start-up work, not the first read of the package from disk. The CPU time of each
    run (user + system) is recorded beside it: on a busy machine the wall time also
    holds the time the process waited for a core, the CPU time does not.

    Args:
        device: unused (the command runs on CPU); accepted like every measurement.
        quick: fewer runs (when `plan` is not given).
        plan: gives the number of timed runs; default `make_plan(quick, device)`.
        report: progress callback.

    Returns:
        dict(command, seconds: spread of the wall times, cpu_seconds: spread of the CPU
        times).
    """
    plan = plan or make_plan(quick, resolve_device(device))
    command = help_command()
    seconds, cpu_seconds = [], []
    for run in range(1 + plan.help_repeats):
        if report:
            report(f"agfnet --help: run {run + 1} of {1 + plan.help_repeats}")
        cpu_start = _children_cpu_seconds()
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        if run:
            seconds.append(time.perf_counter() - start)
            cpu_seconds.append(_children_cpu_seconds() - cpu_start)
    return {
        "command": " ".join(command),
        "seconds": spread(seconds),
        "cpu_seconds": spread(cpu_seconds),
    }


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
