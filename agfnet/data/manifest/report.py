"""`ValidationReport`: every problem `validate_manifest` found, and a summary of the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agfnet.constants import MODALITIES
from agfnet.data.manifest.schema import ManifestProblem

__all__ = ["ValidationReport"]


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
        task_counts: rows per value of each task column asked for (config vocabulary
            order, else sorted; blank cells not counted); empty without tasks.
        metadata_missing: blank cells of each metadata column asked for; empty without.
    """

    path: Path
    problems: list[ManifestProblem] = field(default_factory=list)
    rows: int = 0
    classes: list[str] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)
    patients: int = 0
    missing: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODALITIES, 0))
    splits: dict[str, int] = field(default_factory=dict)
    task_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    metadata_missing: dict[str, int] = field(default_factory=dict)

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
        if self.task_counts:
            lines.append(f"tasks ({len(self.task_counts)}):")
            lines += [
                f"  {name}: " + ", ".join(f"{v} {n}" for v, n in counts.items())
                for name, counts in self.task_counts.items()
            ]
        if self.metadata_missing:
            lines.append(
                "metadata (blank = missing): "
                + ", ".join(f"{name} {n} missing" for name, n in self.metadata_missing.items())
            )
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
            # Only when asked for, so that the report of a plain manifest stays as it was.
            **({"task_counts": self.task_counts} if self.task_counts else {}),
            **({"metadata_missing": self.metadata_missing} if self.metadata_missing else {}),
        }
