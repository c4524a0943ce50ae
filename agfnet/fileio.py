"""Atomic file writes shared by every layer (standard library only).

A reader never sees half a file: each write goes to a temporary file beside the
destination, which then replaces it in one `os.replace`. A folder of several files is
built in a hidden staging folder beside its destination and moved into place at the end
(`staged_folder`), so an interrupted run leaves nothing that looks finished.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_text",
    "replace_path",
    "staged_folder",
    "write_json",
    "write_rows_csv",
]


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
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


def write_rows_csv(
    path: str | os.PathLike, fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> Path:
    """Write dict rows as CSV atomically (csv module defaults: comma, CRLF line ends).

    Args:
        path: destination; its folder is created.
        fieldnames: the header, in order.
        rows: one dict per line, keyed by field name (missing keys written blank, keys
            not in `fieldnames` ignored).

    Returns:
        The path written.
    """
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def replace_path(src: str | Path, dest: str | Path) -> Path:
    """Move `src` (a file or a folder) to `dest`, replacing what is there.

    `os.replace` cannot replace a non-empty folder, so a folder at `dest` is first renamed
    aside (`.<name>.old<pid>`) and deleted once `src` has taken its place: `dest` is
    never half-written, only missing for the instant between the two renames.

    Args:
        src: what to move; on the same file system as `dest`.
        dest: where it goes.

    Returns:
        `dest`.
    """
    src, dest = Path(src), Path(dest)
    if dest.is_dir():
        old = dest.with_name(f".{dest.name}.old{os.getpid()}")
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old)
    else:
        os.replace(src, dest)
    return dest


@contextmanager
def staged_folder(dest: str | Path) -> Iterator[Path]:
    """Build a folder beside `dest` and move it into place only when the block succeeds.

    Args:
        dest: the folder to write; its parent is created. Whatever is at `dest` is
            replaced (`replace_path`) when the block ends without an exception.

    Yields:
        The new, empty staging folder `.<name>.partial<pid>` beside `dest`. On any
        exception (KeyboardInterrupt included) it is deleted and the exception propagates,
        leaving `dest` as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = dest.with_name(f".{dest.name}.partial{os.getpid()}")
    if stage.exists():
        shutil.rmtree(stage)
    try:
        stage.mkdir()
        yield stage
        replace_path(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
