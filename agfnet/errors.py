"""Errors that mean "the user's input is wrong", as opposed to a bug in agfnet."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: a bad file, manifest row, flag, config key or value.

    The message names the file, row or field and says how to fix it. The CLI prints it
    without a traceback and exits with status 2; library callers can catch it.
    """


class ManifestError(UserError):
    """A manifest failed validation. `problems` lists every bad row at once."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])
