"""The web app: a FastAPI server around `agfnet.inference.Predictor`, and its one HTML page.

`create_app(checkpoint_or_predictor, settings)` builds it; `agfnet serve` runs it with
uvicorn. The app makes no prediction of its own: it reads the uploads into memory,
checks their size and declared pixel count, decodes them with the inference layer's
reader, and hands them to the `Predictor`. Every call into the model holds one lock:
Grad-CAM hooks and swaps parts of the network while it runs, so a forward pass of
another request in between would corrupt both.

Endpoints: `GET /` (the page), `POST /api/predict`, `GET /api/health`, `GET /api/model`,
`GET /docs` and `/openapi.json`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import threading
import time
import uuid
import weakref
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel

from agfnet.app.settings import AppSettings
from agfnet.app.uploads import ApiError, Upload, read_uploads
from agfnet.data.io import IMAGE_SUFFIXES
from agfnet.errors import UserError
from agfnet.inference import Predictor
from agfnet.inference.predictor import MODALITIES, to_pil

__all__ = [
    "ACCEPTED_SUFFIXES",
    "Diagnoser",
    "app_from_env",
    "create_app",
    "file_sha256",
    "find_evaluation",
    "model_lock",
    "png_data_url",
]

logger = logging.getLogger("agfnet.app")

STATIC = Path(__file__).with_name("static")

#: File suffixes the page offers (those `agfnet.data.read_image` documents). Only a hint
#: for the browser: the server decides by decoding the file, whatever its name.
# The file types `agfnet.data.read_image` reads, for the page's file pickers.
ACCEPTED_SUFFIXES = tuple(sorted(IMAGE_SUFFIXES))

#: The Grad-CAM method of the overlays.
CAM_METHOD = "gradcam"

# A request id a reverse proxy may pass in X-Request-ID (nginx: $request_id).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")

# The page loads only its own files: nothing external, so it works offline too.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
}

DISCLAIMER = (
    "Research software, not a medical device: it is not cleared or approved for clinical "
    "use and must not be used to diagnose, treat or exclude disease."
)


class UncertaintyOut(BaseModel):
    """How sure the prediction is (see `agfnet.inference.Uncertainty`)."""

    entropy: float
    normalized_entropy: float
    max_probability: float
    certainty: str


class ModelRef(BaseModel):
    """Which model answered: `id` is `<name>@<first 12 hex digits of the checkpoint's SHA-256>`."""

    id: str
    name: str
    checkpoint_sha256: str | None


class PredictionOut(BaseModel):
    """The diagnosis of one pair: `Prediction.to_dict()` plus the model, request id and CAMs."""

    probabilities: dict[str, float]
    prediction: str
    uncertainty: UncertaintyOut
    modalities: dict[str, bool]
    model: ModelRef
    request_id: str
    cams: dict[str, str] | None
    disclaimer: str


class ErrorOut(BaseModel):
    """A refused request: the message says what is wrong and how to fix it."""

    detail: str
    field: str | None = None
    request_id: str | None = None


class HealthOut(BaseModel):
    """Liveness: the process is up and its model loaded."""

    status: str
    model_loaded: bool
    model: str


_ERRORS = {
    400: "malformed or incomplete multipart body",
    413: "a file over the size limit, or an image declaring more pixels than allowed",
    415: "not multipart/form-data",
    422: "a missing, empty, unreadable or non-image file, or an image the model needs absent",
    500: "the model failed; the error is in the server log under the request id",
}

_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        m: {
                            "type": "string",
                            "format": "binary",
                            "description": f"the {m} image: JPEG, PNG, TIFF, BMP or DICOM; may "
                            "be left out only if the model accepts a missing image",
                        }
                        for m in MODALITIES
                    },
                }
            }
        },
    }
}


def file_sha256(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file, or None when there is no such file.

    Args:
        path: the file.

    Returns:
        64 hex digits, or None.
    """
    path = Path(path)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(partial(f.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_evaluation(predictor: Predictor) -> dict[str, Any] | None:
    """The evaluation metrics of the predictor's checkpoint, if it or its run folder holds them.

    Looked for under `metrics` in the checkpoint metadata, then in a metrics.json beside
    the checkpoint or in its run folder (`RUN/metrics.json` for `RUN/checkpoints/best.ckpt`,
    as `agfnet train` writes). A metrics.json counts only if it names this checkpoint file
    and its temperature is the checkpoint's, so metrics of another state are never shown.

    Args:
        predictor: a loaded `Predictor`.

    Returns:
        The metrics dict plus `source` ("checkpoint" or "metrics.json"), or None.
    """
    stored = predictor.info.extra.get("metrics")
    if isinstance(stored, dict):
        return {**stored, "source": "checkpoint"}
    ckpt = Path(predictor.source)
    for folder in (ckpt.parent, ckpt.parent.parent):
        path = folder / "metrics.json"
        if not path.is_file():
            continue
        try:
            metrics = json.loads(path.read_text())
            named = Path(str(metrics.get("checkpoint", ckpt.name))).name == ckpt.name
            same_t = abs(float(metrics.get("temperature", 1.0)) - predictor.temperature) < 1e-6
        except (OSError, ValueError, TypeError, AttributeError) as err:
            logger.warning("ignoring %s: %s", path, err)
            continue
        if named and same_t:
            metrics.pop("checkpoint", None)
            return {**metrics, "source": "metrics.json"}
    return None


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


# One lock per Predictor, shared by every app built on it.
_MODEL_LOCKS: weakref.WeakKeyDictionary[Predictor, threading.Lock] = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def model_lock(predictor: Predictor) -> threading.Lock:
    """The lock every call into `predictor`'s network holds.

    Grad-CAM registers hooks on the network and swaps one of its methods while it runs,
    so no other forward pass may interleave with it.

    Args:
        predictor: the predictor.

    Returns:
        Its lock (the same object for every caller).
    """
    with _MODEL_LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(predictor, threading.Lock())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Diagnoser:
    """The model behind the app: decodes uploads, predicts one pair at a time, renders CAMs.

    Args:
        predictor: a loaded `Predictor`.
        settings: the app settings (pixel limit, CAM size).
    """

    def __init__(self, predictor: Predictor, settings: AppSettings) -> None:
        self.predictor = predictor
        self.settings = settings
        self._lock = model_lock(predictor)
        self.checkpoint_sha256 = file_sha256(predictor.source)
        short = f"@{self.checkpoint_sha256[:12]}" if self.checkpoint_sha256 else ""
        self.model = ModelRef(
            id=f"{predictor.model_name}{short}",
            name=predictor.model_name,
            checkpoint_sha256=self.checkpoint_sha256,
        )
        self.evaluation = find_evaluation(predictor)

    def describe(self) -> dict[str, Any]:
        """Returns: what `GET /api/model` answers (the predictor's description, the model
        id, CAM and upload settings, evaluation metrics or None)."""
        return {
            **self.predictor.describe(),
            # Only the file name: the server's folders are nobody's business.
            "source": Path(self.predictor.source).name,
            "id": self.model.id,
            "checkpoint_sha256": self.checkpoint_sha256,
            "cam": self.settings.cam,
            "cam_method": CAM_METHOD if self.settings.cam else None,
            "max_upload_bytes": self.settings.max_upload_bytes,
            "max_image_pixels": self.settings.max_image_pixels,
            "accepted_suffixes": list(ACCEPTED_SUFFIXES),
            "evaluation": self.evaluation,
            "disclaimer": DISCLAIMER,
        }

    def _check_pixels(self, data: bytes, label: str, field: str) -> None:
        """Refuse an image whose header declares too many pixels, before decoding it."""
        limit = self.settings.max_image_pixels
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
        except Image.DecompressionBombError as err:
            raise ApiError(
                413,
                f"the {label} is refused as a possible decompression bomb ({err}): resize it, "
                "e.g. to 4000 pixels on the longer side",
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
                "resize it, e.g. to 4000 pixels on the longer side",
                field,
            )

    def decode(self, upload: Upload) -> Image.Image:
        """Decode one upload to an RGB image, refusing empty, oversized or unreadable files.

        Args:
            upload: the file of one field.

        Returns:
            The RGB PIL image.

        Raises:
            ApiError: 422 empty or unreadable (the message names the field and says why),
                413 too many pixels.
        """
        label = f"{upload.field} image" + (f" '{upload.filename}'" if upload.filename else "")
        if not upload.data:
            raise ApiError(
                422, f"the {label} is an empty file (0 bytes): choose it again", upload.field
            )
        self._check_pixels(upload.data, label, upload.field)
        buffer = io.BytesIO(upload.data)
        buffer.name = label  # the reader names the file in its messages
        try:
            image = to_pil(buffer, label)
        except UserError as err:
            raise ApiError(422, str(err), upload.field) from None
        return image

    def diagnose(self, uploads: dict[str, Upload], with_cam: bool) -> dict[str, Any]:
        """Diagnose one uploaded pair.

        Args:
            uploads: field -> file, for the images given.
            with_cam: also render the Grad-CAM overlay of each image used.

        Returns:
            `Prediction.to_dict()` plus `cams`: modality -> PNG data URL, or None (not
            asked for, or the model cannot make them, e.g. at too small an input size).

        Raises:
            ApiError: 422 an image the model needs is missing, or an image is unreadable;
                413 an image declares too many pixels.
        """
        try:
            self.predictor.check_modalities([[m in uploads for m in MODALITIES]])
        except UserError as err:
            missing = next(m for m in MODALITIES if m not in uploads)
            message = str(err).replace(self.predictor.source, Path(self.predictor.source).name)
            raise ApiError(422, message, missing) from None
        images = {m: self.decode(uploads[m]) if m in uploads else None for m in MODALITIES}
        explanation = None
        with self._lock:
            if with_cam:
                try:
                    explanation = self.predictor.explain(*images.values(), method=CAM_METHOD)
                except UserError as err:
                    # E.g. inputs too small for the target layer: answer without heatmaps.
                    logger.warning("no Grad-CAM for this request: %s", err)
            if explanation is not None:
                prediction = explanation.prediction
            else:
                prediction = self.predictor.predict(*images.values())
        cams = None
        if explanation is not None:
            cams = {
                m: png_data_url(overlay, self.settings.cam_max_side)
                for m, overlay in explanation.overlays().items()
            }
        return {**prediction.to_dict(), "cams": cams}


def _keep(folder: Path, uploads: dict[str, Upload], result: dict[str, Any] | None) -> None:
    """Write the uploads (and the result, once there is one) to `folder`, each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    for field, upload in uploads.items():
        suffix = Path(upload.filename).suffix.lower()
        _write_atomic(
            folder / f"{field}{suffix if _SUFFIX.fullmatch(suffix) else '.bin'}", upload.data
        )
    if result is not None:
        _write_atomic(folder / "result.json", json.dumps(result, indent=2).encode())


def create_app(
    predictor: Predictor | str | os.PathLike, settings: AppSettings | None = None
) -> FastAPI:
    """Build the web app around a model.

    Example:
        app = create_app("runs/t/checkpoints/best.ckpt", AppSettings(cam=False))
        uvicorn.run(app, host="127.0.0.1", port=8000)

    Args:
        predictor: a loaded `Predictor`, or the checkpoint to load one from (on the GPU
            when there is one).
        settings: limits and options; None uses the defaults.

    Returns:
        The FastAPI application.

    Raises:
        UserError: the checkpoint cannot be loaded (the message says why).
    """
    settings = settings or AppSettings()
    if not isinstance(predictor, Predictor):
        predictor = Predictor.from_checkpoint(predictor)
    diagnoser = Diagnoser(predictor, settings)
    limiter = anyio.CapacityLimiter(settings.max_concurrency)
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    app = FastAPI(
        title="AGFNet lesion diagnosis",
        description=(
            "Skin lesion diagnosis from a clinical photograph paired with a skin ultrasound "
            f"image, by {diagnoser.model.id}. {DISCLAIMER}"
        ),
        version=str(predictor.info.version or "unknown"),
    )
    app.state.diagnoser = diagnoser
    app.state.settings = settings
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )

    @app.middleware("http")
    async def request_id(request: Request, call_next: Any) -> Any:
        given = request.headers.get("x-request-id", "")
        request.state.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        rid = getattr(request.state, "request_id", None)
        logger.info("request %s refused (%d): %s", rid, err.status, err.message)
        body = ErrorOut(detail=err.message, field=err.field, request_id=rid)
        return JSONResponse(body.model_dump(), status_code=err.status)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.post(
        "/api/predict",
        response_model=PredictionOut,
        summary="Diagnose one clinical photograph + ultrasound pair",
        openapi_extra=_FORM,
        responses={code: {"model": ErrorOut, "description": why} for code, why in _ERRORS.items()},
    )
    async def predict(
        request: Request,
        cam: bool = Query(True, description="return Grad-CAM overlays (if the server has them on)"),
    ) -> dict[str, Any]:
        """Send the images as multipart/form-data fields `clinical` and `ultrasound`.

        The answer holds the class probabilities (calibrated), the predicted class, its
        uncertainty, which images the model used, the model id, a request id, and (unless
        turned off) a Grad-CAM overlay of each image for the predicted class, as PNG
        data URLs. Research software, not a medical device.
        """
        rid = request.state.request_id
        uploads = await read_uploads(request, MODALITIES, settings.max_upload_bytes)
        kept = None
        if settings.keep_uploads is not None:
            # UTC time first: folders sort by arrival, for a retention schedule.
            kept = settings.keep_uploads / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}_{rid}"
        if kept is not None:
            await anyio.to_thread.run_sync(_keep, kept, uploads, None)
        started = time.perf_counter()
        try:
            result = await anyio.to_thread.run_sync(
                diagnoser.diagnose, uploads, cam and settings.cam, limiter=limiter
            )
        except ApiError:
            raise
        except Exception:
            logger.exception("request %s: diagnosis failed", rid)
            raise ApiError(
                500,
                f"the server failed while diagnosing (request {rid}); the error is in its log. "
                "Try again, and tell the administrator if it persists.",
            ) from None
        body = {
            **result,
            "model": diagnoser.model.model_dump(),
            "request_id": rid,
            "disclaimer": DISCLAIMER,
        }
        logger.info(
            "request %s: %s (p=%.3f) in %.0f ms",
            rid,
            result["prediction"],
            result["uncertainty"]["max_probability"],
            1000 * (time.perf_counter() - started),
        )
        if kept is not None:
            await anyio.to_thread.run_sync(_keep, kept, {}, {**body, "cams": None})
        return body

    @app.get("/api/health", response_model=HealthOut, summary="Liveness and model status")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": True, "model": diagnoser.model.id}

    @app.get("/api/model", summary="The model: classes, input size, temperature, metrics")
    async def model() -> dict[str, Any]:
        return diagnoser.describe()

    return app


def app_from_env() -> FastAPI:
    """The app of `AGFNET_CHECKPOINT` (and `AGFNET_DEVICE`), with `AppSettings.from_env()`.

    For servers that import the app themselves, one model per worker process:
    `AGFNET_CHECKPOINT=best.ckpt uvicorn --factory agfnet.app.server:app_from_env --workers 2`.

    Returns:
        The FastAPI application.

    Raises:
        UserError: AGFNET_CHECKPOINT unset, or the checkpoint cannot be loaded.
    """
    checkpoint = os.environ.get("AGFNET_CHECKPOINT")
    if not checkpoint:
        raise UserError("set AGFNET_CHECKPOINT to the checkpoint to serve (a best.ckpt)")
    device = os.environ.get("AGFNET_DEVICE") or None
    return create_app(Predictor.from_checkpoint(checkpoint, device=device), AppSettings.from_env())
