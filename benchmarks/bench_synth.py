"""Speed of the synthetic benchmark generator: pairs per second, written as JSON.

Usage: python benchmarks/bench_synth.py [OUTPUT.json] [--pairs 1000] [--size 128] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from agfnet.cli._common import write_json
from agfnet.data.synth import CLASSES, GENERATOR_VERSION, default_workers, generate


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    """Generate a benchmark into a temporary folder and record how long it took."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="benchmarks/results/synth.json")
    parser.add_argument("--pairs", type=int, default=1000, help="pairs to generate")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()

    n_per_class = max(1, args.pairs // len(CLASSES))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cpu_start = _cpu_seconds()
        start = time.perf_counter()
        summary = generate(
            Path(tmp) / "bench", n_per_class=n_per_class, size=args.size, workers=args.workers
        )
        seconds = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu_start
    pairs_per_s = summary.n_pairs / seconds
    result = {
        "benchmark": "synth",
        "generator_version": GENERATOR_VERSION,
        "pairs": summary.n_pairs,
        "size": args.size,
        "workers": args.workers,
        "seconds": round(seconds, 3),
        "pairs_per_s": round(pairs_per_s, 2),
        "seconds_per_1000_pairs": round(1000 / pairs_per_s, 2),
        # CPU time of this process and its workers: the wall time on a busy machine
        # overstates the cost, the CPU time does not.
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_1000_pairs": round(1000 * cpu / summary.n_pairs, 2),
        "load_average_before": round(load, 2),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    write_json(Path(args.output), result)
    print(
        f"{summary.n_pairs} pairs at {args.size} px with {args.workers} worker(s): "
        f"{seconds:.1f} s ({pairs_per_s:.1f} pairs/s, {cpu:.1f} CPU s, load {load:.1f}) "
        f"-> {args.output}"
    )


if __name__ == "__main__":
    main()
