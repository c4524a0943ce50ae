"""Lightning callbacks of the training engine: the non-finite guard and the row audit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from agfnet.errors import UserError


class TrainingDivergedError(UserError):
    """The loss or the weights became NaN or infinite; the run stopped before saving them."""


class NonFiniteGuard(L.Callback):
    """Stop training when the loss or the weights stop being finite, before anything is saved.

    The loss is checked before each backward pass (so the optimiser never applies a NaN
    gradient) and the weights before each checkpoint write (so `last.ckpt` and
    `best.ckpt` always hold the last good state). Like MAE's training loop, it refuses to
    go on rather than skip: a diverged run must be restarted with safer settings.

    Args:
        checkpoint_dir: where the run's checkpoints live (named in the message).
    """

    def __init__(self, checkpoint_dir: str | Path) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)

    def _fail(self, trainer: L.Trainer, what: str) -> None:
        last = self.checkpoint_dir / "last.ckpt"
        kept = (
            f"last good checkpoint kept at {last} (epoch {_saved_epoch(last)})"
            if last.is_file()
            else "no checkpoint had been saved yet"
        )
        raise TrainingDivergedError(
            f"{what} at epoch {trainer.current_epoch} step {trainer.global_step}; {kept}. "
            "Try a lower learning rate (optim.lr=...), gradient clipping "
            "(trainer.gradient_clip_val=1.0), a longer warm-up (scheduler.warmup_epochs=...) "
            "or full precision (trainer.precision=32-true)."
        )

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        # Every rank must stop together, or the others hang in the next all-reduce.
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            value = loss.detach().float().item()
            self._fail(trainer, f"loss became {'NaN' if math.isnan(value) else value}")

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        bad = [n for n, p in pl_module.named_parameters() if not bool(torch.isfinite(p).all())]
        if bad:
            self._fail(trainer, f"weights became non-finite ({', '.join(bad[:3])})")


def _saved_epoch(path: Path) -> int | str:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # the message must still be raised if the file cannot be read
        return "unknown"


class SeenRowsRecorder(L.Callback):
    """Write the manifest `row` numbers each process trained on, one file per rank and epoch.

    An audit of data sharding: under DDP the files of one epoch must be disjoint and,
    together, cover the training rows.

    Args:
        out_dir: folder for `rank<R>_epoch<E>.txt` (one row number per line).
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self._rows: list[int] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._rows += [int(r) for r in batch["row"]]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.txt"
        path.write_text("".join(f"{r}\n" for r in self._rows))
