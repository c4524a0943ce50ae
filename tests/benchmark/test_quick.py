"""`agfnet benchmark --quick` end to end (the CI smoke run): the JSON is complete and finite,
its headlines agree with its details, and the Markdown summary is written beside it."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agfnet.benchmark import HEADLINES
from agfnet.cli.app import app

MACHINE_KEYS = ("cpu", "cores", "torch", "device", "torch_threads", "load_average")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    """One `--quick` run through the command line, in-process: (JSON, its path, output)."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = CliRunner().invoke(app, ["benchmark", "--quick", "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), out, result.output


def test_json_has_every_headline_finite_and_the_machine(quick_run) -> None:
    doc, _, output = quick_run
    assert doc["complete"] is True
    for key in HEADLINES:
        assert isinstance(doc[key], float) and math.isfinite(doc[key]), key
        assert doc[key] > 0, key
        assert isinstance(doc["targets"][key]["met"], bool)
        assert key in doc["definitions"]
        assert key in output  # the command prints the table too
    assert all(doc["machine"][k] is not None for k in MACHINE_KEYS)
    assert doc["machine"]["device"] == "cpu" and doc["machine"]["torch_threads"] == 1
    # --quick measures tiny models: only the help-time target is binding.
    assert doc["settings"]["quick"] is True
    assert [k for k, t in doc["targets"].items() if t["binding"]] == ["help_seconds"]


def test_headlines_are_the_medians_of_their_per_round_ratios(quick_run) -> None:
    doc, _, _ = quick_run
    details = doc["details"]
    rounds = details["overhead"]["train_overhead"]["agfnet"]["samples"]
    assert len(rounds) == doc["settings"]["repeats"]
    assert doc["train_overhead"] == pytest.approx(statistics.median(rounds))
    train = details["overhead"]["train_seconds"]
    agfnet, bare = train["agfnet"]["samples"], train["decision_mean"]["samples"]
    per_round = [a / b for a, b in zip(agfnet, bare, strict=True)]
    assert rounds == pytest.approx(per_round)
    consume = doc["settings"]["train_batch"] / train["agfnet"]["median"]
    loader = details["loader"]
    assert loader["consume_pairs_per_s"] == pytest.approx(consume)
    assert doc["loader_supply_ratio"] == pytest.approx(loader["pairs_per_s"] / consume)
    assert doc["help_seconds"] == pytest.approx(details["help"]["seconds"]["median"])


def test_measurements_are_physically_plausible(quick_run) -> None:
    doc, _, _ = quick_run
    details = doc["details"]
    # Backbone activations grow with the image area: about 4x at twice the side.
    for family in ("agfnet", "decision_mean"):
        for mode, ratio in details["memory"]["ratio_2x"][family].items():
            assert 3.0 < ratio < 5.0, (family, mode, ratio)
    # AGFNet adds fusion layers to the same two backbones: more FLOPs per step.
    flops = details["flops"]
    assert flops["train_step_gflop"]["agfnet"] > flops["train_step_gflop"]["decision_mean"]
    assert 0 < flops["of_matmul"]["agfnet"]["median"] < 1.5
    # The ONNX file that was timed matches PyTorch.
    assert details["throughput"]["export"]["worst_abs_diff"] < 1e-4
    latency = details["throughput"]["latency_ms"]["onnxruntime"]
    assert latency["p50"] <= latency["p95"]


def test_int8_figures_are_measured_with_the_other_backends(quick_run) -> None:
    doc, out, _ = quick_run
    throughput = doc["details"]["throughput"]
    # Interleaved with eager and fp32 ONNX Runtime; the headlines are per-round ratios.
    batch = throughput["backends"]
    assert {"eager", "onnxruntime", "onnxruntime_int8"} <= set(batch)
    eager, int8 = (batch[k]["seconds"]["samples"] for k in ("eager", "onnxruntime_int8"))
    ratios = [e / i for e, i in zip(eager, int8, strict=True)]
    assert doc["int8_speedup_batch8"] == pytest.approx(statistics.median(ratios))
    assert doc["int8_speedup"] == pytest.approx(throughput["int8_speedup"]["median"])
    assert "onnxruntime_int8" in throughput["latency_ms"]
    # The int8 file is the static QDQ export's, a quarter of the fp32 file's size.
    int8_facts = throughput["int8"]
    assert int8_facts["method"] == "static" and "Conv" in int8_facts["op_types"]
    assert int8_facts["calibration_pairs"] == doc["settings"]["infer_batch"]
    assert int8_facts["bytes"] < int8_facts["fp32_bytes"] / 2
    # The agreement is a figure without a target, from the fidelity check.
    fidelity = int8_facts["fidelity"]
    assert doc["int8_agreement"] == fidelity["agreement"]
    assert fidelity["n"] == 2 * doc["settings"]["infer_batch"] and 0 <= doc["int8_agreement"] <= 1
    assert "int8_agreement" in doc["definitions"] and "int8_agreement" not in doc["targets"]
    assert "int8 (static QDQ" in out.with_suffix(".md").read_text()


def test_training_throughput_of_the_presets_is_reported(quick_run) -> None:
    doc = quick_run[0]
    training = doc["details"]["training"]
    for preset, key in (("lite", "lite_train_pairs_per_s"), ("tiny", "tiny_train_pairs_per_s")):
        entry = training[preset]
        assert entry["model"] == f"agfnet_{preset}"
        assert doc[key] == entry["pairs_per_s"]["median"] > 0
        # pairs/s and seconds per step describe the same timings
        assert entry["batch"] / entry["seconds"]["median"] == pytest.approx(doc[key], rel=0.5)
        assert key in doc["definitions"] and key not in doc["targets"]
    # the lite encoders cost more per pair than the tiny ones at the same size
    assert doc["lite_train_pairs_per_s"] < doc["tiny_train_pairs_per_s"]


def test_compiled_gpu_overheads_become_headlines_only_when_measured(quick_run) -> None:
    from agfnet.benchmark.runner import GPU_TARGETS, _headlines

    details = quick_run[0]["details"]
    assert not set(GPU_TARGETS) & set(_headlines(details))  # measured on the CPU: absent
    gpu = {"gpu_compiled": {"train_overhead": 1.25, "infer_overhead": float("nan")}}
    heads = _headlines({**details, **gpu})
    assert heads["gpu_compiled_train_overhead"] == 1.25
    assert "gpu_compiled_infer_overhead" not in heads  # a batch out of memory gives no figure
    assert GPU_TARGETS["gpu_compiled_train_overhead"].met(1.25)
    assert not GPU_TARGETS["gpu_compiled_infer_overhead"].met(1.25)


def test_markdown_summary_is_written_beside_the_json(quick_run) -> None:
    doc, out, _ = quick_run
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# agfnet benchmark")
    for key in HEADLINES:
        row = next(line for line in md.splitlines() if line.startswith(f"| `{key}` |"))
        assert ("pass" in row) == doc["targets"][key]["met"], row
    for section in ("Fusion overhead", "Memory scaling", "Inference throughput", "FLOPs"):
        assert f"## {section}" in md
    assert not list(out.parent.glob(".*tmp*")), "a temporary file was left behind"


def test_lite_loader_supply_ratio_comes_from_the_jpeg_loader_and_the_lite_step(quick_run) -> None:
    doc = quick_run[0]
    ratio, loader = doc["lite_loader_supply_ratio"], doc["details"]["lite_loader"]
    assert isinstance(ratio, float) and math.isfinite(ratio) and ratio > 0
    assert doc["targets"]["lite_loader_supply_ratio"]["target"] == ">= 2"
    # Measured on the 768x512 JPEG photographs, at the lite training step's side and batch.
    assert loader["photos"]["size"] == [768, 512] and loader["photos"]["quality"] == 90
    lite = doc["details"]["training"]["lite"]
    assert (loader["img_size"], loader["batch_size"]) == (lite["img_size"], lite["batch"])
    assert loader["consume_pairs_per_s"] == doc["lite_train_pairs_per_s"]
    assert ratio == pytest.approx(loader["pairs_per_s"] / doc["lite_train_pairs_per_s"])
    # The full-size decode was timed in the same step, over the same consumption.
    full = loader["full_decode"]
    assert full["pairs_per_s"] > 0 and full["consume_pairs_per_s"] == loader["consume_pairs_per_s"]
    assert "Preset `lite` on 768x512 JPEG" in quick_run[1].with_suffix(".md").read_text()
