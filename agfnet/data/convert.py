"""Any image input (path, bytes, file, PIL image, numpy array) as an 8-bit RGB PIL image."""

from __future__ import annotations

import io
import os
from typing import IO

import numpy as np
from PIL import Image, ImageOps

from agfnet.data.io import read_image, to_rgb
from agfnet.errors import UserError

__all__ = ["ImageInput", "to_pil", "to_pil_pair"]

#: What `to_pil` accepts for one image: a path or binary file of any format `read_image`
#: reads (DICOM included), its bytes, a PIL image, a numpy array (H, W), (H, W, 3) or
#: (H, W, 4) of uint8 or uint16, or None for a missing modality.
ImageInput = str | os.PathLike | bytes | IO[bytes] | Image.Image | np.ndarray | None


def _array_to_pil(array: np.ndarray, name: str) -> Image.Image:
    """An (H, W), (H, W, 3) or (H, W, 4) uint8/uint16 array as a PIL image.

    uint16 grey becomes mode I;16, which `to_rgb` scales by its actual range, as
    `read_image` does with a 16-bit grey file; uint16 colour keeps its high byte, as PIL
    reads a 16-bit colour PNG.
    """
    if array.dtype not in (np.uint8, np.uint16):
        raise UserError(
            f"{name}: a numpy image must be uint8 or uint16, got {array.dtype}; convert it "
            "(e.g. np.clip(x * 255, 0, 255).astype(np.uint8) for floats in [0, 1])"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array))
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise UserError(
            f"{name}: a numpy image must be (H, W), (H, W, 3) or (H, W, 4), channels last; "
            f"got shape {array.shape} (use np.moveaxis(x, 0, -1) for channels-first arrays)"
        )
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array), "RGB" if array.shape[2] == 3 else "RGBA")


def to_pil(image: ImageInput, name: str) -> Image.Image | None:
    """Any `ImageInput` as an 8-bit RGB PIL image, converted by the rules of `read_image`.

    Args:
        image: the input (None for a missing modality).
        name: what to call it in an error message, e.g. "clinical image".

    Returns:
        A PIL RGB image, or None.

    Raises:
        UserError: an unreadable file (the message names it) or an unsupported array.
    """
    if image is None:
        return None
    if isinstance(image, Image.Image):
        return to_rgb(ImageOps.exif_transpose(image))
    if isinstance(image, np.ndarray):
        return to_rgb(_array_to_pil(image, name))
    if isinstance(image, (bytes, bytearray)):
        return read_image(io.BytesIO(bytes(image)))
    if isinstance(image, (str, os.PathLike)) or hasattr(image, "read"):
        return read_image(image)
    raise UserError(
        f"{name}: cannot use a {type(image).__name__}; give a file path, bytes, a PIL image "
        "or a numpy array (H, W[, 3 or 4]) of uint8 or uint16"
    )


def to_pil_pair(
    clinical: ImageInput, ultrasound: ImageInput
) -> tuple[Image.Image | None, Image.Image | None]:
    """Both images of a pair through `to_pil`, named "clinical image" and "ultrasound image".

    Returns:
        (clinical, ultrasound), each an RGB PIL image or None.
    """
    return to_pil(clinical, "clinical image"), to_pil(ultrasound, "ultrasound image")
