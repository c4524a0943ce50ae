"""Uploads and results kept on disk, one folder per request, when the operator asks for it."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from agfnet.app.uploads import Upload
from agfnet.fileio import atomic_write_bytes, write_json

__all__ = ["keep_folder", "keep_request"]

# A client's file suffix is kept only when it looks like one; anything else is ".bin".
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def keep_folder(root: Path, request_id: str) -> Path:
    """The folder of one request: `<root>/<UTC time>_<request id>`.

    UTC time first, so that folders sort by arrival, for a retention schedule.
    """
    return root / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}_{request_id}"


def keep_request(folder: Path, uploads: dict[str, Upload], result: dict[str, Any] | None) -> None:
    """Write the uploads (and the result, once there is one) to `folder`, each atomically.

    Args:
        folder: the request's folder (created if needed).
        uploads: field -> file; each is written as `<field><suffix>`.
        result: the answer, written as result.json; None writes none.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for field, upload in uploads.items():
        suffix = Path(upload.filename).suffix.lower()
        _write_bytes(
            folder / f"{field}{suffix if _SUFFIX.fullmatch(suffix) else '.bin'}", upload.data
        )
    if result is not None:
        write_json(folder / "result.json", result)


_write_bytes = atomic_write_bytes
