"""The latent attribute model of the synthetic benchmark and the draw of its samples.

Every sample has surface attributes that only the clinical photograph shows (colour
family, border) and depth attributes that only the ultrasound shows (invasion depth,
echogenicity, posterior features). Each deviates from its class prototype (`TABLE`) with
a documented probability; the free nuisance attributes carry no class information.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

CLASSES: tuple[str, ...] = ("BCC", "SCC", "MEL", "SK", "NEV")
CLASS_NAMES: dict[str, str] = {
    "BCC": "basal cell carcinoma",
    "SCC": "squamous cell carcinoma",
    "MEL": "melanoma",
    "SK": "seborrheic keratosis",
    "NEV": "melanocytic nevus",
}


@dataclass(frozen=True)
class Attribute:
    """One latent attribute of a lesion.

    Args:
        name: column name in attributes.csv.
        modality: the image that shows it, "clinical" or "ultrasound".
        levels: its discrete values.
        noise: probability that a sample's value deviates from its class prototype (the
            new value is then uniform over the other levels); None for a free nuisance
            attribute, drawn uniformly whatever the class, so it carries no class information.
    """

    name: str
    modality: str
    levels: tuple[str, ...]
    noise: Fraction | None


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("colour", "clinical", ("pink", "dark", "tan"), Fraction(1, 40)),
    Attribute("border", "clinical", ("regular", "irregular"), Fraction(1, 10)),
    Attribute("texture", "clinical", ("smooth", "scaly", "dotted"), None),
    Attribute("depth", "ultrasound", ("superficial", "dermal", "deep"), Fraction(1, 20)),
    Attribute("echo", "ultrasound", ("hypoechoic", "hyperechoic"), Fraction(1, 10)),
    Attribute("posterior", "ultrasound", ("none", "enhancement", "shadow"), Fraction(1, 10)),
    Attribute("heterogeneity", "ultrasound", ("homogeneous", "heterogeneous"), None),
)
ATTRIBUTE_BY_NAME: dict[str, Attribute] = {a.name: a for a in ATTRIBUTES}
NOISY_ATTRIBUTES: tuple[Attribute, ...] = tuple(a for a in ATTRIBUTES if a.noise is not None)

# Class prototypes of the informative attributes. Clinical partition: {BCC, SCC} pink and
# regular, {MEL, SK} dark and irregular, {NEV} tan and regular. Ultrasound partition:
# {BCC, NEV} dermal, hypoechoic, no posterior feature; {SCC, MEL} deep, hypoechoic,
# posterior enhancement; {SK} superficial, hyperechoic, posterior shadow.
TABLE: dict[str, dict[str, str]] = {
    "BCC": {
        "colour": "pink",
        "border": "regular",
        "depth": "dermal",
        "echo": "hypoechoic",
        "posterior": "none",
    },
    "SCC": {
        "colour": "pink",
        "border": "regular",
        "depth": "deep",
        "echo": "hypoechoic",
        "posterior": "enhancement",
    },
    "MEL": {
        "colour": "dark",
        "border": "irregular",
        "depth": "deep",
        "echo": "hypoechoic",
        "posterior": "enhancement",
    },
    "SK": {
        "colour": "dark",
        "border": "irregular",
        "depth": "superficial",
        "echo": "hyperechoic",
        "posterior": "shadow",
    },
    "NEV": {
        "colour": "tan",
        "border": "regular",
        "depth": "dermal",
        "echo": "hypoechoic",
        "posterior": "none",
    },
}

# Fraction of patients with two lesions, so grouped k-fold has groups to respect.
TWO_LESION_PATIENT_FRACTION = 0.2


@dataclass(frozen=True)
class SampleSpec:
    """Everything decided about one sample before its images are rendered.

    Args:
        index: 0-based position in the manifest.
        lesion_id: unique id, also the image file stem.
        patient_id: id shared by the lesions of one patient.
        label: class name, one of `CLASSES`.
        attributes: level of every attribute in `ATTRIBUTES`.
        flipped: for every noisy attribute, whether it deviates from the class prototype.
        skin_tone: 0 (fair) .. 1 (brown), shared by the lesions of one patient.
        render_seed: seed sequence of the rendering nuisances.
    """

    index: int
    lesion_id: str
    patient_id: str
    label: str
    attributes: dict[str, str]
    flipped: dict[str, bool]
    skin_tone: float
    render_seed: np.random.SeedSequence = field(repr=False)


def _sample_attributes_one(rng: np.random.Generator, label: str) -> tuple[dict, dict]:
    attributes: dict[str, str] = {}
    flipped: dict[str, bool] = {}
    for a in ATTRIBUTES:
        if a.noise is None:
            attributes[a.name] = a.levels[int(rng.integers(len(a.levels)))]
            continue
        proto = TABLE[label][a.name]
        flip = bool(rng.random() < float(a.noise))
        if flip:
            others = [lv for lv in a.levels if lv != proto]
            attributes[a.name] = others[int(rng.integers(len(others)))]
        else:
            attributes[a.name] = proto
        flipped[a.name] = flip
    return attributes, flipped


def _assign_patients(rng: np.random.Generator, n: int) -> list[int]:
    """Patient number of each sample: about 20% of patients have two lesions."""
    n_double = round(n * TWO_LESION_PATIENT_FRACTION / (1 + TWO_LESION_PATIENT_FRACTION))
    perm = rng.permutation(n)
    groups = [perm[2 * i : 2 * i + 2].tolist() for i in range(n_double)]
    groups += [[int(i)] for i in perm[2 * n_double :]]
    # Number patients in order of their first lesion, so ids read naturally in the manifest.
    groups.sort(key=min)
    patient = [0] * n
    for number, members in enumerate(groups):
        for i in members:
            patient[i] = number
    return patient


def sample_attributes(n_per_class: int, seed: int) -> list[SampleSpec]:
    """Draw the labels, patients and latent attributes of a benchmark without rendering.

    Cheap (no images), so a large set can be drawn to check the Bayes figures. `generate`
    renders exactly these samples for the same arguments.

    Args:
        n_per_class: samples per class; classes are interleaved (row i has class i mod 5).
        seed: the benchmark seed.

    Returns:
        One `SampleSpec` per sample, in manifest order.
    """
    return plan_samples(n_per_class, np.random.SeedSequence(seed), _sample_attributes_one)


def plan_samples(
    n_per_class: int,
    root: np.random.SeedSequence,
    draw: Callable[[np.random.Generator, str], tuple[dict[str, str], dict[str, bool]]],
) -> list[SampleSpec]:
    """Labels, patients and per-sample draws of a benchmark: the plan every kind shares.

    Args:
        n_per_class: samples per class; row i has class i mod 5.
        root: the benchmark's seed sequence; one child plans the patients and skin
            tones, one per sample seeds its draw and its rendering.
        draw: (rng, label) -> (attributes, flipped) of one sample.

    Returns:
        One `SampleSpec` per sample, in manifest order.
    """
    n = n_per_class * len(CLASSES)
    plan_seq, *sample_seqs = root.spawn(n + 1)
    plan_rng = np.random.default_rng(plan_seq)
    patient = _assign_patients(plan_rng, n)
    tones = plan_rng.beta(2.0, 2.5, size=max(patient, default=-1) + 1)
    specs = []
    for i, seq in enumerate(sample_seqs):
        attr_seq, render_seq = seq.spawn(2)
        label = CLASSES[i % len(CLASSES)]
        attributes, flipped = draw(np.random.default_rng(attr_seq), label)
        specs.append(
            SampleSpec(
                index=i,
                lesion_id=f"L{i + 1:05d}",
                patient_id=f"P{patient[i] + 1:05d}",
                label=label,
                attributes=attributes,
                flipped=flipped,
                skin_tone=float(tones[patient[i]]),
                render_seed=render_seq,
            )
        )
    return specs
