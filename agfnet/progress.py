"""A progress bar for long loops: rich on stderr, or nothing at all when switched off."""

from __future__ import annotations

from typing import Any

__all__ = ["StepBar"]


class StepBar:
    """A transient rich progress bar over `total` steps, printed on stderr.

    With `enabled` False every method does nothing, so a loop calls `advance()` without
    asking whether a bar is shown. Use as a context manager, or `start()` / `stop()`.

    Example:
        with StepBar("explaining", total=len(rows), enabled=progress) as bar:
            for row in rows:
                ...
                bar.advance()
    """

    def __init__(self, description: str, total: int, enabled: bool = True) -> None:
        self.description = description
        self.total = total
        self._bar: Any = None
        self._task: Any = None
        self.enabled = enabled

    def start(self) -> StepBar:
        """Show the bar (once)."""
        if self.enabled and self._bar is None:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def advance(self, steps: int = 1) -> None:
        """Count `steps` more steps done."""
        if self._bar is not None:
            self._bar.advance(self._task, steps)

    def describe(self, text: str) -> None:
        """Replace the text beside the bar (e.g. the step now running)."""
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def stop(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> StepBar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
