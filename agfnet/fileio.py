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
from typing import IO, Any

__all__ = [
    "atomic_file",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "install_files",
    "replace_path",
    "staged_folder",
    "write_json",
    "write_rows_csv",
]


def temporary_sibling(path: Path, kind: str = "tmp") -> Path:
    """The hidden name beside `path` that a write stages under: `.<name>.<kind><pid>`."""
    return path.with_name(f".{path.name}.{kind}{os.getpid()}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` for a writer that takes a file name; it replaces
    `path` when the block succeeds, and is deleted otherwise.

    Example:
        with atomic_path("model.onnx") as tmp:
            onnx.save(proto, str(tmp))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = False) -> Iterator[IO]:
    """Open a temporary file beside `path`; it replaces `path` when the block succeeds.

    Args:
        path: destination; its folder is created if needed.
        mode: "wb" (binary) or "w" (UTF-8 text, no newline translation).
        fsync: flush the data to disk before the rename (checkpoints).

    Yields:
        The open file. On an exception it is deleted and `path` stays as it was.

    Example:
        with atomic_file("model.ckpt", fsync=True) as f:
            torch.save(state, f)
    """
    text = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
    with atomic_path(path) as tmp, open(tmp, mode, **text) as f:
        yield f
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file and `os.replace`; returns `path`."""
    with atomic_file(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8, line ends as given) to `path` through a temporary file and
    `os.replace`.

    Args:
        path: destination; its folder is created if needed.
        text: the content.

    Returns:
        The path written.
    """
    with atomic_file(path, "w") as f:
        f.write(text)
    return Path(path)


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
        old = temporary_sibling(dest, "old")
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
    stage = temporary_sibling(dest, "partial")
    if stage.exists():
        shutil.rmtree(stage)
    try:
        stage.mkdir()
        yield stage
        replace_path(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


@contextmanager
def install_files(out: str | Path, names: Sequence[str]) -> Iterator[Path]:
    """Write a set of outputs into a hidden folder inside `out`, then move each into `out`.

    Unlike `staged_folder`, `out` keeps whatever else it holds; of `names`, those the
    block wrote replace their old versions (a folder too, `replace_path`) and those it
    did not write are removed, so `out` never mixes outputs of two runs.

    Args:
        out: the destination folder (created if needed).
        names: the output files and folders, relative to `out`.

    Yields:
        The empty staging folder. On an exception it is deleted and `out` is untouched.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stage = out / f".stage{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        for name in names:
            if (stage / name).exists():
                replace_path(stage / name, out / name)
            elif (out / name).is_dir():
                shutil.rmtree(out / name)
            else:
                (out / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
