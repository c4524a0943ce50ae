"""`agfnet evaluate`: metrics, report, predictions and plots of a checkpoint on a manifest."""

from __future__ import annotations

from pathlib import Path

import typer


def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="best.ckpt of `agfnet train`."),
    data: Path = typer.Option(..., "--data", help="Manifest CSV with labels."),
    out: Path = typer.Option(..., "--out", help="Evaluation folder to write."),
    split: str = typer.Option(
        "test",
        "--split",
        help="Rows of this `split` value when the manifest has the column; `all` for every row.",
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Inference batch size."),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1 (default: GPU if present)."
    ),
) -> None:
    """Evaluate a checkpoint: metrics.json, report.md, predictions.csv and plots in OUT.

    Example: agfnet evaluate --checkpoint runs/t/checkpoints/best.ckpt --data m.csv --out ev
    """
    from agfnet.engine.evaluate import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        checkpoint,
        data,
        out,
        split=None if split == "all" else split,
        batch_size=batch_size,
        device=device,
        progress=True,
    )
    if "note" in metrics:
        typer.echo(f"no metrics: {metrics['note']}; predictions: {out / 'predictions.csv'}")
        return
    typer.echo(
        f"{metrics['n']} rows: accuracy {metrics['accuracy']:.4f}, balanced accuracy "
        f"{metrics['balanced_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, ECE "
        f"{metrics['ece']:.4f} (temperature {metrics['temperature']:.3f}); report: "
        f"{out / 'report.md'}"
    )
