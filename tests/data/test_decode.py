"""Reduced-scale JPEG decoding (`read_image(fits=...)`, `decode_floor`): the rule that keeps
every crop at least the output's size, EXIF orientation, and that the image reaching the
network stays close to the full decode's while nothing but frame-0 JPEGs is reduced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from agfnet.benchmark.loader import photo_like, write_photographs
from agfnet.data import PairedLesionDataset, TransformConfig, build_transforms, read_manifest
from agfnet.data.dataset import DecodeFloor, decode_floor
from agfnet.data.io import ImageReadError, read_image

#: The lite preset's augmentation (configs/lite.yaml) at its 160 px.
LITE = TransformConfig(img_size=160, rotation=20, scale=(0.6, 1.0), ratio=(0.75, 4 / 3))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two pairs of 768x512 JPEG photographs (quality 90) and their manifest."""
    return write_photographs(tmp_path_factory.mktemp("photos"), 2)


def test_jpeg_is_decoded_at_the_smallest_scale_the_transform_allows(photos) -> None:
    jpeg = photos.parent / "clinical_0.jpg"
    assert read_image(jpeg).size == (768, 512)
    # Eval at 160: Resize((160, 160)) needs 160 on each side: 1/2 (384x256), not 1/4 (192x128).
    evaluation = decode_floor(build_transforms(LITE, train=False).clinical)
    assert read_image(jpeg, fits=evaluation).size == (384, 256)
    # Training at 160: the smallest crop of 1/2 is sqrt(0.6 * 384 * 256 * 0.75) = 210 px.
    training = decode_floor(build_transforms(LITE, train=True).clinical)
    assert read_image(jpeg, fits=training).size == (384, 256)
    # At 224 the crops of 1/2 (210 px) are too small: full size.
    paper = decode_floor(build_transforms(LITE.model_copy(update={"img_size": 224}), True).clinical)
    assert read_image(jpeg, fits=paper).size == (768, 512)
    # A small output: 1/8.
    assert read_image(jpeg, fits=DecodeFloor(64, 64)).size == (96, 64)


@pytest.mark.parametrize(
    ("size", "fits"),
    [
        ((768, 512), True),
        ((384, 256), True),
        ((600, 170), True),
        ((170, 600), True),
        ((210, 210), False),
        ((192, 128), False),
    ],
)
def test_every_crop_of_an_image_that_fits_is_at_least_the_output(size, fits) -> None:
    crop = v2.RandomResizedCrop(160, scale=LITE.scale, ratio=LITE.ratio, antialias=True)
    floor = decode_floor(v2.Compose([crop]))
    assert floor(*size) is fits
    width, height = size
    image = torch.zeros(3, height, width)
    torch.manual_seed(0)
    crops = [crop.make_params([image]) for _ in range(2000)]
    smallest = min(p["width"] for p in crops), min(p["height"] for p in crops)
    if fits:  # the rule bounds every crop, sampled or the fallback centre crop
        assert min(smallest) >= 160, smallest


def test_the_fallback_centre_crop_counts() -> None:
    # No random crop of ratio <= 4/3 and area >= 0.6 fits in 150 rows; torchvision then
    # takes the centre crop of ratio 4/3, 200x150: too low for 160 px.
    floor = DecodeFloor(160, 160, 0.6, (0.75, 4 / 3))
    assert floor(1000, 300) and not floor(1000, 150)


def test_exif_orientation_is_applied_before_the_size_is_checked(tmp_path) -> None:
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 800x400, displayed 400x800 (turned by 90 degrees)
    Image.fromarray(photo_like((800, 400), np.random.default_rng(0))).save(path, exif=exif)
    assert read_image(path).size == (400, 800)
    # Resize to 150 wide, 300 high: 1/2 gives 200x400 as displayed, 1/4 100x200.
    assert read_image(path, fits=DecodeFloor(height=300, width=150)).size == (200, 400)


def test_eval_image_from_the_reduced_decode_is_close_to_the_full_one(photos) -> None:
    manifest = read_manifest(photos)
    transform = build_transforms(LITE, train=False)
    drafted = PairedLesionDataset(manifest, transform=transform)
    full = PairedLesionDataset(manifest, transform=transform, draft=False)
    for i in range(len(manifest)):
        for modality in ("clinical", "ultrasound"):
            a, b = drafted[i][modality], full[i][modality]
            assert a.shape == b.shape == (3, 160, 160)
            # Normalised units (1 grey level is about 0.017): on average under half a level.
            assert (a - b).abs().mean() < 0.01, (i, modality)
            assert (a - b).abs().max() < 0.15
            assert (a - b).abs().mean() > 0  # it was decoded differently


def test_training_samples_keep_their_shape_with_reduced_decoding(photos) -> None:
    manifest = read_manifest(photos)
    dataset = PairedLesionDataset(manifest, transform=build_transforms(LITE, train=True))
    assert dataset.floors[0] is not None and dataset.floors[1] is not None
    sample = dataset[0]
    assert sample["clinical"].shape == sample["ultrasound"].shape == (3, 160, 160)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_other_formats_are_never_reduced(tmp_path, suffix) -> None:
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(photo_like((768, 512), np.random.default_rng(1))).save(path)
    full, offered = read_image(path), read_image(path, fits=lambda w, h: True)
    assert offered.size == (768, 512)
    assert np.array_equal(np.asarray(full), np.asarray(offered))


def test_png_samples_are_identical_with_and_without_drafting(tmp_path, make_manifest) -> None:
    rows = []
    for i in range(2):
        for kind in ("c", "u"):
            image = Image.fromarray(photo_like((384, 256), np.random.default_rng(i)))
            image.save(tmp_path / f"{kind}{i}.png")
        rows.append({"clinical": f"c{i}.png", "ultrasound": f"u{i}.png", "label": "a"})
    manifest = read_manifest(make_manifest(tmp_path / "m.csv", rows))
    transform = build_transforms(TransformConfig(img_size=64), train=False)
    drafted = PairedLesionDataset(manifest, transform=transform)
    full = PairedLesionDataset(manifest, transform=transform, draft=False)
    for i in range(2):
        assert torch.equal(drafted[i]["clinical"], full[i]["clinical"])
        assert torch.equal(drafted[i]["ultrasound"], full[i]["ultrasound"])


def test_grey_jpeg_is_reduced_and_still_rgb(tmp_path) -> None:
    path = tmp_path / "grey.jpg"
    Image.fromarray(photo_like((400, 300), np.random.default_rng(2))).convert("L").save(path)
    image = read_image(path, fits=DecodeFloor(100, 100))
    assert image.mode == "RGB" and image.size == (200, 150)


def test_a_truncated_jpeg_is_still_refused_when_reduced(photos, tmp_path) -> None:
    data = (photos.parent / "clinical_0.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.jpg"):
        read_image(path, fits=DecodeFloor(64, 64))


def test_decode_floor_only_knows_a_leading_resize() -> None:
    assert decode_floor(v2.Compose([v2.Resize((100, 120))])) == DecodeFloor(100, 120)
    assert decode_floor(v2.Compose([v2.Resize(100)])) == DecodeFloor(100, 100)
    assert decode_floor(v2.Compose([v2.Resize(100, max_size=150)])) is None
    assert decode_floor(v2.Compose([v2.ToImage(), v2.Resize((100, 100))])) is None
    assert decode_floor(lambda image: image) is None  # e.g. robustness' decoded images
    floor = decode_floor(v2.Compose([v2.RandomResizedCrop(96, scale=(0.5, 1), ratio=(0.8, 1.25))]))
    assert floor == DecodeFloor(96, 96, 0.5, (0.8, 1.25))
