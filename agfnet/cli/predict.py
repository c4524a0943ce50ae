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
    return "\n".join(lines + _task_lines(result))


def _task_lines(result: Any) -> list[str]:
    """The criteria (task heads), the checklist score and the missing metadata, if any."""
    lines: list[str] = []
    if result.tasks:
        width = max(len(t) for t in result.tasks)
        lines += ["", f"{'criterion':<{width}}  prediction (probability; other classes)"]
        for name, task in result.tasks.items():
            probs = task["probabilities"]
            top = task["prediction"]
            others = ", ".join(f"{c} {p:.3f}" for c, p in probs.items() if c != top)
            lines.append(f"{name:<{width}}  {top} ({probs[top]:.3f}; {others})")
    if result.seven_point_score is not None:
        verdict = ">= 3: melanoma suspected" if result.checklist_melanoma else "< 3: not suspected"
        lines.append(
            f"seven-point score: {result.seven_point_score} of 10 ({verdict} by the checklist; "
            "scored from the predicted criteria)"
        )
    if result.metadata_missing is not None:
        lines += ["", f"metadata missing: {', '.join(result.metadata_missing) or 'none'}"]
        if result.metadata_unknown:
            lines.append(
                f"metadata unseen in training (read as unknown): "
                f"{', '.join(result.metadata_unknown)}"
            )
    return lines


def parse_metadata(pairs: list[str] | None) -> dict[str, str] | None:
    """`--metadata key=value` options as {key: value}; None when none is given.

    Raises:
        UserError: an option without "=", or a key given twice.
    """
    if not pairs:
        return None
    out: dict[str, str] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--metadata {item!r}: write it as key=value, e.g. site=trunk")
        if key in out:
            raise UserError(f"--metadata {key} given twice: give each field once")
        out[key] = value.strip()
    return out


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
        help="Write Layer-CAM overlays of the predicted class (<modality>_cam.png) and "
        "explanation.json to this folder (--checkpoint and a pair only).",
    ),
    metadata: list[str] | None = typer.Option(
        None,
        "--metadata",
        help="A metadata field of a model trained with data.metadata, as key=value "
        "(repeatable, e.g. --metadata site=trunk --metadata age=54); a field left out "
        "is missing. With --data the manifest's columns are used.",
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
    With --cam DIR, also writes Layer-CAM overlays of the predicted class there. With
    --mc N or --tta N, the probabilities are the mean of N passes and their spread
    (standard deviation, mutual information) is reported too. A model trained with task
    heads (data.tasks) also prints each criterion with its probabilities, and the
    seven-point score when they are the seven criteria; one trained with metadata takes
    --metadata key=value and says which fields were missing (CSV: pred_<task>,
    prob_<task>_<class>, seven_point_score, metadata_missing columns).

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
    values = parse_metadata(metadata)
    if values is not None and data is not None:
        raise UserError("--metadata is for one pair; with --data the manifest's columns are used")
    from agfnet.runtime.stochastic import parse_sampling

    sampling = parse_sampling(mc, tta, seed)
    predictor = _open_predictor(checkpoint, onnx, device, compile)
    predictor.sampling = sampling
    if data is not None:
        _predict_manifest(predictor, data, out, batch_size, as_json)
        return
    if cam is None:
        result = predictor.predict(clinical, ultrasound, metadata=values)
    else:
        explanation = predictor.explain(clinical, ultrasound, metadata=values)
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
    quantize: str | None = typer.Option(
        None, "--quantize", help="int8: write an int8 model (ONNX Runtime quantisation) as OUT."
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Manifest for --quantize int8: static quantisation calibrated on its rows, and "
        "int8 checked against fp32 on its test rows (without it: dynamic, matrix products only).",
    ),
    calibration_split: str | None = typer.Option(
        None, "--calibration-split", help="Split of --data that calibrates (default val)."
    ),
    calibration_rows: int | None = typer.Option(
        None, "--calibration-rows", help="Calibration rows, a seeded choice (default 64)."
    ),
    split: str | None = typer.Option(
        None,
        "--split",
        help="Split of --data whose labeled rows int8 is checked on (default test).",
    ),
) -> None:
    """Export a checkpoint to a self-describing ONNX file, checked against PyTorch.

    Inputs clinical and ultrasound (float32 (B, 3, S, S), preprocessed; dynamic batch);
    outputs logits and probabilities (temperature folded in); no FRL decoder; classes and
    preprocessing in the metadata. Writes OUT and OUT.json (export facts, max |ONNX -
    PyTorch| at batch 1 and 3). Uses the torch.export-based exporter (tens of seconds).
    With --quantize int8 --data MANIFEST, OUT is a static (QDQ) int8 model calibrated on
    MANIFEST's rows, and OUT.json's quantization block holds its accuracy and agreement
    with fp32 on the test rows; without --data, the matrix products are quantised
    dynamically and the convolutions stay fp32.

    Example: agfnet export --checkpoint runs/t/checkpoints/best.ckpt --format onnx --out model.onnx
    """
    if fmt.lower() != "onnx":
        raise UserError(f"--format {fmt}: only onnx is supported")
    from rich.console import Console

    from agfnet.inference.export import export_onnx
    from agfnet.inference.quantize import (
        CALIBRATION_ROWS,
        QUANTIZE_CHOICES,
        export_quantized,
        summary_lines,
    )

    if quantize is not None and quantize.lower() not in QUANTIZE_CHOICES:
        raise UserError(f"--quantize {quantize}: the choice is {', '.join(QUANTIZE_CHOICES)}")
    given = {
        "--data": data,
        "--calibration-split": calibration_split,
        "--calibration-rows": calibration_rows,
        "--split": split,
    }
    for name, value in given.items():
        if value is not None and quantize is None:
            raise UserError(f"{name} is an option of --quantize int8; add it or drop {name}")
        if value is not None and data is None:
            raise UserError(f"{name} needs --data MANIFEST (static quantisation)")

    doing = f"exporting {checkpoint} and checking it against PyTorch"
    if quantize is not None:
        doing += ", then quantising it to int8" + (" and checking it on --data" if data else "")
    with Console(stderr=True).status(doing):
        if quantize is None:
            report, block = export_onnx(checkpoint, out, opset=opset, img_size=img_size), None
        else:
            quantized = export_quantized(
                checkpoint,
                out,
                data=data,
                calibration_split=calibration_split or "val",
                calibration_rows=CALIBRATION_ROWS if calibration_rows is None else calibration_rows,
                split=split or "test",
                opset=opset,
                img_size=img_size,
            )
            report, block = quantized.export, quantized.quantization
    diffs = ", ".join(
        f"batch {b}: logits {d['logits']:.2e}, probabilities {d['probabilities']:.2e}"
        for b, d in report.max_abs_diff.items()
    )
    lines = [
        f"wrote {out} ({report.model}, {len(report.classes)} classes, {report.img_size} px, "
        f"opset {report.opset}, {report.exporter})",
        f"inputs: {', '.join(report.inputs)}; outputs: {', '.join(report.outputs)}",
        f"max |ONNX - PyTorch| ({diffs}) <= {report.tolerance:g}",
    ]
    if block is not None:
        lines += summary_lines(block)
    typer.echo("\n".join([*lines, f"facts: {out.with_name(out.name + '.json')}"]))
