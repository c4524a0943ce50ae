"""`agfnet predict` and `agfnet export`: argument mistakes (the runs with a checkpoint are in
tests/inference/test_cli.py, beside the checkpoint fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agfnet.cli.app import app


def run(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--clinical", "c.png"], "exactly one of --checkpoint"),
        (["--checkpoint", "a.ckpt", "--onnx", "m.onnx", "--clinical", "c.png"], "exactly one"),
        (["--checkpoint", "a.ckpt"], "nothing to predict"),
        (["--checkpoint", "a.ckpt", "--data", "m.csv", "--clinical", "c.png"], "not both"),
    ],
)
def test_argument_mistakes_exit_2(args: list[str], fragment: str) -> None:
    result = run("predict", *args)
    assert result.exit_code == 2
    assert fragment in result.stderr


def test_export_refuses_other_formats(tmp_path: Path) -> None:
    result = run(
        "export", "--checkpoint", tmp_path / "a.ckpt", "--format", "tflite", "--out", tmp_path / "m"
    )
    assert result.exit_code == 2 and "only onnx" in result.stderr


def test_a_missing_checkpoint_exits_2(tmp_path: Path) -> None:
    result = run(
        "predict",
        "--checkpoint",
        tmp_path / "gone.ckpt",
        "--clinical",
        "c.png",
        "--ultrasound",
        "u.png",
        "--device",
        "cpu",
    )
    assert result.exit_code == 2
    assert "gone.ckpt does not exist" in result.stderr and "Traceback" not in result.output


def test_onnx_runs_on_the_cpu_only(tmp_path: Path) -> None:
    result = run(
        "predict", "--onnx", tmp_path / "m.onnx", "--clinical", "c.png", "--device", "cuda"
    )
    assert result.exit_code == 2 and "CPU only" in result.stderr


def test_export_refuses_an_opset_below_18(tmp_path: Path) -> None:
    result = run("export", "--checkpoint", tmp_path / "a.ckpt", "--opset", "17")
    assert result.exit_code == 2 and "opset 18 or newer" in result.stderr


def test_cam_needs_a_checkpoint_and_a_pair(tmp_path: Path) -> None:
    result = run("predict", "--onnx", tmp_path / "m.onnx", "--clinical", "c.png", "--cam", tmp_path)
    assert result.exit_code == 2 and "--cam needs --checkpoint" in result.stderr
