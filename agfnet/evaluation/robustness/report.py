"""The outputs of `agfnet robustness`: robustness.json, .csv, .md and .png."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agfnet.evaluation.corruptions import FAMILIES, MAX_SEVERITY
from agfnet.evaluation.metrics import to_jsonable
from agfnet.evaluation.report import format_value, markdown_table
from agfnet.evaluation.robustness.conditions import METRIC_KEYS, OK, TARGETS, Condition
from agfnet.fileio import install_files

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
    with install_files(out, OUTPUTS) as stage:
        data = to_jsonable(result)
        (stage / OUTPUTS[0]).write_text(
            json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        (stage / OUTPUTS[1]).write_text(_csv(data["conditions"]), encoding="utf-8", newline="")
        (stage / OUTPUTS[2]).write_text(_markdown(data, title), encoding="utf-8")
        plot_robustness(data, stage / OUTPUTS[3])
