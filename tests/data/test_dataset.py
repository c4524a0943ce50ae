"""PairedLesionDataset: the sample contract, missing modalities, DICOM, DataLoader workers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from agfnet.data import PairedLesionDataset, TransformConfig, build_transforms, read_manifest

SIZE = 32


def _dataset(root: Path, **kwargs) -> PairedLesionDataset:
    manifest = read_manifest(root / "manifest.csv", **kwargs)
    return PairedLesionDataset(
        manifest, transform=build_transforms(TransformConfig(img_size=SIZE), False)
    )


def test_sample_contract(paired_dir: Path) -> None:
    ds = _dataset(paired_dir)
    assert len(ds) == 12
    sample = ds[4]
    assert set(sample) == {
        *("clinical", "ultrasound", "present", "label", "row", "lesion_id"),
        # Always present, shape (0,) without tasks and metadata, so batches collate alike.
        *("task_targets", "meta_cat", "meta_num", "meta_num_present"),
    }
    for key, dtype in (
        ("task_targets", torch.int64),
        ("meta_cat", torch.int64),
        ("meta_num", torch.float32),
        ("meta_num_present", torch.bool),
    ):
        assert sample[key].shape == (0,) and sample[key].dtype == dtype, key
    for key in ("clinical", "ultrasound"):
        assert sample[key].shape == (3, SIZE, SIZE) and sample[key].dtype == torch.float32
    assert sample["present"].dtype == torch.bool and sample["present"].tolist() == [True, True]
    assert sample["label"].dtype == torch.int64 and sample["label"].ndim == 0
    assert int(sample["label"]) == ds.manifest.classes.index("mel")  # row 5 is i=4 -> mel
    assert sample["row"] == 5 and sample["lesion_id"] == "L4"
    assert ds.targets == [i % 3 for i in range(12)]


def test_default_transform_is_the_evaluation_one(paired_dir: Path) -> None:
    ds = PairedLesionDataset(read_manifest(paired_dir / "manifest.csv"))
    a, b = ds[0], ds[0]
    assert a["clinical"].shape == (3, 224, 224)
    assert torch.equal(a["clinical"], b["clinical"])


def test_missing_modality_and_missing_label(paired_dir: Path) -> None:
    with open(paired_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0]["clinical"] = ""
    rows[1]["ultrasound"] = ""
    rows[2]["label"] = ""
    with open(paired_dir / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=["clinical", "ultrasound", "label"], extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows)
    ds = _dataset(paired_dir, allow_missing_modality=True, require_labels=False)
    first, second, third = ds[0], ds[1], ds[2]
    assert first["present"].tolist() == [False, True]
    assert torch.equal(first["clinical"], torch.zeros(3, SIZE, SIZE))
    assert first["ultrasound"].abs().sum() > 0
    assert second["present"].tolist() == [True, False]
    assert torch.equal(second["ultrasound"], torch.zeros(3, SIZE, SIZE))
    assert int(third["label"]) == -1 and third["lesion_id"] == ""


def test_indices_select_rows_and_are_checked(paired_dir: Path) -> None:
    manifest = read_manifest(paired_dir / "manifest.csv")
    ds = PairedLesionDataset(manifest, indices=[11, 0])
    assert len(ds) == 2 and ds[0]["row"] == 12 and ds[1]["row"] == 1
    with pytest.raises(IndexError, match="out of range"):
        PairedLesionDataset(manifest, indices=[12])


def test_dicom_ultrasound_in_a_manifest(
    tmp_path: Path, make_image, make_dicom, make_manifest
) -> None:
    make_image(tmp_path / "c.jpg")
    frames = np.stack([np.full((20, 30), v, np.uint8) for v in (0, 255)])
    frames[0, 0, 0], frames[1, 0, 0] = 255, 0  # each frame spans 0..255
    make_dicom(tmp_path / "u.DCM", frames, "MONOCHROME2", NumberOfFrames=2)
    make_manifest(
        tmp_path / "manifest.csv", [{"clinical": "c.jpg", "ultrasound": "u.DCM", "label": "a"}]
    )
    manifest = read_manifest(tmp_path / "manifest.csv")
    transform = build_transforms(
        TransformConfig(img_size=SIZE, ultrasound_mean=(0, 0, 0), ultrasound_std=(1, 1, 1)), False
    )
    first = PairedLesionDataset(manifest, transform=transform)[0]["ultrasound"]
    second = PairedLesionDataset(manifest, transform=transform, frame=1)[0]["ultrasound"]
    assert first.mean() < 0.1 and second.mean() > 0.9


def test_dataloader_with_two_workers(paired_dir: Path) -> None:
    ds = PairedLesionDataset(
        read_manifest(paired_dir / "manifest.csv"),
        transform=build_transforms(TransformConfig(img_size=SIZE), train=True),
    )
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 3
    batch = batches[0]
    assert batch["clinical"].shape == (4, 3, SIZE, SIZE)
    assert batch["present"].shape == (4, 2) and batch["label"].dtype == torch.int64
    assert batch["lesion_id"] == ["L0", "L1", "L2", "L3"]
    assert torch.cat([b["row"] for b in batches]).tolist() == list(range(1, 13))


def test_task_targets_and_metadata_in_samples_and_batches(paired_dir: Path) -> None:
    from agfnet.data.metadata import fit_metadata

    with open(paired_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        r.update(streaks="ab"[i % 2], veil="y" if i % 3 == 0 else "n", sex=("f", "m", "")[i % 3])
        r["age"] = "" if i == 1 else str(20 + 2 * i)
    with open(paired_dir / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    manifest = read_manifest(
        paired_dir / "manifest.csv", tasks=["streaks", "veil"], metadata=["sex", "age"]
    )
    spec = fit_metadata(manifest.rows[:8], manifest.metadata_fields)
    transform = build_transforms(TransformConfig(img_size=SIZE), False)
    ds = PairedLesionDataset(manifest, transform=transform, metadata_spec=spec)
    first, second = ds[0], ds[1]
    assert first["task_targets"].tolist() == [0, 1]  # streaks a, veil y
    assert first["task_targets"].dtype == torch.int64
    assert first["meta_cat"].tolist() == [2] and second["meta_cat"].tolist() == [3]
    assert first["meta_num_present"].tolist() == [True]
    assert second["meta_num"].tolist() == [0.0] and second["meta_num_present"].tolist() == [False]
    assert ds[2]["meta_cat"].tolist() == [0]  # blank sex: missing
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["task_targets"].shape == (4, 2)
    assert batch["meta_cat"].shape == (4, 1) and batch["meta_cat"].dtype == torch.int64
    assert batch["meta_num"].shape == (4, 1) and batch["meta_num"].dtype == torch.float32
    assert batch["meta_num_present"].shape == (4, 1)
    plain = next(iter(DataLoader(_dataset(paired_dir), batch_size=4)))
    assert plain["task_targets"].shape == (4, 0) and plain["meta_num"].shape == (4, 0)
