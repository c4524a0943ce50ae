"""The `agfnet` command as a whole: help, start-up cost, README and CI agree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agfnet.cli.app import app

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "timm", "lightning", "torchvision", "matplotlib", "sklearn", "onnxruntime")


def test_importing_the_cli_imports_no_heavy_library() -> None:
    code = (
        "import sys, agfnet.cli.app\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing agfnet.cli.app pulled in: {out}"


def _commands() -> list[str]:
    names = [c.name for c in app.registered_commands]
    names += [g.name for g in app.registered_groups]
    return [n for n in names if n]


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`agfnet {command} --help` shows no example"


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in _commands():
        assert name in result.output


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)\n(.*?)```", text, re.S)
    assert block, "README.md must open with a bash block holding the two commands"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_opens_with_two_commands_and_ci_runs_the_test_one() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "agfnet demo" in demo
    assert "pytest" in tests
    ci = (REPO / ".ci" / "run").read_text()
    assert tests in ci, ".ci/run must run the README's test command verbatim"


def test_python_dash_m_agfnet_works() -> None:
    env = {**os.environ, "COLUMNS": "120"}
    out = subprocess.run(
        [sys.executable, "-m", "agfnet", "--help"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "synth" in out.stdout
