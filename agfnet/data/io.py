"""Image readers: every file a manifest may name, decoded to one 8-bit RGB PIL image.

Photographs and exported ultrasound frames come as JPEG, PNG, TIFF or BMP in any PIL
mode; scanners export DICOM. Everything leaves `read_image` as `PIL.Image` in mode RGB, so
the transforms see one kind of input:

- RGB: unchanged. Grey (L), 1-bit, palette (P), CMYK, YCbCr: converted by PIL.
- Transparency (RGBA, LA, PA, P with a transparent colour): composited over black, so
  the colour PIL keeps under fully transparent pixels (often garbage) never leaks in.
- 16- and 32-bit grey (I;16, I;16B, I, F): the actual range [min, max] of the image is
  scaled linearly to [0, 255] (a constant image becomes black), because such files
  rarely fill their nominal range.
- EXIF orientation is applied, so a photograph appears as its camera showed it.
- DICOM (pydicom): MONOCHROME1/2 through the modality LUT (rescale) and the VOI LUT or
  window (WindowCenter/WindowWidth) when present, else scaled by its actual range;
  MONOCHROME1 inverted; RGB and YBR_FULL / YBR_FULL_422 / YBR_RCT / YBR_ICT as RGB;
  PALETTE COLOR through its lookup table. Multi-frame files give frame `frame` (0 by
  default).

A JPEG may be decoded at a reduced size (`read_image(..., fits=...)`): libjpeg scales the
inverse DCT by 1/2, 1/4 or 1/8, so the smaller image costs less to decode and to resize.
The caller states which sizes are still large enough (`PairedLesionDataset` derives that
from its transform); no other format, and no other frame, is ever reduced.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from agfnet.errors import UserError

ImageSource = str | os.PathLike | IO[bytes]

#: Suffixes (compared lower-case) read with pydicom; any file with the DICOM preamble
#: magic is read with pydicom too, whatever its name.
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})

#: Suffixes (compared lower-case) of the formats documented as supported.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}) | DICOM_SUFFIXES

#: Whether a decoded image of (width, height), as displayed (EXIF orientation applied), is
#: large enough for what follows the reader.
SizeCheck = Callable[[int, int], bool]

#: DCT scale denominators libjpeg decodes at, smallest image first.
_JPEG_SCALES = (8, 4, 2)
#: EXIF orientations that turn the image by 90 degrees: width and height swap on display.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})

_HIGH_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})

# Compressed DICOM transfer syntaxes whose decoders pydicom does not ship, and the pip
# packages that add one (python-gdcm decodes all of them).
_DICOM_CODEC_HINTS = {
    "JPEG Lossless": "pylibjpeg pylibjpeg-libjpeg",
    "JPEG Extended": "pylibjpeg pylibjpeg-libjpeg",
    "JPEG-LS": "pyjpegls",
    "JPEG 2000": "pylibjpeg pylibjpeg-openjpeg",
    "High-Throughput JPEG 2000": "pylibjpeg pylibjpeg-openjpeg",
}


class ImageReadError(UserError):
    """An image file is missing, unreadable, truncated, too large or of an unsupported kind."""


def _name(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return str(getattr(source, "name", "<in-memory image>"))


def is_dicom(source: ImageSource) -> bool:
    """Whether `source` is a DICOM file: a `.dcm`/`.dicom` name or the `DICM` magic at byte 128.

    Args:
        source: a path or a seekable binary file object (its position is restored).

    Returns:
        True for DICOM.
    """
    if isinstance(source, (str, os.PathLike)):
        if Path(source).suffix.lower() in DICOM_SUFFIXES:
            return True
        try:
            with open(source, "rb") as f:
                head = f.read(132)
        except OSError:
            return False
    else:
        pos = source.tell()
        head = source.read(132)
        source.seek(pos)
    return head[128:132] == b"DICM"


def _check_pixel_count(source: ImageSource, width: int, height: int) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ImageReadError(
            f"{_name(source)}: {width}x{height} = {width * height} pixels is more than the "
            f"limit of {limit} (PIL.Image.MAX_IMAGE_PIXELS): a decompression bomb or the wrong "
            "file. Resize the image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it."
        )


def _unit(arr: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Map [lo, hi] (default: the array's own min and max) linearly to float [0, 1]."""
    arr = np.asarray(arr, dtype=np.float64)
    lo = float(arr.min()) if lo is None else lo
    hi = float(arr.max()) if hi is None else hi
    if hi <= lo:
        return np.zeros(arr.shape)
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0)


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.rint(unit * 255.0).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to 8-bit RGB (rules in the module docstring).

    Args:
        image: a loaded PIL image.

    Returns:
        An RGB image of the same size.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _HIGH_BIT_MODES:
        return Image.fromarray(_to_uint8(_unit(np.asarray(image)))).convert("RGB")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return image.convert("RGB")


def _draft_to_fit(im: Image.Image, fits: SizeCheck) -> None:
    """Ask libjpeg for the smallest DCT-scaled size (1/8, 1/4, 1/2) that `fits`; else nothing.

    A scale of 1/s gives ceil(W / s) x ceil(H / s) pixels. PIL's `draft` picks the largest s
    with s <= min(W // w, H // h) for a requested (w, h); requesting (W // s, H // s) picks
    exactly s.
    """
    width, height = im.size
    turned = im.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURNS
    for s in _JPEG_SCALES:
        if width < s or height < s:
            continue
        decoded = (-(-width // s), -(-height // s))
        if fits(*(decoded[::-1] if turned else decoded)):
            im.draft(im.mode, (width // s, height // s))
            return


def _read_pil(
    source: ImageSource, frame: int, fast: bool, fits: SizeCheck | None = None
) -> Image.Image:
    """Decode with PIL; `fast` (checking only) decodes JPEG at 1/8 scale, converts nothing;
    `fits`: a frame-0 JPEG is decoded at the smallest DCT scale whose size passes it."""
    name = _name(source)
    try:
        with Image.open(source) as im:
            _check_pixel_count(source, *im.size)
            n_frames = getattr(im, "n_frames", 1)
            if not 0 <= frame < n_frames:
                raise ImageReadError(
                    f"{name}: frame {frame} asked for but the file has {n_frames} frame(s); "
                    f"choose a frame from 0 to {n_frames - 1}."
                )
            if frame:
                im.seek(frame)
            if fast and im.format == "JPEG":
                # DCT-domain downscaling: libjpeg still reads every scan (so truncation is
                # caught) but skips most of the inverse transform.
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            elif fits is not None and im.format == "JPEG" and not frame:
                _draft_to_fit(im, fits)
            im.load()
            # copy (exif_transpose copies too): the image outlives the closed file.
            return im.copy() if fast else to_rgb(ImageOps.exif_transpose(im))
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            f"{name}: {err}. Resize the image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it."
        ) from None
    except UnidentifiedImageError:
        raise ImageReadError(
            f"{name}: not an image PIL can identify (supported: JPEG, PNG, TIFF, BMP, DICOM); "
            "check the file is what its name says, and convert it to PNG if it is another format."
        ) from None
    except FileNotFoundError:
        raise ImageReadError(f"{name}: file not found; check the path.") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(
            f"{name}: cannot decode the image ({err}); the file is truncated, corrupt or "
            "unreadable: copy it again from its source or remove its row."
        ) from None


def _dicom_codec_error(name: str, syntax: str, detail: str) -> ImageReadError:
    packages = next((pkgs for key, pkgs in _DICOM_CODEC_HINTS.items() if key in syntax), None)
    fix = f"pip install {packages}" if packages else "install a pydicom pixel-data plugin"
    return ImageReadError(
        f"{name}: its pixel data is compressed as '{syntax}', which no installed decoder "
        f"reads. Fix: {fix} (or pip install python-gdcm, which reads every DICOM "
        f"compression). pydicom said: {detail}"
    )


def _monochrome_to_unit(arr: np.ndarray, ds: Any) -> np.ndarray:
    """Grey DICOM pixels to float [0, 1]: modality LUT, then VOI LUT or window, else min-max."""
    from pydicom.pixels import apply_modality_lut, apply_voi

    values = np.asarray(apply_modality_lut(arr, ds))
    if "VOILUTSequence" in ds:
        # A lookup table is indexed by integers (rescaled values are floats).
        if not np.issubdtype(values.dtype, np.integer):
            values = np.rint(values).astype(np.int64)
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        unit = np.asarray(apply_voi(values, ds), dtype=np.float64) / (2**bits - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        unit = _window(values, ds)
    else:
        unit = _unit(values)
    unit = np.clip(unit, 0.0, 1.0)
    return 1.0 - unit if ds.PhotometricInterpretation == "MONOCHROME1" else unit


def _first(value: Any) -> float:
    """The first value of a possibly multi-valued DICOM element, as float."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _window(values: np.ndarray, ds: Any) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing to [0, 1] (first window when several are given)."""
    center = _first(ds.WindowCenter)
    width = max(_first(ds.WindowWidth), 1.0)
    function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return (values - center) / width + 0.5
    return (values - (center - 0.5)) / max(width - 1.0, 1.0) + 0.5


def _read_dicom(source: ImageSource, frame: int) -> Image.Image:
    import pydicom
    from pydicom.pixels import apply_color_lut, pixel_array

    name = _name(source)
    try:
        ds = pydicom.dcmread(source)
    except FileNotFoundError:
        raise ImageReadError(f"{name}: file not found; check the path.") from None
    except Exception as err:  # pydicom raises many kinds on a corrupt header
        raise ImageReadError(
            f"{name}: not a readable DICOM file ({type(err).__name__}: {err}); copy it again "
            "from its source or remove its row."
        ) from None
    if "PixelData" not in ds:
        raise ImageReadError(f"{name}: the DICOM file holds no pixel data (not an image).")
    _check_pixel_count(source, int(ds.get("Columns", 0)), int(ds.get("Rows", 0)))
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if not 0 <= frame < n_frames:
        raise ImageReadError(
            f"{name}: frame {frame} asked for but the file has {n_frames} frame(s); choose a "
            f"frame from 0 to {n_frames - 1}."
        )
    syntax = ds.file_meta.TransferSyntaxUID.name if "TransferSyntaxUID" in ds.file_meta else ""
    try:
        arr = pixel_array(ds, index=frame if n_frames > 1 else None)
    except RuntimeError as err:
        if "missing dependencies" in str(err) or "no pixel data decoders" in str(err):
            raise _dicom_codec_error(name, syntax, str(err)) from None
        raise ImageReadError(f"{name}: cannot decode the DICOM pixel data ({err}).") from None
    except Exception as err:
        raise ImageReadError(
            f"{name}: cannot decode the DICOM pixel data ({type(err).__name__}: {err}); the "
            "file is truncated or corrupt: copy it again from its source or remove its row."
        ) from None

    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        grey = _to_uint8(_monochrome_to_unit(arr, ds))
        return Image.fromarray(grey).convert("RGB")
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return Image.fromarray(_to_uint8(_unit(rgb, 0, 2**bits - 1)))
    if arr.ndim == 3 and arr.shape[-1] == 3:
        # pixel_array has already turned YBR_* into RGB.
        bits = int(ds.get("BitsStored", 8))
        rgb = arr if bits <= 8 else _to_uint8(_unit(arr, 0, 2**bits - 1))
        return Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    raise ImageReadError(
        f"{name}: DICOM photometric interpretation '{photometric}' is not supported "
        "(MONOCHROME1/2, RGB, YBR_*, PALETTE COLOR are); export the image as PNG."
    )


def read_image(
    source: ImageSource, *, frame: int = 0, fits: SizeCheck | None = None
) -> Image.Image:
    """Read one image file as an 8-bit RGB PIL image.

    Args:
        source: path (str or Path) or binary file object of a JPEG, PNG, TIFF, BMP or
            DICOM file. Suffixes are compared case-insensitively.
        frame: frame of a multi-frame file (DICOM cine loop, multi-page TIFF); 0 = first.
        fits: for a JPEG (frame 0): decode at the smallest DCT scale, 1/8, 1/4 or 1/2,
            whose (width, height) as displayed passes `fits`; at full size when none
            does. None, and every other format: full size.

    Returns:
        `PIL.Image.Image` in mode "RGB", size (W, H) of the stored image (of the reduced
        image when `fits` let a JPEG be reduced).

    Raises:
        ImageReadError: the file is missing, unreadable, truncated, larger than
            `PIL.Image.MAX_IMAGE_PIXELS`, or compressed with a codec that is not
            installed (the message names the file and the fix).
    """
    if is_dicom(source):
        return _read_dicom(source, frame)
    return _read_pil(source, frame, fast=False, fits=fits)


def check_image(source: ImageSource, *, frame: int = 0) -> None:
    """Decode an image completely, as fast as possible, to prove it is readable.

    `PIL.Image.verify()` does not notice a truncated file; this loads every byte, with
    JPEG decoded at 1/8 scale (the entropy-coded data is still read in full).

    Args:
        source: as for `read_image`.
        frame: as for `read_image`.

    Raises:
        ImageReadError: as for `read_image`.
    """
    if is_dicom(source):
        _read_dicom(source, frame)
    else:
        _read_pil(source, frame, fast=True)
