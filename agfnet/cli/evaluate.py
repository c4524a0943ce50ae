"""`agfnet evaluate`: metrics, report, predictions and plots of a checkpoint on a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from agfnet.cli._common import COMPILE_OPTION, MC_OPTION, SEED_OPTION, TTA_OPTION


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
    mc: int = MC_OPTION,
    tta: int = TTA_OPTION,
    seed: int = SEED_OPTION,
    compile: bool | None = COMPILE_OPTION,
) -> None:
    """Evaluate a checkpoint: metrics.json, report.md, predictions.csv and plots in OUT.

    Metrics (accuracy, balanced accuracy, macro F1/AUC, kappa, per class), calibration
    (ECE, NLL, Brier, reliability diagram; with the checkpoint's temperature and, under
    `uncalibrated`, without), selective prediction (AURC, accuracy at 90% coverage,
    risk-coverage curve) and uncertainty (entropy of correct and wrong predictions;
    with --mc N or --tta N, the spread over N passes).

    Example: agfnet evaluate --checkpoint runs/t/checkpoints/best.ckpt --data m.csv --out ev
    """
    from agfnet.runtime.stochastic import parse_sampling
    from agfnet.workflows.evaluate import evaluate_checkpoint

    sampling = parse_sampling(mc, tta, seed)
    metrics = evaluate_checkpoint(
        checkpoint,
        data,
        out,
        split=None if split == "all" else split,
        batch_size=batch_size,
        device=device,
        progress=True,
        sampling=sampling,
        compile="auto" if compile is None else compile,
    )
    if "note" in metrics:
        typer.echo(f"no metrics: {metrics['note']}; predictions: {out / 'predictions.csv'}")
        return
    typer.echo(
        f"{metrics['n']} rows: accuracy {metrics['accuracy']:.4f}, balanced accuracy "
        f"{metrics['balanced_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, ECE "
        f"{metrics['ece']:.4f} (temperature {metrics['temperature']:.3f}; before: "
        f"{metrics['uncalibrated']['ece']:.4f}), accuracy at 90% coverage "
        f"{metrics['accuracy_at_90_coverage']:.4f}"
    )
    if "sampling" in metrics:
        s = metrics["sampling"]
        typer.echo(
            f"{s['passes']} passes ({'MC dropout' if s['method'] == 'mc' else 'TTA'}): mean "
            f"mutual information {s['mean_mutual_information']:.4f} nats, mean spread of the "
            f"predicted class {s['mean_std_prediction']:.4f}"
        )
    typer.echo(f"report: {out / 'report.md'}")
