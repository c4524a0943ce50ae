"""Resolve a manifest's image cell to a file under its folder, or say why it cannot be used."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["resolve_image"]


def _not_found_reason(path: Path) -> str:
    reason = f"file not found: {path}"
    try:
        siblings = os.listdir(path.parent)
    except OSError:
        return reason + " (its folder does not exist either); check the path."
    same = [s for s in siblings if s.lower() == path.name.lower()]
    if same:
        return reason + f"; the folder has '{same[0]}' (file names are case-sensitive)."
    stem = path.stem.lower()
    other = sorted(s for s in siblings if Path(s).stem.lower() == stem)
    if other:
        return reason + f"; the folder has '{other[0]}' (another extension)."
    return reason + "; check the path."


def resolve_image(cell: str, root: Path) -> tuple[Path | None, str | None]:
    """Resolve one image cell (relative to `root`, or absolute).

    Args:
        cell: the stripped, non-blank cell.
        root: the manifest's folder.

    Returns:
        (path, None) for an existing file, else (None, why it is unusable): a path that
        escapes `root`, a folder, or a missing file (with a hint at a near name).
    """
    raw = Path(cell)
    if raw.is_absolute():
        path = Path(os.path.normpath(raw))
    else:
        rel = os.path.normpath(cell)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            return None, (
                f"path '{cell}' escapes the data root {root}: keep images under the "
                "manifest's folder, or give an absolute path."
            )
        path = root / rel
    if path.is_file():
        return path, None
    if path.exists():
        return None, f"{path} is a folder, not an image file."
    return None, _not_found_reason(path)
