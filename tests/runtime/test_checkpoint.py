"""Checkpoint I/O: atomic writes, weights_only reads, metadata updates, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agfnet.engine.checkpoint import (
    AtomicCheckpointIO,
    CheckpointInfo,
    atomic_save,
    read_checkpoint,
)
from agfnet.errors import UserError


def _fake_checkpoint(temperature: float = 1.0) -> dict:
    return {
        "epoch": 3,
        "state_dict": {"model.w": torch.ones(2), "criterion.class_weights": torch.ones(5)},
        "hyper_parameters": {
            "agfnet": {
                "build_spec": {"name": "agfnet_tiny", "num_classes": 5, "overrides": {}},
                "classes": ["a", "b", "c", "d", "e"],
                "transform": {"img_size": 32},
                "config": {"seed": 1},
                "temperature": temperature,
                "version": "0.1.0",
            }
        },
    }


def test_atomic_save_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "c.ckpt"
    atomic_save({"a": torch.zeros(3)}, path)
    atomic_save({"a": torch.ones(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


def test_a_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "c.ckpt"
    atomic_save({"a": torch.zeros(3)}, path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        atomic_save({"bad": lambda: 0}, path)  # lambdas cannot be pickled
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


def test_checkpoint_io_plugin_writes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_fake_checkpoint(), path)
    assert read_checkpoint(path)["epoch"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_info_reads_the_metadata(tmp_path: Path) -> None:
    path = tmp_path / "best.ckpt"
    atomic_save(_fake_checkpoint(temperature=1.7), path)
    info = CheckpointInfo.from_checkpoint(read_checkpoint(path), path)
    assert info.temperature == pytest.approx(1.7)
    assert info["classes"] == ["a", "b", "c", "d", "e"]
    assert info.epoch == 3
    assert info.build_spec["name"] == "agfnet_tiny"
    assert info.path == str(path)


def test_missing_and_corrupt_checkpoints_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        read_checkpoint(bad)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(UserError, match="no agfnet metadata"):
        read_checkpoint(foreign)


def _checkpoint_of(model: torch.nn.Module, spec: dict) -> dict:
    ckpt = _fake_checkpoint()
    ckpt["state_dict"] = {f"model.{k}": v for k, v in model.state_dict().items()}
    ckpt["hyper_parameters"]["agfnet"]["build_spec"] = spec
    return ckpt


@pytest.mark.parametrize(
    ("name", "trained_with"),
    [
        ("agfnet_tiny", {"out_indices": (-3, -2, -1)}),
        ("agfnet_paper", {"out_indices": (-3, -2, -1), "scale_dim": 256}),
    ],
)
def test_checkpoints_of_the_old_fused_scales_still_load(name, trained_with) -> None:
    """A checkpoint written before issue 15 records no out_indices / scale_dim: it was
    trained with three fused scales (and width 256 at the paper size). It loads with the
    weights it has, and the rebuilt spec says how it was built."""
    from agfnet.models import create_model
    from agfnet.runtime.checkpoint import build_model

    old = create_model(name, num_classes=5, seed=0, **trained_with).eval()
    ckpt = _checkpoint_of(old, {"name": name, "num_classes": 5, "overrides": {}})
    model, info = build_model(ckpt)
    for key, value in trained_with.items():
        assert getattr(model.config, key) == value
        assert info.build_spec["overrides"][key] == value
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model(x, x), old(x, x))
    # Weights of no version at all are still refused, with the reason.
    ckpt["state_dict"]["model.bogus"] = torch.zeros(1)
    with pytest.raises(UserError, match="do not fit model"):
        build_model(ckpt)
