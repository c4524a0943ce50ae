"""`agfnet robustness`: a checkpoint under image corruptions and missing modalities.

Every condition is one pass over the same manifest rows: clean; each corruption family
(`corruptions.FAMILIES`) on the photograph, on the ultrasound image, and on both at once,
at each severity; and each modality removed. The corruptions act on the decoded images,
before the checkpoint's evaluation transform, through `CorruptedPairs`, a wrapper of
`PairedLesionDataset`. The checkpoint's temperature is applied to every probability.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from agfnet.data import PairedLesionDataset
from agfnet.data.manifest import MODALITIES
from agfnet.errors import UserError
from agfnet.evaluation.corruptions import CORRUPTIONS, FAMILIES, MAX_SEVERITY, row_rng
from agfnet.evaluation.metrics import to_jsonable
from agfnet.evaluation.report import format_value, markdown_table
from agfnet.progress import StepBar

__all__ = [
    "METRIC_KEYS",
    "OUTPUTS",
    "TARGETS",
    "Condition",
    "CorruptedPairs",
    "build_conditions",
    "evaluate_robustness",
    "parse_severities",
    "run_robustness",
    "write_robustness",
]

TARGETS = ("clinical", "ultrasound", "both")
# What each condition reports, from `compute_metrics`.
METRIC_KEYS = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "ece",
    "nll",
    "brier",
    "mean_confidence",
    "mean_entropy",
)
OUTPUTS = ("robustness.json", "robustness.csv", "robustness.md", "robustness.png")
CSV_COLUMNS = (
    "condition",
    "target",
    "family",
    "corruption",
    "severity",
    "status",
    "n",
    *METRIC_KEYS,
    "accuracy_drop",
    "relative_accuracy_drop",
    "agreement_with_clean",
    "reason",
)
OK, NOT_SUPPORTED, NOT_EVALUATED = "ok", "not supported", "not evaluated"


@dataclass(frozen=True)
class Condition:
    """One evaluation condition.

    Attributes:
        target: "none" (clean), "clinical", "ultrasound" or "both".
        family: "clean", a key of `FAMILIES`, or "missing".
        severity: 1..MAX_SEVERITY for corruptions; 0 for clean and missing.
    """

    target: str
    family: str
    severity: int = 0

    @property
    def name(self) -> str:
        """ "clean", "clinical/missing" or "<target>/<family>/<severity>"."""
        if self.family == "clean":
            return "clean"
        if self.family == "missing":
            return f"{self.target}/missing"
        return f"{self.target}/{self.family}/{self.severity}"

    @property
    def corruptions(self) -> dict[str, str]:
        """modality -> name of the corruption applied to it (empty for clean and missing)."""
        if self.family not in FAMILIES:
            return {}
        pair = FAMILIES[self.family]
        return {m: pair[m] for m in MODALITIES if self.target in (m, "both")}

    @property
    def dropped(self) -> str | None:
        """The modality removed, for the missing-modality conditions."""
        return self.target if self.family == "missing" else None

    @property
    def label(self) -> str:
        """What is applied: "none", "missing", "speckle" or "gaussian_noise+speckle"."""
        if self.family == "clean":
            return "none"
        return self.family if self.family == "missing" else "+".join(self.corruptions.values())


def parse_severities(text: str) -> list[int]:
    """Parse `--severities` ("1,2,3").

    Args:
        text: comma-separated integers in 1..MAX_SEVERITY.

    Returns:
        The sorted distinct severities.

    Raises:
        UserError: an empty list, a non-integer or a value out of range.
    """
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or not all(1 <= v <= MAX_SEVERITY for v in values):
        raise UserError(
            f"--severities {text!r}: give comma-separated integers from 1 to {MAX_SEVERITY}, "
            "e.g. --severities 1,2,3"
        )
    return values


def build_conditions(severities: Sequence[int]) -> list[Condition]:
    """Clean, then every target x family x severity, then each modality missing.

    Args:
        severities: values in 1..MAX_SEVERITY.

    Returns:
        The conditions, clean first.
    """
    corrupted = [
        Condition(target, family, s)
        for target in TARGETS
        for family in FAMILIES
        for s in severities
    ]
    missing = [Condition(m, "missing") for m in MODALITIES]
    return [Condition("none", "clean"), *corrupted, *missing]


def _decoded(
    clinical: Image.Image | None, ultrasound: Image.Image | None
) -> tuple[Image.Image | None, Image.Image | None]:
    """A stand-in for `PairTransform` that hands the decoded images through unchanged."""
    return clinical, ultrasound


class CorruptedPairs(Dataset):
    """`PairedLesionDataset` samples with the condition applied to the decoded images.

    The wrapped dataset decodes the images (its transform hands them through); this
    class corrupts them, each with the generator of its row and modality (`row_rng`),
    or removes the dropped modality (zeros, `present` False, as the data contract says),
    then applies the evaluation transform.

    Args:
        manifest: a validated `Manifest`.
        indices: positions into `manifest.rows`.
        transform: the checkpoint's evaluation `PairTransform`.
        condition: what to apply.
        seed: run seed (>= 0).
        frame: ultrasound frame, as for `PairedLesionDataset`.

    A sample is a dict as from `PairedLesionDataset`: clinical, ultrasound float32
    (3, S, S); present bool (2,); label; row; lesion_id.
    """

    def __init__(
        self,
        manifest: Any,
        indices: Sequence[int],
        transform: Any,
        condition: Condition,
        seed: int,
        *,
        frame: int = 0,
    ) -> None:
        self.pairs = PairedLesionDataset(manifest, indices, transform=_decoded, frame=frame)
        self.transform = transform
        self.condition = condition
        self.seed = seed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.pairs[index]
        images = {m: sample[m] for m in MODALITIES}
        severity = self.condition.severity
        for modality, name in self.condition.corruptions.items():
            if images[modality] is not None:
                rng = row_rng(self.seed, sample["row"], modality)
                images[modality] = CORRUPTIONS[name](images[modality], severity, rng)
        if self.condition.dropped:
            images[self.condition.dropped] = None
            sample["present"][MODALITIES.index(self.condition.dropped)] = False
        sample["clinical"], sample["ultrasound"] = self.transform(
            images["clinical"], images["ultrasound"]
        )
        return sample


def _positions_for(condition: Condition, manifest: Any, positions: Sequence[int]) -> list[int]:
    """Rows a condition can be evaluated on: all, except that removing a modality needs
    the other one present."""
    if condition.dropped is None:
        return list(positions)
    other = 1 - MODALITIES.index(condition.dropped)
    return [i for i in positions if manifest.rows[i].present[other]]


def _record(
    condition: Condition,
    status: str,
    *,
    reason: str | None = None,
    scores: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    record = {
        "condition": condition.name,
        "target": condition.target,
        "family": condition.family,
        "corruption": condition.label,
        "severity": condition.severity if condition.family in FAMILIES else None,
        "parameters": {
            m: CORRUPTIONS[c].params(condition.severity) for m, c in condition.corruptions.items()
        },
        "status": status,
        "reason": reason,
        "n": 0,
        **dict.fromkeys(METRIC_KEYS),
        "accuracy_drop": None,
        "relative_accuracy_drop": None,
        "agreement_with_clean": None,
    }
    record.update(scores or {})
    return record


def _scores(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    clean_prediction: np.ndarray | None,
) -> dict[str, Any]:
    """Metrics of one condition and, given the clean predictions of the same rows
    (None for the clean pass itself), its drop from clean and its agreement with it."""
    from agfnet.evaluation.metrics import compute_metrics

    metrics = compute_metrics(labels, probs, classes)
    scores = {"n": metrics["n"], **{k: metrics[k] for k in METRIC_KEYS}}
    if clean_prediction is not None:
        prediction = probs.argmax(1)
        # In float64 from the predictions, so that an unchanged accuracy drops by exactly 0.
        clean_accuracy = float(np.mean(clean_prediction == labels))
        drop = clean_accuracy - float(np.mean(prediction == labels))
        scores["accuracy_drop"] = drop
        scores["relative_accuracy_drop"] = drop / clean_accuracy if clean_accuracy else None
        scores["agreement_with_clean"] = float(np.mean(prediction == clean_prediction))
    return scores


def _run_condition(
    model: torch.nn.Module,
    info: Any,
    manifest: Any,
    positions: Sequence[int],
    condition: Condition,
    clean_prediction: np.ndarray | None,
    *,
    transform: Any,
    seed: int,
    batch_size: int,
    device: torch.device,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """One pass. Returns its record and its predicted classes over the rows it ran on
    (None when it was not run); `clean_prediction` (N,) is that of the clean pass over
    `positions` (None for the clean pass itself)."""
    from agfnet.engine.evaluate import predict
    from agfnet.evaluation.calibration import apply_temperature

    chosen = _positions_for(condition, manifest, positions)
    if condition.dropped and not model.supports_missing:
        reason = (
            f"model {info.build_spec['name']} was built without modality dropout and cannot "
            "replace a missing image; train it with model.overrides.modality_dropout > 0 "
            "to measure this"
        )
        return _record(condition, NOT_SUPPORTED, reason=reason), None
    if len({manifest.rows[i].target for i in chosen}) < 2:
        reason = f"{len(chosen)} rows have the other image, with fewer than two classes"
        return _record(condition, NOT_EVALUATED, reason=reason), None
    dataset = CorruptedPairs(manifest, chosen, transform, condition, seed)
    try:
        preds = predict(model, dataset, batch_size=batch_size, device=device)
    except UserError as err:
        if not condition.dropped:
            raise
        # The model refuses the input: a single-modality model losing its only one.
        return _record(condition, NOT_SUPPORTED, reason=str(err)), None
    probs = apply_temperature(preds.logits, info.temperature)
    reference = None
    if clean_prediction is not None:
        reference = clean_prediction[np.isin(positions, chosen)]
    scores = _scores(preds.labels, probs, info.classes, reference)
    return _record(condition, OK, scores=scores), probs.argmax(1)


def summarize(records: Sequence[Mapping[str, Any]], clean_accuracy: float) -> dict[str, Any]:
    """mCE-style figures per target over the corruption conditions evaluated.

    Per family f, CE_f is the mean error over severities and the relative CE_f the mean
    increase in error over clean, as in Hendrycks and Dietterich (ICLR 2019) but not
    normalised by a baseline model (divide two models' figures to get that).

    Args:
        records: the condition records (as in robustness.json).
        clean_accuracy: accuracy of the clean pass.

    Returns:
        {target or "all": {mean_corruption_accuracy, mean_corruption_error,
        relative_mean_corruption_error, mean_relative_accuracy_drop, mean_ece,
        corruption_error {family: CE_f}, relative_corruption_error {family: ...},
        worst {condition, accuracy}, n_conditions}}.
    """
    summary: dict[str, Any] = {}
    for target in (*TARGETS, "all"):
        chosen = [
            r
            for r in records
            if r["family"] in FAMILIES and r["status"] == OK and target in (r["target"], "all")
        ]
        if not chosen:
            continue
        error = {
            f: [1.0 - r["accuracy"] for r in chosen if r["family"] == f]
            for f in FAMILIES
            if any(r["family"] == f for r in chosen)
        }
        ce = {f: float(np.mean(e)) for f, e in error.items()}
        rce = {f: v - (1.0 - clean_accuracy) for f, v in ce.items()}
        relative = [r["relative_accuracy_drop"] for r in chosen]
        worst = min(chosen, key=lambda r: r["accuracy"])
        summary[target] = {
            "mean_corruption_accuracy": float(np.mean([r["accuracy"] for r in chosen])),
            "mean_corruption_error": float(np.mean(list(ce.values()))),
            "relative_mean_corruption_error": float(np.mean(list(rce.values()))),
            "mean_relative_accuracy_drop": (
                float(np.mean(relative)) if None not in relative else None
            ),
            "mean_ece": float(np.mean([r["ece"] for r in chosen])),
            "corruption_error": ce,
            "relative_corruption_error": rce,
            "worst": {"condition": worst["condition"], "accuracy": worst["accuracy"]},
            "n_conditions": len(chosen),
        }
    return summary


def evaluate_robustness(
    model: torch.nn.Module,
    info: Any,
    manifest: Any,
    positions: Sequence[int],
    *,
    severities: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run a loaded model on some manifest rows under every condition.

    A missing-modality condition is "not supported" when the model was built without
    modality dropout (it has no absent embedding to stand in), or when the model refuses
    it (a single-modality model losing its only input); it is evaluated on the rows whose
    other image is present.

    Args:
        model: the network from `load_model`.
        info: its `CheckpointInfo` (classes, transform, temperature, build_spec).
        manifest: a labeled manifest validated against `info.classes`.
        positions: the rows (positions in `manifest.rows`).
        severities: severities to run, in 1..MAX_SEVERITY.
        seed: seed of the corruptions (each row and modality gets its own stream).
        batch_size: inference batch size.
        device: where to run; None picks a GPU when present.
        progress: show a progress bar (one step per condition).

    Returns:
        The content of robustness.json: settings, `clean` (metrics), `conditions` (one
        record per condition, clean first), `summary` (see `summarize`), `families`,
        `corruptions` (their parameters per severity).

    Raises:
        UserError: fewer than two classes among the rows' labels.
    """
    from agfnet.data import TransformConfig, build_transforms
    from agfnet.engine.evaluate import resolve_device

    labels_all = np.array([manifest.rows[i].target for i in positions])
    if np.unique(labels_all[labels_all >= 0]).size < 2:
        raise UserError(
            f"{manifest.path}: the {len(positions)} rows evaluated hold fewer than two classes; "
            "robustness metrics need labels of at least two classes (use --split all or "
            "another manifest)"
        )
    conditions = build_conditions(severities)
    common = {
        "transform": build_transforms(TransformConfig(**info.transform), train=False),
        "seed": seed,
        "batch_size": batch_size,
        "device": resolve_device(device),
    }
    records: list[dict[str, Any]] = []
    clean_prediction = None
    bar = StepBar("robustness", len(conditions), enabled=progress).start()
    try:
        for condition in conditions:
            bar.describe(f"robustness: {condition.name}")
            record, prediction = _run_condition(
                model, info, manifest, positions, condition, clean_prediction, **common
            )
            if condition.family == "clean":
                clean_prediction = prediction
            records.append(record)
            bar.advance()
    finally:
        bar.stop()
    clean = {k: records[0][k] for k in ("n", *METRIC_KEYS)}
    return {
        "checkpoint": info.path,
        "model": info.build_spec["name"],
        "classes": list(info.classes),
        "temperature": info.temperature,
        "seed": seed,
        "severities": list(severities),
        "n": len(positions),
        "supports_missing": bool(model.supports_missing),
        "clean": clean,
        "conditions": records,
        "summary": summarize(records, clean["accuracy"]),
        "families": {f: dict(pair) for f, pair in FAMILIES.items()},
        "corruptions": {
            c.name: {
                "modality": c.modality,
                "description": c.description,
                "parameters": {str(s): c.params(s) for s in range(1, MAX_SEVERITY + 1)},
            }
            for c in CORRUPTIONS.values()
        },
    }


def _fmt(value: Any) -> str:
    return format_value(value, 3)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return markdown_table(header, rows, digits=3)


def _markdown(result: Mapping[str, Any], title: str) -> str:
    clean = result["clean"]
    lines = [
        f"# {title}",
        "",
        f"Model `{result['model']}`, {result['n']} rows, temperature "
        f"{result['temperature']:.3f}, seed {result['seed']}, severities "
        f"{', '.join(map(str, result['severities']))}. Drop = clean accuracy minus accuracy; "
        "agreement = share of predictions equal to the clean ones.",
        "",
        "## Clean",
        "",
        *_md_table(
            ["n", *METRIC_KEYS],
            [[clean["n"], *(clean[k] for k in METRIC_KEYS)]],
        ),
        "",
        "## Summary",
        "",
        "Mean over the corruption families and severities of each target; CE (corruption "
        "error) and relative CE as in ImageNet-C, not normalised by a baseline model.",
        "",
        *_md_table(
            [
                "target",
                "mean acc.",
                "mean CE",
                "relative mCE",
                "mean rel. drop",
                "mean ECE",
                "worst",
            ],
            [
                [
                    target,
                    s["mean_corruption_accuracy"],
                    s["mean_corruption_error"],
                    s["relative_mean_corruption_error"],
                    s["mean_relative_accuracy_drop"],
                    s["mean_ece"],
                    f"{s['worst']['condition']} ({s['worst']['accuracy']:.3f})",
                ]
                for target, s in result["summary"].items()
            ],
        ),
    ]
    columns = ["accuracy", "accuracy_drop", "balanced_accuracy", "ece", "nll", "mean_entropy"]
    for target in TARGETS:
        rows = [r for r in result["conditions"] if r["target"] == target and r["status"] == OK]
        rows = [r for r in rows if r["family"] in FAMILIES]
        if not rows:
            continue
        lines += ["", f"## Corrupted: {target}", ""]
        lines += _md_table(
            ["corruption", "severity", *columns, "agreement"],
            [
                [
                    r["corruption"],
                    r["severity"],
                    *(r[k] for k in columns),
                    r["agreement_with_clean"],
                ]
                for r in rows
            ],
        )
    missing = [r for r in result["conditions"] if r["family"] == "missing"]
    lines += ["", "## Missing modality", ""]
    lines += _md_table(
        ["removed", "status", "n", *columns, "agreement"],
        [
            [r["target"], r["status"], r["n"], *(r[k] for k in columns), r["agreement_with_clean"]]
            for r in missing
        ],
    )
    reasons = [f"- {r['target']}: {r['reason']}" for r in missing if r["reason"]]
    if reasons:
        lines += ["", *reasons]
    lines += ["", "## Corruptions", ""]
    lines += _md_table(
        ["corruption", "modality", "what", *(f"severity {s}" for s in range(1, MAX_SEVERITY + 1))],
        [
            [
                name,
                c["modality"],
                c["description"],
                *(
                    ", ".join(f"{k} {v:g}" for k, v in c["parameters"][str(s)].items())
                    for s in range(1, MAX_SEVERITY + 1)
                ),
            ]
            for name, c in result["corruptions"].items()
        ],
    )
    lines += ["", "Pairs applied together on `both`:", ""]
    lines += [f"- {f}: {p['clinical']} + {p['ultrasound']}" for f, p in result["families"].items()]
    lines += ["", "![accuracy and ECE against severity](robustness.png)", ""]
    return "\n".join(lines)


def _csv(records: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for r in records:
        writer.writerow({k: "" if r[k] is None else r[k] for k in CSV_COLUMNS})
    return buffer.getvalue()


def plot_robustness(result: Mapping[str, Any], path: str | Path) -> Path:
    """Accuracy (top) and ECE (bottom) against severity, one panel per target modality.

    One line per corruption family (same colour in every panel), starting from the clean
    value at severity 0; the clean value is a grey dashed line and, where evaluated, the
    missing-modality value of that panel's modality a dotted line.

    Args:
        result: the content of robustness.json.
        path: PNG to write.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from agfnet.evaluation.plots import DPI, save_figure

    fig = Figure(figsize=(12.0, 6.5), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(TARGETS), sharex=True, sharey="row", squeeze=False)
    clean = result["clean"]
    colours = dict(zip(FAMILIES, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True))
    severities = [0, *result["severities"]]
    by_name = {r["condition"]: r for r in result["conditions"]}
    for col, target in enumerate(TARGETS):
        for row, metric in enumerate(("accuracy", "ece")):
            ax = axes[row, col]
            ax.axhline(clean[metric], color="grey", ls="--", lw=1.0, label="clean")
            missing = by_name.get(f"{target}/missing")
            if missing is not None and missing["status"] == OK:
                ax.axhline(
                    missing[metric], color="black", ls=":", lw=1.2, label=f"{target} missing"
                )
            for family in FAMILIES:
                records = [by_name[Condition(target, family, s).name] for s in severities[1:]]
                values = [clean[metric]] + [
                    r[metric] if r["status"] == OK else np.nan for r in records
                ]
                ax.plot(
                    severities,
                    values,
                    marker="o",
                    color=colours[family],
                    label=records[0]["corruption"],
                )
            ax.set_xticks(severities)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"corrupted: {target}")
                ax.legend(fontsize="x-small", loc="best")
            else:
                ax.set_xlabel("severity (0 = clean)")
            if col == 0:
                ax.set_ylabel(metric if metric == "accuracy" else "ECE")
    axes[0, 0].set_ylim(0.0, 1.02)
    return save_figure(fig, path)


def write_robustness(
    out: str | Path, result: Mapping[str, Any], *, title: str = "Robustness"
) -> None:
    """Write robustness.json, .csv, .md and .png to `out`.

    Everything is staged in a temporary folder inside `out` and moved into place once
    every file is written, so a failure leaves earlier outputs as they were.

    Args:
        out: folder (created if needed).
        result: `evaluate_robustness` output.
        title: heading of robustness.md.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".robustness-", dir=out))
    try:
        data = to_jsonable(result)
        (stage / OUTPUTS[0]).write_text(
            json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        (stage / OUTPUTS[1]).write_text(_csv(data["conditions"]), encoding="utf-8", newline="")
        (stage / OUTPUTS[2]).write_text(_markdown(data, title), encoding="utf-8")
        plot_robustness(data, stage / OUTPUTS[3])
        for name in OUTPUTS:
            os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def run_robustness(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str | None = "test",
    severities: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a checkpoint under every condition and write the outputs (`agfnet robustness`).

    Args:
        checkpoint: a best.ckpt / last.ckpt of `agfnet train`.
        data: labeled manifest CSV; labels must be classes of the checkpoint.
        out: folder for robustness.json, .csv, .md and .png.
        split: rows of this `split` value when the manifest has the column; None (or a
            manifest without the column) takes every row.
        severities: in 1..MAX_SEVERITY.
        seed: corruption seed.
        batch_size: inference batch size.
        device: where to run; None picks a GPU when present.
        progress: show a progress bar.

    Returns:
        The content of robustness.json.
    """
    from agfnet.data import read_manifest
    from agfnet.engine.checkpoint import load_model
    from agfnet.engine.evaluate import split_positions
    from agfnet.engine.train import check_modalities

    if seed < 0:
        raise UserError(f"--seed {seed}: use a seed >= 0")
    model, info = load_model(checkpoint)
    manifest = read_manifest(
        data, classes=info.classes, require_labels=True, allow_missing_modality=True
    )
    positions = split_positions(manifest, split)
    check_modalities(manifest, positions, model)
    result = evaluate_robustness(
        model,
        info,
        manifest,
        positions,
        severities=severities,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    result = {"data": str(data), "split": split if manifest.has_split else None, **result}
    title = (
        f"Robustness of {Path(checkpoint).name} ({info.build_spec['name']}) on {Path(data).name}"
    )
    write_robustness(out, result, title=title)
    return result
