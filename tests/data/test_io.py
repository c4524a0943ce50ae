"""Image readers: every format and PIL mode, DICOM ultrasound, truncated and hostile files."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from agfnet.data.io import ImageReadError, check_image, read_image

pydicom = pytest.importorskip("pydicom")
get_testdata_file = pytest.importorskip("pydicom.data").get_testdata_file

# (suffix, mode) pairs PIL can write; mixed-case suffixes on purpose.
FORMAT_MODES = [
    (".jpg", "RGB"),
    (".JPG", "L"),
    (".jpeg", "CMYK"),
    (".png", "RGB"),
    (".PNG", "RGBA"),
    (".png", "L"),
    (".png", "LA"),
    (".png", "P"),
    (".png", "1"),
    (".png", "I;16"),
    (".tif", "RGB"),
    (".TIFF", "RGBA"),
    (".tif", "L"),
    (".tif", "P"),
    (".tif", "1"),
    (".tif", "I;16"),
    (".tif", "I"),
    (".bmp", "RGB"),
    (".BMP", "L"),
    (".bmp", "P"),
    (".bmp", "1"),
]


@pytest.mark.parametrize(("suffix", "mode"), FORMAT_MODES)
def test_every_format_and_mode_reads_as_rgb_of_the_same_size(
    tmp_path: Path, make_image, suffix: str, mode: str
) -> None:
    path = make_image(tmp_path / f"x{suffix}", mode=mode, size=(37, 23))
    image = read_image(path)
    assert image.mode == "RGB"
    assert image.size == (37, 23)
    stored = Image.open(path)
    lossless = suffix.lower() not in (".jpg", ".jpeg")
    if lossless and stored.mode in ("L", "RGB", "P", "1"):
        np.testing.assert_array_equal(np.asarray(image), np.asarray(stored.convert("RGB")))


def test_grey_is_replicated_to_three_equal_channels(tmp_path: Path, make_image) -> None:
    arr = np.asarray(read_image(make_image(tmp_path / "g.png", mode="L")))
    grey = np.asarray(Image.open(tmp_path / "g.png"))
    for c in range(3):
        np.testing.assert_array_equal(arr[..., c], grey)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_scales_its_actual_range_to_8_bit(tmp_path: Path, suffix: str) -> None:
    values = np.array([[1000, 1500], [2000, 3000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / f"d{suffix}")
    out = np.asarray(read_image(tmp_path / f"d{suffix}"))[..., 0]
    expected = np.rint((values - 1000) * 255.0 / 2000).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert out.min() == 0 and out.max() == 255


def test_32_bit_grey_tiff_and_constant_image(tmp_path: Path) -> None:
    values = np.array([[-5, 5], [15, 5]], dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "i.tif")
    np.testing.assert_array_equal(
        np.asarray(read_image(tmp_path / "i.tif"))[..., 0], [[0, 128], [255, 128]]
    )
    Image.fromarray(np.full((3, 3), 700, np.uint16)).save(tmp_path / "c.png")
    assert np.asarray(read_image(tmp_path / "c.png")).max() == 0


def test_palette_colours_are_looked_up(tmp_path: Path) -> None:
    image = Image.fromarray(np.array([[0, 1], [2, 1]], dtype=np.uint8), mode="P")
    image.putpalette([255, 0, 0, 0, 255, 0, 10, 20, 30])
    image.save(tmp_path / "p.png")
    out = np.asarray(read_image(tmp_path / "p.png"))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [0, 255, 0]
    assert out[1, 0].tolist() == [10, 20, 30]


def test_transparency_is_composited_over_black(tmp_path: Path) -> None:
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, :, :3] = [200, 100, 50]
    rgba[0, :, 3] = [0, 255, 128]
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = np.asarray(read_image(tmp_path / "a.png")).astype(int)
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [200, 100, 50]
    assert np.abs(out[0, 2] - np.array([100, 50, 25])).max() <= 1
    palette = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), mode="P")
    palette.putpalette([90, 90, 90, 40, 50, 60])
    palette.save(tmp_path / "t.png", transparency=0)
    assert np.asarray(read_image(tmp_path / "t.png"))[0].tolist() == [[0, 0, 0], [40, 50, 60]]


def test_one_bit_becomes_black_and_white(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).convert("1").save(tmp_path / "b.bmp")
    assert np.asarray(read_image(tmp_path / "b.bmp"))[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_exif_orientation_is_applied(tmp_path: Path, make_image) -> None:
    image = Image.open(make_image(tmp_path / "src.png", size=(40, 20)))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "o.jpg", exif=exif)
    assert read_image(tmp_path / "o.jpg").size == (20, 40)


def test_multi_page_tiff_frame(tmp_path: Path) -> None:
    pages = [Image.new("L", (4, 4), v) for v in (10, 200)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    assert np.asarray(read_image(tmp_path / "m.tif"))[0, 0, 0] == 10
    assert np.asarray(read_image(tmp_path / "m.tif", frame=1))[0, 0, 0] == 200
    with pytest.raises(ImageReadError, match=r"m\.tif: frame 2 .* 2 frame"):
        read_image(tmp_path / "m.tif", frame=2)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_is_an_error_naming_it(tmp_path: Path, make_image, suffix: str) -> None:
    path = make_image(tmp_path / f"cut{suffix}", size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for reader in (read_image, check_image):
        with pytest.raises(ImageReadError, match=rf"cut\{suffix}: cannot decode.*truncated"):
            reader(path)


def test_not_an_image_and_missing_file_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageReadError, match=r"notes\.png: not an image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageReadError, match=r"absent\.jpg: file not found"):
        read_image(tmp_path / "absent.jpg")


@pytest.mark.parametrize("limit", [1000, 500])
def test_decompression_bomb_is_refused(tmp_path: Path, make_image, monkeypatch, limit: int) -> None:
    # 40 x 32 = 1280 pixels: above the limit (our check) and above twice it (PIL's own).
    path = make_image(tmp_path / "big.png", size=(40, 32))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ImageReadError, match=r"big\.png: .*MAX_IMAGE_PIXELS"):
            read_image(path)


# DICOM ---------------------------------------------------------------------------------


def test_dicom_rgb_ultrasound_matches_pydicom() -> None:
    path = get_testdata_file("US1_UNCR.dcm")
    image = read_image(path)
    assert image.mode == "RGB" and image.size == (640, 480)
    np.testing.assert_array_equal(np.asarray(image), pydicom.dcmread(path).pixel_array)


def test_dicom_jpeg2000_ultrasound_decodes_losslessly() -> None:
    lossless = np.asarray(read_image(get_testdata_file("US1_J2KR.dcm")))
    np.testing.assert_array_equal(
        lossless, np.asarray(read_image(get_testdata_file("US1_UNCR.dcm")))
    )


def test_dicom_ybr_full_422_multiframe_gives_first_frame_as_rgb() -> None:
    from pydicom.pixels import pixel_array

    path = get_testdata_file("color3d_jpeg_baseline.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "YBR_FULL_422" and int(ds.NumberOfFrames) > 1
    first = np.asarray(read_image(path))
    np.testing.assert_array_equal(first, pixel_array(ds, index=0))  # converted to RGB
    assert not np.array_equal(np.asarray(read_image(path, frame=60)), first)


def test_dicom_ybr_full_uncompressed_is_converted_to_rgb() -> None:
    from pydicom.pixels import convert_color_space, pixel_array

    path = get_testdata_file("SC_ybr_full_uncompressed.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "YBR_FULL"
    ybr = pixel_array(ds, raw=True)
    out = np.asarray(read_image(path))
    np.testing.assert_array_equal(out, convert_color_space(ybr, "YBR_FULL", "RGB"))
    assert not np.array_equal(out, ybr)


def test_dicom_palette_colour_multiframe() -> None:
    path = get_testdata_file("OBXXXX1A_2frame.dcm")
    first, second = np.asarray(read_image(path)), np.asarray(read_image(path, frame=1))
    assert first.shape == (600, 800, 3)
    assert not np.array_equal(first, second)
    assert not (first[..., 0] == first[..., 2]).all()  # really coloured by the palette
    with pytest.raises(ImageReadError, match=r"OBXXXX1A_2frame\.dcm: frame 2 .* 2 frame"):
        read_image(path, frame=2)


def test_dicom_window_matches_pydicom_windowing() -> None:
    from pydicom.pixels import apply_modality_lut, apply_windowing

    path = get_testdata_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    assert "WindowCenter" in ds
    windowed = apply_windowing(apply_modality_lut(ds.pixel_array, ds), ds)
    y_min, y_max = 0, 2**ds.BitsStored - 1
    if ds.PixelRepresentation == 1:
        y_min, y_max = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    y_min, y_max = y_min * slope + intercept, y_max * slope + intercept
    expected = (windowed - y_min) / (y_max - y_min) * 255
    out = np.asarray(read_image(path))[..., 0].astype(float)
    assert np.abs(out - expected).max() <= 1.0


def test_dicom_16_bit_multiframe_monochrome_scales_its_range() -> None:
    path = get_testdata_file("emri_small.dcm")
    frame = pydicom.pixels.pixel_array(path, index=3).astype(float)
    expected = (frame - frame.min()) * 255 / (frame.max() - frame.min())
    out = np.asarray(read_image(path, frame=3))[..., 1]
    assert np.abs(out - expected).max() <= 0.5 + 1e-9
    assert out.min() == 0 and out.max() == 255


def test_dicom_monochrome1_is_inverted(tmp_path: Path, make_dicom) -> None:
    ramp = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    m2 = np.asarray(read_image(make_dicom(tmp_path / "m2.dcm", ramp, "MONOCHROME2")))
    m1 = np.asarray(read_image(make_dicom(tmp_path / "m1.dcm", ramp, "MONOCHROME1")))
    np.testing.assert_array_equal(m2[..., 0], ramp)
    np.testing.assert_array_equal(m1[..., 0], 255 - ramp)


def test_dicom_window_and_rescale_exact_values(tmp_path: Path, make_dicom) -> None:
    raw = np.array([[0, 100, 200, 300]], dtype=np.uint16)
    path = make_dicom(
        tmp_path / "w.dcm",
        raw,
        "MONOCHROME2",
        bits_stored=12,
        RescaleSlope=2,
        RescaleIntercept=-100,  # values -100, 100, 300, 500
        WindowCenter=300,
        WindowWidth=401,  # LINEAR: 100 -> 0, 500 -> 255
    )
    out = np.asarray(read_image(path))[0, :, 0]
    assert out.tolist() == [0, 0, 128, 255]


def test_dicom_voi_lut_sequence(tmp_path: Path, make_dicom) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    lut = Dataset()
    lut.LUTDescriptor = [4, 0, 8]  # 4 entries from value 0, 8-bit output
    lut.LUTData = [0, 50, 200, 255]
    lut["LUTData"].VR = "US"
    raw = np.array([[0, 1, 2, 3, 9]], dtype=np.uint8)
    path = make_dicom(tmp_path / "v.dcm", raw, "MONOCHROME2", VOILUTSequence=Sequence([lut]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = np.asarray(read_image(path))[0, :, 0]
    assert out.tolist() == [0, 50, 200, 255, 255]


def test_dicom_found_by_magic_and_upper_case_suffix(tmp_path: Path, make_dicom) -> None:
    arr = np.full((4, 5), 9, dtype=np.uint8)
    arr[0, 0] = 200
    for name in ("scan", "SCAN.DCM"):
        image = read_image(make_dicom(tmp_path / name, arr, "MONOCHROME2"))
        assert image.size == (5, 4) and image.getpixel((0, 0)) == (255, 255, 255)


def test_truncated_dicom_names_the_file(tmp_path: Path) -> None:
    data = Path(get_testdata_file("US1_UNCR.dcm")).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.dcm: .*(truncated|not a readable)"):
        read_image(tmp_path / "cut.dcm")


def test_dicom_codec_missing_names_the_plugin() -> None:
    path = get_testdata_file("JPGLosslessP14SV1_1s_1f_8b.dcm")  # JPEG Lossless US
    try:
        image = read_image(path)
    except ImageReadError as err:
        assert "JPGLosslessP14SV1_1s_1f_8b.dcm" in str(err)
        assert "pip install pylibjpeg pylibjpeg-libjpeg" in str(err)
        assert "python-gdcm" in str(err)
    else:  # a decoder is installed here: then it must decode
        assert image.mode == "RGB" and image.size == (1024, 768)


# Property ------------------------------------------------------------------------------

MODES = st.sampled_from(["L", "RGB", "RGBA", "P", "1", "LA"])


@settings(max_examples=40, deadline=None)
@given(
    arr=arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.just(3))),
    mode=MODES,
    fmt=st.sampled_from(["PNG", "TIFF", "BMP"]),
)
def test_any_uint8_image_round_trips_to_rgb_of_the_same_size(
    arr: np.ndarray, mode: str, fmt: str
) -> None:
    image = Image.fromarray(arr).convert(mode)
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except OSError:
        return  # this format cannot store this mode (e.g. BMP with alpha)
    buffer.seek(0)
    out = read_image(buffer)
    assert out.mode == "RGB" and out.size == image.size
    if mode in ("RGB", "L"):
        np.testing.assert_array_equal(np.asarray(out), np.asarray(image.convert("RGB")))
