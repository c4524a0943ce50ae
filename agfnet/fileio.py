"""Atomic file writes shared by every layer (standard library only).

A reader never sees half a file: each write goes to a temporary file beside the
destination, which then replaces it in one `os.replace`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_text", "write_json"]


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file and `os.replace`.

    Args:
        path: destination; its folder is created if needed.
        text: the content.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON atomically (values JSON cannot hold go through str)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")
