"""Helpers shared by the command modules: user-error handling and JSON output.

Only the standard library and typer here: this module is imported by `agfnet --help`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from agfnet.errors import UserError
from agfnet.fileio import write_json

__all__ = [
    "COMPILE_OPTION",
    "MC_OPTION",
    "SEED_OPTION",
    "TTA_OPTION",
    "cli_command",
    "write_json",
]

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


# Options shared by `agfnet evaluate` and `agfnet predict` (agfnet.inference.stochastic).
MC_OPTION: Any = typer.Option(
    0,
    "--mc",
    min=0,
    help="Monte-Carlo dropout: average N passes with the model's dropout on and report "
    "their spread (a checkpoint trained with dropout).",
)
TTA_OPTION: Any = typer.Option(
    0,
    "--tta",
    min=0,
    help="Test-time augmentation: average N passes over flipped/cropped views and report "
    "their spread.",
)
SEED_OPTION: Any = typer.Option(0, "--seed", min=0, help="Seed of --mc / --tta.")
# `agfnet evaluate` and `agfnet predict`: None is "auto" (agfnet.runtime.compile).
COMPILE_OPTION: Any = typer.Option(
    None,
    "--compile/--no-compile",
    help="torch.compile the network (the first batch then compiles; the cache is kept "
    "in ~/.cache/agfnet/inductor). Default: on for CUDA, off on the CPU.",
    show_default=False,
)
