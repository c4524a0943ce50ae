"""What a training prints: one line per epoch without a progress bar, third-party noise hidden."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning

from agfnet.engine.console import EpochSummary, is_noise, quiet_console

LIB = "/venv/lib/python3.11/site-packages/lightning/pytorch/utilities/_pytree.py"
OURS = str(Path(__file__).resolve().parents[2] / "agfnet" / "engine" / "module.py")
LINE = re.compile(
    r"^epoch (\d+)/1: train/loss \d+\.\d{4}, val/loss \d+\.\d{4}, (val/[a-z0-9_]+ \d+\.\d{4}, )*"
    r"val/[a-z0-9_]+ \d+\.\d{4}; \d+\.\d s(; best val/loss)?$"
)


@pytest.mark.parametrize(
    ("category", "message", "filename", "noise"),
    [
        (UserWarning, "No positive samples in targets, true positive value ...", LIB, True),
        (UserWarning, "No negative samples in targets, false positive value ...", LIB, True),
        (PossibleUserWarning, "The 'train_dataloader' does not have many workers ...", LIB, True),
        (
            PossibleUserWarning,
            "The number of training batches (3) is smaller than the logging interval",
            LIB,
            True,
        ),
        (FutureWarning, "`isinstance(treespec, LeafSpec)` is deprecated", LIB, True),
        (DeprecationWarning, "x is deprecated", LIB, True),
        # A user's or agfnet's own deprecation, and any other warning, stay on the console.
        (DeprecationWarning, "x is deprecated", "/home/me/train_script.py", False),
        (FutureWarning, "x is deprecated", OURS, False),
        (UserWarning, "No positive samples in targets", OURS, False),
        (UserWarning, "precision 16-mixed is not supported on the CPU", LIB, False),
        (PossibleUserWarning, "You're resuming from a checkpoint that ended early", LIB, False),
    ],
)
def test_what_is_noise(category: type[Warning], message: str, filename: str, noise: bool) -> None:
    assert is_noise(message, category, filename) is noise


@pytest.fixture
def lightning_lines() -> Iterator[list[str]]:
    """What Lightning's loggers let through to the console, while the test runs."""
    lines: list[str] = []
    collect = logging.Handler()
    collect.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("lightning.pytorch").addHandler(collect)
    yield lines
    logging.getLogger("lightning.pytorch").removeHandler(collect)


def test_quiet_console_diverts_noise_to_the_log_file(tmp_path: Path, lightning_lines) -> None:
    log_file = tmp_path / "logs" / "warnings.log"
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with quiet_console(log_file):
            warnings.warn_explicit("No positive samples in targets", UserWarning, LIB, 72)
            warnings.warn("a warning of the caller's", UserWarning, stacklevel=1)
            lightning_log.info("💡 Tip: For seamless cloud uploads, try installing litmodels")
            lightning_log.info("GPU available: False, used: False")
        warnings.warn_explicit("No positive samples in targets", UserWarning, LIB, 72)
    # The console got the rest, and after the block the noise again ...
    assert [str(w.message) for w in shown] == [
        "a warning of the caller's",
        "No positive samples in targets",
    ]
    assert lightning_lines == ["GPU available: False, used: False"]
    # ... the file the noise (the tip stays hidden for good: it is only an advert).
    text = log_file.read_text()
    assert "UserWarning: No positive samples in targets" in text and "💡 Tip" in text
    assert "the caller's" not in text and "GPU available" not in text


def _trainer(epoch: int, metrics: dict[str, float], best: float | None) -> SimpleNamespace:
    checkpoint = SimpleNamespace(monitor="val/loss", mode="min", best_model_score=best)
    return SimpleNamespace(
        is_global_zero=True,
        progress_bar_callback=None,
        checkpoint_callbacks=[SimpleNamespace(monitor=None), checkpoint],
        sanity_checking=False,
        current_epoch=epoch,
        max_epochs=3,
        callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
    )


def _epochs(summary: EpochSummary, losses: list[float], first: int, best: float | None) -> None:
    trainer = _trainer(first, {}, best)
    summary.on_train_start(trainer, None)
    for epoch, loss in enumerate(losses, start=first):
        metrics = {"train/loss_step": 9.0, "train/loss_epoch": 2.0}
        trainer = _trainer(epoch, {**metrics, "val/loss": loss, "val/accuracy": 0.5}, best)
        summary.on_train_epoch_start(trainer, None)
        summary.on_validation_end(trainer, None)
        summary.on_train_epoch_end(trainer, None)


def test_one_line_per_epoch_marks_each_new_best(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agfnet.engine.console")
    _epochs(EpochSummary(), [1.5, 1.2, 1.3], first=0, best=None)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert re.fullmatch(
        r"epoch 0/2: train/loss 2\.0000, val/loss 1\.5000, val/accuracy 0\.5000; "
        r"\d+\.\d s; best val/loss",
        lines[0],
    )
    assert lines[1].startswith("epoch 1/2:") and lines[1].endswith("; best val/loss")
    assert lines[2].startswith("epoch 2/2:") and "best" not in lines[2]


def test_a_resumed_run_compares_with_the_best_before_it(caplog) -> None:
    caplog.set_level(logging.INFO, logger="agfnet.engine.console")
    _epochs(EpochSummary(), [1.3, 1.0], first=1, best=1.2)  # restored best.ckpt score
    lines = [r.getMessage() for r in caplog.records]
    assert "best" not in lines[0] and lines[1].endswith("; best val/loss")


def test_nothing_is_printed_beside_a_progress_bar(caplog) -> None:
    caplog.set_level(logging.INFO, logger="agfnet.engine.console")
    summary = EpochSummary()
    trainer = _trainer(0, {"val/loss": 1.0}, None)
    trainer.progress_bar_callback = object()
    summary.on_train_start(trainer, None)
    summary.on_train_epoch_start(trainer, None)
    summary.on_train_epoch_end(trainer, None)
    assert not caplog.records


def test_a_real_training_prints_its_epochs_and_no_noise(
    manifest_path: Path, tmp_path: Path, tiny_config, caplog, lightning_lines
) -> None:
    from agfnet.engine.train import fit

    caplog.set_level(logging.INFO, logger="agfnet.engine.console")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        fit(tiny_config(model="clinical_only_tiny"), manifest_path, tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if r.name == "agfnet.engine.console"]
    assert [LINE.match(line).group(1) for line in lines] == ["0", "1"], lines
    assert lines[0].endswith("; best val/loss")
    names = set(re.findall(r"(val/[a-z0-9_]+) ", lines[0]))
    assert {"val/loss", "val/accuracy", "val/balanced_accuracy", "val/macro_auc"} <= names
    assert not [w for w in shown if is_noise(w.message, w.category, w.filename)]
    assert any(line.startswith("GPU available") for line in lightning_lines)
    assert not [line for line in lightning_lines if "💡" in line or "stepping batches" in line]
    assert "stepping batches" in (tmp_path / "run" / "logs" / "warnings.log").read_text()
