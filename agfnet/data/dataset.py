"""`PairedLesionDataset`: manifest rows -> (clinical, ultrasound, present, label, ...) samples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from agfnet.data.io import read_image
from agfnet.data.manifest import Manifest
from agfnet.data.metadata import MetadataSpec
from agfnet.data.transforms import PairTransform, TransformConfig, build_transforms


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

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> list[int]:
        """Returns: class index of every sample, in dataset order (-1 when unlabelled)."""
        return [self.manifest.rows[i].target for i in self.indices]

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.manifest.rows[self.indices[index]]
        clinical = read_image(row.clinical) if row.clinical else None
        ultrasound = read_image(row.ultrasound, frame=self.frame) if row.ultrasound else None
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
