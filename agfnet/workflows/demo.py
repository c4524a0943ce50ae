"""`agfnet demo`: the synthetic benchmark, AGFNet against single-modality and late fusion."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agfnet.engine.compare import CompareResult, run_compare
from agfnet.engine.config import load_config

log = logging.getLogger(__name__)

DEMO_MODELS = ("agfnet_tiny", "clinical_only_tiny", "ultrasound_only_tiny", "late_concat_tiny")


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: benchmark size, image size and training overrides."""

    n_per_class: int
    img_size: int
    overrides: tuple[str, ...]


# Sized to finish in under 10 minutes on two CPU cores (measured: docs/commands/demo.md).
FULL = DemoSize(n_per_class=100, img_size=64, overrides=("trainer.epochs=30",))
# 64 px, not 32: at 32 px the encoders' stride-8 stage is 4x4 and the maps too coarse.
QUICK = DemoSize(n_per_class=8, img_size=64, overrides=("trainer.epochs=1", "data.batch_size=8"))
# Test pairs whose Layer-CAM and ALL attention maps are scored (enough for the sign test
# against chance to be able to say yes), and how many of them the report shows.
N_EXPLAINED = 32
N_SHOWN = 4
DEMO_SEED = 11
# The fixed split of the demo: of 5 patient-grouped, stratified folds, one is the test
# set, one the validation set, three train.
SPLIT_OF_FOLD = ("test", "val", "train", "train", "train")


@dataclass(frozen=True)
class DemoResult:
    """What `run_demo` produced: the report's index.md, the comparison behind it and the
    summary of the explained test pairs (`agfnet.explain.run.run_explain`)."""

    index: Path
    compare: CompareResult
    bayes: dict[str, float]
    seconds: float
    explained: dict[str, Any]


def _benchmark(out: Path, size: DemoSize) -> tuple[Path, dict[str, Any]]:
    """Generate the benchmark and its split manifest (or reuse those of an earlier run).

    Returns:
        The path of manifest_split.csv and the content of synth.json.
    """
    from agfnet.data.synth import generate

    meta_path, split_path = out / "synth.json", out / "manifest_split.csv"
    wanted = {"n_per_class": size.n_per_class, "size": size.img_size, "seed": DEMO_SEED}
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if {k: meta.get(k) for k in wanted} != wanted or not split_path.is_file():
        generate(
            out,
            n_per_class=size.n_per_class,
            size=size.img_size,
            seed=DEMO_SEED,
            progress=True,
            overwrite=True,
        )
        _write_split_manifest(out / "manifest.csv", split_path)
        meta = json.loads(meta_path.read_text())
    return split_path, meta


def _write_split_manifest(manifest_path: Path, out: Path) -> None:
    """Copy the manifest with a `split` column from patient-grouped, stratified folds."""
    import csv

    from agfnet.data import assign_folds, read_manifest
    from agfnet.data.manifest import write_rows_csv

    manifest = read_manifest(manifest_path, check_images=False)
    folds = assign_folds(manifest, len(SPLIT_OF_FOLD), seed=DEMO_SEED)
    with open(manifest_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns, rows = list(reader.fieldnames or []), list(reader)
    for row, fold in zip(rows, folds, strict=True):
        row["split"] = SPLIT_OF_FOLD[fold]
    write_rows_csv(out, [*columns, "split"], rows)


def run_demo(out: str | Path = "demo", *, quick: bool = False) -> DemoResult:
    """Run the whole demo and write OUT/index.md.

    OUT/data is the synthetic benchmark with manifest_split.csv (a fixed train / val /
    test split, 60 / 20 / 20 %), OUT/compare the comparison of `DEMO_MODELS` on it
    (table.md/.csv/.json, table.png, one folder per model), OUT/index.md the report:
    test accuracies beside the Bayes-optimal accuracies of the benchmark, and what they
    mean. Rerunning reuses what an interrupted demo finished.

    Args:
        out: the demo folder.
        quick: a tiny version (seconds per model) for tests.

    Returns:
        A `DemoResult`.
    """
    start = time.monotonic()
    out = Path(out)
    size = QUICK if quick else FULL
    manifest, meta = _benchmark(out / "data", size)
    config = load_config(
        "tiny", [*size.overrides, f"data.img_size={size.img_size}"], seed=DEMO_SEED
    )
    result = run_compare(
        config, manifest, out / "compare", models=list(DEMO_MODELS), overwrite=True
    )
    explained = _explain(out, manifest)
    seconds = time.monotonic() - start
    bayes = {k: float(v) for k, v in meta["bayes_accuracy"].items()}
    index = out / "index.md"
    from agfnet.fileio import atomic_write_text

    text = _index_markdown(result, bayes, size, seconds, quick) + _explain_markdown(explained)
    atomic_write_text(index, text)
    return DemoResult(index, result, bayes, seconds, explained)


def _explain(out: Path, manifest: Path) -> dict[str, Any]:
    """Layer-CAM and ALL attention maps of agfnet_tiny on the first test pairs (OUT/explain)."""

    from agfnet.explain.run import run_explain

    checkpoint = out / "compare" / DEMO_MODELS[0] / "fixed" / "checkpoints" / "best.ckpt"
    summary = run_explain(
        checkpoint, manifest, out / "explain", n=N_EXPLAINED, split="test", attention=True
    )
    rows = json.loads((out / "explain" / "focus.json").read_text())["rows"]
    return {**summary, "overlays": [f"explain/{r['overlay']}" for r in rows[:N_SHOWN]]}


def _explain_markdown(explained: dict[str, Any]) -> str:
    from agfnet.explain.run import KIND_LABELS

    method = KIND_LABELS[explained["method"]]
    lines = [
        "## Where AGFNet looks",
        "",
        f"{method} of the predicted class (top row of each figure) and AGFNet's ALL "
        f"attention (bottom row), scored on the first {explained['n']} test pairs and "
        f"drawn for {len(explained['overlays'])} of them, with the lesion outlined "
        "(`agfnet explain`, docs/commands/explain.md). The maps show what the model "
        "used, not where the lesion is. Energy inside is the share of each map's mass "
        "inside the lesion; a uniform map would score the share of the image the lesion "
        "covers (chance), and lift is the ratio of the two. A map beats chance when its "
        "energy exceeds the lesion's share on more pairs than a coin would give (sign "
        "test, p < 0.05).",
        "",
        "| map | image | energy inside the lesion | chance (lesion share) | lift "
        "| pointing game | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    failing = []
    for kind, by_modality in explained["focus"].items():
        for modality, s in by_modality.items():
            lift = "n/a" if s["lift"] is None else f"{s['lift']:.2f}x"
            lines.append(
                f"| {KIND_LABELS[kind]} | {modality} | {_fmt(s['energy_inside'])} | "
                f"{_fmt(s['mask_fraction'])} | {lift} | {_fmt(s['pointing_game'])} | "
                f"{s['verdict']} |"
            )
            if s["verdict"] != "beats chance":
                failing.append(f"{KIND_LABELS[kind]} on the {modality} images ({s['verdict']})")
    if failing:
        lines += [
            "",
            "Not every map beats chance here: "
            + "; ".join(failing)
            + f". With {explained['n']} pairs the sign test needs at least 5 pairs above "
            "chance to call it; `agfnet explain --n 64` scores more.",
        ]
    lines += ["", *(f"![explained pair]({path})" for path in explained["overlays"])]
    lines += ["", "All maps, per-row scores and an HTML page: `explain/`.", ""]
    return "\n".join(lines)


def _accuracy(result: CompareResult, model: str) -> float:
    return result.table["models"][model]["summary"]["accuracy"]["mean"]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _gap(value: float, reference: float) -> str:
    return f"{abs(value - reference):.3f} {'above' if value >= reference else 'below'}"


def _index_markdown(
    result: CompareResult, bayes: dict[str, float], size: DemoSize, seconds: float, quick: bool
) -> str:
    metrics = result.table["metrics"]
    table = [
        "| model | " + " | ".join(metrics) + " |",
        "|" + " --- |" * (len(metrics) + 1),
        *(
            f"| {model} | " + " | ".join(_fmt(data["summary"][m]["mean"]) for m in metrics) + " |"
            for model, data in result.table["models"].items()
        ),
    ]
    n = 5 * size.n_per_class
    agf = _accuracy(result, "agfnet_tiny")
    single = max(_accuracy(result, m) for m in ("clinical_only_tiny", "ultrasound_only_tiny"))
    rows = [
        ("agfnet_tiny", "both images, attention-guided fusion", bayes["both"]),
        ("late_concat_tiny", "both images, pooled features concatenated", bayes["both"]),
        ("clinical_only_tiny", "the photograph only", bayes["clinical"]),
        ("ultrasound_only_tiny", "the ultrasound only", bayes["ultrasound"]),
    ]
    lines = [
        "# AGFNet demo on the synthetic benchmark" + (" (quick version)" if quick else ""),
        "",
        f"Written by `agfnet demo{' --quick' if quick else ''}`; this run took "
        f"{seconds / 60:.1f} minutes (a rerun reuses the benchmark and every finished "
        f"training). `data/` is a generated benchmark of {n} lesion pairs ({size.n_per_class} "
        f"per class, {size.img_size} px, seed {DEMO_SEED}): five simulated skin-tumour "
        "classes, each a combination of surface attributes seen in the clinical photograph "
        "and depth attributes seen in the ultrasound image. The class table is built so "
        "that the photograph alone confuses some pairs of classes and the ultrasound alone "
        "confuses others; only the pair of images separates all five (data/README.md). "
        "The images are simulated: no number here says anything about real patients.",
        "",
        "Each model was trained on the same 60% of the pairs, selected its best epoch on "
        "the same 20%, and was tested on the remaining 20%, which it never saw "
        "(data/manifest_split.csv: patient-grouped and stratified by class).",
        "",
        "## How far each model gets, and how far it could get",
        "",
        "The Bayes-optimal accuracy is the best any classifier can reach from the true "
        "latent attributes visible to it; attribute noise makes 100% impossible. A model "
        "at its bound has learned everything its images can tell.",
        "",
        "| model | sees | test accuracy | Bayes-optimal accuracy |",
        "| --- | --- | --- | --- |",
        *(
            f"| {model} | {sees} | {_accuracy(result, model):.3f} | {bound:.3f} |"
            for model, sees, bound in rows
        ),
        "",
        f"AGFNet's accuracy is {_gap(agf, single)} the better single-modality model's and "
        f"{_gap(agf, bayes['both'])} the Bayes-optimal accuracy of the pair.",
    ]
    if quick:
        lines += [
            "",
            "The quick version trains one epoch on a handful of tiny images: its numbers "
            "show that the pipeline runs, not what the models can learn. Run `agfnet demo` "
            "for the real thing.",
        ]
    lines += [
        "",
        "## All metrics on the test pairs",
        "",
        "One split, so no standard deviation and no paired test: `agfnet compare "
        "--folds 3` cross-validates instead (docs/results.md has such a table). Lower "
        "is better for ece, nll, brier and aurc (definitions: docs/commands/evaluate.md).",
        "",
        *table,
        "",
        "![comparison](compare/table.png)",
        "",
        "Files: `compare/table.csv`, `compare/table.json` (machine-readable); "
        "`compare/<model>/fixed/test/` (report, predictions.csv and plots of each model on "
        "the test pairs); `compare/<model>/fixed/checkpoints/best.ckpt` (load it with "
        "`agfnet evaluate` or `agfnet.runtime.load_model`).",
        "",
    ]
    return "\n".join(lines)
