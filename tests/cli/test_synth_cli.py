"""`agfnet synth`: writes the benchmark, refuses to clobber a folder, rejects bad options."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agfnet.cli.app import app

ARGS = ["--n-per-class", "2", "--size", "32", "--workers", "1"]


def _invoke(*args: str):
    return CliRunner().invoke(app, ["synth", *args], env={"COLUMNS": "200"})


def test_synth_writes_a_benchmark_and_reports_the_bayes_figures(tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = _invoke(str(out), *ARGS, "--seed", "7")
    assert result.exit_code == 0, result.output
    with (out / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    assert all((out / r["clinical"]).is_file() and (out / r["ultrasound"]).is_file() for r in rows)
    meta = json.loads((out / "synth.json").read_text())
    assert (meta["seed"], meta["size"], meta["n_per_class"]) == (7, 32, 2)
    assert f"both {meta['bayes_accuracy']['both']:.3f}" in result.output


def test_non_empty_output_is_refused_until_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert _invoke(str(out), *ARGS).exit_code == 0
    before = (out / "images" / "clinical" / "L00001.png").read_bytes()

    refused = _invoke(str(out), *ARGS, "--seed", "1")
    assert refused.exit_code == 2
    assert str(out) in refused.output
    assert "--overwrite" in refused.output
    assert "Traceback" not in refused.output
    assert (out / "images" / "clinical" / "L00001.png").read_bytes() == before

    replaced = _invoke(str(out), *ARGS, "--seed", "1", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert (out / "images" / "clinical" / "L00001.png").read_bytes() != before


@pytest.mark.parametrize(
    ("option", "value"), [("--size", "8"), ("--n-per-class", "0"), ("--size", "5000")]
)
def test_invalid_options_are_refused_clearly(tmp_path: Path, option: str, value: str) -> None:
    out = tmp_path / "s"
    result = _invoke(str(out), "--workers", "1", option, value)
    assert result.exit_code == 2
    assert result.output.startswith("error:")
    assert option in result.output
    assert not out.exists()
