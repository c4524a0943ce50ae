"""`agfnet predict` and `agfnet export`: use a trained model (parse, then call agfnet.inference)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from agfnet.cli._common import COMPILE_OPTION, MC_OPTION, SEED_OPTION, TTA_OPTION
from agfnet.errors import UserError


def _open_predictor(
    checkpoint: Path | None, onnx: Path | None, device: str | None, compile: bool | None = None
) -> Any:
    if (checkpoint is None) == (onnx is None):
        raise UserError("give exactly one of --checkpoint CKPT (PyTorch) or --onnx MODEL.onnx")
    if onnx is not None:
        if device not in (None, "cpu"):
            raise UserError(f"--device {device}: --onnx runs on the CPU only; drop --device")
        if compile:
            raise UserError("--compile is for --checkpoint (PyTorch); drop it with --onnx")
        from agfnet.inference.onnx_runtime import OnnxPredictor

        return OnnxPredictor.from_file(onnx)
    from agfnet.inference.predictor import Predictor

    return Predictor.from_checkpoint(
        checkpoint, device=device, compile="auto" if compile is None else compile
    )


def _table(predictor: Any, result: Any) -> str:
    """The human-readable form of one prediction."""
    width = max(len(c) for c in predictor.classes)
    used = [predictor.modality_names[m] for m, on in result.modalities.items() if on]
    u = result.uncertainty
    lines = [
        f"model: {predictor.model_name} ({predictor.source}), temperature "
        f"{predictor.temperature:.3f}",
        f"modalities used: {', '.join(used)}",
        "",
        f"{'class':<{width}}  probability",
    ]
    for name, p in sorted(result.probabilities.items(), key=lambda kv: -kv[1]):
        mark = "  <- prediction" if name == result.prediction else ""
        lines.append(f"{name:<{width}}  {p:11.4f}{mark}")
    lines += [
        "",
        f"prediction: {result.prediction} (probability {u.max_probability:.3f}, "
        f"certainty {u.certainty})",
        f"uncertainty: entropy {u.entropy:.3f} nats, normalised {u.normalized_entropy:.3f} "
        "(0 = certain, 1 = uniform)",
    ]
    if result.spread is not None:
        s = result.spread
        method = "MC dropout" if s["method"] == "mc" else "test-time augmentation"
        lines.append(
            f"spread over {s['passes']} passes ({method}): probability of {result.prediction} "
            f"+- {s['std'][result.prediction]:.3f}, mutual information "
            f"{s['mutual_information']:.3f} nats (0 = the passes agree)"
        )
    return "\n".join(lines)


def _predict_manifest(
    predictor: Any, data: Path, out: Path, batch_size: int, as_json: bool
) -> None:
    from collections import Counter

    from rich.console import Console
    from rich.progress import Progress

    from agfnet.inference.predictor import write_predictions_csv

    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        manifest, predictions = predictor.predict_manifest(
            data, batch_size=batch_size, progress=progress
        )
    write_predictions_csv(out, manifest, predictions, predictor.classes)
    counts = Counter(p.prediction for p in predictions)
    certainty = Counter(p.uncertainty.certainty for p in predictions)
    summary = {
        "rows": len(predictions),
        "out": str(out),
        "predicted": {c: counts.get(c, 0) for c in predictor.classes},
        "certainty": {k: certainty.get(k, 0) for k in ("high", "moderate", "low")},
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(
        f"{len(predictions)} rows predicted with {predictor.model_name}: {out}\n"
        + "predicted: "
        + ", ".join(f"{c} {n}" for c, n in summary["predicted"].items())
        + "\ncertainty: "
        + ", ".join(f"{k} {n}" for k, n in summary["certainty"].items())
    )


def predict(
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="best.ckpt of `agfnet train` (loaded with weights_only)."
    ),
    onnx: Path | None = typer.Option(
        None, "--onnx", help="An ONNX file of `agfnet export`, run with onnxruntime (CPU)."
    ),
    clinical: Path | None = typer.Option(
        None,
        "--clinical",
        help="The first image: the clinical photograph (JPEG, PNG, TIFF, BMP, DICOM).",
    ),
    ultrasound: Path | None = typer.Option(
        None,
        "--ultrasound",
        help="The second image: the ultrasound image, or what the model was trained on in "
        "that slot (Derm7pt: the dermoscopic image).",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Manifest CSV for batch prediction (labels optional)."
    ),
    out: Path = typer.Option(
        Path("predictions.csv"), "--out", help="CSV written by batch prediction (--data)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object instead of the table."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1 (default: GPU if present; --onnx: cpu)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Pairs per forward pass (--data)."),
    cam: Path | None = typer.Option(
        None,
        "--cam",
        help="Write Grad-CAM overlays of the predicted class (<modality>_cam.png) and "
        "explanation.json to this folder (--checkpoint and a pair only).",
    ),
    mc: int = MC_OPTION,
    tta: int = TTA_OPTION,
    seed: int = SEED_OPTION,
    compile: bool | None = COMPILE_OPTION,
) -> None:
    """Diagnose a clinical + ultrasound pair, or every row of a manifest.

    Prints the class probabilities (temperature-scaled), the prediction, its uncertainty
    (entropy, normalised entropy, max probability, certainty high >= 0.8 > moderate >=
    0.5 > low) and the images used, named as the model's training config names them
    (`data.modality_names`, e.g. "Dermoscopic image"). One image may be left out only for
    a model trained with modality dropout (or the other image of a single-modality
    model). With --data, writes --out CSV (row, lesion_id, prediction, prob_<class>...,
    entropy, modalities).
    With --cam DIR, also writes Grad-CAM overlays of the predicted class there. With
    --mc N or --tta N, the probabilities are the mean of N passes and their spread
    (standard deviation, mutual information) is reported too.

    Example: agfnet predict --checkpoint best.ckpt --clinical c.jpg --ultrasound u.png --json
    """
    if data is not None and (clinical is not None or ultrasound is not None):
        raise UserError("give either --data MANIFEST or --clinical/--ultrasound images, not both")
    if data is None and clinical is None and ultrasound is None:
        raise UserError(
            "nothing to predict: give --clinical IMG --ultrasound IMG, or --data MANIFEST"
        )
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: use at least 1")
    if cam is not None and (onnx is not None or data is not None):
        raise UserError("--cam needs --checkpoint and one pair (not --onnx, not --data)")
    from agfnet.runtime.stochastic import parse_sampling

    sampling = parse_sampling(mc, tta, seed)
    predictor = _open_predictor(checkpoint, onnx, device, compile)
    predictor.sampling = sampling
    if data is not None:
        _predict_manifest(predictor, data, out, batch_size, as_json)
        return
    if cam is None:
        result = predictor.predict(clinical, ultrasound)
    else:
        explanation = predictor.explain(clinical, ultrasound)
        result = explanation.prediction
        files = explanation.save(cam)
        shown = [f"{predictor.modality_names.get(k, k)}: {p}" for k, p in files.items()]
        typer.echo(f"CAM overlays: {', '.join(shown)}", err=as_json)
    typer.echo(json.dumps(result.to_dict()) if as_json else _table(predictor, result))


def export(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="best.ckpt of `agfnet train`."),
    fmt: str = typer.Option("onnx", "--format", help="Export format; onnx is the only one."),
    out: Path = typer.Option(Path("model.onnx"), "--out", help="File to write."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset version (18 or newer)."),
    img_size: int | None = typer.Option(
        None, "--img-size", help="Fixed input side (default: the checkpoint's)."
    ),
) -> None:
    """Export a checkpoint to a self-describing ONNX file, checked against PyTorch.

    Inputs clinical and ultrasound (float32 (B, 3, S, S), preprocessed; dynamic batch);
    outputs logits and probabilities (temperature folded in); no FRL decoder; classes and
    preprocessing in the metadata. Writes OUT and OUT.json (export facts, max |ONNX -
    PyTorch| at batch 1 and 3). Uses the torch.export-based exporter (tens of seconds).

    Example: agfnet export --checkpoint runs/t/checkpoints/best.ckpt --format onnx --out model.onnx
    """
    if fmt.lower() != "onnx":
        raise UserError(f"--format {fmt}: only onnx is supported")
    from rich.console import Console

    from agfnet.inference.export import export_onnx

    with Console(stderr=True).status(f"exporting {checkpoint} and checking it against PyTorch"):
        report = export_onnx(checkpoint, out, opset=opset, img_size=img_size)
    diffs = ", ".join(
        f"batch {b}: logits {d['logits']:.2e}, probabilities {d['probabilities']:.2e}"
        for b, d in report.max_abs_diff.items()
    )
    typer.echo(
        f"wrote {out} ({report.model}, {len(report.classes)} classes, {report.img_size} px, "
        f"opset {report.opset}, {report.exporter})\n"
        f"inputs: {', '.join(report.inputs)}; outputs: {', '.join(report.outputs)}\n"
        f"max |ONNX - PyTorch| ({diffs}) <= {report.tolerance:g}\n"
        f"facts: {out.with_name(out.name + '.json')}"
    )
