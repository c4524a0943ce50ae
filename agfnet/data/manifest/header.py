"""Checks made before any row is read: the class list, the file's text and its header."""

from __future__ import annotations

import csv
import difflib
import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from agfnet.constants import MODALITIES
from agfnet.data.manifest.schema import COLUMNS, ManifestProblem
from agfnet.errors import ManifestError, UserError

__all__ = ["check_classes", "header_problems", "read_records"]


def check_classes(classes: Sequence[str] | None, what: str = "classes") -> list[str] | None:
    """The class names stripped, or None; raises UserError for an empty or repeating list.

    Args:
        classes: the names, or None.
        what: the setting they come from, as the message names it.
    """
    if classes is None:
        return None
    names = [str(c).strip() for c in classes]
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if not names or "" in names or dupes:
        raise UserError(
            f"{what} {list(classes)!r}: give a non-empty list of distinct, non-blank class "
            f"names{f' (repeated: {dupes})' if dupes else ''}."
        )
    return names


def read_records(path: Path) -> tuple[list[list[str]], list[ManifestProblem]]:
    """Every CSV record of the manifest, the header first.

    Returns:
        (records, problems): the records, or no records and the problem of the whole file
        (not UTF-8, or no header).

    Raises:
        ManifestError: the file does not exist.
    """
    if not path.is_file():
        raise ManifestError(
            f"manifest not found: {path}; check the path (`agfnet synth OUT` writes an "
            "example to OUT/manifest.csv).",
            [ManifestProblem(None, None, "file not found")],
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        reason = f"not UTF-8 text ({err.reason} at byte {err.start}); save it as 'CSV UTF-8'."
        return [], [ManifestProblem(None, None, reason)]
    records = list(csv.reader(io.StringIO(text, newline="")))
    if not records or not any(c.strip() for c in records[0]):
        reason = "empty manifest: no header; the first line must name the columns."
        return [], [ManifestProblem(None, None, reason)]
    return records, []


def header_problems(
    header: Sequence[str], require_labels: bool, declared: Sequence[str] = ()
) -> list[ManifestProblem]:
    """Repeated columns, likely misspelt ones and missing required ones.

    Args:
        header: the column names, stripped and lower-case.
        require_labels: whether `label` is a required column.
        declared: the task and metadata columns asked for: never taken for misspellings.

    Returns:
        The problems, in that order.
    """
    problems = []
    for name, k in Counter(header).items():
        if k > 1 and name:  # spreadsheets may add several unnamed empty columns
            problems.append(ManifestProblem(None, name, f"column appears {k} times."))
    for name in header:
        if name in COLUMNS or name in declared:
            continue
        hint = difflib.get_close_matches(name, COLUMNS, n=1, cutoff=0.75)
        if hint and hint[0] not in header:
            problems.append(
                ManifestProblem(
                    None, name or "(blank)", f"unknown column: did you mean '{hint[0]}'?"
                )
            )
    required = [*MODALITIES, "label"] if require_labels else list(MODALITIES)
    for name in required:
        if name not in header:
            problems.append(
                ManifestProblem(
                    None, name, f"missing required column; the header has: {', '.join(header)}."
                )
            )
    return problems
