"""The LightningModule: training and validation steps, optimiser and schedule of a network."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassRecall,
)

import agfnet
from agfnet.engine.callbacks import FreezeEncoders, encoder_backbones
from agfnet.engine.config import TrainConfig, config_to_dict
from agfnet.models.weights import weight_sources
from agfnet.runtime.checkpoint import META_KEY
from agfnet.runtime.compile import compile_model, resolve_compile


class PairedClassifierModule(L.LightningModule):
    """Trains any `agfnet.models` network (AGFNet, an ablation or a baseline) alike.

    The network is built outside (`build_network`) and handed in, a plain `nn.Module`
    kept under `self.model` (the lightning-hydra-template way); this class only adds the
    loss, the validation metrics, the optimiser and the schedule, and writes the
    checkpoint metadata of the checkpoint contract.

    Args:
        model: the network to train.
        config: the resolved training config.
        classes: class names, in the order of the model's outputs.
        transform: the run's resolved `TransformConfig` as a dict, stored for inference.
        class_weights: one cross-entropy weight per class, or None.
        channels_last: feed the network channels-last batches (GPU training).
        task_classes: task -> class names of the model's task heads (`data.tasks`);
            validated per task and as `val/mean_task_accuracy`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainConfig,
        classes: list[str],
        transform: dict[str, Any],
        class_weights: list[float] | None = None,
        *,
        channels_last: bool = False,
        task_classes: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__()
        from agfnet.models import PairedClassifierLoss

        self.config = config
        self.classes = list(classes)
        self.transform = dict(transform)
        self.channels_last = channels_last
        self.model = model
        self.criterion = PairedClassifierLoss(
            aux_weight=config.loss.aux_weight,
            rec_weight=config.loss.rec_weight,
            masked_weight=config.loss.masked_weight,
            label_smoothing=config.loss.label_smoothing,
            class_weights=None if class_weights is None else torch.tensor(class_weights),
            task_weight=config.loss.task_weight,
            task_weights=config.loss.task_weights or None,
        )
        # The task heads' class orders (`data.tasks`), from the model's build spec.
        self.task_classes: dict[str, list[str]] = dict(task_classes or {})
        self.task_metrics = torch.nn.ModuleDict(
            {
                name.replace(".", "_"): MulticlassAccuracy(num_classes=len(c), average="micro")
                for name, c in self.task_classes.items()
            }
        )
        k = len(classes)
        self.val_metrics = MetricCollection(
            {
                "accuracy": MulticlassAccuracy(num_classes=k, average="micro"),
                "balanced_accuracy": MulticlassRecall(num_classes=k, average="macro"),
                "macro_f1": MulticlassF1Score(num_classes=k, average="macro"),
                "macro_auc": MulticlassAUROC(num_classes=k, average="macro"),
            },
            prefix="val/",
        )

    def configure_model(self) -> None:
        # Lightning calls this on every process before fitting or validating: compile the
        # network there, in place, for the device it runs on (`trainer.compile`), so the
        # training forward with FRL, the validation forward and the checkpoint keys are
        # those of the plain network.
        device = self.trainer.strategy.root_device
        if resolve_compile(self.config.trainer.compile, device):
            compile_model(self.model, device=device)

    def _inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        clinical, ultrasound = batch["clinical"], batch["ultrasound"]
        if self.channels_last:
            clinical = clinical.contiguous(memory_format=torch.channels_last)
            ultrasound = ultrasound.contiguous(memory_format=torch.channels_last)
        return clinical, ultrasound

    def forward(self, batch: dict[str, Any]) -> Any:
        """The network's `ModelOutput` for a collated batch of `PairedLesionDataset` samples."""
        from agfnet.runtime.batch import batch_metadata

        clinical, ultrasound = self._inputs(batch)
        metadata = batch_metadata(batch)
        extra = {} if metadata is None else {"metadata": metadata}
        return self.model.forward_output(clinical, ultrasound, present=batch["present"], **extra)

    def _task_targets(self, batch: dict[str, Any]) -> torch.Tensor | None:
        return batch["task_targets"] if self.task_classes else None

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        terms = self.criterion(self(batch), batch["label"], self._task_targets(batch))
        n = batch["label"].shape[0]
        self.log(
            "train/loss",
            terms["loss"],
            prog_bar=True,
            on_step=True,
            on_epoch=True,
            batch_size=n,
            sync_dist=True,
        )
        for name in ("ce", "aux", "rec", "masked", "tasks"):
            if name in terms:
                self.log(
                    f"train/{name}",
                    terms[name],
                    on_step=False,
                    on_epoch=True,
                    batch_size=n,
                    sync_dist=True,
                )
        return terms["loss"]

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.monotonic()

    def on_train_epoch_end(self) -> None:
        self.log("train/epoch_seconds", time.monotonic() - self._epoch_start, sync_dist=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out = self(batch)
        logits = out.logits.float()
        n = batch["label"].shape[0]
        # Plain cross-entropy (no smoothing, no class weights) so val/loss is comparable
        # across configs and is the NLL that temperature scaling later minimises.
        loss = F.cross_entropy(logits, batch["label"])
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=n)
        # Logging the metric objects lets Lightning compute them over all ranks at epoch end.
        self.val_metrics.update(logits.softmax(dim=1), batch["label"])
        self.log_dict(self.val_metrics, on_step=False, on_epoch=True, batch_size=n)
        for i, name in enumerate(self.task_classes):
            target = batch["task_targets"][:, i]
            known = target >= 0
            if known.any():
                metric = self.task_metrics[name.replace(".", "_")]
                metric.update(out.task_logits[name][known].float(), target[known])
                self.log(f"val/task/{name}/accuracy", metric, on_epoch=True, batch_size=n)

    def on_validation_epoch_end(self) -> None:
        if not self.task_classes:
            return
        # The anchors' "avg": the mean accuracy of the diagnosis and every task (computed
        # from the metric objects, which Lightning then logs and resets).
        metrics = [self.val_metrics["accuracy"], *self.task_metrics.values()]
        if all(m.update_count for m in metrics):
            mean = torch.stack([m.compute().float() for m in metrics]).mean()
            self.log("val/mean_task_accuracy", mean, sync_dist=False)

    def configure_optimizers(self) -> dict[str, Any]:
        optim = self.config.optim
        groups = param_groups(self.model, self.config)
        if optim.name == "adamw":
            optimizer: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=optim.lr)
        else:
            optimizer = torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=True)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = total / max(1, self.trainer.max_epochs or 1)
        factor = lr_factor(self.config, total_steps=total, steps_per_epoch=per_epoch)
        factors: Any = factor
        if len(groups) > 2:  # new layers, then the backbones (see param_groups)
            encoder = encoder_lr_factor(self.config, factor, steps_per_epoch=per_epoch)
            factors = [factor, factor, encoder, encoder]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def checkpoint_metadata(self) -> dict[str, Any]:
        """The agfnet entries of a checkpoint (see the checkpoint contract)."""
        return {
            "build_spec": dict(self.model.build_spec),
            "classes": list(self.classes),
            "transform": dict(self.transform),
            "config": config_to_dict(self.config),
            "temperature": 1.0,
            "version": agfnet.__version__,
            "weight_sources": weight_sources(self.model),
            **({"tasks": dict(self.task_classes)} if self.task_classes else {}),
        }

    def configure_callbacks(self) -> list[L.Callback]:
        # The callbacks that the config's own options need, so any Trainer honours them.
        epochs = self.config.optim.freeze_encoder_epochs
        return [FreezeEncoders(epochs)] if epochs else []

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["hyper_parameters"] = {META_KEY: self.checkpoint_metadata()}


def param_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: decay and no-decay, per learning rate.

    Norms, biases and learned tokens/gates (1-D or scalar) get no weight decay. With
    `optim.encoder_lr_scale` != 1 or `optim.freeze_encoder_epochs` > 0 the encoder
    backbones get two groups of their own, at `lr * encoder_lr_scale`; otherwise there
    are the two groups only, at `optim.lr` (the optimiser of before these options).

    Args:
        model: the network; only parameters with `requires_grad` are included.
        config: gives `optim.lr`, `optim.weight_decay` and `optim.encoder_lr_scale`.

    Returns:
        Groups for `torch.optim`: new layers (decay, no decay), then the backbones' (when
        scaled); each with `params`, `weight_decay` and `lr`.
    """
    optim = config.optim
    trainable = [p for p in model.parameters() if p.requires_grad]
    parts = [(optim.lr, trainable)]
    if optim.encoder_lr_scale != 1.0 or optim.freeze_encoder_epochs > 0:
        encoder = {id(p) for p in encoder_backbones(model).parameters()}
        parts = [
            (optim.lr, [p for p in trainable if id(p) not in encoder]),
            (optim.lr * optim.encoder_lr_scale, [p for p in trainable if id(p) in encoder]),
        ]
    groups = []
    for lr, params in parts:
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        groups += [
            {"params": decay, "weight_decay": optim.weight_decay, "lr": lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": lr},
        ]
    return groups


def build_network(
    config: TrainConfig,
    num_classes: int,
    tasks: dict[str, int] | None = None,
    metadata: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """The network a config names (`model.name` with `model.overrides`), freshly built.

    Args:
        config: the resolved config.
        num_classes: diagnosis classes.
        tasks: task -> number of classes, for the task heads (`data.tasks`); None: none.
        metadata: a `MetadataSpec.to_dict()` for the metadata encoder; None: none.
    """
    from agfnet.models import create_model

    return create_model(
        config.model.name,
        num_classes=num_classes,
        tasks=tasks or None,
        metadata=metadata or None,
        **config.model.overrides,
    )


def AGFNetModule(
    config: TrainConfig,
    classes: list[str],
    transform: dict[str, Any],
    class_weights: list[float] | None = None,
) -> PairedClassifierModule:
    """Deprecated: build the network with `build_network` and pass it to
    `PairedClassifierModule`, as `agfnet.engine.train.fit` does."""
    import warnings

    warnings.warn(
        "AGFNetModule(config, classes, transform) is deprecated: use "
        "PairedClassifierModule(build_network(config, len(classes)), config, classes, transform)",
        DeprecationWarning,
        stacklevel=2,
    )
    model = build_network(config, len(classes))
    return PairedClassifierModule(model, config, classes, transform, class_weights)


def lr_factor(config: TrainConfig, total_steps: int, steps_per_epoch: float) -> Any:
    """The learning-rate multiplier per optimiser step: linear warm-up, then cosine or constant.

    Args:
        config: gives `scheduler.name`, `scheduler.warmup_epochs`, `scheduler.min_lr_ratio`.
        total_steps: optimiser steps of the whole run.
        steps_per_epoch: optimiser steps per epoch.

    Returns:
        A function step -> factor in [0, 1] (a plain function, so the scheduler's state
        dict stays free of pickled code).
    """
    sched = config.scheduler
    warmup = min(total_steps - 1, round(sched.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if sched.name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return sched.min_lr_ratio + (1.0 - sched.min_lr_ratio) * cosine

    return factor


def encoder_lr_factor(config: TrainConfig, factor: Any, steps_per_epoch: float) -> Any:
    """The backbones' multiplier: `factor`, but 0 while frozen and warmed up again once
    unfrozen (linearly over `scheduler.warmup_epochs`), so that the encoders do not start
    at the full rate on features their new layers have only seen frozen.

    Args:
        config: gives `optim.freeze_encoder_epochs` and `scheduler.warmup_epochs`.
        factor: the multiplier of the new layers (`lr_factor`).
        steps_per_epoch: optimiser steps per epoch.

    Returns:
        A function step -> factor in [0, 1]; `factor` itself without frozen epochs.
    """
    start = round(config.optim.freeze_encoder_epochs * steps_per_epoch)
    warmup = round(config.scheduler.warmup_epochs * steps_per_epoch)
    if start == 0:
        return factor

    def encoder(step: int) -> float:
        ramp = min(1.0, max(0.0, (step - start + 1) / (warmup + 1)))
        return factor(step) * ramp

    return encoder
