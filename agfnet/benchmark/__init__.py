"""Performance benchmark of agfnet (`agfnet benchmark`): fusion overhead, memory scaling,
inference throughput, data pipeline, FLOP/s and start-up time, against their targets.

Example:
    from agfnet.benchmark import run_benchmark
    result = run_benchmark("bench.json", quick=True)
    result["train_overhead"], result["targets"]["train_overhead"]["met"]
"""

from __future__ import annotations

from agfnet.benchmark.runner import DEFINITIONS, HEADLINES, TARGETS, run_benchmark

__all__ = ["DEFINITIONS", "HEADLINES", "TARGETS", "run_benchmark"]
