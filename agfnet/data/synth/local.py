"""The local-evidence benchmark (`agfnet synth --kind local`): small patches set the class.

Each image is background (skin or speckle) with three square patches of 4-6 % of its
area at random, non-overlapping positions: one evidence patch and two decoys of equal
salience. In the photograph the patches differ only in hue (at equal mean intensity and
chroma): the evidence patch is red, green or blue, the decoys yellow, cyan or magenta.
In the ultrasound they differ only in texture (at equal mean and contrast): the evidence
patch has horizontal stripes, vertical stripes or a checkerboard, the decoys diagonal
stripes. The rest of each image is noise of larger extent than the patches, so the class
can be read only from a few percent of the pixels.

The codes follow the same two-partition design as the lesion benchmark (`TABLE` of
`attributes`): the photograph alone confuses BCC with SCC and MEL with SK, the
ultrasound alone BCC with NEV and SCC with MEL, the pair separates all five. Each code
deviates from its class prototype with probability `LOCAL_NOISE` (uniform over the other
two), so the Bayes-optimal accuracies are exact (`local_bayes_accuracies`). The masks
are the evidence patches.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np

from agfnet.data.synth.attributes import CLASSES, SampleSpec, plan_samples

__all__ = [
    "DECOY_CODES",
    "LOCAL_CODES",
    "LOCAL_NOISE",
    "LOCAL_TABLE",
    "LOCAL_TASK_COLUMNS",
    "PATCH_AREA",
    "local_bayes_accuracies",
    "sample_local",
]

#: The evidence codes of each modality, in order.
LOCAL_CODES: dict[str, tuple[str, ...]] = {
    "clinical": ("red", "green", "blue"),
    "ultrasound": ("horizontal", "vertical", "checker"),
}
#: The decoy codes of each modality: two of them per image, whatever the class.
DECOY_CODES: dict[str, tuple[str, ...]] = {
    "clinical": ("yellow", "cyan", "magenta"),
    "ultrasound": ("diagonal", "antidiagonal"),
}
#: Class prototypes: clinical {BCC, SCC} red, {MEL, SK} green, {NEV} blue; ultrasound
#: {BCC, NEV} horizontal, {SCC, MEL} vertical, {SK} checker.
LOCAL_TABLE: dict[str, dict[str, str]] = {
    "BCC": {"clinical": "red", "ultrasound": "horizontal"},
    "SCC": {"clinical": "red", "ultrasound": "vertical"},
    "MEL": {"clinical": "green", "ultrasound": "vertical"},
    "SK": {"clinical": "green", "ultrasound": "checker"},
    "NEV": {"clinical": "blue", "ultrasound": "horizontal"},
}
#: Probability that a code deviates from its class prototype.
LOCAL_NOISE = Fraction(1, 10)
#: Range of the area of each patch, as a fraction of the image.
PATCH_AREA = (0.04, 0.06)
#: Task columns of the manifest: the evidence code of each image.
LOCAL_TASK_COLUMNS: tuple[str, ...] = ("clinical_evidence", "ultrasound_evidence")

# Mixed with the benchmark seed: a local benchmark shares no stream with a lesion one.
_STREAM = 0x10CA1


def _code_probability(label: str, modality: str, code: str) -> Fraction:
    proto = LOCAL_TABLE[label][modality]
    others = len(LOCAL_CODES[modality]) - 1
    return 1 - LOCAL_NOISE if code == proto else LOCAL_NOISE / others


def local_bayes_accuracies() -> dict[str, float]:
    """Exact Bayes-optimal accuracies (equal priors) from the photograph, the ultrasound, both."""
    out = {}
    for seen in (("clinical",), ("ultrasound",), ("clinical", "ultrasound")):
        total = Fraction(0)
        for codes in itertools.product(*(LOCAL_CODES[m] for m in seen)):
            total += max(
                np.prod([_code_probability(k, m, c) for m, c in zip(seen, codes, strict=True)])
                for k in CLASSES
            )
        out["both" if len(seen) == 2 else seen[0]] = float(total / len(CLASSES))
    return out


def sample_local(n_per_class: int, seed: int) -> list[SampleSpec]:
    """Draw the labels, patients and evidence codes of a local benchmark (no rendering).

    Args:
        n_per_class: samples per class; row i has class i mod 5.
        seed: the benchmark seed.

    Returns:
        One `SampleSpec` per sample, in manifest order; its attributes are the
        `LOCAL_TASK_COLUMNS` codes and `flipped` says which deviate from the prototype.
    """
    return plan_samples(n_per_class, np.random.SeedSequence([seed, _STREAM]), _draw_codes)


def _draw_codes(rng: np.random.Generator, label: str) -> tuple[dict, dict]:
    """One sample's evidence codes: each modality's prototype, or with probability
    `LOCAL_NOISE` another code of it."""
    attributes, flipped = {}, {}
    for modality, column in zip(LOCAL_CODES, LOCAL_TASK_COLUMNS, strict=True):
        proto = LOCAL_TABLE[label][modality]
        flip = bool(rng.random() < float(LOCAL_NOISE))
        others = [c for c in LOCAL_CODES[modality] if c != proto]
        attributes[column] = others[int(rng.integers(len(others)))] if flip else proto
        flipped[column] = flip
    return attributes, flipped
