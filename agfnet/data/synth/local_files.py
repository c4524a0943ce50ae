"""The text files of a local-evidence benchmark folder: manifest.csv, attributes.csv, README.md
and the content of synth.json (same layout as the lesion benchmark's, other task columns)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agfnet.data.synth.attributes import CLASSES, SampleSpec
from agfnet.data.synth.local import (
    DECOY_CODES,
    LOCAL_CODES,
    LOCAL_NOISE,
    LOCAL_TABLE,
    LOCAL_TASK_COLUMNS,
    PATCH_AREA,
)
from agfnet.data.synth.local_render import LOCAL_NUISANCE_COLUMNS
from agfnet.data.synth.patient import METADATA_COLUMNS, METADATA_KINDS
from agfnet.data.synth.readme import GENERATOR_VERSION
from agfnet.data.synth.tables import PAIR_COLUMNS, _format, _write_csv, manifest_row

__all__ = ["LOCAL_MANIFEST_COLUMNS", "local_metadata", "local_readme", "write_local_tables"]

#: The columns of a local benchmark's manifest.csv.
LOCAL_MANIFEST_COLUMNS: tuple[str, ...] = (*PAIR_COLUMNS, *LOCAL_TASK_COLUMNS, *METADATA_COLUMNS)


def write_local_tables(
    root: Path,
    specs: Sequence[SampleSpec],
    nuisances: Sequence[Mapping[str, Any]],
    metadata: Sequence[Mapping[str, str]],
) -> None:
    """Write root/manifest.csv and root/attributes.csv (codes, flips, patch positions).

    Args:
        root: the benchmark folder being written.
        specs: the samples, in manifest order (`sample_local`).
        nuisances: `RenderedPair.nuisances` of each sample, in the same order.
        metadata: the site and age cells of each sample (`draw_metadata`).
    """
    manifest, attributes = [], []
    for spec, nz, meta in zip(specs, nuisances, metadata, strict=True):
        manifest.append(manifest_row(spec, meta, LOCAL_MANIFEST_COLUMNS))
        attributes.append(
            [spec.lesion_id, spec.patient_id, spec.label]
            + [spec.attributes[c] for c in LOCAL_TASK_COLUMNS]
            + [int(spec.flipped[c]) for c in LOCAL_TASK_COLUMNS]
            + [nz[c] if isinstance(nz[c], str) else _format(nz[c]) for c in LOCAL_NUISANCE_COLUMNS]
        )
    header = [
        "lesion_id",
        "patient_id",
        "label",
        *LOCAL_TASK_COLUMNS,
        *(f"{c}_flipped" for c in LOCAL_TASK_COLUMNS),
        *LOCAL_NUISANCE_COLUMNS,
    ]
    _write_csv(root / "attributes.csv", header, attributes)
    _write_csv(root / "manifest.csv", LOCAL_MANIFEST_COLUMNS, manifest)


def local_readme(n_per_class: int, size: int, seed: int, bayes: Mapping[str, float]) -> str:
    """The README.md of a local benchmark folder."""
    rows = "\n".join(
        f"| {k} | {LOCAL_TABLE[k]['clinical']} | {LOCAL_TABLE[k]['ultrasound']} |" for k in CLASSES
    )
    lo, hi = PATCH_AREA
    return f"""# agfnet synthetic benchmark: local evidence

Simulated data, not patient data: {n_per_class} pairs per class, {size} px, seed {seed},
generator version {GENERATOR_VERSION}, kind `local`. Written by
`agfnet synth --kind local`.

Every image is background with three square patches of {lo:.0%}-{hi:.0%} of its area at
random, non-overlapping positions: one evidence patch, which sets the class, and two
decoys of equal salience. The photograph's patches differ only in hue (evidence
{", ".join(LOCAL_CODES["clinical"])}; decoys {", ".join(DECOY_CODES["clinical"])}); the
ultrasound's only in texture (evidence {", ".join(LOCAL_CODES["ultrasound"])}; decoys
{", ".join(DECOY_CODES["ultrasound"])} stripes). `masks/` holds the evidence patch of every
image.

| class | clinical evidence | ultrasound evidence |
| --- | --- | --- |
{rows}

Each code deviates from its class prototype with probability {float(LOCAL_NOISE):.3f}
(uniform over the other two). `attributes.csv` holds the codes, the deviations, the
centre and side of each evidence patch (fractions of the image side) and the decoys.

## Bayes-optimal accuracy (equal class priors, exact)

| images seen | accuracy |
| --- | --- |
| clinical only | {bayes["clinical"]:.4f} |
| ultrasound only | {bayes["ultrasound"]:.4f} |
| both | {bayes["both"]:.4f} |

## Task and metadata columns

`manifest.csv` has the task columns {", ".join(f"`{c}`" for c in LOCAL_TASK_COLUMNS)}
(each image's evidence code) and the metadata columns `site` and `age` drawn as in the
lesion benchmark (`agfnet synth` without `--kind`).
"""


def local_metadata(
    n_per_class: int, size: int, seed: int, n_pairs: int, bayes: Mapping[str, float]
) -> dict[str, Any]:
    """The content of a local benchmark's synth.json."""
    return {
        "generator_version": GENERATOR_VERSION,
        "kind": "local",
        "seed": seed,
        "size": size,
        "n_per_class": n_per_class,
        "n_pairs": n_pairs,
        "classes": list(CLASSES),
        "bayes_accuracy": dict(bayes),
        "codes": {m: list(c) for m, c in LOCAL_CODES.items()},
        "decoys": {m: list(c) for m, c in DECOY_CODES.items()},
        "noise": float(LOCAL_NOISE),
        "patch_area": list(PATCH_AREA),
        "table": LOCAL_TABLE,
        "tasks": list(LOCAL_TASK_COLUMNS),
        "metadata": {"columns": list(METADATA_COLUMNS), "kinds": METADATA_KINDS},
    }
