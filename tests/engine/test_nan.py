"""A diverging run stops with a clear message and keeps its last good checkpoint."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.engine.callbacks import TrainingDivergedError
from agfnet.engine.checkpoint import load_model
from agfnet.engine.train import fit


class PoisonWeights(L.Callback):
    """Test hook: set one weight to NaN when epoch `epoch` starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                next(pl_module.model.parameters()).view(-1)[0] = float("nan")


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(
    manifest_path: Path, tiny_config, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as err:
        fit(
            tiny_config(model="clinical_only_tiny", epochs=3),
            manifest_path,
            out,
            callbacks=[PoisonWeights(epoch=1)],
        )
    msg = str(err.value)
    last = out / "checkpoints" / "last.ckpt"
    assert "loss became NaN at epoch 1 step 4" in msg  # 32 training rows / batch 8 = 4 steps
    assert f"last good checkpoint kept at {last} (epoch 0)" in msg
    assert "optim.lr" in msg
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["epoch"] == 0
    model, _ = load_model(last)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not (out / "metrics.json").exists()  # no calibration of a diverged run


def test_cli_exits_non_zero_on_divergence(manifest_path: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(manifest_path),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--img-size",
            "32",
            "--batch-size",
            "8",
            "--model",
            "clinical_only_tiny",
            "optim.lr=1e10",
            "trainer.gradient_clip_val=null",
            "trainer.progress_bar=false",
            "trainer.accelerator=cpu",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "error: " in result.output
    assert "became" in result.output  # "loss became NaN/inf" or "weights became non-finite"
    assert "Traceback" not in result.output
