"""What a synthetic benchmark folder says about itself: README.md and the content of synth.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agfnet.data.synth.attributes import ATTRIBUTES, CLASS_NAMES, CLASSES, NOISY_ATTRIBUTES, TABLE

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
"""


def metadata(
    n_per_class: int, size: int, seed: int, n_pairs: int, bayes: Mapping[str, float]
) -> dict[str, Any]:
    """The content of synth.json: the arguments, the Bayes figures and the attribute model."""
    return {
        "generator_version": GENERATOR_VERSION,
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
    }
