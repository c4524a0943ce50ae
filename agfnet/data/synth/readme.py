"""What a synthetic benchmark folder says about itself: README.md and the content of synth.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agfnet.data.synth.attributes import ATTRIBUTES, CLASS_NAMES, CLASSES, NOISY_ATTRIBUTES, TABLE
from agfnet.data.synth.bayes import bayes_accuracies_with_site, task_bayes_accuracies
from agfnet.data.synth.patient import (
    AGE_MISSING,
    AGE_RANGE,
    METADATA_KINDS,
    SITE_MISSING,
    SITE_TABLE,
    SITES,
)
from agfnet.data.synth.tables import METADATA_COLUMNS, TASK_COLUMNS, TASK_OVERRIDES

__all__ = ["GENERATOR_VERSION", "attribute_table_markdown", "metadata", "readme"]

#: Stored in synth.json; changes whenever the same seed would give other images.
GENERATOR_VERSION = "1.0"


def attribute_table_markdown() -> str:
    """The class-attribute table as Markdown (one row per class, prototypes only)."""
    names = [a.name for a in NOISY_ATTRIBUTES]
    lines = [
        "| class | name | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for label in CLASSES:
        cells = " | ".join(TABLE[label][n] for n in names)
        lines.append(f"| {label} | {CLASS_NAMES[label]} (simulated) | {cells} |")
    return "\n".join(lines)


def _task_table() -> str:
    """The exact Bayes figures of each task and of the diagnosis with the site, as Markdown."""
    tasks = task_bayes_accuracies()
    site = bayes_accuracies_with_site()
    lines = [
        "| task | image that shows it | from that image | from the other image | "
        "from the diagnosis |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| `{a.name}` | {a.modality} | 1 (drawn from it) | {tasks[a.name]['other_image']:.4f} "
        f"| {tasks[a.name]['diagnosis']:.4f} |"
        for a in ATTRIBUTES
    ]
    lines += [
        "",
        "Diagnosis with the site seen too (exact): "
        + ", ".join(f"{k} {v:.4f}" for k, v in site.items())
        + ".",
    ]
    return "\n".join(lines)


def readme(n_per_class: int, size: int, seed: int, bayes: Mapping[str, float]) -> str:
    """The README.md of a benchmark folder: classes, attributes and Bayes figures."""
    noise = "\n".join(
        f"- `{a.name}` ({a.modality}): {', '.join(a.levels)}; "
        + (
            f"deviates from the class prototype with probability {float(a.noise):.3f}"
            if a.noise is not None
            else "free nuisance, uniform whatever the class"
        )
        for a in ATTRIBUTES
    )
    return f"""# agfnet synthetic benchmark

Simulated data, not patient data: {n_per_class} pairs per class, {size} px, seed {seed},
generator version {GENERATOR_VERSION}. Written by `agfnet synth`.

Each row of `manifest.csv` pairs a clinical photograph with a skin ultrasound image (a
vertical cross-section through the lesion centre along the photograph's x axis). The
classes are named after common skin tumours but their appearance is simulated.

## Classes and their prototype attributes

{attribute_table_markdown()}

## Attributes

{noise}

`attributes.csv` holds the true attributes of every sample, whether each noisy attribute
was flipped away from its prototype, and the nuisance values. `masks/` holds the lesion
mask of every image.

## Bayes-optimal accuracy (equal class priors, exact)

| images seen | accuracy |
| --- | --- |
| clinical only | {bayes["clinical"]:.4f} |
| ultrasound only | {bayes["ultrasound"]:.4f} |
| both | {bayes["both"]:.4f} |

## Task and metadata columns

Besides the diagnosis (`label`), `manifest.csv` has a task column per attribute (its
true level, as in `attributes.csv`): {", ".join(f"`{t}`" for t in TASK_COLUMNS)}.
Its metadata columns are `site` ({", ".join(SITES)}; weakly informative;
blank for {float(SITE_MISSING):.0%} of lesions) and `age` (numeric, years, the same law
for every class; blank for {float(AGE_MISSING):.0%} of patients). Train on them with

    {" ".join(TASK_OVERRIDES)}

{_task_table()}
"""


def metadata(
    n_per_class: int, size: int, seed: int, n_pairs: int, bayes: Mapping[str, float]
) -> dict[str, Any]:
    """The content of synth.json: the arguments, the Bayes figures and the attribute model."""
    return {
        "generator_version": GENERATOR_VERSION,
        "kind": "lesion",
        "seed": seed,
        "size": size,
        "n_per_class": n_per_class,
        "n_pairs": n_pairs,
        "classes": list(CLASSES),
        "class_names": CLASS_NAMES,
        "bayes_accuracy": bayes,
        "attributes": {
            a.name: {
                "modality": a.modality,
                "levels": list(a.levels),
                "noise": None if a.noise is None else float(a.noise),
            }
            for a in ATTRIBUTES
        },
        "table": TABLE,
        "tasks": list(TASK_COLUMNS),
        "task_bayes_accuracy": task_bayes_accuracies(),
        "metadata": {
            "columns": list(METADATA_COLUMNS),
            "kinds": METADATA_KINDS,
            "sites": list(SITES),
            "site_table": {k: {s: float(p) for s, p in t.items()} for k, t in SITE_TABLE.items()},
            "site_missing": float(SITE_MISSING),
            "age_range": list(AGE_RANGE),
            "age_missing": float(AGE_MISSING),
        },
        "bayes_accuracy_with_site": bayes_accuracies_with_site(),
    }
