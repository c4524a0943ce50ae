"""Uploaded images checked and decoded for the model, and images encoded for the answers.

The app's one way to the data layer's image reader (`agfnet.data.convert.to_pil`), so
that every upload is read as `agfnet predict` reads a file.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

from agfnet.app.uploads import ApiError, Upload
from agfnet.data.convert import to_pil
from agfnet.errors import UserError

__all__ = ["check_pixels", "decode_upload", "png_data_url"]

_RESIZE_HINT = "resize it, e.g. to 4000 pixels on the longer side"


def check_pixels(data: bytes, label: str, field: str, limit: int) -> None:
    """Refuse an image whose header declares too many pixels, before decoding it.

    Args:
        data: the file's bytes.
        label: how messages name the image, e.g. "clinical image 'a.png'".
        field: the form field it came in.
        limit: the most pixels (width x height) allowed.

    Raises:
        ApiError: 413, too many pixels or a possible decompression bomb.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError as err:
        raise ApiError(
            413,
            f"the {label} is refused as a possible decompression bomb ({err}): {_RESIZE_HINT}",
            field,
        ) from None
    except (OSError, SyntaxError, ValueError):
        # Not an image PIL identifies (or a DICOM file): decoding says what is wrong.
        return
    if width * height > limit:
        raise ApiError(
            413,
            f"the {label} declares {width}x{height} = {width * height:,} pixels, more than "
            f"the limit of {limit:,} (a decompression bomb or an unusually large image): "
            f"{_RESIZE_HINT}",
            field,
        )


def decode_upload(upload: Upload, max_pixels: int, noun: str | None = None) -> Image.Image:
    """Decode one upload to an RGB image, refusing empty, oversized or unreadable files.

    Args:
        upload: the file of one field.
        max_pixels: the most pixels (width x height) its header may declare.
        noun: how messages name the image (e.g. "dermoscopic image",
            `agfnet.data.manifest.display.image_noun`); None: "<field> image".

    Returns:
        The RGB PIL image.

    Raises:
        ApiError: 422 empty or unreadable (the message names the field and says why),
            413 too many pixels.
    """
    label = (noun or f"{upload.field} image") + (f" '{upload.filename}'" if upload.filename else "")
    if not upload.data:
        raise ApiError(
            422, f"the {label} is an empty file (0 bytes): choose it again", upload.field
        )
    check_pixels(upload.data, label, upload.field, max_pixels)
    buffer = io.BytesIO(upload.data)
    buffer.name = label  # the reader names the file in its messages
    try:
        return to_pil(buffer, label)
    except UserError as err:
        raise ApiError(422, str(err), upload.field) from None


def png_data_url(image: Image.Image, max_side: int) -> str:
    """An image as a `data:image/png;base64,...` URL, shrunk to at most `max_side` pixels.

    Args:
        image: an RGB PIL image.
        max_side: the longest side allowed.

    Returns:
        The data URL.
    """
    image = image.copy()
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
