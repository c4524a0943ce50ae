"""Fixtures of the web-app tests: checkpoints, image pairs, a client and a live server.

Checkpoints are written the way the inference tests write them (their `write_checkpoint`,
loaded from tests/inference/conftest.py): freshly initialised models saved as `agfnet
train` saves them. The main one is 64 px, the smallest size at which Grad-CAM maps are
not flat.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

IMG = 64


def _inference_fixtures() -> ModuleType:
    """tests/inference/conftest.py as a module (test folders are not packages)."""
    path = Path(__file__).parents[1] / "inference" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_agfnet_inference_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png_bytes(size: tuple[int, int], seed: int = 0) -> bytes:
    """A PNG of uniform noise (incompressible, so its file size is about 3 * W * H bytes)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header declares width x height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _form(clinical: bytes | None, ultrasound: bytes | None, suffix: str = ".png") -> dict:
    """The `files=` argument of an httpx / TestClient POST for one pair."""
    files = {}
    for name, data in (("clinical", clinical), ("ultrasound", ultrasound)):
        if data is not None:
            files[name] = (f"{name}{suffix}", data, "image/png")
    return files


@pytest.fixture(scope="session")
def png_bytes() -> Callable[..., bytes]:
    """`png_bytes((W, H), seed)`: a PNG of noise, about 3 * W * H bytes."""
    return _png_bytes


@pytest.fixture(scope="session")
def png_declaring() -> Callable[[int, int], bytes]:
    """`png_declaring(W, H)`: a tiny PNG whose header claims W x H pixels."""
    return _png_declaring


@pytest.fixture(scope="session")
def form() -> Callable[..., dict]:
    """`form(clinical_bytes, ultrasound_bytes)`: the `files=` of a POST (None leaves one out)."""
    return _form


@pytest.fixture(scope="session")
def write_checkpoint() -> Callable[..., Path]:
    """`write_checkpoint(path, overrides=..., temperature=..., seed=...)` of the inference tests."""
    return _inference_fixtures().write_checkpoint


@pytest.fixture(scope="session")
def ckpt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("app_ckpts")


@pytest.fixture(scope="session")
def fusion_ckpt(write_checkpoint: Callable[..., Path], ckpt_dir: Path) -> Path:
    """agfnet_tiny at 64 px, no modality dropout, temperature 1.3."""
    return write_checkpoint(
        ckpt_dir / "fusion.ckpt", temperature=1.3, overrides=(f"data.img_size={IMG}",)
    )


@pytest.fixture(scope="session")
def dropout_ckpt(write_checkpoint: Callable[..., Path], ckpt_dir: Path) -> Path:
    """agfnet_tiny at 64 px with modality dropout 0.2: accepts a missing image."""
    return write_checkpoint(
        ckpt_dir / "dropout.ckpt",
        overrides=(f"data.img_size={IMG}", "model.overrides.modality_dropout=0.2"),
    )


@pytest.fixture(scope="session")
def predictor(fusion_ckpt: Path) -> Any:
    from agfnet.inference import Predictor

    return Predictor.from_checkpoint(fusion_ckpt, device="cpu")


@pytest.fixture(scope="session")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    """10 synthetic (clinical, ultrasound) pairs at 64 px, two per class."""
    from agfnet.data.synth import generate

    out = tmp_path_factory.mktemp("app_synth")
    generate(out, n_per_class=2, size=IMG, seed=3, workers=1)
    with open(out / "manifest.csv", newline="") as f:
        return [(out / r["clinical"], out / r["ultrasound"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="session")
def pair_bytes(pairs: list[tuple[Path, Path]]) -> list[tuple[bytes, bytes]]:
    return [(c.read_bytes(), u.read_bytes()) for c, u in pairs]


@pytest.fixture(scope="session")
def client(predictor: Any) -> Any:
    """A TestClient of the app with the default settings (CAMs on)."""
    from fastapi.testclient import TestClient

    from agfnet.app import AppSettings, create_app

    return TestClient(create_app(predictor, AppSettings()))


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 (a free port) in a thread; yield its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def live_url(predictor: Any) -> Iterator[str]:
    """Base URL of the default app (CAMs on) served by uvicorn on 127.0.0.1."""
    from agfnet.app import AppSettings, create_app

    with live_server(create_app(predictor, AppSettings())) as url:
        yield url


@pytest.fixture(scope="session")
def onnx_file(fusion_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`agfnet export` of `fusion_ckpt` (fp32, 64 px): the app's one export (seconds)."""
    from typer.testing import CliRunner

    from agfnet.cli.app import app

    out = tmp_path_factory.mktemp("app_onnx") / "model.onnx"
    args = ["export", "--checkpoint", str(fusion_ckpt), "--format", "onnx", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def int8_file(onnx_file: Path, pairs: list[tuple[Path, Path]]) -> Path:
    """`onnx_file` quantised to static QDQ int8, calibrated on the 10 `pairs` (as `agfnet
    export --quantize int8 --data` does, without exporting the checkpoint again)."""
    import torch

    from agfnet.inference import OnnxPredictor
    from agfnet.inference.quantize import quantize_onnx

    predictor = OnnxPredictor.from_file(onnx_file)
    clinical, ultrasound, _ = zip(*(predictor.preprocess(*p) for p in pairs), strict=True)
    feeds = [
        {"clinical": torch.stack(clinical).numpy(), "ultrasound": torch.stack(ultrasound).numpy()}
    ]
    out = onnx_file.with_name("model-int8.onnx")
    quantize_onnx(onnx_file, out, feeds)
    return out


@pytest.fixture(scope="session")
def onnx_live_url(onnx_file: Path) -> Iterator[str]:
    """Base URL of the app on `onnx_file` (ONNX Runtime, no heatmaps) served by uvicorn."""
    from agfnet.app import AppSettings, create_app
    from agfnet.inference import OnnxPredictor

    with live_server(create_app(OnnxPredictor.from_file(onnx_file), AppSettings())) as url:
        yield url
