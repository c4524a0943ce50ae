"""Settings of the web app: upload limits, what is kept, Grad-CAM, CORS, concurrency.

Set them in Python (`AppSettings(max_upload_bytes=...)`), through `agfnet serve` options,
or through `AGFNET_*` environment variables (`AppSettings.from_env`), which is how the
worker processes of `agfnet serve --workers N` (or of `uvicorn --factory`) receive them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ENV_PREFIX", "MB", "AppSettings"]

#: Prefix of the environment variables: field `max_upload_bytes` is `AGFNET_MAX_UPLOAD_BYTES`.
ENV_PREFIX = "AGFNET_"

MB = 1024 * 1024


class AppSettings(BaseModel):
    """How the web app treats requests.

    Attributes:
        max_upload_bytes: the largest image file accepted, per image (default 20 MiB);
            a larger one is refused with 413, whatever the client declares.
        max_image_pixels: the most pixels (width x height) an image may declare; checked
            from the file header before decoding, so a decompression bomb is refused
            (413) without being decoded. PIL's own `PIL.Image.MAX_IMAGE_PIXELS` (about
            89 million) still applies on top, to DICOM files too.
        keep_uploads: a folder where every accepted upload and its result are kept, in
            `<folder>/<UTC time>_<request id>/` (e.g. `20250101T120000Z_<id>`); None (the
            default) keeps nothing on disk.
        cam: return Grad-CAM overlays with each prediction (a request can still opt out
            with `?cam=false`).
        cam_max_side: overlays are shrunk so their longer side is at most this many
            pixels, to keep responses small.
        cors_origins: origins allowed to call the API from another site's pages, e.g.
            ["https://viewer.example.org"]; empty (the default) allows same-origin only.
        max_concurrency: requests decoded and diagnosed at the same time per worker
            process; more wait their turn. Bounds the memory that decoded images take.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_upload_bytes: int = Field(20 * MB, gt=0)
    max_image_pixels: int = Field(50_000_000, gt=0)
    keep_uploads: Path | None = None
    cam: bool = True
    cam_max_side: int = Field(512, ge=16)
    cors_origins: tuple[str, ...] = ()
    max_concurrency: int = Field(4, ge=1)

    @field_validator("keep_uploads", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppSettings:
        """Read the settings from `AGFNET_<FIELD>` variables; unset ones keep their default.

        Args:
            environ: the variables (default `os.environ`). Lists are comma-separated,
                booleans `true`/`false`, an empty `AGFNET_KEEP_UPLOADS` means None.

        Returns:
            The settings.
        """
        environ = os.environ if environ is None else environ
        given = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in environ
        }
        return cls.model_validate(given)

    def to_env(self) -> dict[str, str]:
        """The inverse of `from_env`.

        Returns:
            `AGFNET_<FIELD>` -> value as text, for every field.
        """
        return {
            ENV_PREFIX + name.upper(): _as_text(getattr(self, name))
            for name in type(self).model_fields
        }


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)
