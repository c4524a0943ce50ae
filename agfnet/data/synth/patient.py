"""Patient metadata of the synthetic benchmark: a weakly informative `site`, an uninformative `age`.

Both are drawn from their own random stream, after and apart from everything the images
depend on, so adding them changed no image and no other value of a benchmark folder.

- `site` (categorical, per lesion): drawn from `SITE_TABLE[class]`, skewed per class
  (BCC the head and neck, SCC the arms, MEL the legs, SK the trunk; NEV uniform), and
  left blank (missing) with probability `SITE_MISSING` whatever the class.
- `age` (numeric, per patient, so two lesions of a patient share it): a whole number of
  years from a normal law clipped to [18, 95], the same for every class; blank with
  probability `AGE_MISSING`. It carries no class information: a model should learn to
  ignore it.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from agfnet.data.synth.attributes import SampleSpec

__all__ = [
    "AGE_MISSING",
    "AGE_RANGE",
    "METADATA_COLUMNS",
    "METADATA_KINDS",
    "SITES",
    "SITE_MISSING",
    "SITE_TABLE",
    "draw_metadata",
]

SITES: tuple[str, ...] = ("head_neck", "trunk", "upper_limb", "lower_limb")
#: P(site | class) of a lesion whose site is given: each tumour class has one favoured
#: site (probability 1/2, the others 1/6 each); NEV is uniform.
SITE_TABLE: dict[str, dict[str, Fraction]] = {
    label: {s: Fraction(1, 2) if s == favoured else Fraction(1, 6) for s in SITES}
    for label, favoured in (
        ("BCC", "head_neck"),
        ("SCC", "upper_limb"),
        ("MEL", "lower_limb"),
        ("SK", "trunk"),
    )
}
SITE_TABLE["NEV"] = dict.fromkeys(SITES, Fraction(1, 4))
#: Probability that a lesion's site is blank (missing), whatever its class.
SITE_MISSING = Fraction(1, 10)
#: Probability that a patient's age is blank (missing).
AGE_MISSING = Fraction(1, 20)
#: Ages are clipped to this range (years); mean 55, standard deviation 15 before clipping.
AGE_RANGE = (18, 95)
METADATA_COLUMNS: tuple[str, ...] = ("site", "age")
#: The kind of each column, as the config's `data.metadata_kinds` says it.
METADATA_KINDS: dict[str, str] = {"site": "categorical", "age": "numeric"}

# Mixed with the benchmark seed, so this stream is independent of every stream of the
# images (which are children of SeedSequence(seed)).
_STREAM = 0x51E


def draw_metadata(specs: Sequence[SampleSpec], seed: int) -> list[dict[str, str]]:
    """The `site` and `age` cells of every sample.

    Args:
        specs: the samples, in manifest order (from `sample_attributes`).
        seed: the benchmark seed.

    Returns:
        One {"site": ..., "age": ...} per sample; "" where the value is missing.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM]))
    patients = list(dict.fromkeys(s.patient_id for s in specs))
    ages = np.clip(np.rint(rng.normal(55.0, 15.0, size=len(patients))), *AGE_RANGE)
    age_missing = rng.random(len(patients)) < float(AGE_MISSING)
    age_of = {
        p: "" if gone else str(int(a))
        for p, a, gone in zip(patients, ages, age_missing, strict=True)
    }
    site_missing = rng.random(len(specs)) < float(SITE_MISSING)
    draws = rng.random(len(specs))
    out = []
    for spec, gone, u in zip(specs, site_missing, draws, strict=True):
        cumulative = np.cumsum([float(SITE_TABLE[spec.label][s]) for s in SITES])
        site = SITES[min(int(np.searchsorted(cumulative, u, side="right")), len(SITES) - 1)]
        out.append({"site": "" if gone else site, "age": age_of[spec.patient_id]})
    return out
