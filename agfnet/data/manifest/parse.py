"""Parse a whole manifest: the file checks, every row, the image decoding and the summary."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agfnet.constants import MODALITIES
from agfnet.data.manifest.columns import ColumnSpec
from agfnet.data.manifest.header import check_classes, header_problems, read_records
from agfnet.data.manifest.images import ProgressCallback
from agfnet.data.manifest.report import ValidationReport
from agfnet.data.manifest.rows import RowReader
from agfnet.data.manifest.schema import SPLITS, ManifestProblem, ManifestRow

__all__ = ["Parsed", "parse"]


@dataclass
class Parsed:
    """The report plus every row as parsed (bad rows included).

    Attributes:
        report: the `ValidationReport`.
        rows: every non-blank row, in file order, with target -1.
        raw: the stripped cells of each row, by row number.
        columns: the header's column names, lower-case.
        root: the manifest's folder.
    """

    report: ValidationReport
    rows: list[ManifestRow]
    raw: dict[int, dict[str, str]]
    columns: list[str]
    root: Path


def _problem_order(problem: ManifestProblem) -> tuple:
    """Row order, then clinical, ultrasound and the other columns (a stable sort)."""
    column = problem.column
    return (problem.row, MODALITIES.index(column) if column in MODALITIES else 9)


def _value_counts(values: Sequence[str | None], order: list[str] | None) -> dict[str, int]:
    """Rows per non-blank value: `order` first (zeros kept), then any other value seen;
    sorted values when `order` is None."""
    seen = [v for v in values if v is not None]
    counts = Counter(seen)
    names = order if order is not None else sorted(counts)
    out = {v: counts.get(v, 0) for v in names}
    out.update({v: n for v, n in counts.items() if v not in out})
    return out


def _summarise(
    report: ValidationReport,
    rows: Sequence[ManifestRow],
    classes: list[str] | None,
    header: list[str],
    columns: ColumnSpec,
) -> None:
    """Fill the report's classes, class counts, patients, splits and task and metadata
    counts from the parsed rows."""
    labels = [r.label for r in rows]
    report.classes = classes if classes is not None else sorted({x for x in labels if x})
    report.class_counts = _value_counts(labels, report.classes)
    report.task_counts = {
        name: _value_counts([r.tasks.get(name) for r in rows], columns.task_classes.get(name))
        for name in columns.tasks
    }
    report.metadata_missing = {
        name: sum(1 for r in rows if not r.metadata.get(name)) for name in columns.metadata
    }
    report.patients = len({r.group for r in rows})
    if "split" in header:
        split_counts = Counter(r.split for r in rows if r.split is not None)
        report.splits = {s: split_counts.get(s, 0) for s in SPLITS}


def parse(
    path: str | os.PathLike,
    classes: Sequence[str] | None,
    require_labels: bool,
    allow_missing_modality: bool,
    check_images: bool,
    frame: int,
    progress: ProgressCallback | None,
    columns: ColumnSpec | None = None,
) -> Parsed:
    """Parse and check a manifest; the arguments are those of `validate_manifest`, the task
    and metadata columns in `columns` (none when None).

    A problem of the whole file (not UTF-8, no header, a bad header) stops the parse
    before any row is read; the report then has no summary.
    """
    path = Path(path)
    classes = check_classes(classes)
    columns = columns or ColumnSpec()
    report = ValidationReport(path=path)
    parsed = Parsed(report, [], {}, [], path.resolve().parent)
    records, report.problems = read_records(path)
    if not records:
        return parsed
    header = [c.strip().lower() for c in records[0]]
    parsed.columns = header
    report.problems = header_problems(header, require_labels, columns.names)
    report.problems += columns.header_problems(header)
    if report.problems:
        return parsed

    reader = RowReader(
        header,
        parsed.root,
        classes,
        require_labels,
        allow_missing_modality,
        check_images,
        report,
        columns,
    )
    row_problems: list[ManifestProblem] = []
    for number, record in enumerate(records[1:], start=1):
        if not any(c.strip() for c in record):
            continue  # blank lines are skipped but keep their number (spreadsheet lines)
        report.rows += 1
        row, parsed.raw[number], problems = reader.read(number, record)
        parsed.rows.append(row)
        row_problems += problems
    if report.rows == 0:
        report.problems.append(
            ManifestProblem(None, None, "empty manifest: no data rows under the header.")
        )
    row_problems += reader.images.problems(frame, progress)
    row_problems.sort(key=_problem_order)
    report.problems += row_problems
    _summarise(report, parsed.rows, classes, header, columns)
    return parsed
