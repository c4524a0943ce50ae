"""The conditions of `agfnet robustness` (clean, corruption x target x severity, a
modality removed) and `CorruptedPairs`, the dataset that applies one to decoded images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from agfnet.constants import MODALITIES, ROBUSTNESS_METRICS
from agfnet.data import PairedLesionDataset
from agfnet.errors import UserError
from agfnet.evaluation.corruptions import CORRUPTIONS, FAMILIES, MAX_SEVERITY, row_rng

TARGETS = ("clinical", "ultrasound", "both")
#: What each condition reports, from `compute_metrics`.
METRIC_KEYS = ROBUSTNESS_METRICS
OK, NOT_SUPPORTED, NOT_EVALUATED = "ok", "not supported", "not evaluated"


@dataclass(frozen=True)
class Condition:
    """One evaluation condition.

    Attributes:
        target: "none" (clean), "clinical", "ultrasound" or "both".
        family: "clean", a key of `FAMILIES`, or "missing".
        severity: 1..MAX_SEVERITY for corruptions; 0 for clean and missing.
    """

    target: str
    family: str
    severity: int = 0

    @property
    def name(self) -> str:
        """ "clean", "clinical/missing" or "<target>/<family>/<severity>"."""
        if self.family == "clean":
            return "clean"
        if self.family == "missing":
            return f"{self.target}/missing"
        return f"{self.target}/{self.family}/{self.severity}"

    @property
    def corruptions(self) -> dict[str, str]:
        """modality -> name of the corruption applied to it (empty for clean and missing)."""
        if self.family not in FAMILIES:
            return {}
        pair = FAMILIES[self.family]
        return {m: pair[m] for m in MODALITIES if self.target in (m, "both")}

    @property
    def dropped(self) -> str | None:
        """The modality removed, for the missing-modality conditions."""
        return self.target if self.family == "missing" else None

    @property
    def label(self) -> str:
        """What is applied: "none", "missing", "speckle" or "gaussian_noise+speckle"."""
        if self.family == "clean":
            return "none"
        return self.family if self.family == "missing" else "+".join(self.corruptions.values())


def parse_severities(text: str) -> list[int]:
    """Parse `--severities` ("1,2,3").

    Args:
        text: comma-separated integers in 1..MAX_SEVERITY.

    Returns:
        The sorted distinct severities.

    Raises:
        UserError: an empty list, a non-integer or a value out of range.
    """
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or not all(1 <= v <= MAX_SEVERITY for v in values):
        raise UserError(
            f"--severities {text!r}: give comma-separated integers from 1 to {MAX_SEVERITY}, "
            "e.g. --severities 1,2,3"
        )
    return values


def build_conditions(severities: Sequence[int]) -> list[Condition]:
    """Clean, then every target x family x severity, then each modality missing.

    Args:
        severities: values in 1..MAX_SEVERITY.

    Returns:
        The conditions, clean first.
    """
    corrupted = [
        Condition(target, family, s)
        for target in TARGETS
        for family in FAMILIES
        for s in severities
    ]
    missing = [Condition(m, "missing") for m in MODALITIES]
    return [Condition("none", "clean"), *corrupted, *missing]


def _decoded(
    clinical: Image.Image | None, ultrasound: Image.Image | None
) -> tuple[Image.Image | None, Image.Image | None]:
    """A stand-in for `PairTransform` that hands the decoded images through unchanged."""
    return clinical, ultrasound


class CorruptedPairs(Dataset):
    """`PairedLesionDataset` samples with the condition applied to the decoded images.

    The wrapped dataset decodes the images (its transform hands them through); this
    class corrupts them, each with the generator of its row and modality (`row_rng`),
    or removes the dropped modality (zeros, `present` False, as the data contract says),
    then applies the evaluation transform.

    Args:
        manifest: a validated `Manifest`.
        indices: positions into `manifest.rows`.
        transform: the checkpoint's evaluation `PairTransform`.
        condition: what to apply.
        seed: run seed (>= 0).
        frame: ultrasound frame, as for `PairedLesionDataset`.

    A sample is a dict as from `PairedLesionDataset`: clinical, ultrasound float32
    (3, S, S); present bool (2,); label; row; lesion_id.
    """

    def __init__(
        self,
        manifest: Any,
        indices: Sequence[int],
        transform: Any,
        condition: Condition,
        seed: int,
        *,
        frame: int = 0,
    ) -> None:
        self.pairs = PairedLesionDataset(manifest, indices, transform=_decoded, frame=frame)
        self.transform = transform
        self.condition = condition
        self.seed = seed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.pairs[index]
        images = {m: sample[m] for m in MODALITIES}
        severity = self.condition.severity
        for modality, name in self.condition.corruptions.items():
            if images[modality] is not None:
                rng = row_rng(self.seed, sample["row"], modality)
                images[modality] = CORRUPTIONS[name](images[modality], severity, rng)
        if self.condition.dropped:
            images[self.condition.dropped] = None
            sample["present"][MODALITIES.index(self.condition.dropped)] = False
        sample["clinical"], sample["ultrasound"] = self.transform(
            images["clinical"], images["ultrasound"]
        )
        return sample
