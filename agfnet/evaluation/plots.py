"""Figures of an evaluation: confusion matrix, ROC, reliability, risk-coverage, comparison.

Each function draws on its own `Figure` with the Agg canvas (no pyplot, so no global
state and no display) and writes a PNG atomically. matplotlib is imported inside the
functions so that importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agfnet.evaluation.selective import aurc, risk_coverage_curve
from agfnet.fileio import atomic_file

DPI = 120


def _figure(
    width: float, height: float, *, rows: int = 1, height_ratios: Sequence[int] = ()
) -> tuple[Any, list[Any]]:
    """A constrained-layout Figure on an Agg canvas and its axes (one per row)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, height_ratios=list(height_ratios) or None, squeeze=False)
    return fig, list(axes[:, 0])


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write `fig` as a PNG at `path` through a temporary file and `os.replace`.

    Args:
        fig: a matplotlib Figure.
        path: destination; its folder must exist.

    Returns:
        The path written.
    """
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png")
    return Path(path)


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path
) -> Path:
    """Confusion matrix: counts printed, colour = fraction of the true class (row).

    Args:
        confusion: int (K, K), rows true class, columns predicted class.
        classes: the K class names.
        path: PNG to write.

    Returns:
        The path written.
    """
    cm = np.asarray(confusion, dtype=np.int64)
    rate = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    size = 2.5 + 0.6 * k
    fig, (ax,) = _figure(size + 1.0, size)
    image = ax.imshow(rate, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if rate[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(k), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    return save_figure(fig, path)


def plot_roc(
    labels: np.ndarray, probs: np.ndarray, classes: Sequence[str], path: str | Path
) -> Path:
    """One-vs-rest ROC curve of every class present in `labels`, and their macro average.

    The macro curve is the mean true-positive rate of the class curves on a common grid of
    false-positive rates; its legend gives the mean of the class AUCs (= macro_auc).

    Args:
        labels: int (N,) in [0, K).
        probs: float (N, K).
        classes: the K class names.
        path: PNG to write.

    Returns:
        The path written.
    """
    import torch
    from torchmetrics.functional.classification import binary_auroc, binary_roc

    grid = np.linspace(0.0, 1.0, 201)
    fig, (ax,) = _figure(5.5, 5.0)
    tprs, aucs = [], []
    for c, name in enumerate(classes):
        positive = labels == c
        if not positive.any():
            continue
        scores, target = torch.from_numpy(probs[:, c]), torch.from_numpy(positive.astype(np.int64))
        fpr, tpr, _ = binary_roc(scores, target)
        fpr, tpr = fpr.double().numpy(), tpr.double().numpy()
        aucs.append(float(binary_auroc(scores, target)))
        tprs.append(np.interp(grid, fpr, tpr))
        ax.plot(fpr, tpr, lw=1.2, label=f"{name} (AUC {aucs[-1]:.3f})")
    ax.plot(
        grid, np.mean(tprs, axis=0), color="black", lw=2.0, label=f"macro (AUC {np.mean(aucs):.3f})"
    )
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1.0)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate (1 - specificity)")
    ax.set_ylabel("true-positive rate (sensitivity)")
    ax.set_title("ROC, one class vs the rest")
    ax.legend(loc="lower right", fontsize="small")
    return save_figure(fig, path)


def plot_reliability(
    bins: Sequence[Mapping[str, Any]], path: str | Path, *, ece: float | None = None
) -> Path:
    """Reliability diagram (accuracy vs confidence per bin) above a confidence histogram.

    Args:
        bins: `calibration.reliability_bins` output.
        path: PNG to write.
        ece: shown in the title when given.

    Returns:
        The path written.
    """
    lower = np.array([b["lower"] for b in bins])
    width = np.array([b["upper"] for b in bins]) - lower
    count = np.array([b["count"] for b in bins])
    filled = count > 0
    accuracy = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
    confidence = np.array([b["confidence"] if b["count"] else 0.0 for b in bins])
    fig, (top, bottom) = _figure(5.5, 6.0, rows=2, height_ratios=(3, 1))
    top.bar(
        lower[filled],
        accuracy[filled],
        width=width[filled],
        align="edge",
        edgecolor="black",
        color="tab:blue",
        alpha=0.8,
        label="accuracy",
    )
    top.scatter(
        confidence[filled],
        accuracy[filled],
        color="tab:red",
        zorder=3,
        s=14,
        label="(mean confidence, accuracy)",
    )
    top.plot([0, 1], [0, 1], color="grey", ls="--", lw=1.0, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title("Reliability" + (f" (ECE {ece:.3f})" if ece is not None else ""))
    top.legend(loc="upper left", fontsize="small")
    bottom.bar(lower, count, width=width, align="edge", edgecolor="black", color="tab:grey")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("top-class confidence")
    bottom.set_ylabel("samples")
    return save_figure(fig, path)


def plot_risk_coverage(
    confidence: np.ndarray, correct: np.ndarray, path: str | Path, *, coverage: float = 0.9
) -> Path:
    """Risk-coverage curve of the model beside the oracle that ranks every error last.

    Args:
        confidence: float (N,), higher = more confident.
        correct: bool (N,).
        path: PNG to write.
        coverage: a coverage to mark with a vertical line.

    Returns:
        The path written.
    """
    correct = np.asarray(correct, dtype=bool)
    curve = risk_coverage_curve(confidence, correct)
    # Confidence = correctness ranks every right answer first: the best reachable curve.
    oracle = risk_coverage_curve(correct.astype(np.float64), correct)
    fig, (ax,) = _figure(5.5, 4.5)
    ax.plot(
        curve.coverage, curve.risk, lw=1.8, label=f"model (AURC {aurc(confidence, correct):.4f})"
    )
    ax.plot(
        oracle.coverage,
        oracle.risk,
        color="grey",
        ls="--",
        lw=1.2,
        label=f"oracle ranking (AURC {aurc(correct.astype(np.float64), correct):.4f})",
    )
    ax.axvline(coverage, color="tab:red", ls=":", lw=1.0, label=f"{coverage:.0%} coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(float(curve.risk.max()) * 1.1, 0.05))
    ax.set_xlabel("coverage (fraction of samples answered, most confident first)")
    ax.set_ylabel("risk (error rate among answered)")
    ax.set_title("Selective prediction")
    ax.legend(loc="upper left", fontsize="small")
    return save_figure(fig, path)


def plot_comparison(
    summaries: Mapping[str, Mapping[str, Mapping[str, Any]]],
    path: str | Path,
    *,
    metrics: Sequence[str] = ("accuracy", "macro_f1"),
) -> Path:
    """Grouped bars: mean +- std over folds of each metric, one bar per model.

    Args:
        summaries: {model: `tables.summarize_folds` output}.
        path: PNG to write.
        metrics: the metrics to show, one group of bars each.

    Returns:
        The path written.
    """
    models = list(summaries)
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(metrics))
    fig, (ax,) = _figure(max(5.0, 1.2 + 0.5 * len(models) * len(metrics)), 4.5)
    for i, model in enumerate(models):
        stats = [summaries[model].get(m, {}) for m in metrics]
        mean = [s.get("mean") if s.get("mean") is not None else np.nan for s in stats]
        std = [s.get("std") if s.get("std") is not None else 0.0 for s in stats]
        ax.bar(
            x + (i - (len(models) - 1) / 2) * width,
            mean,
            width=width,
            yerr=std,
            capsize=3,
            label=model,
        )
    ax.set_xticks(x, labels=list(metrics))
    ax.set_ylabel("mean over folds (error bar: std)")
    ax.set_title("Model comparison")
    fig.legend(loc="outside lower center", ncols=min(len(models), 4), fontsize="small")
    return save_figure(fig, path)
