"""`agfnet serve`: the web app and its JSON API for a trained model (a PyTorch checkpoint, or
an ONNX export on ONNX Runtime), run with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from agfnet.errors import UserError

# Hosts that only this machine reaches.
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _log_config() -> dict:
    """uvicorn's logging, plus the app's own logger (one line per request, no image data)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["agfnet.app"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="best.ckpt of `agfnet train` (PyTorch; heatmaps)."
    ),
    onnx: Path | None = typer.Option(
        None,
        "--onnx",
        help="An ONNX file of `agfnet export` (fp32 or int8), run with ONNX Runtime on the "
        "CPU, without heatmaps; instead of --checkpoint.",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."
    ),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    max_upload_mb: float = typer.Option(
        20.0, "--max-upload-mb", help="Largest image accepted, per image, in MiB (else 413)."
    ),
    max_image_pixels: int = typer.Option(
        50_000_000,
        "--max-image-pixels",
        help="Most pixels an image may declare (decompression-bomb guard, else 413).",
    ),
    keep_uploads: Path | None = typer.Option(
        None,
        "--keep-uploads",
        help="Keep every upload and its result in DIR/<time>_<request id>/ (default: none).",
    ),
    cam: bool = typer.Option(
        True, "--cam/--no-cam", help="Return Grad-CAM heatmaps (--checkpoint only)."
    ),
    workers: int = typer.Option(
        1, "--workers", help="Worker processes, each with its own copy of the model."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1 (default: GPU if present; --onnx: cpu)."
    ),
    cors_origin: list[str] = typer.Option(
        [],
        "--cors-origin",
        help="Origin allowed to call the API from another site (repeatable).",
    ),
    max_concurrency: int = typer.Option(
        4, "--max-concurrency", help="Requests decoded and diagnosed at once per worker."
    ),
    root_path: str = typer.Option(
        "", "--root-path", help="Path prefix a reverse proxy serves the app under, e.g. /agfnet."
    ),
    forwarded_allow_ips: str | None = typer.Option(
        None,
        "--forwarded-allow-ips",
        help="Proxy addresses whose X-Forwarded-* headers are trusted (default 127.0.0.1).",
    ),
) -> None:
    """Serve the web page and the JSON API (POST /api/predict) for one model: a checkpoint
    (--checkpoint), or an ONNX export (--onnx, fp32 or int8, ONNX Runtime on the CPU, no
    heatmaps).

    Open http://HOST:PORT/ in a browser; the API is documented at /docs. Research
    software, not a medical device. Put a reverse proxy with TLS in front of it before
    anyone else can reach it (docs/deploy.md).

    Example: agfnet serve --checkpoint runs/t/checkpoints/best.ckpt --port 8000
    """
    import uvicorn

    from agfnet.app.server import create_app, load_predictor
    from agfnet.app.settings import AppSettings

    if (checkpoint is None) == (onnx is None):
        load_predictor(checkpoint, onnx)  # refuses, naming both options
    if workers < 1:
        raise UserError(f"--workers {workers}: give 1 or more")
    if max_upload_mb <= 0 or max_image_pixels <= 0 or max_concurrency < 1:
        raise UserError(
            "--max-upload-mb, --max-image-pixels and --max-concurrency must be positive"
        )
    if keep_uploads is not None:
        keep_uploads = keep_uploads.resolve()
        keep_uploads.mkdir(parents=True, exist_ok=True)
    settings = AppSettings(
        max_upload_bytes=round(max_upload_mb * 1024 * 1024),
        max_image_pixels=max_image_pixels,
        keep_uploads=keep_uploads,
        cam=cam,
        cors_origins=tuple(cors_origin),
        max_concurrency=max_concurrency,
    )
    # Load once here, so a bad file is reported before any worker starts.
    predictor = load_predictor(checkpoint, onnx, device)
    app = create_app(predictor, settings)
    diagnoser = app.state.diagnoser
    backend = diagnoser.backend
    runtime = "ONNX Runtime, CPU" if backend["runtime"] == "onnxruntime" else backend["device"]
    options = {
        "host": host,
        "port": port,
        "root_path": root_path,
        "forwarded_allow_ips": forwarded_allow_ips,
        "log_config": _log_config(),
    }
    typer.echo(
        f"Serving {diagnoser.model.id} ({checkpoint or onnx}; {runtime}, "
        f"{backend['precision']}) at http://{host}:{port}{root_path}/ "
        f"(API documentation: /docs). Research software, not a medical device."
    )
    if onnx is not None and cam:
        typer.echo(f"note: {diagnoser.cam_unavailable}", err=True)
    if host not in _LOOPBACK:
        typer.echo(
            f"warning: {host} is reachable from the network, without TLS or login: put a "
            "reverse proxy with TLS in front of it (docs/deploy.md)",
            err=True,
        )
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Worker processes import the app themselves and read its settings from the environment.
    del app, predictor
    os.environ.update(settings.to_env())
    os.environ["AGFNET_CHECKPOINT"] = "" if checkpoint is None else str(checkpoint.resolve())
    os.environ["AGFNET_ONNX"] = "" if onnx is None else str(onnx.resolve())
    os.environ["AGFNET_DEVICE"] = device or ""
    uvicorn.run("agfnet.app.server:app_from_env", factory=True, workers=workers, **options)
