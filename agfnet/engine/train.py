"""One training run: validate the data, write a self-describing run folder, fit, calibrate."""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agfnet.engine.config import (
    TrainConfig,
    resolve_num_workers,
)
from agfnet.engine.run_folder import (  # CONFIG_FILE, Split, version_info: re-exported
    CHECKPOINT_DIR,
    CONFIG_FILE,
    Split,
    prepare_run_folder,
    version_info,
)
from agfnet.errors import UserError
from agfnet.fileio import write_json
from agfnet.runtime.selection import check_modalities

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_FILE",
    "RunResult",
    "Split",
    "calibrate_and_score",
    "check_modalities",
    "class_weights",
    "default_split",
    "fit",
    "holdout",
    "prepare_run_folder",
    "read_data",
    "transform_config",
    "version_info",
]


@dataclass(frozen=True)
class RunResult:
    """What `fit` produced.

    Args:
        out: the run folder.
        best_checkpoint: checkpoints/best.ckpt (temperature calibrated on val).
        last_checkpoint: checkpoints/last.ckpt (the state `--resume` continues).
        metrics: validation metrics of best.ckpt (as in metrics.json); empty off rank 0.
        temperature: the fitted temperature (1.0 off rank 0).
        epochs: epochs completed in total (resumed runs included).
    """

    out: Path
    best_checkpoint: Path
    last_checkpoint: Path
    metrics: dict[str, Any]
    temperature: float
    epochs: int


def is_rank_zero() -> bool:
    """True in the process that writes files (rank 0; the only one without DDP)."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def read_data(data: str | Path | Any, config: TrainConfig) -> Any:
    """The validated manifest: read from a path, or passed through when already read.

    Rows with a missing modality pass here; `check_modalities` refuses them later
    unless the model was trained for it.
    """
    if not isinstance(data, (str, Path)):
        return data
    from agfnet.data import read_manifest
    from agfnet.engine.config import config_to_dict
    from agfnet.runtime.selection import manifest_columns

    return read_manifest(
        data,
        classes=config.data.classes,
        require_labels=True,
        allow_missing_modality=True,
        **manifest_columns(config_to_dict(config)),
    )


def metadata_for(manifest: Any, train: Sequence[int], config: TrainConfig) -> Any:
    """The `MetadataSpec` of `data.metadata`, fitted on the training rows; None without."""
    if not manifest.metadata_fields:
        return None
    from agfnet.data.metadata import fit_metadata

    rows = [manifest.rows[i] for i in train]
    return fit_metadata(rows, manifest.metadata_fields, config.data.metadata_kinds or None)


def holdout(manifest: Any, positions: Sequence[int], fraction: float, seed: int) -> Split:
    """A seeded validation hold-out of `positions`, stratified by label, grouped by patient.

    Args:
        manifest: the validated manifest.
        positions: candidate positions in `manifest.rows`.
        fraction: share of the rows to validate on (at most 0.5).
        seed: hold-out seed.

    Returns:
        A `Split` of `positions`.
    """
    from agfnet.data.splits import fold_split

    # fold_split holds out `fraction` of the rows outside fold k: put `positions` in
    # fold 1 and test on fold 0 (the other rows, ignored).
    chosen = set(positions)
    folds = [1 if i in chosen else 0 for i in range(len(manifest.rows))]
    parts = fold_split(manifest, folds, 0, val_fraction=fraction, seed=seed)
    return Split(parts["train"], parts["val"], f"hold-out of {fraction:g} (seed {seed})")


def default_split(manifest: Any, config: TrainConfig) -> Split:
    """Training and validation rows: the manifest's `split` column, else a seeded hold-out.

    With a `split` column, `train` rows train and `val` rows validate (`test` rows are
    never used); when it has no `val` rows, the hold-out is taken from the `train` rows.
    """
    if not manifest.has_split:
        return holdout(manifest, range(len(manifest.rows)), config.data.val_fraction, config.seed)
    from agfnet.data.splits import fixed_split

    parts = fixed_split(manifest)
    if not parts["val"]:
        return holdout(manifest, parts["train"], config.data.val_fraction, config.seed)
    return Split(parts["train"], parts["val"], "manifest split column")


def check_split(manifest: Any, split: Split, classes: list[str]) -> None:
    """Refuse splits that cannot train or validate (before anything is written)."""
    if not split.train or not split.val:
        raise UserError(
            f"the data give {len(split.train)} training and {len(split.val)} validation rows; "
            "both must be non-empty (add rows or change data.val_fraction)"
        )
    val_labels = {manifest.rows[i].label for i in split.val}
    if len(val_labels) < 2:
        raise UserError(
            f"the validation rows hold one class only ({', '.join(val_labels)}); raise "
            "data.val_fraction or add rows so validation sees at least two classes"
        )
    missing = sorted(set(classes) - {manifest.rows[i].label for i in split.train})
    if missing:
        log.warning("classes without training rows: %s", ", ".join(missing))


def class_weights(config: TrainConfig, manifest: Any, train: list[int]) -> list[float] | None:
    """Cross-entropy class weights from `loss.class_weights` (None: unweighted).

    "balanced" gives n / (K * n_k) over the training rows (as scikit-learn's
    `compute_class_weight`), a class without training rows counting as one.
    """
    setting = config.loss.class_weights
    classes = list(manifest.classes)
    if setting == "none":
        return None
    if setting == "balanced":
        counts = Counter(manifest.rows[i].label for i in train)
        return [len(train) / (len(classes) * max(1, counts[c])) for c in classes]
    if len(setting) != len(classes):
        raise UserError(
            f"loss.class_weights has {len(setting)} values but there are {len(classes)} "
            f"classes ({', '.join(classes)}); give one weight per class in that order"
        )
    return list(setting)


def _precision(config: TrainConfig, on_gpu: bool) -> str:
    import torch

    if config.trainer.precision != "auto":
        return config.trainer.precision
    if not on_gpu:
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def _on_gpu(config: TrainConfig) -> bool:
    import torch

    acc = config.trainer.accelerator
    return acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available())


def transform_config(config: TrainConfig, model: Any) -> Any:
    """The run's `TransformConfig`: `data.transform` plus the image size.

    The image size is `data.img_size`, else the model's `default_img_size`.
    """
    from agfnet.data import TransformConfig

    img_size = config.data.img_size or model.default_img_size
    # data.transform was checked against TransformConfig when the config was validated.
    return TransformConfig(**config.data.transform, img_size=img_size)


def fit(
    config: TrainConfig,
    data: str | Path | Any,
    out: str | Path,
    *,
    resume: bool = False,
    split: Split | None = None,
    callbacks: Sequence[Any] = (),
    command: str | None = None,
) -> RunResult:
    """Train one model and leave a self-describing run folder.

    OUT gets config.yaml, classes.json, split.csv, version.json, weights.json (where the
    pretrained weights came from), checkpoints/best.ckpt and last.ckpt (written
    atomically), logs/csv/metrics.csv, logs/tensorboard/ and, after training,
    metrics.json: the validation metrics of best.ckpt, whose temperature is then fitted
    on the validation rows and stored in it.

    Args:
        config: the resolved config.
        data: manifest CSV path, or a manifest already read.
        out: the run folder.
        resume: continue from OUT/checkpoints/last.ckpt (same epoch, optimiser and
            scheduler state); the config must match OUT/config.yaml.
        split: training/validation positions; None uses `default_split`.
        callbacks: extra Lightning callbacks.
        command: the command line recorded in version.json (default: sys.argv).

    Returns:
        A `RunResult`.

    Raises:
        UserError: bad data or config (before anything is written), or a diverged run
            (`TrainingDivergedError`, last good checkpoint kept).
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from agfnet.engine.callbacks import NonFiniteGuard
    from agfnet.engine.checkpoint import AtomicCheckpointIO
    from agfnet.engine.console import EpochSummary, hide_lightning_tips, quiet_console
    from agfnet.engine.datamodule import PairedDataModule
    from agfnet.engine.loggers import AppendingCSVLogger
    from agfnet.engine.module import PairedClassifierModule, build_network
    from agfnet.engine.preemption import PreemptionGuard
    from agfnet.models.weights import weight_sources

    out = Path(out)
    manifest = read_data(data, config)
    split = split or default_split(manifest, config)
    check_split(manifest, split, list(manifest.classes))
    log.info(
        "%d training rows, %d validation rows (%s)", len(split.train), len(split.val), split.source
    )
    weights = class_weights(config, manifest, split.train)

    # Task heads and the metadata encoder (data.tasks, data.metadata): the metadata's
    # vocabularies and statistics come from the training rows only.
    task_classes = {t: list(manifest.task_classes[t]) for t in manifest.tasks}
    metadata_spec = metadata_for(manifest, split.train, config)

    L.seed_everything(config.seed, workers=True)
    model = build_network(
        config,
        len(manifest.classes),
        tasks={t: len(c) for t, c in task_classes.items()},
        metadata=metadata_spec.to_dict() if metadata_spec else None,
    )
    check_modalities(manifest, split.train + split.val, model, config.data.modality_names)
    transform = transform_config(config, model)
    on_gpu = _on_gpu(config)
    channels_last = on_gpu and config.trainer.channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)
    module = PairedClassifierModule(
        model,
        config,
        list(manifest.classes),
        transform.model_dump(mode="json"),
        class_weights=weights,
        channels_last=channels_last,
        task_classes=task_classes,
    )

    ckpt_dir = out / CHECKPOINT_DIR
    last = ckpt_dir / "last.ckpt"
    # Decided by every rank alike: all of them must load the same checkpoint.
    continuing = resume and last.is_file()
    if is_rank_zero():
        prepare_run_folder(out, config, manifest, split, resume, command)
        if not continuing:  # the weights the run started from (a resumed run keeps its own)
            write_json(out / "weights.json", weight_sources(model))
    if on_gpu:
        torch.set_float32_matmul_precision("high")

    datamodule = PairedDataModule(
        manifest,
        split.train,
        split.val,
        transform,
        batch_size=config.data.batch_size,
        num_workers=resolve_num_workers(config.data.num_workers),
        seed=config.seed,
        sampler=config.data.sampler,
        metadata_spec=metadata_spec,
    )
    best_checkpointer = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=config.monitor.metric,
        mode=config.monitor.mode,
        save_top_k=1,
        enable_version_counter=False,
    )
    # A second checkpointer for last.ckpt: Lightning's `save_last` only writes it in
    # epochs where the best checkpoint changed, and --resume needs the latest epoch.
    last_checkpointer = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="last",
        monitor=None,
        save_top_k=1,
        enable_version_counter=False,
    )
    preemption = PreemptionGuard(last)
    all_callbacks: list[Any] = [
        best_checkpointer,
        last_checkpointer,
        NonFiniteGuard(ckpt_dir),
        *callbacks,
        EpochSummary(),
        preemption,
    ]
    if config.monitor.patience:
        all_callbacks.append(
            EarlyStopping(
                monitor=config.monitor.metric,
                mode=config.monitor.mode,
                patience=config.monitor.patience,
            )
        )
    hide_lightning_tips()  # before the Trainer, which prints one when built
    devices = config.trainer.devices if isinstance(config.trainer.devices, int) else 1
    world = devices * config.trainer.num_nodes
    steps_per_epoch = max(1, len(split.train) // (config.data.batch_size * world))
    trainer = L.Trainer(
        default_root_dir=out,
        max_epochs=config.trainer.epochs,
        accelerator=config.trainer.accelerator,
        devices=config.trainer.devices,
        num_nodes=config.trainer.num_nodes,
        strategy=config.trainer.strategy,
        precision=_precision(config, on_gpu),
        callbacks=all_callbacks,
        logger=[
            AppendingCSVLogger(out),
            TensorBoardLogger(out, name="logs", version="tensorboard", default_hp_metric=False),
        ],
        plugins=[AtomicCheckpointIO()],
        deterministic=config.trainer.deterministic,
        benchmark=on_gpu and not config.trainer.deterministic,
        gradient_clip_val=config.trainer.gradient_clip_val,
        accumulate_grad_batches=config.trainer.accumulate_grad_batches,
        log_every_n_steps=min(config.trainer.log_every_n_steps, steps_per_epoch),
        enable_progress_bar=config.trainer.progress_bar,
        enable_model_summary=False,
    )
    with (
        quiet_console(out / "logs" / "warnings.log"),
        preemption.watching(trainer),
        warnings.catch_warnings(),
    ):
        # Lightning warns that checkpoints/ is not empty: expected when resuming.
        warnings.filterwarnings("ignore", message="Checkpoint directory .* is not empty")
        trainer.fit(module, datamodule=datamodule, ckpt_path=last if continuing else None)
    epochs = trainer.current_epoch
    best = ckpt_dir / "best.ckpt"
    if not trainer.is_global_zero:
        return RunResult(out, best, last, {}, 1.0, epochs)
    metrics = calibrate_and_score(best, manifest, split.val, out / "metrics.json", config)
    return RunResult(out, best, last, metrics, metrics["temperature"], epochs)


def calibrate_and_score(
    best: Path, manifest: Any, val: list[int], metrics_path: Path, config: TrainConfig
) -> dict[str, Any]:
    """Fit the temperature of `best` on the validation rows, store it, write metrics.json.

    Returns:
        Validation metrics of the raw model (temperature 1, as selected), plus
        `temperature`, `epoch`, and `calibrated`: the metrics with the temperature applied.
    """
    from agfnet.data import PairedLesionDataset, TransformConfig, build_transforms
    from agfnet.evaluation.calibration import apply_temperature, fit_temperature
    from agfnet.evaluation.metrics import compute_metrics
    from agfnet.runtime.batch import predict
    from agfnet.runtime.checkpoint import META_KEY, atomic_save, build_model, read_checkpoint
    from agfnet.runtime.device import resolve_device

    ckpt = read_checkpoint(best)
    model, info = build_model(ckpt, best)
    dataset = PairedLesionDataset(
        manifest,
        indices=val,
        transform=build_transforms(TransformConfig(**info.transform), train=False),
        metadata_spec=info.metadata_spec(),
    )
    device = resolve_device("cuda" if _on_gpu(config) else "cpu")
    preds = predict(model, dataset, batch_size=config.data.batch_size, device=device)
    temperature = fit_temperature(preds.logits, preds.labels)
    ckpt["hyper_parameters"][META_KEY]["temperature"] = temperature
    atomic_save(ckpt, best)
    metrics = compute_metrics(preds.labels, apply_temperature(preds.logits, 1.0), info.classes)
    metrics.update(
        split="val",
        checkpoint=str(best),
        epoch=info.epoch,
        temperature=temperature,
        calibrated=compute_metrics(
            preds.labels, apply_temperature(preds.logits, temperature), info.classes
        ),
    )
    write_json(metrics_path, metrics)
    return metrics
