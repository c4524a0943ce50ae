"""Certainty, focus and robustness of every model of a comparison (`agfnet analyze`).

`agfnet compare` gives each model's accuracy on the same folds. The paper's claims for
FRL are about more than accuracy: that it "corrects the focus of the network" and
improves "robustness and certainty". This module measures those on every fold's
held-out rows, with each fold's best checkpoint, so any two models of a comparison (an
ablation pair such as agfnet_tiny and agfnet_no_frl_tiny) can be set side by side:

- certainty (from the fold's test predictions, temperature applied): accuracy, ECE after
  and before temperature scaling, NLL, mean entropy of the correct and of the wrong
  predictions, how well entropy flags the wrong ones (ROC AUC), accuracy at 90% coverage;
- focus (`agfnet.explain`, rows with lesion masks): energy inside the lesion mask and
  pointing-game hit rate and lift over chance per modality, for the CAM (Layer-CAM by
  default) and, where the model has them, the ALL attention maps;
- robustness (`agfnet.evaluation.robustness`, one severity): accuracy under every
  corruption of the photograph, of the ultrasound image and of both, and with a modality
  missing where the model supports it.

Every measure is summarised as mean ± std over folds, with paired t-test and Wilcoxon
p-values against the first model (folds are paired: same rows).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agfnet.constants import LOWER_IS_BETTER
from agfnet.errors import UserError
from agfnet.progress import StepBar

log = logging.getLogger(__name__)

STEM = "analysis"
# (key in compute_metrics, name in the analysis)
CERTAINTY = (
    ("accuracy", "accuracy"),
    ("ece", "ece"),
    ("nll", "nll"),
    ("mean_entropy_correct", "mean_entropy_correct"),
    ("mean_entropy_wrong", "mean_entropy_wrong"),
    ("error_detection_auroc", "error_detection_auroc"),
    ("accuracy_at_90_coverage", "accuracy_at_90_coverage"),
)
FOCUS_SCORES = ("energy_inside", "pointing_game", "lift")
#: Measures with no better direction: a wrong prediction should be uncertain, but how
#: uncertain is a matter of calibration, not a score to maximise; the mask fraction is a
#: property of the data (the chance level of energy_inside).
NO_DIRECTION = frozenset(
    {"mean_entropy_wrong", "mask_fraction_clinical", "mask_fraction_ultrasound"}
)


def _certainty(fold_dir: Path, classes: list[str]) -> dict[str, Any]:
    """Certainty measures of the fold's held-out predictions (temperature applied).

    They come from test/metrics.json, written by the comparison from the full-precision
    probabilities; a measure an older agfnet did not write there is recomputed from
    test/predictions.csv (probabilities to 6 decimals).
    """
    saved = json.loads((fold_dir / "test" / "metrics.json").read_text())
    out = {name: saved[key] for key, name in CERTAINTY if key in saved}
    if len(out) < len(CERTAINTY):
        from agfnet.evaluation.metrics import compute_metrics

        path = fold_dir / "test" / "predictions.csv"
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["label"]]
        labels = np.array([classes.index(r["label"]) for r in rows])
        probs = np.array([[float(r[f"prob_{c}"]) for c in classes] for r in rows])
        probs /= probs.sum(axis=1, keepdims=True)  # undo the 6-digit rounding
        try:
            metrics = compute_metrics(labels, probs, classes)
        except ValueError as err:
            raise UserError(f"{path}: no certainty measures ({err})") from None
        out = {name: out.get(name, metrics[key]) for key, name in CERTAINTY}
    out["ece_before_temperature"] = saved.get("uncalibrated", {}).get("ece")
    out["temperature"] = saved.get("temperature")
    return out


def _focus(summary: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for kind, by_modality in summary["focus"].items():
        for modality, scores in by_modality.items():
            for score in FOCUS_SCORES:
                out[f"{kind}_{score}_{modality}"] = scores.get(score)
            # The energy a uniform map would put inside the mask: the chance level.
            out.setdefault(f"mask_fraction_{modality}", scores.get("mask_fraction"))
    return out


def _robustness(result: dict[str, Any], severity: int) -> dict[str, Any]:
    out = {}
    for r in result["conditions"]:
        if r["status"] != "ok":
            continue
        if r["family"] == "missing":
            out[f"accuracy_{r['target']}_missing"] = r["accuracy"]
        elif r["severity"] == severity:
            out[f"accuracy_{r['target']}_{r['family']}"] = r["accuracy"]
    for target, s in result["summary"].items():
        if target != "all":
            out[f"mean_corruption_accuracy_{target}"] = s["mean_corruption_accuracy"]
    return out


def _fold_names(compare_dir: Path) -> list[str]:
    """The comparison's folds: fold_<k> from folds.csv, or "fixed" (a manifest split)."""
    from agfnet.engine.cv import FOLDS_FILE, SPLIT_FILE

    if (compare_dir / FOLDS_FILE).is_file():
        with open(compare_dir / FOLDS_FILE, newline="") as f:
            return [f"fold_{k}" for k in sorted({int(r["fold"]) for r in csv.DictReader(f)})]
    if (compare_dir / SPLIT_FILE).is_file():
        return ["fixed"]
    raise UserError(
        f"{compare_dir} has neither {FOLDS_FILE} nor {SPLIT_FILE}: the comparison never "
        "started; run `agfnet compare` first"
    )


def _tested_positions(
    compare_dir: Path, models: Sequence[str], fold: str, manifest: Any, data: Path
) -> list[int]:
    """Positions in `manifest.rows` of the rows every model was tested on in `fold`.

    The rows are those of each model's test/predictions.csv (what certainty is computed
    from), checked to be the same for every model and to be rows of `data` with the
    same labels, so focus and robustness run on exactly those rows.

    Raises:
        UserError: an unfinished fold, models tested on different rows, or rows that
            `data` lacks or labels differently (another manifest).
    """
    by_number = {r.row: i for i, r in enumerate(manifest.rows)}
    reference: list[int] | None = None
    for model in models:
        fold_dir = compare_dir / model / fold
        predictions = fold_dir / "test" / "predictions.csv"
        if not predictions.is_file() or not (fold_dir / "checkpoints" / "best.ckpt").is_file():
            raise UserError(
                f"{fold_dir} is not finished (no test/predictions.csv or best.ckpt); "
                "rerun the same `agfnet compare` command to finish it"
            )
        with open(predictions, newline="") as f:
            tested = [(int(r["row"]), r["label"]) for r in csv.DictReader(f)]
        for number, label in tested:
            if number not in by_number or manifest.rows[by_number[number]].label != label:
                found = (
                    "no such row"
                    if number not in by_number
                    else (f"label {manifest.rows[by_number[number]].label!r}")
                )
                raise UserError(
                    f"row {number} of {predictions} (label {label!r}) does not match {data} "
                    f"({found}): give --data the manifest the comparison ran on"
                )
        rows = [number for number, _ in tested]
        if reference is not None and rows != reference:
            raise UserError(
                f"{model} was tested on other rows than {models[0]} in {fold}: the models "
                "of one comparison must share their folds; rerun `agfnet compare`"
            )
        reference = rows
    return [by_number[n] for n in reference or []]


def analyze_fold(
    fold_dir: Path,
    data: str | Path,
    positions: Sequence[int],
    out: Path,
    *,
    severity: int,
    n_explain: int,
    method: str,
    seed: int,
    batch_size: int,
    device: str | None,
) -> dict[str, Any]:
    """Every measure of one fold's best checkpoint on its test rows; writes `out`/explain
    and `out`/robustness."""
    from agfnet.data import read_manifest
    from agfnet.evaluation.robustness import evaluate_robustness, write_robustness
    from agfnet.explain.cam import has_attention_maps
    from agfnet.explain.run import run_explain
    from agfnet.runtime.checkpoint import load_model

    checkpoint = fold_dir / "checkpoints" / "best.ckpt"
    model, info = load_model(checkpoint)
    measures = _certainty(fold_dir, list(info.classes))
    summary = run_explain(
        checkpoint,
        data,
        out / "explain",
        n=n_explain,
        method=method,
        attention=has_attention_maps(model),
        positions=positions,
        batch_size=batch_size,
        device=device,
    )
    measures.update(_focus(summary))
    # `run_analysis` decoded every image of `data` already; this read only orders the
    # classes as the checkpoint does.
    manifest = read_manifest(
        data,
        classes=info.classes,
        require_labels=True,
        allow_missing_modality=True,
        check_images=False,
    )
    result = evaluate_robustness(
        model,
        info,
        manifest,
        positions,
        severities=[severity],
        seed=seed,
        batch_size=batch_size,
        device=device,
    )
    write_robustness(out / "robustness", result, title=f"Robustness of {fold_dir}")
    measures.update(_robustness(result, severity))
    return measures


def _markdown(data: dict[str, Any], title: str) -> str:
    from agfnet.evaluation.tables import format_mean_std

    models = data["models"]
    reference = models[0]
    lines = [f"# {title}", "", data["description"], ""]
    header = ["measure", *models] + [f"p vs {reference} (t / Wilcoxon)" for _ in models[1:2]]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for measure in data["measures"]:
        by_model = data["summary"][measure]
        arrow = "↓" if measure in LOWER_IS_BETTER else "" if measure in NO_DIRECTION else "↑"
        label = f"{measure} {arrow}".rstrip()
        cells = [format_mean_std(by_model[m], digits=3) for m in models]
        if len(models) > 1:
            t = data["tests"][models[1]][measure]
            p_t = "n/a" if t["p_ttest"] is None else f"{t['p_ttest']:.3g}"
            p_w = "n/a" if t["p_wilcoxon"] is None else f"{t['p_wilcoxon']:.3g}"
            cells.append(f"{p_t} / {p_w}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean ± standard deviation over folds; ↑ higher is better, ↓ lower is better. "
        "`mask_fraction_<modality>` is the share of the image inside the lesion mask: "
        "the energy a uniform map would put there (chance level of energy_inside); "
        "`<map>_lift_<modality>` is energy_inside over it (1 = chance). "
        "`mean_corruption_accuracy_<target>` is the mean over the four corruption "
        "families at the chosen severity. "
        "Per-fold values, the other models' p-values and the settings are in "
        f"{STEM}.json; explanations and robustness reports of every fold are in the "
        "model/fold folders.",
        "",
    ]
    return "\n".join(lines)


def run_analysis(
    compare_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    models: Sequence[str] | None = None,
    severity: int = 2,
    n_explain: int = 100,
    method: str = "layercam",
    seed: int = 0,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Analyse every model and fold of an `agfnet compare` folder (`agfnet analyze`).

    Args:
        compare_dir: the folder `agfnet compare` wrote (compare.json, folds.csv,
            <model>/fold_<k>/).
        data: the manifest the comparison was run on.
        out: folder for analysis.json/.md/.csv and OUT/<model>/<fold>/{explain,robustness}.
        models: which models (default: every model of the comparison); the first is
            the reference of the paired tests.
        severity: the corruption severity (1-3) of the robustness measures.
        n_explain: test rows explained per fold (the first n, in manifest order).
        method: CAM method ("layercam", the default, "gradcam" or "gradcam++").
        seed: corruption seed.
        batch_size: rows per forward pass.
        device: where to run; None picks a GPU when present.
        progress: show a progress bar over folds.

    Returns:
        The content of analysis.json: models, measures, per-fold values, summary (mean,
        std, n per measure and model) and paired tests against the first model.

    Raises:
        UserError: not a compare folder, an unknown model, or an unfinished fold.
    """
    from agfnet.data import read_manifest
    from agfnet.evaluation.robustness import parse_severities
    from agfnet.evaluation.tables import paired_tests, summarize_folds
    from agfnet.fileio import write_json

    compare_dir, out = Path(compare_dir), Path(out)
    state_file = compare_dir / "compare.json"
    if not state_file.is_file():
        raise UserError(
            f"{compare_dir} is not an `agfnet compare` folder (no compare.json); give the "
            "--out folder of an `agfnet compare` run"
        )
    known = json.loads(state_file.read_text())["models"]
    models = list(models or known)
    unknown = [m for m in models if m not in known]
    if unknown:
        raise UserError(
            f"{', '.join(unknown)}: not in the comparison {compare_dir} (its models: "
            f"{', '.join(known)})"
        )
    (severity,) = parse_severities(str(severity))
    manifest = read_manifest(data, require_labels=True, allow_missing_modality=True)
    tests = {
        name: _tested_positions(compare_dir, models, name, manifest, Path(data))
        for name in _fold_names(compare_dir)
    }
    per_fold: dict[str, list[dict[str, Any]]] = {}
    jobs = [(m, name) for m in models for name in tests]
    with StepBar("analysing folds", len(jobs), enabled=progress) as bar:
        for model, name in jobs:
            fold_dir = compare_dir / model / name
            log.info("%s %s: %d test rows", model, name, len(tests[name]))
            measures = analyze_fold(
                fold_dir,
                data,
                tests[name],
                out / model / name,
                severity=severity,
                n_explain=n_explain,
                method=method,
                seed=seed,
                batch_size=batch_size,
                device=device,
            )
            per_fold.setdefault(model, []).append(measures)
            bar.advance()
    # Every measure any model has, in first-seen order; a model without one (no ALL
    # attention, no modality dropout) gets None there, shown as n/a.
    names = list(dict.fromkeys(k for fs in per_fold.values() for f in fs for k in f))
    names.remove("temperature")
    for folds_of_model in per_fold.values():
        for fold in folds_of_model:
            for k in names:
                fold.setdefault(k, None)
    summary = {k: {m: summarize_folds(per_fold[m], [k])[k] for m in models} for k in names}
    data_out = {
        "compare": str(compare_dir),
        "data": str(data),
        "models": models,
        "folds": list(tests),
        "settings": {
            "severity": severity,
            "n_explain": n_explain,
            "method": method,
            "seed": seed,
        },
        "description": (
            f"{len(models)} models, {len(tests)} folds of {compare_dir}: certainty of the "
            f"held-out predictions (temperature applied), focus of {method} and ALL "
            f"attention maps on up to {n_explain} held-out rows per fold with lesion "
            f"masks, accuracy under every corruption at severity {severity}."
        ),
        "measures": names,
        "per_fold": per_fold,
        "summary": summary,
        "tests": {
            m: {
                k: paired_tests(summary[k][m]["values"], summary[k][models[0]]["values"])
                for k in names
            }
            for m in models[1:]
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{STEM}.json", data_out)
    with open(out / f"{STEM}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["measure", "model", "mean", "std", "n", *data_out["folds"]])
        for k in names:
            for m in models:
                s = summary[k][m]
                writer.writerow([k, m, s["mean"], s["std"], s["n"], *s["values"]])
    (out / f"{STEM}.md").write_text(
        _markdown(data_out, f"Analysis of {compare_dir}"), encoding="utf-8"
    )
    return data_out
