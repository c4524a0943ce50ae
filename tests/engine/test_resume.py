"""Kill a training with SIGKILL mid-epoch, resume it: it continues and loses nothing."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.engine.checkpoint import load_model

SETTINGS = [
    "data.img_size=32",
    "data.batch_size=8",
    "trainer.progress_bar=false",
    "trainer.accelerator=cpu",
]

# Trains like `agfnet train --epochs 2 --model clinical_only_tiny SETTINGS`, slowed down in
# epoch 1 and touching a marker there, so the test can kill it mid-epoch.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import lightning as L
    from agfnet.engine.config import load_config
    from agfnet.engine.train import fit

    manifest, out, marker, *settings = sys.argv[1:]

    class SlowSecondEpoch(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == 1:
                Path(marker).write_text(str(batch_idx))
                time.sleep(30)

    config = load_config("tiny", settings, epochs=2, model="clinical_only_tiny")
    fit(config, manifest, out, callbacks=[SlowSecondEpoch()])
    """
)


def _csv_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "logs" / "csv" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_sigkill_mid_epoch_then_resume(manifest_path: Path, tmp_path: Path) -> None:
    out, marker = tmp_path / "run", tmp_path / "mid_epoch_1"
    script = tmp_path / "train_slowly.py"
    script.write_text(SCRIPT)
    log = tmp_path / "train.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(manifest_path), str(out), str(marker), *SETTINGS],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the training never reached epoch 1"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    last = out / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0  # epoch 1 never finished
    before = {
        name: (out / name).read_bytes()
        for name in ("config.yaml", "classes.json", "split.csv", "checkpoints/best.ckpt")
    }
    rows_before = _csv_rows(out)
    assert any(r["val/loss"] for r in rows_before)

    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(manifest_path),
            "--out",
            str(out),
            "--resume",
            "--epochs",
            "2",
            "--model",
            "clinical_only_tiny",
            *SETTINGS,
        ],
    )
    assert result.exit_code == 0, result.output

    final = torch.load(last, weights_only=True)
    assert final["epoch"] == 1
    assert final["global_step"] == 8  # 4 steps in each of the two epochs
    for name in ("config.yaml", "classes.json", "split.csv"):
        assert (out / name).read_bytes() == before[name], name
    rows_after = _csv_rows(out)
    # Appended, not rewritten from scratch: the old rows are still there, in order ...
    assert rows_after[: len(rows_before)] == [
        {k: r.get(k, "") for k in rows_after[0]} for r in rows_before
    ]
    # ... and epoch 0 was not trained again (it would log a second validation row).
    assert [int(r["epoch"]) for r in rows_after if r["val/loss"]] == [0, 1]
    model, info = load_model(out / "checkpoints" / "best.ckpt")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert info.temperature != 1.0  # calibrated after the resumed training
    assert "resumed" in (out / "version.json").read_text()
