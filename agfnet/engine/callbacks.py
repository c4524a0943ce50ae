"""Lightning callbacks of the training engine: non-finite guard, encoder freezing, row audit."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

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


def encoder_backbones(model: nn.Module) -> nn.Module:
    """The backbones of a network's encoders (`model.encoders.backbones`): the pretrained
    part, which `optim.encoder_lr_scale` and `optim.freeze_encoder_epochs` act on. The
    encoders' absent embeddings are new layers and are not part of it."""
    return model.encoders.backbones


class FreezeEncoders(L.Callback):
    """Keep the encoders' pretrained backbones fixed for the first `epochs` epochs.

    Frozen, a backbone gets no gradient (its backward pass is skipped, so these epochs
    also cost less) and its batch norms run in eval mode (the running statistics stay the
    pretrained ones); from epoch `epochs` on it trains like the rest. Training the new
    layers on fixed features first, then everything, is linear probing then fine-tuning
    (Kumar et al., ICLR 2022): the random new layers' first gradients do not reach, and
    distort, the pretrained features. The state follows the epoch number, so a resumed
    run freezes exactly as an uninterrupted one.

    Args:
        epochs: frozen epochs, counted from the first.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # DDP expects a gradient for every parameter it was built with, unless it looks
        # for unused ones (it is built before the first epoch, with every parameter).
        ddp_kwargs = getattr(trainer.strategy, "_ddp_kwargs", None)
        finds_unused = ddp_kwargs is None or ddp_kwargs.get("find_unused_parameters", False)
        if trainer.world_size > 1 and not finds_unused:
            raise UserError(
                "optim.freeze_encoder_epochs > 0 with several processes needs "
                "trainer.strategy=ddp_find_unused_parameters_true (or "
                "optim.freeze_encoder_epochs=0)"
            )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        frozen = trainer.current_epoch < self.epochs
        backbones = encoder_backbones(pl_module.model)
        backbones.requires_grad_(not frozen)
        for module in backbones.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train(pl_module.training and not frozen)


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
