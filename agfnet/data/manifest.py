"""The paired manifest: read a CSV of (clinical, ultrasound, label, ...) rows and validate it.

Format (docs/data.md): a CSV with a header; `clinical` and `ultrasound` are image paths
relative to the manifest's folder (or absolute), `label` the class name; optional
`patient_id`, `lesion_id`, `split`. Other columns are kept in `ManifestRow.extra`. Rows are
numbered from 1 for the first data row. Validation reports every problem at once.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agfnet.errors import ManifestError, UserError

MODALITIES = ("clinical", "ultrasound")
SPLITS = ("train", "val", "test")
COLUMNS = ("clinical", "ultrasound", "label", "patient_id", "lesion_id", "split")

_SPLIT_HINTS = {
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "training": "train",
    "testing": "test",
}

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ManifestProblem:
    """One problem found in a manifest.

    Attributes:
        row: 1-based data row (header not counted); None for a problem of the whole file.
        column: the column concerned, or None.
        reason: what is wrong and how to fix it.
    """

    row: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = [f"row {self.row}"] if self.row is not None else []
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where) or 'file'}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """Returns: {"row", "column", "reason"} for JSON."""
        return {"row": self.row, "column": self.column, "reason": self.reason}


@dataclass(frozen=True)
class ManifestRow:
    """One validated pair.

    Attributes:
        row: 1-based manifest row number.
        clinical: absolute path of the photograph, None when that modality is missing.
        ultrasound: absolute path of the ultrasound image, None when missing.
        label: class name, None when blank.
        target: index of `label` in `Manifest.classes`, -1 when unlabelled.
        patient_id: None when blank or when the column is absent.
        lesion_id: "" when blank or absent.
        split: "train" / "val" / "test", None when the column is absent.
        extra: the cells of any other columns, by (lower-case) column name.
    """

    row: int
    clinical: Path | None
    ultrasound: Path | None
    label: str | None
    target: int
    patient_id: str | None = None
    lesion_id: str = ""
    split: str | None = None
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def present(self) -> tuple[bool, bool]:
        """Returns: (clinical present, ultrasound present)."""
        return (self.clinical is not None, self.ultrasound is not None)

    @property
    def group(self) -> str:
        """Returns: the patient id, or a unique `row:<n>` when the row has none."""
        return self.patient_id if self.patient_id is not None else f"row:{self.row}"


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.

    Attributes:
        path: the CSV file.
        root: folder the relative image paths were resolved against (the CSV's folder).
        rows: the rows, in file order.
        classes: class names, in target order (config order if given, else sorted).
        columns: the header's column names, lower-case, in file order.
    """

    path: Path
    root: Path
    rows: list[ManifestRow]
    classes: list[str]
    columns: list[str]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def targets(self) -> list[int]:
        """Returns: class index of every row (-1 when unlabelled)."""
        return [r.target for r in self.rows]

    @property
    def groups(self) -> list[str]:
        """Returns: patient group of every row (`ManifestRow.group`)."""
        return [r.group for r in self.rows]

    @property
    def has_split(self) -> bool:
        """Returns: whether the manifest has a `split` column (a fixed split)."""
        return "split" in self.columns

    def class_counts(self) -> dict[str, int]:
        """Returns: number of rows per class, in class order."""
        counts = Counter(r.label for r in self.rows)
        return {c: counts.get(c, 0) for c in self.classes}


@dataclass
class ValidationReport:
    """Everything `validate_manifest` found, and a summary of the manifest.

    Attributes:
        path: the CSV file.
        problems: every problem, in row order (file-level problems first).
        rows: number of data rows (blank lines not counted).
        classes: class names in target order.
        class_counts: rows per class (labelled rows only).
        patients: number of patients; a row without `patient_id` counts as one patient.
        missing: rows with a blank cell, per modality.
        splits: rows per `split` value; empty when there is no split column.
    """

    path: Path
    problems: list[ManifestProblem] = field(default_factory=list)
    rows: int = 0
    classes: list[str] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)
    patients: int = 0
    missing: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODALITIES, 0))
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Returns: True when no problem was found."""
        return not self.problems

    @property
    def bad_rows(self) -> set[int]:
        """Returns: row numbers with at least one problem."""
        return {p.row for p in self.problems if p.row is not None}

    def summary_lines(self) -> list[str]:
        """Returns: the human-readable summary, one line per fact."""
        lines = [
            f"manifest: {self.path}",
            f"rows: {self.rows}",
            f"classes ({len(self.classes)}): {', '.join(self.classes) or '-'}",
        ]
        lines += [f"  {name}: {n}" for name, n in self.class_counts.items()]
        lines.append(f"patients: {self.patients}")
        lines.append(
            "missing modalities: " + ", ".join(f"{m} {self.missing.get(m, 0)}" for m in MODALITIES)
        )
        if self.splits:
            lines.append("splits: " + ", ".join(f"{s} {n}" for s, n in self.splits.items()))
        return lines

    def error_message(self) -> str:
        """Returns: every problem, one per line, then how to fix them."""
        n = len(self.problems)
        return "\n".join(
            [f"{self.path}: {n} problem{'s' * (n != 1)} found:"]
            + [f"  {p}" for p in self.problems]
            + [
                f"Fix: correct or remove these rows, then run `agfnet validate {self.path}` "
                "again (or opt in to dropping bad rows with --skip-bad-rows, which writes "
                "what it skipped)."
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """Returns: the report as plain JSON-ready data."""
        return {
            "manifest": str(self.path),
            "ok": self.ok,
            "rows": self.rows,
            "classes": self.classes,
            "class_counts": self.class_counts,
            "patients": self.patients,
            "missing": self.missing,
            "splits": self.splits,
            "problems": [p.to_dict() for p in self.problems],
        }


def write_rows_csv(
    path: str | os.PathLike, fieldnames: Sequence[str], rows: Iterable[dict]
) -> None:
    """Write dict rows as CSV atomically (temporary file in the same folder, then rename).

    Args:
        path: destination; its folder is created.
        fieldnames: the header, in order.
        rows: one dict per line, keyed by field name (missing keys written blank).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(fieldnames), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_classes(classes: Sequence[str] | None) -> list[str] | None:
    if classes is None:
        return None
    names = [str(c).strip() for c in classes]
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if not names or "" in names or dupes:
        raise UserError(
            f"classes {list(classes)!r}: give a non-empty list of distinct, non-blank class "
            f"names{f' (repeated: {dupes})' if dupes else ''}."
        )
    return names


@dataclass
class _Parsed:
    """Internal: the report plus every row as parsed (bad rows included)."""

    report: ValidationReport
    rows: list[ManifestRow]
    raw: dict[int, dict[str, str]]
    columns: list[str]
    root: Path


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


def _resolve(cell: str, root: Path, column: str, problems: list) -> Path | None:
    """Resolve one image cell; append a problem and return None when it is unusable."""
    raw = Path(cell)
    if raw.is_absolute():
        path = Path(os.path.normpath(raw))
    else:
        rel = os.path.normpath(cell)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            problems.append(
                (
                    column,
                    f"path '{cell}' escapes the data root {root}: keep images under the "
                    "manifest's folder, or give an absolute path.",
                )
            )
            return None
        path = root / rel
    if path.is_file():
        return path
    if path.exists():
        problems.append((column, f"{path} is a folder, not an image file."))
    else:
        problems.append((column, _not_found_reason(path)))
    return None


def _decode_error(image: Path, frame: int) -> str | None:
    """Returns: why `image` cannot be decoded, or None when it can."""
    from agfnet.data.io import ImageReadError, check_image

    try:
        check_image(image, frame=frame)
    except ImageReadError as err:
        return str(err)
    return None


def _parse(
    path: str | os.PathLike,
    *,
    classes: Sequence[str] | None,
    require_labels: bool,
    allow_missing_modality: bool,
    check_images: bool,
    frame: int,
    progress: ProgressCallback | None,
) -> _Parsed:
    path = Path(path)
    classes = _check_classes(classes)
    report = ValidationReport(path=path)
    root = path.resolve().parent
    parsed = _Parsed(report, [], {}, [], root)
    file_problems = report.problems

    if not path.is_file():
        raise ManifestError(
            f"manifest not found: {path}; check the path (`agfnet synth OUT` writes an "
            "example to OUT/manifest.csv).",
            [ManifestProblem(None, None, "file not found")],
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        file_problems.append(
            ManifestProblem(
                None,
                None,
                f"not UTF-8 text ({err.reason} at byte {err.start}); save it as 'CSV UTF-8'.",
            )
        )
        return parsed
    records = list(csv.reader(io.StringIO(text, newline="")))
    if not records or not any(c.strip() for c in records[0]):
        file_problems.append(
            ManifestProblem(
                None, None, "empty manifest: no header; the first line must name the columns."
            )
        )
        return parsed

    header = [c.strip().lower() for c in records[0]]
    parsed.columns = header
    required = [*MODALITIES, "label"] if require_labels else list(MODALITIES)
    for name, k in Counter(header).items():
        if k > 1 and name:  # spreadsheets may add several unnamed empty columns
            file_problems.append(ManifestProblem(None, name, f"column appears {k} times."))
    for name in header:
        if name in COLUMNS:
            continue
        hint = difflib.get_close_matches(name, COLUMNS, n=1, cutoff=0.75)
        if hint and hint[0] not in header:
            file_problems.append(
                ManifestProblem(
                    None, name or "(blank)", f"unknown column: did you mean '{hint[0]}'?"
                )
            )
    for name in required:
        if name not in header:
            file_problems.append(
                ManifestProblem(
                    None, name, f"missing required column; the header has: {', '.join(header)}."
                )
            )
    if file_problems:
        return parsed

    row_problems: list[ManifestProblem] = []
    seen_pairs: dict[tuple, int] = {}
    patient_split: dict[str, tuple[str, int]] = {}
    to_check: dict[Path, list[tuple[int, str]]] = {}
    cine: set[Path] = set()  # ultrasound images: decoded at `frame`
    for number, record in enumerate(records[1:], start=1):
        if not any(c.strip() for c in record):
            continue  # blank lines are skipped but keep their number (spreadsheet lines)
        report.rows += 1
        found: list[tuple[str | None, str]] = []
        if len(record) > len(header):
            found.append((None, f"{len(record)} cells but the header has {len(header)} columns."))
        cells = {name: "" for name in header}
        cells.update({name: c.strip() for name, c in zip(header, record, strict=False)})
        parsed.raw[number] = cells

        paths: dict[str, Path | None] = {}
        for m in MODALITIES:
            if not cells[m]:
                paths[m] = None
                report.missing[m] += 1
                if not allow_missing_modality:
                    found.append(
                        (
                            m,
                            f"blank: the {m} image is missing; fill it in, or allow missing "
                            "modalities (--allow-missing-modality) for a model trained for them.",
                        )
                    )
            else:
                paths[m] = _resolve(cells[m], root, m, found)
                if paths[m] is not None and check_images:
                    to_check.setdefault(paths[m], []).append((number, m))
                    if m == "ultrasound":
                        cine.add(paths[m])
        if not cells["clinical"] and not cells["ultrasound"] and allow_missing_modality:
            found.append((None, "both images are missing; a row needs at least one."))

        label = cells.get("label", "") or None
        if label is None and require_labels:
            found.append(("label", "blank label; training and evaluation need a class name."))
        elif label is not None and classes is not None and label not in classes:
            same = [c for c in classes if c.lower() == label.lower()]
            hint = f" (did you mean '{same[0]}'? names are case-sensitive)" if same else ""
            found.append(
                (
                    "label",
                    f"unknown label '{label}'{hint}; expected one of: {', '.join(classes)}.",
                )
            )

        split = None
        if "split" in header:
            split = cells["split"].lower()
            if split not in SPLITS:
                hint = f" (did you mean '{_SPLIT_HINTS[split]}'?)" if split in _SPLIT_HINTS else ""
                shown = f"bad split value '{cells['split']}'" if split else "blank split"
                found.append(("split", f"{shown}{hint}; expected train, val or test."))
                split = None

        patient = cells.get("patient_id", "") or None
        if patient is not None and split is not None:
            first = patient_split.setdefault(patient, (split, number))
            if first[0] != split:
                found.append(
                    (
                        "split",
                        f"patient '{patient}' is in split '{split}' here but in "
                        f"'{first[0]}' at row {first[1]}; a patient must stay in one split.",
                    )
                )

        # Compare lexically normalised paths, so a missing file can still be a duplicate.
        key = tuple(os.path.normpath(root / cells[m]) if cells[m] else None for m in MODALITIES)
        if any(key):
            if key in seen_pairs:
                found.append(
                    (None, f"duplicate of row {seen_pairs[key]} (same clinical and ultrasound).")
                )
            else:
                seen_pairs[key] = number

        row_problems += [ManifestProblem(number, col, reason) for col, reason in found]
        parsed.rows.append(
            ManifestRow(
                row=number,
                clinical=paths["clinical"],
                ultrasound=paths["ultrasound"],
                label=label,
                target=-1,
                patient_id=patient,
                lesion_id=cells.get("lesion_id", ""),
                split=split,
                extra={k: v for k, v in cells.items() if k not in COLUMNS},
            )
        )

    if report.rows == 0:
        file_problems.append(
            ManifestProblem(None, None, "empty manifest: no data rows under the header.")
        )

    if to_check:
        # Decoders release the GIL, so threads decode images in parallel.
        workers = min(8, os.cpu_count() or 1, len(to_check))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            errors = pool.map(
                lambda image: _decode_error(image, frame if image in cine else 0), to_check
            )
            for done, (error, uses) in enumerate(
                zip(errors, to_check.values(), strict=True), start=1
            ):
                if error is not None:
                    row_problems += [
                        ManifestProblem(n, m, f"unreadable image: {error}") for n, m in uses
                    ]
                if progress is not None:
                    progress(done, len(to_check))

    row_problems.sort(
        key=lambda p: (p.row, MODALITIES.index(p.column) if p.column in MODALITIES else 9)
    )
    report.problems = file_problems + row_problems
    labels = [r.label for r in parsed.rows if r.label is not None]
    report.classes = classes if classes is not None else sorted(set(labels))
    counts = Counter(labels)
    report.class_counts = {c: counts.get(c, 0) for c in report.classes}
    report.class_counts.update({c: n for c, n in counts.items() if c not in report.class_counts})
    report.patients = len({r.group for r in parsed.rows})
    if "split" in header:
        split_counts = Counter(r.split for r in parsed.rows if r.split is not None)
        report.splits = {s: split_counts.get(s, 0) for s in SPLITS}
    return parsed


def validate_manifest(
    path: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    require_labels: bool = True,
    allow_missing_modality: bool = False,
    check_images: bool = True,
    frame: int = 0,
    progress: ProgressCallback | None = None,
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

    Returns:
        The `ValidationReport` (`report.ok` is True when nothing is wrong).

    Raises:
        ManifestError: the manifest file itself does not exist.
        UserError: `classes` is empty or has repeated names.
    """
    return _parse(
        path,
        classes=classes,
        require_labels=require_labels,
        allow_missing_modality=allow_missing_modality,
        check_images=check_images,
        frame=frame,
        progress=progress,
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
) -> Manifest:
    """Read and validate a manifest; refuse it, listing every problem, unless it is clean.

    Args:
        path, classes, require_labels, allow_missing_modality, check_images, frame,
        progress: as for `validate_manifest`.
        skip_bad_rows: explicit opt-in: a CSV path. Rows with problems are dropped and
            listed there (columns row, column, reason, clinical, ultrasound, label; the
            file is written, header only, even when nothing was skipped). Problems of the
            whole file (missing column, empty manifest) are never skipped.

    Returns:
        The `Manifest`; `classes` is the given list, else the sorted label names of the
        kept rows, and every row's `target` indexes it.

    Raises:
        ManifestError: with `problems` = every `ManifestProblem`; its message lists them
            one per line and ends with how to fix them.
    """
    parsed = _parse(
        path,
        classes=classes,
        require_labels=require_labels,
        allow_missing_modality=allow_missing_modality,
        check_images=check_images,
        frame=frame,
        progress=progress,
    )
    report = parsed.report
    file_level = [p for p in report.problems if p.row is None]
    if file_level or (report.problems and skip_bad_rows is None):
        raise ManifestError(report.error_message(), report.problems)

    bad = report.bad_rows
    if skip_bad_rows is not None:
        write_rows_csv(
            skip_bad_rows,
            ["row", "column", "reason", "clinical", "ultrasound", "label"],
            (
                {
                    **{
                        k: parsed.raw[p.row].get(k, "") for k in ("clinical", "ultrasound", "label")
                    },
                    **p.to_dict(),
                    "column": p.column or "",
                }
                for p in report.problems
            ),
        )
    kept = [r for r in parsed.rows if r.row not in bad]
    if not kept:
        raise ManifestError(
            f"{report.path}: every row has a problem, nothing is left after skipping them "
            f"(listed in {skip_bad_rows}).\n" + report.error_message(),
            report.problems,
        )
    names = report.classes if classes is not None else sorted({r.label for r in kept if r.label})
    index = {c: i for i, c in enumerate(names)}
    rows = [
        ManifestRow(
            row=r.row,
            clinical=r.clinical,
            ultrasound=r.ultrasound,
            label=r.label,
            target=index.get(r.label, -1) if r.label is not None else -1,
            patient_id=r.patient_id,
            lesion_id=r.lesion_id,
            split=r.split,
            extra=r.extra,
        )
        for r in kept
    ]
    return Manifest(
        path=Path(path), root=parsed.root, rows=rows, classes=list(names), columns=parsed.columns
    )
