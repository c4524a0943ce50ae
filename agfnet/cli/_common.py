"""Helpers shared by the command modules: user-error handling and JSON output.

Only the standard library and typer here: this module is imported by `agfnet --help`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from agfnet.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])


def cli_command(func: F) -> F:
    """Wrap a command so a `UserError` prints `error: <message>` and exits with status 2.

    `functools.wraps` keeps the signature typer reads the options from.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
