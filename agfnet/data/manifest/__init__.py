"""The paired manifest: read a CSV of (clinical, ultrasound, label, ...) rows and validate it.

Format (docs/data.md): a CSV with a header; `clinical` and `ultrasound` are image paths
relative to the manifest's folder (or absolute), `label` the class name; optional
`patient_id`, `lesion_id`, `split`. Other columns are kept in `ManifestRow.extra`; the
task columns (`data.tasks`) and metadata columns (`data.metadata`) asked for are also
read into `ManifestRow.tasks` / `task_targets` and `ManifestRow.metadata`. Rows are
numbered from 1 for the first data row. Validation reports every problem at once.

Modules: `schema` (columns and the validated types), `report` (`ValidationReport`),
`header` (file and header checks), `columns` (the task and metadata columns asked for),
`paths` (image cells to files), `rows` (per-row checks), `images` (decoding), `parse`
(the whole file), `read` (the public readers), `display` (the modalities' display names,
config `data.modality_names`).
"""

from __future__ import annotations

from agfnet.data.manifest.display import DEFAULT_MODALITY_NAMES, modality_names
from agfnet.data.manifest.images import ProgressCallback
from agfnet.data.manifest.read import read_manifest, validate_manifest
from agfnet.data.manifest.report import ValidationReport
from agfnet.data.manifest.schema import (
    COLUMNS,
    MODALITIES,
    SPLITS,
    Manifest,
    ManifestProblem,
    ManifestRow,
)
from agfnet.fileio import write_rows_csv

__all__ = [
    "COLUMNS",
    "DEFAULT_MODALITY_NAMES",
    "MODALITIES",
    "SPLITS",
    "Manifest",
    "ManifestProblem",
    "ManifestRow",
    "ProgressCallback",
    "ValidationReport",
    "modality_names",
    "read_manifest",
    "validate_manifest",
    "write_rows_csv",
]
