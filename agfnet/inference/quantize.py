"""Int8 quantisation of an agfnet ONNX export (ONNX Runtime's tools), checked against fp32.

Static quantisation (`agfnet export --quantize int8 --data MANIFEST`) calibrates the
activation ranges on manifest rows preprocessed by the checkpoint's evaluation
transform, and writes QDQ int8: weights int8 symmetric per output channel, activations
uint8 per tensor (MinMax ranges), for the convolutions (but those with fewer than 32
output channels) and matrix products only; the LayerNorms, GELUs, softmaxes and poolings
stay fp32, where int8 would be slower and less accurate. Without a manifest there is
nothing to calibrate on, and the matrix products are quantised dynamically (their
activation ranges taken at run time) while the convolutions stay fp32. Either way the
file keeps the export's metadata and gains a `quantization` entry, so `OnnxPredictor`
(`agfnet predict --onnx`) reads it like any export.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agfnet.constants import MODALITIES
from agfnet.errors import UserError

__all__ = [
    "CALIBRATION_ROWS",
    "DYNAMIC_OP_TYPES",
    "QUANTIZE_CHOICES",
    "STATIC_OP_TYPES",
    "QuantizedExport",
    "compare_predictions",
    "export_quantized",
    "quantize_onnx",
    "summary_lines",
]

#: Values of `--quantize`.
QUANTIZE_CHOICES = ("int8",)
#: Operators quantised statically (with calibration) and dynamically (without).
STATIC_OP_TYPES = ("Conv", "MatMul", "Gemm")
DYNAMIC_OP_TYPES = ("MatMul", "Gemm")
#: Convolutions with fewer output channels stay fp32 in static quantisation: in the
#: quarter-width tiny backbones (16-channel layers) they carried most of int8's error
#: (measured: docs/commands/export.md); every convolution of ResNet-50 has 64 or more.
MIN_CONV_CHANNELS = 32
#: Default number of calibration rows, and pairs per calibration / evaluation batch.
CALIBRATION_ROWS = 64
BATCH = 8
#: The metadata_props key (and sidecar block) describing the quantisation.
METADATA_KEY = "quantization"


class _Reader:
    """An onnxruntime `CalibrationDataReader` over feed dicts, read one range at a time.

    With `CalibStridedMinMax`, onnxruntime sets a range of feeds, collects their
    activations and reduces them to minima and maxima before the next range (merged by
    min and max, so the ranges are those of the whole set); without it, it would hold the
    activations of every calibration pair at once (about 220 MB per `agfnet_paper` pair
    at 224 px).
    """

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self.feeds = list(feeds)
        self.pairs = sum(len(next(iter(f.values()))) for f in self.feeds)
        self._next: Iterator[dict[str, np.ndarray]] = iter(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next = iter(self.feeds[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._next, None)


def _narrow_convolutions(path: Path) -> list[str]:
    """Names of the Conv nodes of `path` with fewer than `MIN_CONV_CHANNELS` outputs."""
    import onnx

    graph = onnx.load(str(path)).graph
    outputs = {i.name: i.dims[0] for i in graph.initializer if i.dims}
    return [
        n.name
        for n in graph.node
        if n.op_type == "Conv" and outputs.get(n.input[1], MIN_CONV_CHANNELS) < MIN_CONV_CHANNELS
    ]


def _write_metadata(source: Path, target: Path, facts: dict[str, Any]) -> None:
    """Give `target` the metadata_props of `source` (onnxruntime's tools do not promise to
    keep them) plus `quantization` (JSON of `facts`), and check it."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    meta[METADATA_KEY] = json.dumps(facts)
    proto = onnx.load(str(target))
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(target))
    onnx.checker.check_model(str(target))


def quantize_onnx(
    source: str | os.PathLike,
    out: str | os.PathLike,
    calibration: Iterable[dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Quantise an fp32 export of `export_onnx` to int8.

    Writes `out` directly (stage it with `agfnet.fileio.atomic_path` where a failure must
    leave nothing), with the metadata of `source` and a `quantization` entry.

    Args:
        source: the fp32 ONNX file.
        out: the int8 ONNX file to write.
        calibration: feed dicts ({"clinical", "ultrasound"}: float32 (B, 3, S, S),
            preprocessed) for static QDQ quantisation of `STATIC_OP_TYPES` (but
            convolutions with fewer than `MIN_CONV_CHANNELS` outputs); None: dynamic
            quantisation of `DYNAMIC_OP_TYPES` (convolutions stay fp32).

    Returns:
        What was done: method, format, weights, activations, op_types, and for static
        fp32_convolutions (how many were left fp32), fp32_rule and calibration_pairs;
        onnxruntime (its version).

    Raises:
        UserError: a calibration set without a single pair.
    """
    import onnxruntime
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, out = Path(source), Path(out)
    reader = None if calibration is None else _Reader(calibration)
    if reader is not None and not reader.pairs:
        raise UserError("the calibration set is empty: give at least one pair")
    with tempfile.TemporaryDirectory(prefix="agfnet-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference and basic graph optimisation, as onnxruntime recommends before
        # quantising; the symbolic shape pass cannot read the dynamo export, and the
        # graph's shapes are static but for the batch axis anyway.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if reader is None:
            quantize_dynamic(
                str(prepared),
                str(out),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(DYNAMIC_OP_TYPES),
            )
            facts: dict[str, Any] = {
                "method": "dynamic",
                "format": "QOperator",
                "weights": "int8, per tensor",
                "activations": "uint8, ranges taken at run time",
                "op_types": list(DYNAMIC_OP_TYPES),
            }
        else:
            narrow = _narrow_convolutions(prepared)
            quantize_static(
                str(prepared),
                str(out),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                op_types_to_quantize=list(STATIC_OP_TYPES),
                nodes_to_exclude=narrow,
                extra_options={"CalibStridedMinMax": 1},  # one feed's activations at a time
            )
            facts = {
                "method": "static",
                "format": "QDQ",
                "weights": "int8, symmetric, per output channel",
                "activations": "uint8, per tensor, MinMax ranges of the calibration set",
                "op_types": list(STATIC_OP_TYPES),
                "fp32_convolutions": len(narrow),
                "fp32_rule": f"convolutions with fewer than {MIN_CONV_CHANNELS} output channels",
                "calibration_pairs": reader.pairs,
            }
    facts["onnxruntime"] = onnxruntime.__version__
    _write_metadata(source, out, facts)
    return facts


def compare_predictions(
    fp32: np.ndarray, int8: np.ndarray, labels: np.ndarray | None = None
) -> dict[str, Any]:
    """How far the int8 model's probabilities are from the fp32 model's.

    Args:
        fp32: probabilities (N, K) of the fp32 model.
        int8: probabilities (N, K) of the int8 model, same pairs.
        labels: class indices (N,); None where there are none.

    Returns:
        dict(n, agreement: share of pairs whose predicted classes agree, max_abs_prob_diff);
        with labels also accuracy_fp32, accuracy_int8 and accuracy_drop (fp32 - int8).
    """
    fp32_class, int8_class = fp32.argmax(axis=1), int8.argmax(axis=1)
    result: dict[str, Any] = {
        "n": len(fp32),
        "agreement": float(np.mean(fp32_class == int8_class)),
        "max_abs_prob_diff": float(np.max(np.abs(fp32 - int8))),
    }
    if labels is not None:
        acc_fp32 = float(np.mean(fp32_class == labels))
        acc_int8 = float(np.mean(int8_class == labels))
        result |= {
            "accuracy_fp32": acc_fp32,
            "accuracy_int8": acc_int8,
            "accuracy_drop": acc_fp32 - acc_int8,
        }
    return result


@dataclass(frozen=True)
class _Rows:
    """Manifest rows for calibration or testing: positions, the split they come from
    (None: the manifest has no split column, every row was taken) and how many rows were
    left out for lacking an image the graph reads."""

    positions: list[int]
    split: str | None
    skipped: int = 0

    def readable(self, manifest: Any, reads: Sequence[str], option: str) -> _Rows:
        """These rows less those lacking an image of `reads` (the graph cannot do without)."""
        wanted = [MODALITIES.index(m) for m in reads]
        usable = [i for i in self.positions if all(manifest.rows[i].present[k] for k in wanted)]
        if not usable:
            where = f"split '{self.split}'" if self.split else "the manifest"
            raise UserError(
                f"{manifest.path}: no row of {where} has the {' and '.join(reads)} image(s) "
                f"the model reads; choose another {option}"
            )
        return _Rows(usable, self.split, len(self.positions) - len(usable))

    def note(self, use: str) -> str | None:
        """What the user should know about these rows, for `use` ("calibration", ...)."""
        parts = []
        if self.split is None:
            parts.append(f"the manifest has no split column: {use} used every row")
        if self.skipped:
            parts.append(f"{self.skipped} row(s) lacking an image the model reads were left out")
        return "; ".join(parts) or None


@dataclass(frozen=True)
class _Selection:
    """The manifest (read against the checkpoint's classes) and the rows of each use."""

    manifest: Any
    calibration: _Rows
    test: _Rows


def _split_rows(manifest: Any, split: str, option: str, *, labeled: bool) -> _Rows:
    """The rows of `split` (every row without a split column), labeled ones if asked."""
    rows = manifest.rows
    chosen = list(range(len(rows)))
    if manifest.has_split:
        chosen = [i for i in chosen if rows[i].split == split]
        if not chosen:
            found = sorted({r.split for r in rows if r.split})
            raise UserError(
                f"{manifest.path} has no row with split '{split}' (its splits: "
                f"{', '.join(found)}); pass {option} with one of them"
            )
    if labeled:
        chosen = [i for i in chosen if rows[i].target >= 0]
        if not chosen:
            where = f"split '{split}'" if manifest.has_split else "it"
            raise UserError(
                f"{manifest.path}: {where} has no labeled row to compare int8 with fp32 on; "
                f"label them, or pass {option} with a labeled split"
            )
    return _Rows(chosen, split if manifest.has_split else None)


def _select(checkpoint: Path, data: Path, calibration_split: str, split: str) -> _Selection:
    """Read the manifest against the checkpoint's classes and choose the rows of each use."""
    from agfnet.data import read_manifest
    from agfnet.runtime.checkpoint import CheckpointInfo, read_checkpoint

    info = CheckpointInfo.from_checkpoint(read_checkpoint(checkpoint), checkpoint)
    manifest = read_manifest(
        data, classes=info.classes, require_labels=False, allow_missing_modality=True
    )
    return _Selection(
        manifest,
        _split_rows(manifest, calibration_split, "--calibration-split", labeled=False),
        _split_rows(manifest, split, "--split", labeled=True),
    )


def _batches(
    manifest: Any, positions: Sequence[int], transform_config: dict[str, Any]
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """(feeds, labels) batches of the rows, preprocessed by the evaluation transform."""
    from torch.utils.data import DataLoader

    from agfnet.data import PairedLesionDataset, TransformConfig, build_transforms

    transform = build_transforms(TransformConfig(**transform_config), train=False)
    loader = DataLoader(PairedLesionDataset(manifest, positions, transform), batch_size=BATCH)
    for batch in loader:
        yield {m: batch[m].numpy() for m in MODALITIES}, batch["label"].numpy()


def _compare_files(
    fp32: Path, int8: Path, batches: Iterable[tuple[dict[str, np.ndarray], np.ndarray]]
) -> dict[str, Any]:
    """`compare_predictions` of the `probabilities` of two ONNX files on labeled batches."""
    import onnxruntime as ort

    sessions = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fp32, int8)
    ]
    probs: list[list[np.ndarray]] = [[], []]
    labels = []
    for feed, label in batches:
        for session, out in zip(sessions, probs, strict=True):
            out.append(session.run(["probabilities"], feed)[0])
        labels.append(label)
    return compare_predictions(*(np.concatenate(p) for p in probs), np.concatenate(labels))


def _metadata(path: Path) -> dict[str, Any]:
    """The `transform` and `reads` metadata of an agfnet export, decoded."""
    import onnx

    props = onnx.load(str(path), load_external_data=False).metadata_props
    return {p.key: json.loads(p.value) for p in props if p.key in ("transform", "reads")}


def _static(
    fp32: Path, staged: Path, selection: _Selection, data: str, calibration_rows: int, seed: int
) -> dict[str, Any]:
    """Calibrate on the calibration rows, quantise, and compare int8 with fp32 on the test
    rows; returns the sidecar's `quantization` block."""
    meta = _metadata(fp32)
    transform, reads, manifest = meta["transform"], meta["reads"], selection.manifest
    calibration = selection.calibration.readable(manifest, reads, "--calibration-split")
    test = selection.test.readable(manifest, reads, "--split")
    count = min(calibration_rows, len(calibration.positions))
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(calibration.positions, size=count, replace=False).tolist())
    block = quantize_onnx(fp32, staged, (f for f, _ in _batches(manifest, chosen, transform)))
    block["calibration"] = {
        "manifest": data,
        "split": calibration.split,
        "rows": count,
        "seed": seed,
        "skipped": calibration.skipped,
        "note": calibration.note("calibration"),
    }
    compared = _compare_files(fp32, staged, _batches(manifest, test.positions, transform))
    block["test"] = {
        "split": test.split,
        **compared,
        "skipped": test.skipped,
        "note": test.note("the comparison"),
    }
    return block


@dataclass(frozen=True)
class QuantizedExport:
    """What `export_quantized` wrote and measured.

    Attributes:
        export: the fp32 export's `ExportReport` (its check against PyTorch).
        quantization: the sidecar's `quantization` block: method, format, weights,
            activations, op_types, fp32_sha256, onnxruntime, and with a manifest
            `calibration` (manifest, split, rows, seed, skipped, note) and `test`
            (`compare_predictions` with labels, plus split, skipped, note); without
            one, note.
        sidecar: the OUT.json document.
    """

    export: Any
    quantization: dict[str, Any]
    sidecar: dict[str, Any]


def export_quantized(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    calibration_split: str = "val",
    calibration_rows: int = CALIBRATION_ROWS,
    split: str = "test",
    seed: int = 0,
    opset: int | None = None,
    img_size: int | None = None,
) -> QuantizedExport:
    """Export a checkpoint to fp32 ONNX (checked against PyTorch), then quantise it to int8.

    With `data`, static QDQ quantisation calibrated on `calibration_rows` rows of
    `calibration_split` (a seeded choice; every row when the manifest has no split
    column), and the int8 and fp32 files compared on the labeled rows of `split`
    (every labeled row without a split column). Without it, dynamic quantisation and no
    comparison. Writes OUT (the int8 file) and OUT.json (the fp32 `ExportReport` with
    `onnx` and `sha256` of the int8 file, and the `quantization` block), atomically: a
    failure leaves no OUT.

    Args:
        checkpoint: a best.ckpt / last.ckpt of `agfnet train`.
        out: the int8 ONNX file.
        data: manifest CSV for calibration and the comparison; None: dynamic.
        calibration_split: split the calibration rows come from.
        calibration_rows: at most this many calibration rows.
        split: split whose labeled rows the int8 model is compared on.
        seed: seed of the calibration rows' choice.
        opset: ONNX opset; None: `export_onnx`'s default.
        img_size: input side; None: the checkpoint's.

    Returns:
        The `QuantizedExport`.

    Raises:
        UserError / ManifestError: a bad checkpoint, manifest, option or split.
    """
    from agfnet.fileio import atomic_path, write_json
    from agfnet.inference.export import DEFAULT_OPSET, export_onnx, sha256_file

    out, checkpoint = Path(out), Path(checkpoint)
    if calibration_rows < 1:
        raise UserError(f"--calibration-rows {calibration_rows}: use at least 1")
    selection = _select(checkpoint, Path(data), calibration_split, split) if data else None
    with tempfile.TemporaryDirectory(prefix="agfnet-export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        report = export_onnx(checkpoint, fp32, opset=opset or DEFAULT_OPSET, img_size=img_size)
        with atomic_path(out) as staged:
            if selection is None:
                block = quantize_onnx(fp32, staged)
                block["note"] = (
                    "dynamic: without --data there is no calibration set, so the convolutions "
                    "stay fp32 and no agreement with fp32 could be measured"
                )
            else:
                block = _static(fp32, staged, selection, str(data), calibration_rows, seed)
            block["fp32_sha256"] = report.sha256
            sidecar = {**report.to_dict(), "onnx": str(out), "sha256": sha256_file(staged)}
            sidecar[METADATA_KEY] = block
    write_json(out.with_name(out.name + ".json"), sidecar)
    return QuantizedExport(report, block, sidecar)


def summary_lines(block: dict[str, Any]) -> list[str]:
    """What `agfnet export --quantize` prints about the int8 model.

    Args:
        block: `QuantizedExport.quantization`.

    Returns:
        Lines of text: the method, and with a manifest the calibration rows and the
        comparison with fp32, then any notes.
    """
    lines = [
        f"int8: {block['method']} {block['format']} of {', '.join(block['op_types'])} "
        f"(weights {block['weights']}; activations {block['activations']})"
    ]
    if block.get("fp32_convolutions"):
        lines.append(f"kept fp32: {block['fp32_convolutions']} {block['fp32_rule']}")
    if block["method"] == "dynamic":
        return [*lines, f"note: {block['note']}"]
    cal, test = block["calibration"], block["test"]
    where = f"split {cal['split']}" if cal["split"] else "all rows"
    lines.append(
        f"calibration: {cal['rows']} rows of {cal['manifest']} ({where}, seed {cal['seed']})"
    )
    where = f"split {test['split']}" if test["split"] else "every labeled row"
    lines.append(
        f"int8 vs fp32 on {test['n']} rows ({where}): accuracy {test['accuracy_fp32']:.4f} -> "
        f"{test['accuracy_int8']:.4f} (drop {test['accuracy_drop']:+.4f}), agreement "
        f"{test['agreement']:.4f}, max |delta probability| {test['max_abs_prob_diff']:.4f}"
    )
    notes = [n for n in (cal["note"], test["note"]) if n]
    return lines + [f"note: {n}" for n in notes]
