"""`agfnet analyze`: certainty, focus and robustness of every model of a comparison."""

from __future__ import annotations

from pathlib import Path

import typer


def analyze(
    compare: Path = typer.Option(
        ..., "--compare", help="The --out folder of an `agfnet compare` run."
    ),
    data: Path = typer.Option(..., "--data", help="The manifest the comparison ran on."),
    out: Path = typer.Option(..., "--out", help="Folder for analysis.json/.md/.csv."),
    models: str | None = typer.Option(
        None,
        "--models",
        help="Comma-separated subset of the comparison's models (default: all); the first "
        "is the reference of the paired tests.",
    ),
    severity: int = typer.Option(
        2, "--severity", min=1, max=3, help="Corruption severity of the robustness measures."
    ),
    n_explain: int = typer.Option(
        100, "--n-explain", min=1, help="Held-out rows explained per fold (focus measures)."
    ),
    method: str = typer.Option(
        "layercam", "--method", help="layercam (default), gradcam or gradcam++."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the corruptions."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Rows per forward pass."),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1 (default: GPU if present)."
    ),
) -> None:
    """Measure certainty, focus and robustness of each model on each fold's held-out rows.

    For every model and fold of an `agfnet compare` folder, with the fold's best
    checkpoint: accuracy, ECE after and before temperature scaling, mean entropy of
    correct and of wrong predictions and how well it flags errors; Grad-CAM and ALL
    attention focus (energy inside the lesion mask, pointing game) per modality; accuracy
    under every corruption at one severity and with a modality missing. Writes
    analysis.md (mean ± std per model, paired tests against the first model),
    analysis.json, analysis.csv and per fold the explain/ and robustness/ outputs.

    Example: agfnet analyze --compare out/cmp --data out/s/manifest.csv --out out/analysis
    """
    from agfnet.workflows.analyze import run_analysis

    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    result = run_analysis(
        compare,
        data,
        out,
        models=names,
        severity=severity,
        n_explain=n_explain,
        method=method,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=True,
    )
    from agfnet.evaluation.report import format_value

    for measure in ("accuracy", "ece", "mean_entropy_correct", "mean_entropy_wrong"):
        cells = ", ".join(
            f"{m} {format_value(result['summary'][measure][m]['mean'])}" for m in result["models"]
        )
        typer.echo(f"{measure}: {cells}")
    typer.echo(f"{len(result['measures'])} measures: {out / 'analysis.md'}")
