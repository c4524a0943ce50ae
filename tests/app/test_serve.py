"""`agfnet serve` (uvicorn replaced by a recorder) and the settings it hands the app, for a
checkpoint and for an ONNX export (`--onnx`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agfnet.app import AppSettings
from agfnet.cli.app import app as cli


@pytest.fixture()
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict]]:
    """uvicorn.run replaced: each call's (app, options) is recorded instead of serving."""
    import uvicorn

    calls: list[tuple[Any, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    # serve() exports settings for worker processes; keep them out of other tests.
    monkeypatch.setattr(os, "environ", dict(os.environ))
    return calls


def _serve(checkpoint: Path, flags: list[str]) -> Result:
    """`agfnet serve --checkpoint CHECKPOINT FLAGS --device cpu`, which must succeed."""
    args = ["serve", "--checkpoint", str(checkpoint), *flags, "--device", "cpu"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result


def test_serve_builds_the_app_with_the_options(
    fusion_ckpt: Path, tmp_path: Path, uvicorn_calls: list
) -> None:
    kept = tmp_path / "kept"
    flags = ["--port", "8765", "--max-upload-mb", "5", "--keep-uploads", str(kept), "--no-cam"]
    result = _serve(fusion_ckpt, flags)
    assert "not a medical device" in result.output
    [(app, options)] = uvicorn_calls
    assert options["host"] == "127.0.0.1" and options["port"] == 8765
    assert "agfnet.app" in options["log_config"]["loggers"]
    settings = app.state.settings
    assert settings.max_upload_bytes == 5 * 1024 * 1024
    assert settings.keep_uploads == kept and kept.is_dir()
    assert settings.cam is False
    assert app.state.diagnoser.model.id.startswith("agfnet_tiny@")


def test_serve_with_workers_hands_the_settings_to_each_worker(
    fusion_ckpt: Path, uvicorn_calls: list
) -> None:
    from agfnet.app.server import app_from_env

    flags = ["--workers", "2", "--host", "0.0.0.0", "--max-image-pixels", "1000000"]
    result = _serve(fusion_ckpt, [*flags, "--cors-origin", "https://a.example"])
    assert "reachable from the network" in result.output
    [(target, options)] = uvicorn_calls
    assert target == "agfnet.app.server:app_from_env"
    assert options["factory"] is True and options["workers"] == 2
    # What a worker process builds from the environment serve() left:
    worker_app = app_from_env()
    assert worker_app.state.settings.max_image_pixels == 1_000_000
    assert worker_app.state.settings.cors_origins == ("https://a.example",)
    assert worker_app.state.diagnoser.model.id.startswith("agfnet_tiny@")


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--checkpoint", "missing.ckpt"], "does not exist"),
        (["--checkpoint", "x.ckpt", "--workers", "0"], "--workers 0"),
        (["--checkpoint", "x.ckpt", "--max-upload-mb", "0"], "must be positive"),
        (["--checkpoint", "x.ckpt", "--onnx", "x.onnx"], "both were given"),
        ([], "neither was given"),
        (["--onnx", "missing.onnx"], "does not exist"),
        (["--onnx", "x.onnx", "--device", "cuda"], "CPU provider only"),
    ],
)
def test_serve_reports_mistakes_without_a_traceback(
    args: list[str], phrase: str, uvicorn_calls: list
) -> None:
    result = CliRunner().invoke(cli, ["serve", *args])
    assert result.exit_code == 2
    assert phrase in result.output and "Traceback" not in result.output
    if "given" in phrase:  # both or neither: the message names both options
        assert "--checkpoint" in result.output and "--onnx" in result.output
    assert uvicorn_calls == []


def test_serve_with_onnx_runs_the_export_on_onnxruntime(
    onnx_file: Path, uvicorn_calls: list
) -> None:
    result = CliRunner().invoke(cli, ["serve", "--onnx", str(onnx_file), "--port", "8766"])
    assert result.exit_code == 0, result.output
    assert "ONNX Runtime, CPU, fp32" in result.stdout and "not a medical device" in result.stdout
    assert "Heatmaps are unavailable for an ONNX model" in result.stderr
    [(app, options)] = uvicorn_calls
    assert options["port"] == 8766
    diagnoser = app.state.diagnoser
    assert diagnoser.backend["runtime"] == "onnxruntime" and diagnoser.cam is False
    assert diagnoser.predictor.source == str(onnx_file)


def test_serve_with_onnx_and_workers_hands_the_file_to_each_worker(
    onnx_file: Path, uvicorn_calls: list
) -> None:
    from agfnet.app.server import app_from_env

    result = CliRunner().invoke(cli, ["serve", "--onnx", str(onnx_file), "--workers", "2"])
    assert result.exit_code == 0, result.output
    [(target, options)] = uvicorn_calls
    assert target == "agfnet.app.server:app_from_env" and options["workers"] == 2
    assert os.environ["AGFNET_CHECKPOINT"] == ""
    worker_app = app_from_env()
    assert worker_app.state.diagnoser.backend["runtime"] == "onnxruntime"
    assert worker_app.state.diagnoser.model.id.startswith("agfnet_tiny@")


def test_a_worker_needs_exactly_one_model_in_the_environment(
    fusion_ckpt: Path, onnx_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agfnet.app.server import app_from_env
    from agfnet.errors import UserError

    monkeypatch.setenv("AGFNET_CHECKPOINT", str(fusion_ckpt))
    monkeypatch.setenv("AGFNET_ONNX", str(onnx_file))
    with pytest.raises(UserError, match=r"exactly one of AGFNET_CHECKPOINT .* or AGFNET_ONNX"):
        app_from_env()
    monkeypatch.delenv("AGFNET_CHECKPOINT")
    monkeypatch.delenv("AGFNET_ONNX")
    with pytest.raises(UserError, match="exactly one of AGFNET_CHECKPOINT"):
        app_from_env()


def test_settings_round_trip_through_the_environment(tmp_path: Path) -> None:
    settings = AppSettings(
        max_upload_bytes=123,
        max_image_pixels=456,
        keep_uploads=tmp_path,
        cam=False,
        cors_origins=("https://a.example", "https://b.example"),
        max_concurrency=2,
    )
    assert AppSettings.from_env(settings.to_env()) == settings
    assert AppSettings.from_env({}) == AppSettings()
    assert AppSettings.from_env({"AGFNET_KEEP_UPLOADS": ""}).keep_uploads is None
    with pytest.raises(ValueError, match="max_upload_bytes"):
        AppSettings.from_env({"AGFNET_MAX_UPLOAD_BYTES": "-1"})
