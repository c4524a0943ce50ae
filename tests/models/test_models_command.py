"""`agfnet models`: the table of every registered model, as Markdown and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.models import list_models


def test_models_command_lists_every_model_with_params_and_flops(tmp_path: Path) -> None:
    out = tmp_path / "models.json"
    result = CliRunner().invoke(app, ["models", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows = {r["name"]: r for r in data["models"]}
    assert set(rows) == set(list_models())
    assert all(r["params"] > 0 and r["gflops"] > 0 for r in rows.values())
    assert rows["agfnet_paper"]["img_size"] == 224 and rows["agfnet_tiny"]["img_size"] == 96
    assert rows["agfnet_paper"]["gflops"] > 10 * rows["agfnet_tiny"]["gflops"]
    assert "multiply-add is 2 FLOPs" in data["flops_convention"]
    markdown = out.with_suffix(".md").read_text()
    assert all(f"`{name}`" in markdown for name in rows)
    assert "| `agfnet_tiny` |" in result.stdout


def test_models_command_filter_and_size(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    result = CliRunner().invoke(
        app, ["models", "--filter", "late_concat_tiny", "--img-size", "192", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["models"]
    assert [r["name"] for r in rows] == ["late_concat_tiny"] and rows[0]["img_size"] == 192


def test_models_command_unmatched_filter_is_a_user_error() -> None:
    result = CliRunner().invoke(app, ["models", "--filter", "nothing_like_this"])
    assert result.exit_code == 2
    assert "matches no model" in result.output
