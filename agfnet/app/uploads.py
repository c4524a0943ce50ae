"""Multipart uploads read into memory under size limits, so nothing of them touches the disk.

Starlette's own form parser spools any file over 1 MiB to a temporary file; a clinical
photograph would thus land on disk. `read_uploads` instead streams the request body
through python-multipart's parser into memory, counting bytes as they arrive: a body
larger than the limit is refused (413) whatever its Content-Length says, and so is any
one file over the per-file limit, as soon as it passes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

__all__ = [
    "FORM_OVERHEAD_BYTES",
    "MAX_TEXT_BYTES",
    "ApiError",
    "Upload",
    "read_form",
    "read_uploads",
]

#: Room for the multipart boundaries and part headers beside the files themselves.
FORM_OVERHEAD_BYTES = 64 * 1024
#: The longest value a text field (a metadata field) may carry.
MAX_TEXT_BYTES = 1024


class ApiError(Exception):
    """A request the app refuses, with the HTTP status and the form field at fault.

    Args:
        status: HTTP status code (400, 413, 415, 422, ...).
        message: what is wrong and how to fix it, for the person uploading.
        field: the form field concerned ("clinical", "ultrasound"), if one is.
    """

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Upload:
    """One uploaded file, in memory.

    Attributes:
        field: the form field name.
        filename: the name the client gave (may be empty).
        content_type: the part's declared media type (may be empty).
        data: the file's bytes.
    """

    field: str
    filename: str
    content_type: str
    data: bytes


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.3g} MB"


class _Collector:
    """python-multipart callbacks that gather the parts of the expected fields."""

    def __init__(
        self, fields: Sequence[str], max_file_bytes: int, text_fields: Sequence[str] = ()
    ) -> None:
        self.fields = fields
        self.text_fields = text_fields
        self.max_file_bytes = max_file_bytes
        self.uploads: dict[str, Upload] = {}
        self.texts: dict[str, str] = {}
        self._headers: dict[str, str] = {}
        self._header_field = b""
        self._header_value = b""
        self._name = ""
        self._filename = ""
        self._chunks: list[bytes] = []
        self._size = 0

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._chunks = []
        self._size = 0

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        key = self._header_field.decode("latin-1").strip().lower()
        self._headers[key] = self._header_value.decode("latin-1").strip()
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        self._filename = params.get(b"filename", b"").decode("utf-8", "replace")
        expected = " and ".join(f"'{f}'" for f in self.fields)
        if self._name not in self.fields and self._name not in self.text_fields:
            extra = (
                f", and the metadata as the fields {', '.join(repr(f) for f in self.text_fields)}"
                if self.text_fields
                else ""
            )
            raise ApiError(
                422,
                f"unexpected form field '{self._name}': send the images as the fields "
                f"{expected}{extra}",
            )
        if self._name in self.uploads or self._name in self.texts:
            raise ApiError(
                422, f"the field '{self._name}' was sent twice: send one file", self._name
            )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._name in self.text_fields and self._size > MAX_TEXT_BYTES:
            raise ApiError(
                413,
                f"the field '{self._name}' is longer than {MAX_TEXT_BYTES} bytes: send its value "
                "only",
                self._name,
            )
        if self._size > self.max_file_bytes:
            raise ApiError(
                413,
                f"the {self._name} file is larger than the limit of "
                f"{_megabytes(self.max_file_bytes)}: send a smaller image (e.g. a JPEG export)",
                self._name,
            )
        self._chunks.append(data[start:end])

    def _part_end(self) -> None:
        data = b"".join(self._chunks)
        if self._name in self.text_fields:
            try:
                self.texts[self._name] = data.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise ApiError(
                    422, f"the field '{self._name}' is not UTF-8 text", self._name
                ) from None
            self._chunks = []
            return
        # A browser form sends an empty part without a file name for "no file chosen".
        if data or self._filename:
            self.uploads[self._name] = Upload(
                self._name, self._filename, self._headers.get("content-type", ""), data
            )
        self._chunks = []


async def read_uploads(
    request: Request, fields: Sequence[str], max_file_bytes: int
) -> dict[str, Upload]:
    """`read_form` without text fields: field -> `Upload` of the files given."""
    return (await read_form(request, fields, max_file_bytes))[0]


async def read_form(
    request: Request,
    fields: Sequence[str],
    max_file_bytes: int,
    text_fields: Sequence[str] = (),
) -> tuple[dict[str, Upload], dict[str, str]]:
    """Read a multipart/form-data request body into memory, enforcing the size limits.

    Args:
        request: the incoming request (its body is consumed).
        fields: the file field names accepted, e.g. ("clinical", "ultrasound").
        max_file_bytes: the largest file accepted per field; the body may hold
            `len(fields) * max_file_bytes + FORM_OVERHEAD_BYTES` (plus `MAX_TEXT_BYTES`
            per text field) bytes in all.
        text_fields: the text field names accepted too (a model's metadata fields),
            each up to `MAX_TEXT_BYTES` of UTF-8.

    Returns:
        (field -> `Upload`, for the fields that carried a file (an empty part with no
        file name, as a browser sends for an empty file input, counts as absent), and
        text field -> its value, stripped, for the text fields sent).

    Raises:
        ApiError: 415 not multipart/form-data; 413 body or a file over the limit
            (checked against Content-Length first, then counted as the bytes arrive);
            400 malformed or cut-off body; 422 an unknown or repeated field, or a text
            field that is not UTF-8.
    """
    media_type, params = parse_options_header(request.headers.get("content-type", ""))
    if media_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError(
            415,
            "send the images as multipart/form-data (an HTML form with "
            'enctype="multipart/form-data", or curl -F clinical=@photo.jpg '
            "-F ultrasound=@scan.png)",
        )
    limit = len(fields) * max_file_bytes + FORM_OVERHEAD_BYTES + len(text_fields) * MAX_TEXT_BYTES
    too_large = ApiError(
        413,
        f"the upload is larger than {_megabytes(limit)} ({_megabytes(max_file_bytes)} per "
        "image): send smaller images",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    collector = _Collector(fields, max_file_bytes, text_fields)
    parser = MultipartParser(params[b"boundary"], collector.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as err:
        raise ApiError(400, f"the multipart body is malformed ({err}); resend the form") from None
    if parser.state != MultipartState.END:
        raise ApiError(400, "the upload ended before the form was complete; resend it")
    return collector.uploads, collector.texts
