"""Test-wide settings (offline hub, one thread per worker, a fixed seed) and the shared
fixtures of the training and workflow tests: a tiny synthetic benchmark and one trained run
(a folder's own conftest.py may define a fixture of the same name for its tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports timm or torch: nothing may be fetched from a hub in tests, and
# each xdist worker gets one thread so two workers share the two cores fairly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# Lightning attaches a StreamHandler to sys.stderr when first imported. Imported inside a
# typer CliRunner call, that handler would keep the runner's stream, closed once the call
# returns, and every later Lightning log line in this worker would print "Logging error".
import lightning.pytorch  # noqa: F401

# Small enough for two CPU cores: 32 px images, 8 pairs per class, 1-2 epochs.
TINY = [
    "data.img_size=32",
    "data.batch_size=8",
    "trainer.progress_bar=false",
    "trainer.accelerator=cpu",
]


def _tiny_config(*overrides: str, epochs: int = 2, model: str = "agfnet_tiny"):
    from agfnet.engine.config import load_config

    return load_config("tiny", [*TINY, *overrides], epochs=epochs, model=model)


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(*overrides, epochs=2, model="agfnet_tiny")`: the tiny preset, shrunk."""
    return _tiny_config


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-pair synthetic benchmark at 32 px (seed 3)."""
    from agfnet.data.synth import generate

    out = tmp_path_factory.mktemp("engine") / "synth"
    generate(out, n_per_class=8, size=32, seed=3, workers=1)
    return out


@pytest.fixture(scope="session")
def manifest_path(synth_dir: Path) -> Path:
    return synth_dir / "manifest.csv"


@pytest.fixture(scope="session")
def trained_run(manifest_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """One finished 2-epoch training of agfnet_tiny (a `RunResult`), shared by read-only tests."""
    from agfnet.engine.train import fit

    out = tmp_path_factory.mktemp("engine") / "run"
    return fit(_tiny_config(), manifest_path, out, command="pytest trained_run")
