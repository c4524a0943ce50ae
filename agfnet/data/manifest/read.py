"""Read or validate a manifest: refuse it listing every problem, or drop bad rows on request."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from agfnet.data.manifest.columns import ColumnSpec
from agfnet.data.manifest.images import ProgressCallback
from agfnet.data.manifest.parse import Parsed, parse
from agfnet.data.manifest.report import ValidationReport
from agfnet.data.manifest.schema import Manifest, ManifestRow
from agfnet.errors import ManifestError
from agfnet.fileio import write_rows_csv

__all__ = ["read_manifest", "validate_manifest"]

# Columns of the CSV of rows `read_manifest(skip_bad_rows=...)` dropped.
_ROW_CELLS = ("clinical", "ultrasound", "label")
_SKIPPED_COLUMNS = ("row", "column", "reason", *_ROW_CELLS)


def _write_skipped(path: str | os.PathLike, parsed: Parsed) -> None:
    """List every problem, with the row's images and label, in the CSV at `path`."""
    write_rows_csv(
        path,
        _SKIPPED_COLUMNS,
        (
            {
                **{k: parsed.raw[p.row].get(k, "") for k in _ROW_CELLS},
                **p.to_dict(),
                "column": p.column or "",
            }
            for p in parsed.report.problems
        ),
    )


def validate_manifest(
    path: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    require_labels: bool = True,
    allow_missing_modality: bool = False,
    check_images: bool = True,
    frame: int = 0,
    progress: ProgressCallback | None = None,
    tasks: Sequence[str] = (),
    task_classes: Mapping[str, Sequence[str]] | None = None,
    metadata: Sequence[str] = (),
    metadata_kinds: Mapping[str, str] | None = None,
) -> ValidationReport:
    """Check a manifest and report every problem at once, without raising for bad rows.

    Args:
        path: the manifest CSV.
        classes: the allowed class names in target order (the config's `classes`);
            None accepts any label and orders classes by name.
        require_labels: a blank label (or no `label` column) is a problem.
        allow_missing_modality: a blank `clinical` or `ultrasound` cell is allowed.
        check_images: decode every image completely (catches truncated files); when
            False only the files' existence is checked.
        frame: frame of multi-frame ultrasound files (DICOM cine loops) to decode;
            photographs are decoded at frame 0.
        progress: called as progress(done, total) after each image decoded.
        tasks: task columns (config `data.tasks`), each a categorical value per row; a
            blank is a problem where labels are required (`require_labels`).
        task_classes: task -> its allowed values in target order (`data.task_classes`);
            a task left out accepts any value.
        metadata: metadata columns (`data.metadata`); a blank cell means missing.
        metadata_kinds: column -> "categorical" / "numeric" (`data.metadata_kinds`); a
            cell of a numeric column must be a number (or blank).

    Returns:
        The `ValidationReport` (`report.ok` is True when nothing is wrong).

    Raises:
        ManifestError: the manifest file itself does not exist.
        UserError: `classes` is empty or has repeated names, or the task and metadata
            arguments are bad (`ColumnSpec.check`).
    """
    columns = ColumnSpec.check(tasks, task_classes, metadata, metadata_kinds)
    return parse(
        path,
        classes,
        require_labels,
        allow_missing_modality,
        check_images,
        frame,
        progress,
        columns,
    ).report


def read_manifest(
    path: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    require_labels: bool = True,
    allow_missing_modality: bool = False,
    check_images: bool = True,
    skip_bad_rows: str | os.PathLike | None = None,
    frame: int = 0,
    progress: ProgressCallback | None = None,
    tasks: Sequence[str] = (),
    task_classes: Mapping[str, Sequence[str]] | None = None,
    metadata: Sequence[str] = (),
    metadata_kinds: Mapping[str, str] | None = None,
) -> Manifest:
    """Read and validate a manifest; refuse it, listing every problem, unless it is clean.

    Args:
        path, classes, require_labels, allow_missing_modality, check_images, frame,
        progress, tasks, task_classes, metadata, metadata_kinds: as for
            `validate_manifest`.
        skip_bad_rows: explicit opt-in: a CSV path. Rows with problems are dropped and
            listed there (columns row, column, reason, clinical, ultrasound, label; the
            file is written, header only, even when nothing was skipped). Problems of the
            whole file (missing column, empty manifest) are never skipped.

    Returns:
        The `Manifest`; `classes` is the given list, else the sorted label names of the
        kept rows, and every row's `target` indexes it. Likewise `task_classes` (the
        given vocabularies, else each task's sorted values) and every row's
        `task_targets`; `metadata_fields` lists the metadata columns.

    Raises:
        ManifestError: with `problems` = every `ManifestProblem`; its message lists them
            one per line and ends with how to fix them.
    """
    columns = ColumnSpec.check(tasks, task_classes, metadata, metadata_kinds)
    parsed = parse(
        path,
        classes,
        require_labels,
        allow_missing_modality,
        check_images,
        frame,
        progress,
        columns,
    )
    report = parsed.report
    file_level = [p for p in report.problems if p.row is None]
    if file_level or (report.problems and skip_bad_rows is None):
        raise ManifestError(report.error_message(), report.problems)

    bad = report.bad_rows
    if skip_bad_rows is not None:
        _write_skipped(skip_bad_rows, parsed)
    kept = [r for r in parsed.rows if r.row not in bad]
    if not kept:
        raise ManifestError(
            f"{report.path}: every row has a problem, nothing is left after skipping them "
            f"(listed in {skip_bad_rows}).\n" + report.error_message(),
            report.problems,
        )
    names = report.classes if classes is not None else sorted({r.label for r in kept if r.label})
    vocab = {
        t: columns.task_classes.get(t) or sorted({v for r in kept if (v := r.tasks[t])})
        for t in columns.tasks
    }
    rows = [_targets(r, names, vocab) for r in kept]
    return Manifest(
        path=Path(path),
        root=parsed.root,
        rows=rows,
        classes=list(names),
        columns=parsed.columns,
        tasks=list(columns.tasks),
        task_classes=vocab,
        metadata_fields=list(columns.metadata),
    )


def _index(value: str | None, names: Sequence[str]) -> int:
    """Position of `value` in `names`; -1 when blank (or not in them)."""
    return names.index(value) if value is not None and value in names else -1


def _targets(row: ManifestRow, classes: list[str], vocab: Mapping[str, list[str]]) -> ManifestRow:
    """`row` with its diagnosis `target` and its `task_targets` filled in."""
    return replace(
        row,
        target=_index(row.label, classes),
        task_targets=tuple(_index(row.tasks[t], vocab[t]) for t in vocab),
    )
