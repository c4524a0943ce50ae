"""The manifest's columns and its validated types: `ManifestProblem`, `ManifestRow`, `Manifest`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agfnet.constants import MODALITIES

__all__ = ["COLUMNS", "MODALITIES", "SPLITS", "Manifest", "ManifestProblem", "ManifestRow"]

SPLITS = ("train", "val", "test")
COLUMNS = ("clinical", "ultrasound", "label", "patient_id", "lesion_id", "split")


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
        extra: the cells of any other columns, by (lower-case) column name (task and
            metadata columns included).
        tasks: the raw value of each task column (`Manifest.tasks`), None when blank.
        task_targets: index of each task's value in `Manifest.task_classes[name]`, in
            `Manifest.tasks` order; -1 when blank.
        metadata: the raw cell of each metadata column (`Manifest.metadata_fields`);
            "" means missing.
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
    tasks: dict[str, str | None] = field(default_factory=dict, hash=False, compare=False)
    task_targets: tuple[int, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

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
        tasks: the task columns (`read_manifest(tasks=...)`), in target order; [] without.
        task_classes: each task's values, in target order (config order if given, else
            sorted).
        metadata_fields: the metadata columns (`read_manifest(metadata=...)`); [] without.
    """

    path: Path
    root: Path
    rows: list[ManifestRow]
    classes: list[str]
    columns: list[str]
    tasks: list[str] = field(default_factory=list)
    task_classes: dict[str, list[str]] = field(default_factory=dict)
    metadata_fields: list[str] = field(default_factory=list)

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
