"""Shared fixtures of the inference tests: a tiny synthetic set and checkpoints built fast.

The checkpoints are written exactly as training writes them (the training module's
state dict and `checkpoint_metadata`, saved with `atomic_save`), from freshly
initialised models: the inference layer must not care whether the weights are trained,
and this costs well under a second per checkpoint instead of a training run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

CLASSES = ["BCC", "SCC", "MEL", "SK", "NEV"]
IMG = 32


def write_checkpoint(
    path: Path,
    *,
    model: str = "agfnet_tiny",
    temperature: float = 1.0,
    overrides: tuple[str, ...] = (),
    seed: int = 0,
) -> Path:
    """Write a checkpoint of a freshly initialised `model` at 32 px, as `agfnet train` would."""
    import torch

    from agfnet.engine.config import load_config
    from agfnet.engine.module import PairedClassifierModule, build_network
    from agfnet.engine.train import transform_config
    from agfnet.runtime.checkpoint import atomic_save

    config = load_config("tiny", [f"data.img_size={IMG}", *overrides], model=model)
    torch.manual_seed(seed)
    network = build_network(config, len(CLASSES))
    transform = transform_config(config, network).model_dump(mode="json")
    module = PairedClassifierModule(network, config, CLASSES, transform)
    meta = {**module.checkpoint_metadata(), "temperature": temperature}
    atomic_save(
        {"state_dict": module.state_dict(), "hyper_parameters": {"agfnet": meta}, "epoch": 0},
        path,
    )
    return path


class _Evil:
    """Unpickling this calls open(marker, "w"): a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="session")
def write_malicious_checkpoint() -> Callable[[Path, Path], Path]:
    """`write_malicious_checkpoint(path, marker)`: a checkpoint-shaped file whose unpickling
    would create `marker`."""
    import torch

    def write(path: Path, marker: Path) -> Path:
        torch.save({"state_dict": {}, "hyper_parameters": {"agfnet": _Evil(marker)}}, path)
        return path

    return write


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`make_checkpoint(name, **kwargs)`: a new checkpoint file (see `write_checkpoint`)."""
    folder = tmp_path_factory.mktemp("ckpts")
    return lambda name, **kwargs: write_checkpoint(folder / f"{name}.ckpt", **kwargs)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """15 synthetic pairs (3 per class) at 32 px, with manifest.csv."""
    from agfnet.data.synth import generate

    out = tmp_path_factory.mktemp("infer") / "synth"
    generate(out, n_per_class=3, size=IMG, seed=1, workers=1)
    return out


@pytest.fixture(scope="session")
def pair(synth_dir: Path) -> tuple[Path, Path]:
    """(clinical, ultrasound) image paths of the first synthetic pair."""
    import csv

    with open(synth_dir / "manifest.csv", newline="") as f:
        first = next(csv.DictReader(f))
    return synth_dir / first["clinical"], synth_dir / first["ultrasound"]


@pytest.fixture(scope="session")
def fusion_ckpt(make_checkpoint: Callable[..., Path]) -> Path:
    """agfnet_tiny without modality dropout, temperature 1."""
    return make_checkpoint("fusion")


@pytest.fixture(scope="session")
def dropout_ckpt(make_checkpoint: Callable[..., Path]) -> Path:
    """agfnet_tiny trained with modality dropout 0.2, temperature 1.5."""
    return make_checkpoint(
        "dropout", temperature=1.5, overrides=("model.overrides.modality_dropout=0.2",)
    )


@pytest.fixture(scope="session")
def onnx_export(dropout_ckpt: Path, tmp_path_factory: pytest.TempPathFactory):
    """`agfnet export` of `dropout_ckpt` (the only export of the suite: it takes seconds):
    (ONNX path, the sidecar JSON as a dict, the command's stdout)."""
    import json

    from typer.testing import CliRunner

    from agfnet.cli.app import app

    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    args = ["export", "--checkpoint", str(dropout_ckpt), "--format", "onnx", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, json.loads(out.with_name("model.onnx.json").read_text()), result.stdout
