"""Inference throughput and latency: eager PyTorch, torch.compile, ONNX Runtime fp32 and int8.

The backends run the same network with the same weights: a checkpoint is written from a
freshly initialised `agfnet` exactly as `agfnet train` writes one, the eager model is
read back from it with the predictor's loader, the ONNX file is made from it by
`agfnet.inference.export.export_onnx` (with its checks against PyTorch), and the int8
file from that by `agfnet.inference.quantize.quantize_onnx` (static QDQ, as `agfnet
export --quantize int8` writes it, calibrated on random inputs). ONNX Runtime runs on
CPU with as many intra-op threads as torch uses, so the comparison is between runtimes,
not thread counts.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agfnet.benchmark.common import (
    NUM_CLASSES,
    Plan,
    Reporter,
    infer,
    interleave,
    make_inputs,
    make_plan,
    paired_ratio,
    prefixed,
    resolve_device,
    spread,
    synchronize,
    to_device,
)

__all__ = ["measure_throughput", "write_untrained_checkpoint"]

#: Seeds of the random inputs: timed calls, int8 calibration, the int8 fidelity check.
TIMED_SEED, CALIBRATION_SEED, FIDELITY_SEED = 1, 2, 3


def write_untrained_checkpoint(model_name: str, preset: str, img_size: int, path: Path) -> Path:
    """Write a checkpoint of a freshly initialised model, as `agfnet train` writes one.

    Speed does not depend on the weights, so no training is needed; the file is the
    training module's state dict and `checkpoint_metadata`, saved atomically.

    Args:
        model_name: a registered name, e.g. "agfnet_paper".
        preset: the training preset ("paper", "tiny") its config comes from.
        img_size: the input side stored as the preprocessing size.
        path: the .ckpt to write.

    Returns:
        `path`.
    """
    from agfnet.engine.config import load_config
    from agfnet.engine.module import PairedClassifierModule, build_network
    from agfnet.engine.train import transform_config
    from agfnet.runtime.checkpoint import atomic_save

    config = load_config(preset, [f"data.img_size={img_size}"], model=model_name)
    torch.manual_seed(0)
    model = build_network(config, NUM_CLASSES)
    transform = transform_config(config, model).model_dump(mode="json")
    module = PairedClassifierModule(
        model, config, [f"class{i}" for i in range(NUM_CLASSES)], transform
    )
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": {"agfnet": module.checkpoint_metadata()},
        "epoch": 0,
    }
    atomic_save(checkpoint, path)
    return path


def _ort_session(path: Path) -> Any:
    """An ONNX Runtime CPU session with torch's intra-op thread count."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _int8_fidelity(fp32: Any, int8: Any, plan: Plan) -> dict[str, Any]:
    """`compare_predictions` of the two sessions on 2 x `plan.infer_batch` random pairs
    (seeded, not the calibration pairs): how closely the quantiser follows fp32 on an
    untrained network, not an accuracy (that is `agfnet export --quantize`'s check)."""
    from agfnet.inference.quantize import compare_predictions

    cpu = torch.device("cpu")
    outputs: dict[str, list[Any]] = {"fp32": [], "int8": []}
    for i in range(2):
        clinical, ultrasound, _ = make_inputs(
            plan.infer_batch, plan.img_size, cpu, FIDELITY_SEED + i
        )
        feed = {"clinical": clinical.numpy(), "ultrasound": ultrasound.numpy()}
        for key, session in (("fp32", fp32), ("int8", int8)):
            outputs[key].append(session.run(["probabilities"], feed)[0])
    return compare_predictions(*(np.concatenate(v) for v in outputs.values()))


def _percentile(samples: list[float], q: int) -> float:
    """The q-th percentile (inclusive method; the maximum when q = 100)."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def _compiled(model: torch.nn.Module, inputs: tuple[torch.Tensor, torch.Tensor]) -> Any:
    """`torch.compile(model)` after its first call (which compiles), and the seconds taken.

    Returns:
        (compiled model, seconds), or (None, error message) when compiling fails.
    """
    compiled = torch.compile(model)
    start = time.perf_counter()
    try:
        infer(compiled, *inputs)
    except Exception as err:  # inductor raises many types; the benchmark goes on without it
        return None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    synchronize(inputs[0].device)
    return compiled, time.perf_counter() - start


def measure_throughput(
    device: str | torch.device,
    quick: bool,
    *,
    plan: Plan | None = None,
    workdir: Path | None = None,
    report: Reporter | None = None,
) -> dict[str, Any]:
    """Pairs per second of `agfnet` inference on each backend, and single-pair latency.

    Throughput: one call on `plan.infer_batch` pairs per backend per round, interleaved;
    pairs/s = batch / seconds. Latency: single-pair calls of eager PyTorch and ONNX
    Runtime (fp32 and int8), interleaved, `plan.latency_samples` each; p50 and p95.
    torch.compile is timed for throughput only (a single pair is another shape, hence
    another compilation). On
    a GPU, eager and compiled run there, and eager PyTorch is also timed on CPU so that
    ONNX Runtime (CPU) is compared with the same hardware.

    Args:
        device: "cpu" or "cuda".
        quick: tiny models (when `plan` is not given).
        plan: sizes, repeats, and whether to compile; default `make_plan(quick, device)`.
        workdir: folder for the checkpoint and ONNX file; default a temporary one.
        report: progress callback.

    Returns:
        dict(model, batch, img_size, export (the `ExportReport` essentials), backends:
        name -> {pairs_per_s: spread}, compile (seconds or error), onnx_speedup: spread
        of the per-round ratio ONNX Runtime pairs/s / eager CPU pairs/s,
        onnx_speedup_one_pair: the same for single pairs, latency_ms: name -> {p50, p95,
        spread}, int8: `quantize_onnx`'s facts with bytes, fp32_bytes and fidelity (its
        `compare_predictions` with fp32 on random pairs), int8_speedup: spread of the
        per-round ratio int8 ONNX Runtime / eager CPU pairs/s for one pair,
        int8_speedup_batch: the same at `plan.infer_batch`).
    """
    from agfnet.inference.export import export_onnx
    from agfnet.inference.quantize import quantize_onnx
    from agfnet.runtime.checkpoint import load_model

    device = resolve_device(device)
    plan = plan or make_plan(quick, device)
    name = plan.model_name("agfnet")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        if report:
            report(f"export {name} to ONNX")
        ckpt = write_untrained_checkpoint(name, plan.config, plan.img_size, folder / "m.ckpt")
        exported = export_onnx(ckpt, folder / "m.onnx", img_size=plan.img_size)
        session = _ort_session(folder / "m.onnx")
        if report:
            report(f"quantise {name} to int8")
        calibration = make_inputs(
            plan.infer_batch, plan.img_size, torch.device("cpu"), CALIBRATION_SEED
        )
        int8_facts = quantize_onnx(
            folder / "m.onnx",
            folder / "m_int8.onnx",
            [{"clinical": calibration[0].numpy(), "ultrasound": calibration[1].numpy()}],
        )
        int8_facts["bytes"] = (folder / "m_int8.onnx").stat().st_size
        int8_facts["fp32_bytes"] = (folder / "m.onnx").stat().st_size
        int8_session = _ort_session(folder / "m_int8.onnx")
        cpu_model, _ = load_model(ckpt, "cpu")
        model = cpu_model if device.type == "cpu" else to_device(load_model(ckpt)[0], device)

    def ort_call(runner: Any, clinical: torch.Tensor, ultrasound: torch.Tensor) -> None:
        runner.run(["logits"], {"clinical": clinical.numpy(), "ultrasound": ultrasound.numpy()})

    def backends(batch: int) -> dict[str, Any]:
        """name -> call on one batch of `batch` pairs (CPU inputs for the CPU backends)."""
        cpu_inputs = make_inputs(batch, plan.img_size, torch.device("cpu"), TIMED_SEED)[:2]
        inputs = make_inputs(batch, plan.img_size, device, TIMED_SEED)[:2]
        calls = {"eager": partial(infer, model, *inputs)}
        if device.type != "cpu":
            calls["eager_cpu"] = partial(infer, cpu_model, *cpu_inputs)
        calls["onnxruntime"] = partial(ort_call, session, *cpu_inputs)
        calls["onnxruntime_int8"] = partial(ort_call, int8_session, *cpu_inputs)
        return calls

    calls = backends(plan.infer_batch)
    compile_info: dict[str, Any] = {"skipped": "not requested (off with --quick or --no-compile)"}
    if plan.compile:
        if report:
            report(f"torch.compile {name} (the first call compiles)")
        inputs = make_inputs(plan.infer_batch, plan.img_size, device, TIMED_SEED)[:2]
        compiled, outcome = _compiled(model, inputs)
        if compiled is None:
            compile_info = {"error": outcome}
        else:
            compile_info = {"compile_seconds": outcome}
            calls["compiled"] = partial(infer, compiled, *inputs)
    seconds = interleave(
        calls,
        repeats=plan.repeats,
        warmup=plan.warmup,
        device=device,
        report=prefixed(report, f"throughput, batch {plan.infer_batch}"),
    )
    eager_cpu = "eager" if device.type == "cpu" else "eager_cpu"
    single = backends(1)
    latency = interleave(
        {
            k: single[k]
            for k in dict.fromkeys(("eager", eager_cpu, "onnxruntime", "onnxruntime_int8"))
        },
        repeats=plan.latency_samples,
        warmup=2,
        device=device,
        report=prefixed(report, "latency, one pair"),
    )
    onnx_ratio = paired_ratio(seconds[eager_cpu], seconds["onnxruntime"])
    if report:
        report("int8 against fp32 on random pairs")
    int8_facts["fidelity"] = _int8_fidelity(session, int8_session, plan)
    return {
        "model": name,
        "batch": plan.infer_batch,
        "img_size": plan.img_size,
        "threads": torch.get_num_threads(),
        "export": {
            "exporter": exported.exporter,
            "opset": exported.opset,
            "worst_abs_diff": exported.worst_diff,
            "onnx_parameters": exported.onnx_parameters,
        },
        "compile": compile_info,
        "backends": {
            k: {"pairs_per_s": spread([plan.infer_batch / t for t in v]), "seconds": spread(v)}
            for k, v in seconds.items()
        },
        "onnx_speedup": onnx_ratio,
        "onnx_speedup_one_pair": paired_ratio(latency["eager"], latency["onnxruntime"]),
        "int8": int8_facts,
        "int8_speedup": paired_ratio(latency[eager_cpu], latency["onnxruntime_int8"]),
        "int8_speedup_batch": paired_ratio(seconds[eager_cpu], seconds["onnxruntime_int8"]),
        "latency_ms": {
            k: {
                "p50": 1000 * _percentile(v, 50),
                "p95": 1000 * _percentile(v, 95),
                "spread": spread([1000 * t for t in v]),
            }
            for k, v in latency.items()
        },
    }
