"""`agfnet train`, `agfnet cv`, `agfnet compare`, `agfnet demo`: parse, then call agfnet.engine."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import typer

OVERRIDES_HELP = (
    "Config overrides as dotted key=value (YAML values), e.g. optim.lr=1e-3 "
    "loss.class_weights=balanced; unknown keys are refused with the list of valid ones."
)
CONFIG_HELP = (
    "YAML config file, or a shipped preset: tiny (CPU, 96 px) or paper (ResNet-50, 224 px)."
)


def _overrides_arg() -> Any:
    return typer.Argument(None, metavar="[KEY=VALUE]...", help=OVERRIDES_HELP, show_default=False)


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler that writes to whatever `sys.stderr` is when a record arrives.

    A plain StreamHandler keeps the stream it was made with; when a command runs
    in-process (tests, notebooks) that stream may be closed by the time of a later call.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging() -> None:
    # Progress lines of agfnet (fold k, skipped, ...) on stderr; Lightning logs on its own.
    log = logging.getLogger("agfnet")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def _load(config: str, overrides: list[str] | None, **shortcuts: Any) -> Any:
    from agfnet.engine.config import load_config

    return load_config(config, overrides or [], **shortcuts)


def train(
    data: Path = typer.Option(..., "--data", help="Manifest CSV (see `agfnet validate`)."),
    config: str = typer.Option("tiny", "--config", help=CONFIG_HELP),
    model: str | None = typer.Option(None, "--model", help="Model name (`agfnet models`)."),
    out: Path = typer.Option(Path("runs/train"), "--out", help="Run folder to write."),
    epochs: int | None = typer.Option(None, "--epochs", help="trainer.epochs"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="data.batch_size"),
    img_size: int | None = typer.Option(None, "--img-size", help="data.img_size"),
    seed: int | None = typer.Option(None, "--seed", help="seed"),
    devices: int | None = typer.Option(None, "--devices", help="trainer.devices"),
    strategy: str | None = typer.Option(None, "--strategy", help="trainer.strategy, e.g. ddp"),
    accelerator: str | None = typer.Option(None, "--accelerator", help="cpu, gpu or auto"),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT/checkpoints/last.ckpt."),
    overrides: list[str] | None = _overrides_arg(),
) -> None:
    """Train one model; write a run folder with checkpoints, logs and validation metrics.

    Example: agfnet train --data out/s/manifest.csv --out runs/t --epochs 5 optim.lr=1e-3
    """
    _setup_logging()
    cfg = _load(
        config,
        overrides,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        img_size=img_size,
        seed=seed,
        devices=devices,
        strategy=strategy,
        accelerator=accelerator,
    )
    from agfnet.engine.train import fit

    result = fit(cfg, data, out, resume=resume)
    if result.metrics:
        m = result.metrics
        typer.echo(
            f"best checkpoint: {result.best_checkpoint} (epoch {m['epoch']}); validation "
            f"accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}, temperature "
            f"{result.temperature:.3f}; metrics: {out / 'metrics.json'}"
        )


def cv(
    data: Path = typer.Option(..., "--data", help="Manifest CSV."),
    folds: int = typer.Option(5, "--folds", help="Number of folds (patient-grouped, stratified)."),
    config: str = typer.Option("tiny", "--config", help=CONFIG_HELP),
    model: str | None = typer.Option(None, "--model", help="Model name (`agfnet models`)."),
    out: Path = typer.Option(Path("runs/cv"), "--out", help="Cross-validation folder."),
    epochs: int | None = typer.Option(None, "--epochs", help="trainer.epochs"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="data.batch_size"),
    img_size: int | None = typer.Option(None, "--img-size", help="data.img_size"),
    seed: int | None = typer.Option(None, "--seed", help="seed"),
    devices: int | None = typer.Option(None, "--devices", help="trainer.devices"),
    strategy: str | None = typer.Option(None, "--strategy", help="trainer.strategy"),
    accelerator: str | None = typer.Option(None, "--accelerator", help="cpu, gpu or auto"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a cv of other settings."),
    overrides: list[str] | None = _overrides_arg(),
) -> None:
    """Cross-validate one model: a training per fold, each tested on its held-out fold.

    Example: agfnet cv --data out/s/manifest.csv --folds 5 --model agfnet_tiny --out runs/cv
    """
    _setup_logging()
    cfg = _load(
        config,
        overrides,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        img_size=img_size,
        seed=seed,
        devices=devices,
        strategy=strategy,
        accelerator=accelerator,
    )
    from agfnet.engine.cv import run_cv

    result = run_cv(cfg, data, out, n_folds=folds, overwrite=overwrite)
    acc = result.summary["accuracy"]
    typer.echo(
        f"{cfg.model.name}: accuracy {acc['mean']:.4f} ± {acc['std'] or 0:.4f} over "
        f"{len(result.folds)} fold(s); summary: {out / 'summary.md'}"
    )


def compare(
    data: Path = typer.Option(..., "--data", help="Manifest CSV."),
    models: str = typer.Option(
        ...,
        "--models",
        help="Comma-separated model names; the first is the reference of the paired tests.",
    ),
    folds: int = typer.Option(5, "--folds", help="Number of folds, shared by every model."),
    config: str = typer.Option("tiny", "--config", help=CONFIG_HELP),
    out: Path = typer.Option(Path("runs/compare"), "--out", help="Comparison folder."),
    epochs: int | None = typer.Option(None, "--epochs", help="trainer.epochs"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="data.batch_size"),
    img_size: int | None = typer.Option(None, "--img-size", help="data.img_size"),
    seed: int | None = typer.Option(None, "--seed", help="seed"),
    devices: int | None = typer.Option(None, "--devices", help="trainer.devices"),
    strategy: str | None = typer.Option(None, "--strategy", help="trainer.strategy"),
    accelerator: str | None = typer.Option(None, "--accelerator", help="cpu, gpu or auto"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a comparison of other settings."
    ),
    overrides: list[str] | None = _overrides_arg(),
) -> None:
    """Cross-validate several models on the same folds; write table.md/.csv/.json and a plot.

    Example: agfnet compare --data m.csv --models agfnet_tiny,late_concat_tiny --folds 3 --out cmp
    """
    _setup_logging()
    cfg = _load(
        config,
        overrides,
        epochs=epochs,
        batch_size=batch_size,
        img_size=img_size,
        seed=seed,
        devices=devices,
        strategy=strategy,
        accelerator=accelerator,
    )
    from agfnet.engine.compare import run_compare

    result = run_compare(cfg, data, out, models=models, n_folds=folds, overwrite=overwrite)
    typer.echo((out / "table.md").read_text())
    typer.echo(f"tables: {result.out / 'table.md'}, {result.out / 'table.csv'}")


def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Report folder to write."),
    quick: bool = typer.Option(False, "--quick", help="A tiny version (under a minute)."),
) -> None:
    """Generate the synthetic benchmark, compare AGFNet with baselines, write a report.

    Example: agfnet demo --out demo && open demo/index.md
    """
    _setup_logging()
    from agfnet.workflows.demo import run_demo

    result = run_demo(out, quick=quick)
    typer.echo(f"report: {result.index}")
