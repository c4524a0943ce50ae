"""SIGTERM (a scheduler's pre-emption) stops a training cleanly; --resume continues it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.engine.preemption import PreemptionGuard, TrainingPreemptedError

SETTINGS = [
    "data.img_size=32",
    "data.batch_size=8",
    "trainer.progress_bar=false",
    "trainer.accelerator=cpu",
]

# `agfnet train ARGS`, with epoch 1 slowed down and a marker touched there, so that the
# test can send SIGTERM mid-epoch.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import lightning as L
    import agfnet.engine.train as train

    marker, *args = sys.argv[1:]

    class SlowSecondEpoch(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == 1:
                Path(marker).write_text(str(batch_idx))
                time.sleep(4)

    fit = train.fit
    train.fit = lambda *a, **k: fit(*a, **k, callbacks=[SlowSecondEpoch()])
    from agfnet.cli.app import app

    app(args, prog_name="agfnet")
    """
)


def _trainer() -> SimpleNamespace:
    return SimpleNamespace(current_epoch=2, global_step=12, max_epochs=5)


def _handler(signum: int, frame: object) -> None:
    pass


@pytest.fixture
def guard(tmp_path: Path):
    previous = signal.signal(signal.SIGTERM, _handler)
    yield PreemptionGuard(tmp_path / "last.ckpt")
    assert signal.getsignal(signal.SIGTERM) is _handler  # the guard put it back
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_in_the_block_stops_it_with_a_message(guard, tmp_path: Path) -> None:
    torch.save({"epoch": 1}, tmp_path / "last.ckpt")
    with pytest.raises(TrainingPreemptedError) as err, guard.watching(_trainer()):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # the handler runs here, and the block goes on
    assert str(err.value) == (
        f"training pre-empted (SIGTERM) at epoch 2 step 12; {tmp_path / 'last.ckpt'} holds "
        "epoch 1; run the same command again to continue from epoch 2 (agfnet train: add "
        "--resume)"
    )


def test_lightnings_sigterm_exit_becomes_the_error(guard) -> None:
    # Lightning stops with SIGTERMException, a SystemExit of status 0.
    expected = pytest.raises(TrainingPreemptedError, match="nothing to resume")
    with expected, guard.watching(_trainer()):
        raise SIGTERMException


def test_after_the_last_epoch_resuming_only_calibrates(guard, tmp_path: Path) -> None:
    torch.save({"epoch": 4}, tmp_path / "last.ckpt")
    expected = pytest.raises(TrainingPreemptedError, match=r"every epoch had finished .* calibrate")
    with expected, guard.watching(_trainer()):
        raise SIGTERMException


def test_other_errors_pass_through_and_the_handler_comes_back(guard) -> None:
    with pytest.raises(KeyError), guard.watching(_trainer()):
        assert signal.getsignal(signal.SIGTERM) is not _handler
        raise KeyError("not a pre-emption")
    with guard.watching(_trainer()):
        pass


def test_sigterm_mid_epoch_then_resume(manifest_path: Path, tmp_path: Path) -> None:
    out, marker = tmp_path / "run", tmp_path / "mid_epoch_1"
    script = tmp_path / "train_slowly.py"
    script.write_text(SCRIPT)
    args = ["train", "--data", str(manifest_path), "--out", str(out), "--epochs", "2"]
    args += ["--model", "clinical_only_tiny", *SETTINGS]
    log = tmp_path / "train.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(marker), *args, "data.num_workers=2"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the training never reached epoch 1"
            time.sleep(0.2)
        # As SLURM does, to every process of the job: the loader workers get it too.
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)  # within a scheduler's grace period: after the batch
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = log.read_text()
    assert proc.returncode == 2, output
    last = out / "checkpoints" / "last.ckpt"
    assert (
        f"error: training pre-empted (SIGTERM) at epoch 1 step {4 + int(marker.read_text()) + 1};"
        f" {last} holds epoch 0; run the same command again to continue from epoch 1"
    ) in output
    assert "Traceback" not in output and "💡" not in output
    assert "epoch 0/1: train/loss" in output and "epoch 1/1" not in output
    assert torch.load(last, weights_only=True)["epoch"] == 0  # epoch 1 never finished

    # Where it runs may change on resuming: here, no loader workers.
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    final = torch.load(last, weights_only=True)
    assert final["epoch"] == 1
    assert final["global_step"] == 8  # 4 steps in each of the two epochs
    assert (out / "metrics.json").is_file()
