"""`agfnet robustness`: a checkpoint under image corruptions and missing modalities."""

from __future__ import annotations

from pathlib import Path

import typer


def robustness(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="best.ckpt of `agfnet train`."),
    data: Path = typer.Option(..., "--data", help="Manifest CSV with labels."),
    out: Path = typer.Option(..., "--out", help="Folder to write robustness.json/.csv/.md/.png."),
    split: str = typer.Option(
        "test",
        "--split",
        help="Rows of this `split` value when the manifest has the column; `all` for every row.",
    ),
    severities: str = typer.Option(
        "1,2,3", "--severities", help="Comma-separated corruption severities, from 1 to 3."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the corruptions (per row)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Inference batch size."),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1 (default: GPU if present)."
    ),
) -> None:
    """Measure accuracy and calibration under corruptions of each modality and of both.

    Runs the checkpoint on the rows clean, with noise, blur, intensity and signal-loss
    corruptions of the photograph, of the ultrasound image and of both at each severity,
    and with each modality removed ("not supported" for models without modality
    dropout). Writes robustness.json, robustness.csv, robustness.md and robustness.png.

    Example: agfnet robustness --checkpoint runs/t/checkpoints/best.ckpt --data m.csv --out rob
    """
    from agfnet.evaluation.robustness import parse_severities
    from agfnet.workflows.robustness import run_robustness

    result = run_robustness(
        checkpoint,
        data,
        out,
        split=None if split == "all" else split,
        severities=parse_severities(severities),
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=True,
    )
    clean = result["clean"]
    typer.echo(
        f"{result['n']} rows: clean accuracy {clean['accuracy']:.4f}, ECE {clean['ece']:.4f} "
        f"(temperature {result['temperature']:.3f})"
    )
    for target, s in result["summary"].items():
        typer.echo(
            f"{target}: mean corruption accuracy {s['mean_corruption_accuracy']:.4f}, "
            f"mean ECE {s['mean_ece']:.4f}, worst {s['worst']['condition']} "
            f"({s['worst']['accuracy']:.4f})"
        )
    for r in result["conditions"]:
        if r["family"] == "missing":
            shown = f"accuracy {r['accuracy']:.4f}" if r["status"] == "ok" else r["status"]
            typer.echo(f"{r['target']} missing: {shown}")
    typer.echo(f"report: {out / 'robustness.md'}")
