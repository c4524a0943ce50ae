"""Fixtures for the data tests: small image files, DICOM files and manifests in tmp_path."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(
    path: Path, mode: str = "RGB", size: tuple[int, int] = (40, 32), seed: int = 0
) -> Path:
    """Write a random image of `mode` and size (W, H); the format follows the suffix."""
    rng = np.random.default_rng(seed)
    w, h = size
    if mode in ("I;16", "I"):
        arr = rng.integers(0, 4096, (h, w)).astype(np.uint16 if mode == "I;16" else np.int32)
        image = Image.fromarray(arr)  # uint16 -> I;16, int32 -> I
    else:
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def write_dicom(
    path: Path,
    arr: np.ndarray,
    photometric: str,
    bits_stored: int | None = None,
    **elements: object,
) -> Path:
    """Write an uncompressed ultrasound DICOM file holding `arr` (frames first if 3-D grey)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.set_pixel_data(
        arr, photometric_interpretation=photometric, bits_stored=bits_stored or arr.itemsize * 8
    )
    for key, value in elements.items():
        setattr(ds, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_manifest(
    path: Path, rows: Sequence[dict[str, object]], header: Sequence[str] | None = None
) -> Path:
    """Write a manifest CSV; the header defaults to the keys of the first row."""
    header = list(header or rows[0].keys())
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def make_image() -> Callable[..., Path]:
    return write_image


@pytest.fixture
def make_dicom() -> Callable[..., Path]:
    return write_dicom


@pytest.fixture
def make_manifest() -> Callable[..., Path]:
    return write_manifest


@pytest.fixture
def paired_dir(tmp_path: Path) -> Path:
    """A clean manifest of 12 rows: 3 classes, 6 patients, PNG photos, JPEG ultrasound."""
    rows = []
    for i in range(12):
        label = ("bcc", "mel", "nev")[i % 3]
        clinical = write_image(tmp_path / "img" / f"c{i}.png", seed=i)
        ultrasound = write_image(tmp_path / "img" / f"u{i}.jpg", mode="L", seed=100 + i)
        rows.append(
            {
                "clinical": clinical.relative_to(tmp_path).as_posix(),
                "ultrasound": ultrasound.relative_to(tmp_path).as_posix(),
                "label": label,
                "patient_id": f"p{i // 2}",
                "lesion_id": f"L{i}",
            }
        )
    write_manifest(tmp_path / "manifest.csv", rows)
    return tmp_path
