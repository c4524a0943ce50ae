"""Parse and check the data rows of a manifest, one by one."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from agfnet.constants import MODALITIES
from agfnet.data.manifest.columns import ColumnSpec
from agfnet.data.manifest.images import ImageChecks
from agfnet.data.manifest.paths import resolve_image
from agfnet.data.manifest.report import ValidationReport
from agfnet.data.manifest.schema import COLUMNS, SPLITS, ManifestProblem, ManifestRow
from agfnet.data.metadata import parse_number

__all__ = ["RowReader"]

_SPLIT_HINTS = {
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "training": "train",
    "testing": "test",
}

# (column or None, reason) of each problem of the row being read.
_Found = list[tuple[str | None, str]]


def _unknown(value: str, allowed: list[str] | None, noun: str) -> str | None:
    """Why `value` is not one of `allowed` (None when it is, or when any value goes)."""
    if allowed is None or value in allowed:
        return None
    same = [c for c in allowed if c.lower() == value.lower()]
    hint = f" (did you mean '{same[0]}'? names are case-sensitive)" if same else ""
    return f"unknown {noun} '{value}'{hint}; expected one of: {', '.join(allowed)}"


@dataclass
class RowReader:
    """Reads data rows in file order, remembering what later rows are compared with.

    Attributes:
        header: the column names, stripped and lower-case.
        root: the manifest's folder, against which relative image paths resolve.
        classes: the allowed labels, or None for any.
        require_labels: a blank label is a problem.
        allow_missing_modality: a blank image cell is allowed.
        check_images: collect the images to decode in `images`.
        report: counts the blank image cells of each modality (`report.missing`).
        columns: the task and metadata columns to read and check.
        images: the images to decode, filled as rows are read.
    """

    header: list[str]
    root: Path
    classes: list[str] | None
    require_labels: bool
    allow_missing_modality: bool
    check_images: bool
    report: ValidationReport
    columns: ColumnSpec = field(default_factory=ColumnSpec)
    images: ImageChecks = field(default_factory=ImageChecks)
    _pairs: dict[tuple, int] = field(default_factory=dict)
    _patient_split: dict[str, tuple[str, int]] = field(default_factory=dict)

    def read(
        self, number: int, record: list[str]
    ) -> tuple[ManifestRow, dict[str, str], list[ManifestProblem]]:
        """Parse one non-blank row.

        Args:
            number: its 1-based data row number.
            record: its CSV cells.

        Returns:
            (the row as parsed, its stripped cells by column, its problems).
        """
        found: _Found = []
        cells = self._cells(record, found)
        paths = {m: self._image(cells, m, number, found) for m in MODALITIES}
        if not cells["clinical"] and not cells["ultrasound"] and self.allow_missing_modality:
            found.append((None, "both images are missing; a row needs at least one."))
        label = self._label(cells, found)
        split = self._split(cells, found)
        patient = cells.get("patient_id", "") or None
        self._check_patient_split(patient, split, number, found)
        self._check_duplicate(cells, number, found)
        tasks = {name: self._task(cells, name, found) for name in self.columns.tasks}
        metadata = {name: self._metadata(cells, name, found) for name in self.columns.metadata}
        row = ManifestRow(
            row=number,
            clinical=paths["clinical"],
            ultrasound=paths["ultrasound"],
            label=label,
            target=-1,
            patient_id=patient,
            lesion_id=cells.get("lesion_id", ""),
            split=split,
            extra={k: v for k, v in cells.items() if k not in COLUMNS},
            tasks=tasks,
            metadata=metadata,
        )
        return row, cells, [ManifestProblem(number, col, reason) for col, reason in found]

    def _cells(self, record: list[str], found: _Found) -> dict[str, str]:
        header = self.header
        if len(record) > len(header):
            found.append((None, f"{len(record)} cells but the header has {len(header)} columns."))
        cells = {name: "" for name in header}
        cells.update({name: c.strip() for name, c in zip(header, record, strict=False)})
        return cells

    def _image(
        self, cells: dict[str, str], modality: str, number: int, found: _Found
    ) -> Path | None:
        if not cells[modality]:
            self.report.missing[modality] += 1
            if not self.allow_missing_modality:
                found.append(
                    (
                        modality,
                        f"blank: the {modality} image is missing; fill it in, or allow missing "
                        "modalities (--allow-missing-modality) for a model trained for them.",
                    )
                )
            return None
        path, reason = resolve_image(cells[modality], self.root)
        if path is None:
            found.append((modality, str(reason)))
        elif self.check_images:
            self.images.add(path, number, modality)
        return path

    def _label(self, cells: dict[str, str], found: _Found) -> str | None:
        label = cells.get("label", "") or None
        if label is None and self.require_labels:
            found.append(("label", "blank label; training and evaluation need a class name."))
        elif label is not None and (reason := _unknown(label, self.classes, "label")):
            found.append(("label", reason + "."))
        return label

    def _task(self, cells: dict[str, str], name: str, found: _Found) -> str | None:
        value = cells.get(name, "") or None
        if value is None and self.require_labels:
            found.append(
                (
                    name,
                    f"blank {name}; training and evaluation need a value for every task "
                    f"(data.tasks): fill it in, or leave '{name}' out of data.tasks.",
                )
            )
        elif value is not None:
            reason = _unknown(value, self.columns.task_classes.get(name), f"{name} value")
            if reason:
                found.append((name, f"{reason} (data.task_classes.{name})."))
        return value

    def _metadata(self, cells: dict[str, str], name: str, found: _Found) -> str:
        value = cells.get(name, "")
        if value and self.columns.is_numeric(name) and parse_number(value) is None:
            found.append(
                (
                    name,
                    f"'{value}' is not a number, but '{name}' is numeric metadata "
                    "(data.metadata_kinds): write a number such as 42 or 0.5, or leave the "
                    "cell blank for missing.",
                )
            )
        return value

    def _split(self, cells: dict[str, str], found: _Found) -> str | None:
        if "split" not in self.header:
            return None
        split = cells["split"].lower()
        if split in SPLITS:
            return split
        hint = f" (did you mean '{_SPLIT_HINTS[split]}'?)" if split in _SPLIT_HINTS else ""
        shown = f"bad split value '{cells['split']}'" if split else "blank split"
        found.append(("split", f"{shown}{hint}; expected train, val or test."))
        return None

    def _check_patient_split(
        self, patient: str | None, split: str | None, number: int, found: _Found
    ) -> None:
        """A patient's rows must all be in one split (else a split leaks a patient)."""
        if patient is None or split is None:
            return
        first = self._patient_split.setdefault(patient, (split, number))
        if first[0] != split:
            found.append(
                (
                    "split",
                    f"patient '{patient}' is in split '{split}' here but in "
                    f"'{first[0]}' at row {first[1]}; a patient must stay in one split.",
                )
            )

    def _check_duplicate(self, cells: dict[str, str], number: int, found: _Found) -> None:
        # Compare lexically normalised paths, so a missing file can still be a duplicate.
        root = self.root
        key = tuple(os.path.normpath(root / cells[m]) if cells[m] else None for m in MODALITIES)
        if not any(key):
            return
        if key in self._pairs:
            found.append(
                (None, f"duplicate of row {self._pairs[key]} (same clinical and ultrasound).")
            )
        else:
            self._pairs[key] = number
