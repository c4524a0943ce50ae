"""What the API refuses, and how: bad files (422), oversize bodies and bombs (413), and
that nothing of an upload reaches the disk unless `keep_uploads` asks for it."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agfnet.app import AppSettings, create_app


def _multipart(parts: dict[str, bytes], boundary: str = "agfnet-test-boundary") -> bytes:
    """A multipart/form-data body with one file per field."""
    body = b""
    for name, data in parts.items():
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{name}.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode()


def _chunks(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture(scope="module")
def bad_files(pair_bytes: list) -> dict[str, tuple[bytes, str]]:
    """kind -> (clinical file bytes, a phrase the 422 message must contain)."""
    good = pair_bytes[0][0]
    return {
        "text renamed .png": (b"patient notes, not an image\n" * 20, "not an image"),
        "truncated PNG": (good[: len(good) // 2], "truncated"),
        "zero bytes": (b"", "empty file"),
    }


@pytest.mark.parametrize("kind", ["text renamed .png", "truncated PNG", "zero bytes"])
def test_bad_files_are_refused_with_422_naming_the_field(
    client: TestClient,
    bad_files: dict,
    pair_bytes: list,
    form: Callable[..., dict],
    kind: str,
) -> None:
    data, phrase = bad_files[kind]
    response = client.post("/api/predict", files=form(data, pair_bytes[0][1]))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "clinical"
    assert "clinical image" in body["detail"]
    assert phrase in body["detail"]


@pytest.mark.parametrize(
    ("width", "height", "phrase"),
    [
        (100_000, 100_000, "decompression bomb"),  # beyond PIL's own limit
        (8_000, 8_000, "64,000,000 pixels"),  # under PIL's, over the app's 50 million
    ],
)
def test_images_declaring_too_many_pixels_are_refused_with_413_before_decoding(
    client: TestClient,
    png_declaring: Callable[[int, int], bytes],
    pair_bytes: list,
    form: Callable[..., dict],
    width: int,
    height: int,
    phrase: str,
) -> None:
    bomb = png_declaring(width, height)
    assert len(bomb) < 200
    response = client.post("/api/predict", files=form(pair_bytes[0][0], bomb))
    assert response.status_code == 413, response.text
    assert response.json()["field"] == "ultrasound"
    assert phrase in response.json()["detail"]


def test_the_pixel_limit_is_a_setting(
    predictor: Any, png_bytes: Callable[..., bytes], form: Callable[..., dict]
) -> None:
    small = TestClient(create_app(predictor, AppSettings(max_image_pixels=50 * 50)))
    assert (
        small.post(
            "/api/predict", files=form(png_bytes((50, 50)), png_bytes((50, 50), 1))
        ).status_code
        == 200
    )
    response = small.post("/api/predict", files=form(png_bytes((51, 50)), png_bytes((50, 50), 1)))
    assert response.status_code == 413 and response.json()["field"] == "clinical"


@pytest.fixture(scope="module")
def small_limit_client(predictor: Any) -> TestClient:
    """The app refusing files over 20 kB."""
    return TestClient(create_app(predictor, AppSettings(max_upload_bytes=20_000, cam=False)))


def test_a_file_over_the_limit_is_refused_with_413(
    small_limit_client: TestClient, png_bytes: Callable[..., bytes], form: Callable[..., dict]
) -> None:
    small, large = png_bytes((64, 64)), png_bytes((100, 100))  # ~12 kB and ~30 kB
    assert len(small) < 20_000 < len(large)
    assert small_limit_client.post("/api/predict", files=form(small, small)).status_code == 200
    response = small_limit_client.post("/api/predict", files=form(small, large))
    assert response.status_code == 413
    assert response.json()["field"] == "ultrasound"
    assert "larger than the limit" in response.json()["detail"]


def test_a_body_over_the_limit_is_refused_from_its_content_length(
    small_limit_client: TestClient, png_bytes: Callable[..., bytes]
) -> None:
    body = _multipart({"clinical": png_bytes((140, 140)), "ultrasound": png_bytes((140, 140), 1)})
    response = small_limit_client.post(
        "/api/predict",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=agfnet-test-boundary"},
    )
    assert response.status_code == 413
    assert response.json()["field"] is None


@pytest.mark.parametrize("declared", [None, "1000"])
def test_a_client_that_hides_or_lies_about_the_size_is_still_refused(
    small_limit_client: TestClient, png_bytes: Callable[..., bytes], declared: str | None
) -> None:
    # Streamed in chunks, with no Content-Length or a false small one: the bytes are counted.
    body = _multipart({"clinical": png_bytes((140, 140)), "ultrasound": png_bytes((140, 140), 1)})
    headers = {"Content-Type": "multipart/form-data; boundary=agfnet-test-boundary"}
    if declared is not None:
        headers["Content-Length"] = declared
    response = small_limit_client.post("/api/predict", content=_chunks(body), headers=headers)
    assert response.status_code == 413


def test_wrong_content_type_unknown_fields_and_broken_bodies(
    client: TestClient, pair_bytes: list, form: Callable[..., dict]
) -> None:
    assert client.post("/api/predict", json={"clinical": "x"}).status_code == 415
    files = {**form(*pair_bytes[0]), "clinic": ("c.png", pair_bytes[0][0], "image/png")}
    unknown = client.post("/api/predict", files=files)
    assert unknown.status_code == 422 and "'clinic'" in unknown.json()["detail"]
    cut = _multipart({"clinical": pair_bytes[0][0]})[:-40]
    response = client.post(
        "/api/predict",
        content=cut,
        headers={"Content-Type": "multipart/form-data; boundary=agfnet-test-boundary"},
    )
    assert response.status_code == 400


class _TempFileSpy:
    """Replaces the tempfile constructors and records every call."""

    NAMES = ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp", "mkdtemp")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for name in self.NAMES:
            original = getattr(tempfile, name)
            monkeypatch.setattr(tempfile, name, self._wrap(name, original))

    def _wrap(self, name: str, original: Any) -> Any:
        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return original(*args, **kwargs)

        return spy


def test_uploads_stay_in_memory(
    predictor: Any,
    png_bytes: Callable[..., bytes],
    form: Callable[..., dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(tmp_path)
    spy = _TempFileSpy(monkeypatch)
    client = TestClient(create_app(predictor, AppSettings()))
    big = png_bytes((700, 700))  # > 1 MiB: what Starlette's form parser would spool to disk
    assert len(big) > 1024 * 1024
    response = client.post("/api/predict", files=form(big, png_bytes((64, 64))))
    assert response.status_code == 200
    assert spy.calls == []
    assert list(temp.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


def test_keep_uploads_keeps_each_request_in_its_own_folder(
    predictor: Any, pair_bytes: list, form: Callable[..., dict], tmp_path: Path
) -> None:
    client = TestClient(create_app(predictor, AppSettings(keep_uploads=tmp_path / "kept")))
    body = client.post("/api/predict", files=form(*pair_bytes[3])).json()
    [folder] = (tmp_path / "kept").glob(f"*_{body['request_id']}")
    assert re.fullmatch(r"\d{8}T\d{6}Z_[0-9a-f]{32}", folder.name)
    assert (folder / "clinical.png").read_bytes() == pair_bytes[3][0]
    assert (folder / "ultrasound.png").read_bytes() == pair_bytes[3][1]
    kept = json.loads((folder / "result.json").read_text())
    assert kept["probabilities"] == body["probabilities"] and kept["cams"] is None
    refused = client.post("/api/predict", files=form(b"not an image", pair_bytes[3][1]))
    assert refused.status_code == 422
    # A refused upload is kept too (for the operator to inspect), without a result.
    [folder] = (tmp_path / "kept").glob(f"*_{refused.json()['request_id']}")
    assert sorted(p.name for p in folder.iterdir()) == ["clinical.png", "ultrasound.png"]
