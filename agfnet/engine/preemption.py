"""Pre-emption: on SIGTERM, stop training after the current batch and say how to resume it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from agfnet.errors import UserError

__all__ = ["PreemptionGuard", "TrainingPreemptedError"]


class TrainingPreemptedError(UserError):
    """The training received SIGTERM (a scheduler's pre-emption) and stopped; it can resume."""


class PreemptionGuard(L.Callback):
    """Stop the training on SIGTERM after the current batch, leaving last.ckpt to resume from.

    Schedulers (SLURM, Kubernetes, spot instances) send SIGTERM, then SIGKILL after a
    grace period (SLURM: 30 s by default). The handler only records the signal; the batch
    in progress finishes, every rank stops before the next one, and `watching` raises a
    `TrainingPreemptedError` that says where the run stopped and how to continue.

    The run continues from `last.ckpt`, which holds the last finished epoch (it is
    written atomically at each epoch end), so the interrupted epoch is trained again. A
    mid-epoch checkpoint would not resume faithfully: the loader would restart the
    epoch's order from its first batch, training those twice and its last ones never.

    Lightning's own SIGTERM handler (its signal connector) runs too, and also stops after
    the batch, but by raising `SIGTERMException`, a `SystemExit` whose exit status is 0:
    a pre-empted run would look finished to the scheduler. `watching` turns it into the
    error above.

    Args:
        last_checkpoint: the run's checkpoints/last.ckpt, named in the message.
    """

    def __init__(self, last_checkpoint: str | Path) -> None:
        self.last_checkpoint = Path(last_checkpoint)
        self.requested = False

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        # Only a flag: the handler runs between any two bytecodes of the main thread (in
        # the middle of a write to stderr, say), where I/O could re-enter.
        self.requested = True

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        # Every rank stops together, or the others hang in the next all-reduce.
        if trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            raise self.error(trainer)

    def error(self, trainer: L.Trainer) -> TrainingPreemptedError:
        """The error that reports a pre-emption of `trainer`'s run, as it stands now."""
        where = f"at epoch {trainer.current_epoch} step {trainer.global_step}"
        saved = _saved_epoch(self.last_checkpoint)
        if saved is None:
            then = (
                "no epoch had finished, so there is nothing to resume: run the same command "
                "again to start over"
            )
        elif saved + 1 < (trainer.max_epochs or 0):
            then = (
                f"{self.last_checkpoint} holds epoch {saved}; run the same command again to "
                f"continue from epoch {saved + 1} (agfnet train: add --resume)"
            )
        else:
            then = (
                f"every epoch had finished ({self.last_checkpoint}); run the same command "
                "again to calibrate and score it (agfnet train: add --resume)"
            )
        return TrainingPreemptedError(f"training pre-empted (SIGTERM) {where}; {then}")

    @contextmanager
    def watching(self, trainer: L.Trainer) -> Iterator[None]:
        """Handle SIGTERM during the block (`trainer.fit`), then restore the previous handler.

        Raises:
            TrainingPreemptedError: SIGTERM arrived during the block (in the main thread;
                elsewhere signals cannot be handled and nothing is installed).
        """
        self.requested = False
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM)
        if main:
            signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            yield
        except TrainingPreemptedError:
            raise
        except BaseException as err:
            # Lightning's SIGTERMException, or what the signal broke on its way (e.g. a
            # loader worker that got it too).
            if self.requested or isinstance(err, SIGTERMException):
                raise self.error(trainer) from err
            raise
        finally:
            if main:
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        if self.requested:  # after the last batch: the run is complete but was told to stop
            raise self.error(trainer)


def _saved_epoch(path: Path) -> int | None:
    """The epoch stored in a checkpoint, or None when there is none."""
    if not path.is_file():
        return None
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])
