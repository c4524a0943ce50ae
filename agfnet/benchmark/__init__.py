"""Performance benchmark of agfnet (`agfnet benchmark`): fusion overhead, memory scaling,
inference throughput (eager, compiled, ONNX Runtime fp32 and int8), data pipeline, FLOP/s
and start-up time, against their targets.

Example:
    from agfnet.benchmark import run_benchmark
    result = run_benchmark("bench.json", quick=True)
    result["train_overhead"], result["targets"]["train_overhead"]["met"]
"""

from __future__ import annotations

from agfnet.benchmark.runner import DEFINITIONS, FIGURES, HEADLINES, TARGETS, run_benchmark

__all__ = ["DEFINITIONS", "FIGURES", "HEADLINES", "TARGETS", "run_benchmark"]
