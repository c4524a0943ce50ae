"""`to_pil`: every kind of image input reads like the same image file; bad inputs are named."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agfnet.data.convert import to_pil, to_pil_pair
from agfnet.data.io import read_image
from agfnet.errors import UserError

# (shape, dtype, highest value, mode PIL gives the same array saved as PNG)
ARRAYS = [
    ((40, 36), np.uint8, 256, "L"),
    ((40, 36), np.uint16, 40000, "I;16"),
    ((40, 36, 3), np.uint8, 256, "RGB"),
    ((40, 36, 4), np.uint8, 256, "RGBA"),
]


@pytest.mark.parametrize(("shape", "dtype", "high", "mode"), ARRAYS)
def test_numpy_arrays_read_like_the_same_image_file(
    tmp_path: Path, shape: tuple, dtype: type, high: int, mode: str
) -> None:
    array = np.random.default_rng(0).integers(high // 40, high, shape, dtype=dtype)
    path = tmp_path / "image.png"
    Image.fromarray(array).save(path)
    assert Image.open(path).mode == mode
    by_array = to_pil(array, "image")
    assert by_array.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(by_array), np.asarray(read_image(path)))


def test_a_single_channel_axis_is_grey() -> None:
    grey = np.random.default_rng(3).integers(0, 256, (20, 24), dtype=np.uint8)
    np.testing.assert_array_equal(
        np.asarray(to_pil(grey[:, :, None], "x")), np.asarray(to_pil(grey, "x"))
    )


def test_uint16_colour_keeps_the_high_byte() -> None:
    rgb8 = np.random.default_rng(1).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    low = np.random.default_rng(2).integers(0, 256, rgb8.shape, dtype=np.uint16)
    rgb16 = rgb8.astype(np.uint16) * 256 + low
    np.testing.assert_array_equal(np.asarray(to_pil(rgb16, "x")), rgb8)


def test_paths_bytes_files_and_pil_images_agree(tmp_path: Path) -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (16, 18, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    data = path.read_bytes()
    inputs = [path, str(path), data, bytearray(data), io.BytesIO(data), Image.open(path)]
    for image in inputs:
        out = to_pil(image, "image")
        assert out.mode == "RGB", type(image)
        np.testing.assert_array_equal(np.asarray(out), rgb)


def test_a_pil_image_is_turned_by_its_exif_orientation() -> None:
    image = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert to_pil(Image.open(buffer), "x").size == (10, 20)


def test_none_is_a_missing_image_and_a_pair_names_each_side(tmp_path: Path) -> None:
    assert to_pil(None, "clinical image") is None
    assert to_pil_pair(None, None) == (None, None)
    with pytest.raises(UserError, match=r"^ultrasound image: a numpy image must be uint8"):
        to_pil_pair(None, np.zeros((4, 4), np.float32))


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        (np.zeros((8, 8, 3), np.float32), "uint8 or uint16"),
        (np.zeros((3, 8, 8), np.uint8), "channels last"),
        (np.zeros((8, 8, 2), np.uint8), "channels last"),
        (np.zeros(8, np.uint8), "channels last"),
        (3.5, "cannot use a float"),
    ],
)
def test_unusable_inputs_are_refused_with_their_name(image, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment) as err:
        to_pil(image, "clinical image")
    assert str(err.value).startswith("clinical image: ")


def test_a_bad_image_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(UserError, match=r"broken.png"):
        to_pil(bad, "x")
    with pytest.raises(UserError, match=r"nothere.png.*not found"):
        to_pil(tmp_path / "nothere.png", "x")
