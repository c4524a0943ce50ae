"""Placeholder: being written."""

from __future__ import annotations


def benchmark() -> None:
    """Placeholder."""
    raise NotImplementedError
