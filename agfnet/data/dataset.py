"""`PairedLesionDataset`: manifest rows -> (clinical, ultrasound, present, label, ...) samples.

JPEG photographs are decoded at a reduced DCT scale (1/2, 1/4, 1/8) when the transform's
first operation resizes them anyway (`decode_floor`): the rule is that every region the
transform can resize to its output, taken from the reduced image, still has at least as
many pixels on each side as the output, so the transform only ever shrinks, as it does
from the full image, and never enlarges. For `Resize((h, w))` the reduced image must be
at least w x h; for `RandomResizedCrop((h, w), scale, ratio)` its smallest crop,
sqrt(scale_min * area * ratio_min) wide and sqrt(scale_min * area / ratio_max) high, and
its fallback centre crop must be. Every other format, and any other transform, is decoded
at full size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from agfnet.data.io import SizeCheck, read_image
from agfnet.data.manifest import Manifest
from agfnet.data.metadata import MetadataSpec
from agfnet.data.transforms import PairTransform, TransformConfig, build_transforms


@dataclass(frozen=True)
class DecodeFloor:
    """The least decoded size a transform's first resize still shrinks from (a `SizeCheck`).

    Attributes:
        height, width: the output size of the resize or crop.
        scale_min: smallest crop area, as a fraction of the image; 1 for a plain resize.
        ratio: (lowest, highest) crop width / height; None for a plain resize.
    """

    height: int
    width: int
    scale_min: float = 1.0
    ratio: tuple[float, float] | None = None

    def __call__(self, width: int, height: int) -> bool:
        """Whether an image of `width` x `height` gives every crop >= (self.width, self.height)."""
        if self.ratio is None:
            return width >= self.width and height >= self.height
        low, high = self.ratio
        area = self.scale_min * width * height
        # torchvision's fallback when no random crop fits: the centre crop of the ratio.
        if width / height < low:
            fallback = (width, round(width / low))
        elif width / height > high:
            fallback = (round(height * high), height)
        else:
            fallback = (width, height)
        return (
            math.sqrt(area * low) >= self.width
            and math.sqrt(area / high) >= self.height
            and fallback[0] >= self.width
            and fallback[1] >= self.height
        )


def decode_floor(pipeline: Any) -> DecodeFloor | None:
    """The `DecodeFloor` of a torchvision v2 pipeline whose first operation is a `Resize`
    to (h, w) or a `RandomResizedCrop`; None for anything else (decode at full size).

    Args:
        pipeline: a `v2.Compose` (one modality of a `PairTransform`), or any callable.

    Returns:
        The floor, or None.
    """
    first = next(iter(getattr(pipeline, "transforms", ())), None)
    if isinstance(first, v2.RandomResizedCrop):
        height, width = first.size
        return DecodeFloor(height, width, float(first.scale[0]), tuple(map(float, first.ratio)))
    if isinstance(first, v2.Resize) and len(first.size or ()) == 2:
        return DecodeFloor(*first.size)
    if isinstance(first, v2.Resize) and len(first.size or ()) == 1 and first.max_size is None:
        # The shorter side becomes size: both sides must reach it.
        return DecodeFloor(first.size[0], first.size[0])
    return None


class PairedLesionDataset(Dataset):
    """Paired images of a validated manifest, decoded and transformed on access.

    Picklable (the manifest and the transforms are plain objects), so it works with
    DataLoader workers.

    Args:
        manifest: a validated `Manifest`.
        indices: positions into `manifest.rows` to expose (a fold or split); None = all.
        transform: the `PairTransform`; None = the evaluation transform of the default
            `TransformConfig`.
        metadata_spec: the `MetadataSpec` that encodes each row's `metadata` (fitted on
            the training rows); None = no metadata input.
        frame: frame of multi-frame ultrasound files (DICOM cine loops) to read; 0 = first.
            Photographs are always read at frame 0.
        draft: decode a JPEG at a reduced DCT scale where the transform allows it (the
            module docstring's rule); False: every image at full size.

    A sample is a dict:
        clinical: float32 (3, H, W), normalised; zeros when the modality is missing.
        ultrasound: float32 (3, H, W), likewise.
        present: bool (2,): [clinical present, ultrasound present].
        label: int64 scalar tensor, class index; -1 when the row has no label.
        row: int, 1-based manifest row number.
        lesion_id: str, "" when the manifest has none.
        task_targets: int64 (T,): `ManifestRow.task_targets` (-1 where blank); (0,)
            without tasks.
        meta_cat: int64 (F_cat,): the categorical codes (`MetadataSpec.encode`).
        meta_num: float32 (F_num,): the normalised numeric fields (0 where missing).
        meta_num_present: bool (F_num,): whether each numeric field is given.
        The `meta_*` tensors have shape (0,) without a `metadata_spec`, so that every
        sample collates the same way.
    """

    def __init__(
        self,
        manifest: Manifest,
        indices: Sequence[int] | None = None,
        transform: PairTransform | None = None,
        metadata_spec: MetadataSpec | None = None,
        *,
        frame: int = 0,
        draft: bool = True,
    ) -> None:
        self.manifest = manifest
        self.indices = list(range(len(manifest))) if indices is None else [int(i) for i in indices]
        bad = [i for i in self.indices if not 0 <= i < len(manifest)]
        if bad:
            raise IndexError(
                f"indices {bad[:5]} out of range for a manifest of {len(manifest)} rows"
            )
        self.transform = transform or build_transforms(TransformConfig(), train=False)
        self.metadata_spec = metadata_spec or MetadataSpec()
        self.frame = frame
        self.draft = draft
        # Per modality (each has its own pipeline); None: full-size decode.
        self.floors: tuple[SizeCheck | None, SizeCheck | None] = (
            decode_floor(getattr(self.transform, "clinical", None)),
            decode_floor(getattr(self.transform, "ultrasound", None)),
        )

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> list[int]:
        """Returns: class index of every sample, in dataset order (-1 when unlabelled)."""
        return [self.manifest.rows[i].target for i in self.indices]

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.manifest.rows[self.indices[index]]
        clinical_fits, ultrasound_fits = self.floors if self.draft else (None, None)
        clinical = read_image(row.clinical, fits=clinical_fits) if row.clinical else None
        ultrasound = (
            read_image(row.ultrasound, frame=self.frame, fits=ultrasound_fits)
            if row.ultrasound
            else None
        )
        clinical_t, ultrasound_t = self.transform(clinical, ultrasound)
        meta = self.metadata_spec.encode_tensors(row.metadata)
        return {
            "clinical": clinical_t,
            "ultrasound": ultrasound_t,
            "present": torch.tensor(row.present, dtype=torch.bool),
            "label": torch.tensor(row.target, dtype=torch.int64),
            "row": row.row,
            "lesion_id": row.lesion_id,
            "task_targets": torch.tensor(row.task_targets, dtype=torch.int64),
            "meta_cat": meta["cat"],
            "meta_num": meta["num"],
            "meta_num_present": meta["num_present"],
        }
