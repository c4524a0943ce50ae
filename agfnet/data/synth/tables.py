"""The tables of a synthetic benchmark folder (manifest.csv, attributes.csv) and their columns.

manifest.csv carries, after the image and mask columns, every latent attribute as a task
column (`TASK_COLUMNS`, the true level, as in attributes.csv) and the patient metadata
(`METADATA_COLUMNS`: site, age; blank where missing).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agfnet.data.synth.attributes import ATTRIBUTES, NOISY_ATTRIBUTES, SampleSpec
from agfnet.data.synth.patient import METADATA_COLUMNS

__all__ = [
    "IMAGE_FOLDERS",
    "MANIFEST_COLUMNS",
    "METADATA_COLUMNS",
    "NUISANCE_COLUMNS",
    "PAIR_COLUMNS",
    "TASK_COLUMNS",
    "TASK_OVERRIDES",
    "relative_paths",
    "write_tables",
]

#: The columns of the pairs: images, label, ids and the lesion masks.
PAIR_COLUMNS: tuple[str, ...] = (
    "clinical",
    "ultrasound",
    "label",
    "patient_id",
    "lesion_id",
    "clinical_mask",
    "ultrasound_mask",
)
#: Task columns: every latent attribute, named as in attributes.csv (config `data.tasks`).
TASK_COLUMNS: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES)
MANIFEST_COLUMNS: tuple[str, ...] = (*PAIR_COLUMNS, *TASK_COLUMNS, *METADATA_COLUMNS)
#: The config overrides that train on the task and metadata columns.
TASK_OVERRIDES: tuple[str, ...] = (
    f"data.tasks=[{','.join(TASK_COLUMNS)}]",
    f"data.metadata=[{','.join(METADATA_COLUMNS)}]",
)
NUISANCE_COLUMNS: tuple[str, ...] = (
    "skin_tone",
    "lesion_radius",
    "aspect",
    "rotation_deg",
    "centre_x",
    "centre_y",
    "scan_row",
    "hair_strands",
    "ruler",
    "blur",
    "lighting",
    "gain",
    "attenuation",
    "dermis_thickness",
    "lesion_thickness",
)

#: The folders of the PNG files, relative to the benchmark folder.
IMAGE_FOLDERS: tuple[str, ...] = (
    "images/clinical",
    "images/ultrasound",
    "masks/clinical",
    "masks/ultrasound",
)


def relative_paths(lesion_id: str) -> dict[str, str]:
    """The four PNG paths of one sample, relative to the benchmark folder, by manifest column."""
    return {
        "clinical": f"images/clinical/{lesion_id}.png",
        "ultrasound": f"images/ultrasound/{lesion_id}.png",
        "clinical_mask": f"masks/clinical/{lesion_id}.png",
        "ultrasound_mask": f"masks/ultrasound/{lesion_id}.png",
    }


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _format(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def manifest_row(
    spec: SampleSpec, metadata: Mapping[str, str], columns: Sequence[str]
) -> list[str]:
    """One manifest.csv line of a sample: its image paths, label, ids, task and metadata
    cells, in the order of `columns`."""
    cells = {
        **relative_paths(spec.lesion_id),
        "label": spec.label,
        "patient_id": spec.patient_id,
        "lesion_id": spec.lesion_id,
        **spec.attributes,
        **metadata,
    }
    return [cells[c] for c in columns]


def write_tables(
    root: Path,
    specs: Sequence[SampleSpec],
    nuisances: Sequence[dict[str, float]],
    metadata: Sequence[dict[str, str]],
) -> None:
    """Write root/manifest.csv and root/attributes.csv (true attributes, flips, nuisances).

    Args:
        root: the benchmark folder being written.
        specs: the samples, in manifest order.
        nuisances: `RenderedPair.nuisances` of each sample, in the same order.
        metadata: the `METADATA_COLUMNS` cells of each sample (`draw_metadata`).
    """
    attr_names = [a.name for a in ATTRIBUTES]
    flip_names = [f"{a.name}_flipped" for a in NOISY_ATTRIBUTES]
    attr_rows = []
    manifest_rows = []
    for spec, nz, meta in zip(specs, nuisances, metadata, strict=True):
        manifest_rows.append(manifest_row(spec, meta, MANIFEST_COLUMNS))
        attr_rows.append(
            [spec.lesion_id, spec.patient_id, spec.label]
            + [spec.attributes[n] for n in attr_names]
            + [int(spec.flipped[a.name]) for a in NOISY_ATTRIBUTES]
            + [_format(nz[c]) for c in NUISANCE_COLUMNS]
        )
    _write_csv(
        root / "attributes.csv",
        ["lesion_id", "patient_id", "label", *attr_names, *flip_names, *NUISANCE_COLUMNS],
        attr_rows,
    )
    _write_csv(root / "manifest.csv", MANIFEST_COLUMNS, manifest_rows)
