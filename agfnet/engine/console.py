"""What a training prints: one line per epoch without a progress bar, and no third-party noise."""

from __future__ import annotations

import logging
import math
import os
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.utilities import rank_zero_only

__all__ = [
    "NOISY_LOGS",
    "NOISY_WARNINGS",
    "EpochSummary",
    "hide_lightning_tips",
    "is_noise",
    "quiet_console",
]

log = logging.getLogger(__name__)

#: Warnings that say nothing a user can act on: (category, message pattern).
NOISY_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # torchmetrics' AUROC / PR curves, whenever a small validation set lacks a class.
    (UserWarning, r"^No (positive|negative) samples (in targets|found in target)"),
    # Lightning's advice for generic loaders; agfnet sizes its loaders (data.num_workers,
    # trainer.log_every_n_steps) on purpose.
    (PossibleUserWarning, r"does not have many workers"),
    (PossibleUserWarning, r"is smaller than the logging interval"),
)
#: Deprecations raised inside an installed library are hidden: their fix is the library's.
DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
#: Lightning log lines hidden from the console: its advertising tips (litlogger,
#: litmodels, LitServe), a note on how it counts the steps of the schedule, and the
#: absence of a TPU (whether a GPU is used is still said).
NOISY_LOGS: tuple[str, ...] = (
    r"^💡 Tip:",
    r"LitServe|litlogger|litmodels",
    r"^Loading `train_dataloader` to estimate number of stepping batches",
    r"^TPU available: False",
)
#: The loggers Lightning's `rank_zero_info` writes through (whichever module set it last).
LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)

_PACKAGE = Path(__file__).resolve().parents[1]
_WARNING = {"levelno": logging.WARNING, "levelname": "WARNING"}


class _LogFile:
    """The hidden text's destination: a file appended to on rank 0, opened on first use."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._handler: logging.FileHandler | None = None

    def write(self, record: logging.LogRecord) -> None:
        if self.path is None or getattr(rank_zero_only, "rank", 0) != 0:
            return
        if self._handler is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handler = logging.FileHandler(self.path, encoding="utf-8")
            self._handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
        self._handler.handle(record)

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()


class _HideLightningNoise(logging.Filter):
    """Drops `NOISY_LOGS` records, writing them to the active `quiet_console` file if any."""

    def __init__(self) -> None:
        super().__init__()
        self.sink = _LogFile(None)

    def filter(self, record: logging.LogRecord) -> bool:
        if any(re.search(p, record.getMessage()) for p in NOISY_LOGS):
            self.sink.write(record)
            return False
        return True


_LOG_FILTER = _HideLightningNoise()


def hide_lightning_tips() -> None:
    """Keep Lightning's `NOISY_LOGS` lines (tips, notes) off the console from now on.

    Permanent and idempotent. Call it before building a `Trainer`, which prints its tip
    then; inside a `quiet_console` block the hidden lines go to its file.
    """
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


def _installed(filename: str) -> bool:
    """Whether `filename` is code of an installed library."""
    return bool({"site-packages", "dist-packages"} & set(Path(filename).parts))


def is_noise(message: Warning | str, category: type[Warning], filename: str) -> bool:
    """Whether a warning is third-party noise that `quiet_console` keeps off the console.

    Never one raised by agfnet's own code (`filename`: where the warning points).
    """
    if Path(os.path.realpath(filename)).is_relative_to(_PACKAGE):
        return False
    if issubclass(category, DEPRECATIONS):
        return _installed(filename)
    text = str(message)
    return any(issubclass(category, c) and re.search(p, text) for c, p in NOISY_WARNINGS)


@contextmanager
def quiet_console(log_file: str | Path | None = None) -> Iterator[None]:
    """Keep third-party noise off the console during the block; keep it in `log_file`.

    Noise is `NOISY_WARNINGS`, deprecation warnings raised inside installed libraries
    (e.g. Lightning's use of torch's `LeafSpec`) and Lightning's `NOISY_LOGS` lines.
    Every other warning and log line, agfnet's own included, is shown as before.

    Args:
        log_file: where the hidden text is appended (created on first use, written by
            rank 0 only); None drops it.
    """
    hide_lightning_tips()
    sink = _LogFile(None if log_file is None else Path(log_file))
    previous_sink, _LOG_FILTER.sink = _LOG_FILTER.sink, sink
    try:
        with warnings.catch_warnings():
            show = warnings.showwarning

            def divert(
                message: Warning | str,
                category: type[Warning],
                filename: str,
                lineno: int,
                file: Any = None,
                line: str | None = None,
            ) -> None:
                if not is_noise(message, category, filename):
                    show(message, category, filename, lineno, file, line)
                    return
                text = f"{category.__name__}: {message} ({filename}:{lineno})"
                sink.write(logging.makeLogRecord({"name": "py.warnings", "msg": text, **_WARNING}))

            warnings.showwarning = divert
            yield
    finally:
        _LOG_FILTER.sink = previous_sink
        sink.close()


class EpochSummary(L.Callback):
    """Log one line per epoch when no progress bar is shown (batch jobs, SLURM).

    The line gives the epoch, the training loss, every validation metric the module logs
    (`val/...`, as in metrics.csv), the seconds the epoch took with its validation, and
    whether the monitored checkpoint improved:

        epoch 3/11: train/loss 1.2345, val/loss 1.3456, ...; 41.2 s; best val/loss

    Written by rank 0 through the `agfnet.engine.console` logger (INFO; `agfnet train`
    prints it on stderr). With a progress bar, it says nothing: the bar shows the same.
    """

    def __init__(self) -> None:
        self._enabled = False
        self._start = 0.0
        self._val: dict[str, float] = {}
        self._best: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._enabled = trainer.is_global_zero and trainer.progress_bar_callback is None
        checkpoint = _monitoring_checkpoint(trainer)
        # Restored from the checkpoint when resuming: "best" means better than all before.
        self._best = None if checkpoint is None else checkpoint.best_model_score

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()
        self._val = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val = _scalars(trainer.callback_metrics, "val/")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._enabled:
            return
        metrics = {**_scalars(trainer.callback_metrics, "train/loss"), **self._val}
        parts = [f"{k} {v:.4f}" for k, v in metrics.items()]
        # Numbered from 0 of max_epochs - 1, as Lightning's progress bar, metrics.csv and
        # the checkpoints number them.
        line = f"epoch {trainer.current_epoch}/{trainer.max_epochs - 1}: {', '.join(parts)}"
        line += f"; {time.monotonic() - self._start:.1f} s"
        if self._improved(trainer):
            line += f"; best {_monitoring_checkpoint(trainer).monitor}"
        log.info(line)

    def _improved(self, trainer: L.Trainer) -> bool:
        """Whether the monitored metric beat every earlier epoch (as `ModelCheckpoint` decides)."""
        checkpoint = _monitoring_checkpoint(trainer)
        value = None if checkpoint is None else trainer.callback_metrics.get(checkpoint.monitor)
        if value is None or not math.isfinite(current := float(value)):
            return False
        if self._best is not None:
            best = float(self._best)
            if not (current < best if checkpoint.mode == "min" else current > best):
                return False
        self._best = current
        return True


def _monitoring_checkpoint(trainer: L.Trainer) -> Any:
    """The first `ModelCheckpoint` that monitors a metric (best.ckpt's), or None."""
    return next((c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), None)


def _scalars(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """The metrics named `prefix...` as floats, `train/loss_epoch` shown as `train/loss`."""
    out = {}
    # `name_epoch` last, so that it wins over a plain `name` of the same metric.
    for name, value in sorted(metrics.items(), key=lambda item: item[0].endswith("_epoch")):
        if name.startswith(prefix) and not name.endswith("_step"):
            out[name.removesuffix("_epoch")] = float(value)
    return out
