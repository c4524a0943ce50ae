"""The train/cv/compare/demo/evaluate commands parse their options into the engine calls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from agfnet.cli.app import app

runner = CliRunner()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the engine entry points by recorders."""
    seen: dict[str, Any] = {}

    def fake_fit(config, data, out, *, resume=False, **kw):
        seen["fit"] = SimpleNamespace(config=config, data=data, out=out, resume=resume)
        return SimpleNamespace(metrics={}, best_checkpoint=out, temperature=1.0)

    def fake_cv(config, data, out, *, n_folds, overwrite):
        seen["cv"] = SimpleNamespace(config=config, n_folds=n_folds, overwrite=overwrite)
        acc = {"mean": 0.5, "std": 0.1}
        return SimpleNamespace(summary={"accuracy": acc}, folds=[{}] * n_folds)

    def fake_compare(config, data, out, *, models, n_folds, overwrite):
        seen["compare"] = SimpleNamespace(config=config, models=models, n_folds=n_folds)
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "table.md").write_text("| model |\n")
        return SimpleNamespace(out=Path(out))

    monkeypatch.setattr("agfnet.engine.train.fit", fake_fit)
    monkeypatch.setattr("agfnet.engine.cv.run_cv", fake_cv)
    monkeypatch.setattr("agfnet.engine.compare.run_compare", fake_compare)
    return seen


def test_train_flags_and_overrides(calls: dict[str, Any], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            "m.csv",
            "--config",
            "paper",
            "--model",
            "late_concat_paper",
            "--out",
            str(tmp_path),
            "--epochs",
            "3",
            "--batch-size",
            "4",
            "--img-size",
            "64",
            "--seed",
            "9",
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--accelerator",
            "cpu",
            "--resume",
            "optim.lr=0.01",
            "trainer.epochs=50",
            "loss.class_weights=balanced",
        ],
    )
    assert result.exit_code == 0, result.output
    cfg = calls["fit"].config
    assert cfg.model.name == "late_concat_paper"
    assert cfg.trainer.epochs == 3  # the flag beats the key=value
    assert (cfg.data.batch_size, cfg.data.img_size, cfg.seed) == (4, 64, 9)
    assert (cfg.trainer.devices, cfg.trainer.strategy, cfg.trainer.accelerator) == (2, "ddp", "cpu")
    assert cfg.optim.lr == 0.01 and cfg.loss.class_weights == "balanced"
    assert cfg.scheduler.warmup_epochs == 5  # from paper.yaml
    assert calls["fit"].resume is True


def test_unknown_key_is_a_user_error(calls: dict[str, Any]) -> None:
    result = runner.invoke(app, ["train", "--data", "m.csv", "optim.learning_rate=1"])
    assert result.exit_code == 2
    assert "unknown config key 'optim.learning_rate'" in result.output
    assert "optim.lr" in result.output
    assert "Traceback" not in result.output
    assert "fit" not in calls


def test_cv_and_compare_parse(calls: dict[str, Any], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "cv",
            "--data",
            "m.csv",
            "--folds",
            "3",
            "--model",
            "clinical_only_tiny",
            "--out",
            str(tmp_path / "cv"),
            "--overwrite",
            "--epochs",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (calls["cv"].n_folds, calls["cv"].overwrite) == (3, True)
    assert calls["cv"].config.model.name == "clinical_only_tiny"
    assert "0.5000 ± 0.1000" in result.output
    result = runner.invoke(
        app,
        [
            "compare",
            "--data",
            "m.csv",
            "--models",
            "a,b",
            "--folds",
            "4",
            "--out",
            str(tmp_path / "cmp"),
            "seed=3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (calls["compare"].models, calls["compare"].n_folds) == ("a,b", 4)
    assert calls["compare"].config.seed == 3


def test_help_is_cheap_and_documented() -> None:
    # `agfnet --help` must not import torch: the command modules keep heavy imports inside.
    code = "import sys, agfnet.cli.app; print('torch' in sys.modules, 'lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    for command in ("train", "cv", "compare", "demo", "evaluate"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "Example:" in result.output
