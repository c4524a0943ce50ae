"""The web app: a FastAPI server around `agfnet.inference.Predictor`, and its one HTML page.

`create_app(checkpoint_or_predictor, settings)` builds it, on a PyTorch checkpoint or on
an ONNX export (`OnnxPredictor`, ONNX Runtime, no heatmaps); `agfnet serve` runs it with
uvicorn. The app makes no prediction of its own: it reads the uploads into memory
(`uploads`), checks their size and declared pixel count and decodes them with the
inference layer's reader (`images`), and hands them to the `Predictor` under its lock
(`diagnoser`); `schemas` shapes the answers, `page` the page, `keep` what is kept.

Endpoints: `GET /` (the page), `POST /api/predict`, `GET /api/health`, `GET /api/model`,
`GET /docs` and `/openapi.json`.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import Any

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from agfnet.app.diagnoser import (
    ACCEPTED_SUFFIXES,
    CAM_METHOD,
    Diagnoser,
    backend_of,
    file_sha256,
    find_evaluation,
    model_lock,
)
from agfnet.app.images import png_data_url
from agfnet.app.keep import keep_folder, keep_request
from agfnet.app.page import PAGE_HEADERS, STATIC, render_page
from agfnet.app.schemas import (
    DISCLAIMER,
    ERROR_RESPONSES,
    ErrorOut,
    HealthOut,
    ModelRef,
    PredictionOut,
    UncertaintyOut,
    prediction_body,
    upload_form,
)
from agfnet.app.settings import AppSettings
from agfnet.app.uploads import ApiError, read_form
from agfnet.constants import MODALITIES
from agfnet.errors import UserError
from agfnet.inference import OnnxPredictor, Predictor
from agfnet.inference.base import PredictorBase

# The names this module held before the app was split; they stay importable from here.
__all__ = [
    "ACCEPTED_SUFFIXES",
    "CAM_METHOD",
    "DISCLAIMER",
    "STATIC",
    "Diagnoser",
    "ErrorOut",
    "HealthOut",
    "ModelRef",
    "PredictionOut",
    "UncertaintyOut",
    "app_from_env",
    "backend_of",
    "create_app",
    "file_sha256",
    "find_evaluation",
    "load_predictor",
    "model_lock",
    "png_data_url",
]

logger = logging.getLogger("agfnet.app")

# A request id a reverse proxy may pass in X-Request-ID (nginx: $request_id).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def load_predictor(
    checkpoint: str | os.PathLike | None = None,
    onnx: str | os.PathLike | None = None,
    device: str | None = None,
) -> PredictorBase:
    """The model of `agfnet serve`: a checkpoint's `Predictor`, or an ONNX file's
    `OnnxPredictor` (ONNX Runtime on the CPU).

    Args:
        checkpoint: a best.ckpt of `agfnet train`.
        onnx: an ONNX file of `agfnet export` (fp32 or int8).
        device: for the checkpoint: "cpu", "cuda", ... (None: the GPU when there is one);
            with `onnx` only None or "cpu".

    Returns:
        The predictor.

    Raises:
        UserError: both or neither file given, a GPU asked for with `onnx`, or a file
            that cannot be loaded (the message says why).
    """
    if (checkpoint is None) == (onnx is None):
        raise UserError(
            "give exactly one of --checkpoint CKPT (a PyTorch checkpoint of `agfnet train`) "
            "or --onnx MODEL.onnx (an export of `agfnet export`); "
            + ("both were given" if checkpoint is not None else "neither was given")
        )
    if onnx is None:
        return Predictor.from_checkpoint(checkpoint, device=device)
    if device not in (None, "", "cpu"):
        raise UserError(
            f"--device {device}: --onnx runs on ONNX Runtime's CPU provider only; drop "
            "--device, or serve the checkpoint (--checkpoint) on the GPU"
        )
    return OnnxPredictor.from_file(onnx)


def create_app(
    predictor: PredictorBase | str | os.PathLike, settings: AppSettings | None = None
) -> FastAPI:
    """Build the web app around a model.

    Example:
        app = create_app("runs/t/checkpoints/best.ckpt", AppSettings(cam=False))
        app = create_app("model-int8.onnx")  # ONNX Runtime, no heatmaps
        uvicorn.run(app, host="127.0.0.1", port=8000)

    Args:
        predictor: a loaded `Predictor` or `OnnxPredictor`, or the file to load one from:
            a checkpoint (on the GPU when there is one), or a `.onnx` file of `agfnet
            export` (ONNX Runtime on the CPU, without heatmaps).
        settings: limits and options; None uses the defaults.

    Returns:
        The FastAPI application.

    Raises:
        UserError: the file cannot be loaded (the message says why).
    """
    settings = settings or AppSettings()
    if not isinstance(predictor, PredictorBase):
        onnx = str(predictor).lower().endswith(".onnx")
        predictor = load_predictor(None if onnx else predictor, predictor if onnx else None)
    diagnoser = Diagnoser(predictor, settings)
    limiter = anyio.CapacityLimiter(settings.max_concurrency)
    names = predictor.modality_names
    metadata_fields = predictor.describe().get("metadata", [])
    text_fields = [f["name"] for f in metadata_fields]
    page = render_page(names, metadata_fields, diagnoser.cam_unavailable)
    pair = " + ".join(names[m] for m in MODALITIES)

    app = FastAPI(
        title="AGFNet lesion diagnosis",
        description=(
            f"Skin lesion diagnosis from two images of one lesion ({pair}: the fields "
            f"{' and '.join(f'`{m}`' for m in MODALITIES)}), by {diagnoser.model.id}. "
            f"{DISCLAIMER}"
        ),
        version=_version(predictor),
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
    _add_request_ids(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.post(
        "/api/predict",
        response_model=PredictionOut,
        # What the model lacks (task heads, metadata) is left out of the answer.
        response_model_exclude_unset=True,
        summary=f"Diagnose one pair: {pair}",
        openapi_extra=upload_form(names, metadata_fields),
        responses=ERROR_RESPONSES,
    )
    async def predict(
        request: Request,
        cam: bool = Query(
            True,
            description="return Grad-CAM overlays (if the server makes them: not with --no-cam, "
            "nor for an ONNX model)",
        ),
    ) -> dict[str, Any]:
        """Send the images as multipart/form-data fields `clinical` and `ultrasound`, and
        the metadata the model uses (`GET /api/model` lists it) as text fields named as
        its fields.

        The answer holds the class probabilities (calibrated), the predicted class, its
        uncertainty, which images the model used, the model id, a request id, and (unless
        turned off) a Grad-CAM overlay of each image for the predicted class, as PNG
        data URLs; `cams` is null with `cam=false`, and with `cam_unavailable` saying why
        when the server makes none (`--no-cam`, an ONNX model, inputs too small); from a
        model with task heads also `tasks` (each criterion's class and probabilities) and,
        for the seven criteria, `seven_point_score` and `checklist_melanoma`; from a model
        with metadata `metadata_missing` and `metadata_unknown`. Research software, not a
        medical device.
        """
        rid = request.state.request_id
        uploads, metadata = await read_form(
            request, MODALITIES, settings.max_upload_bytes, text_fields
        )
        kept = None if settings.keep_uploads is None else keep_folder(settings.keep_uploads, rid)
        if kept is not None:
            await anyio.to_thread.run_sync(keep_request, kept, uploads, None)
        started = time.perf_counter()
        try:
            result = await anyio.to_thread.run_sync(
                diagnoser.diagnose,
                uploads,
                cam,
                metadata if text_fields else None,
                limiter=limiter,
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
        body = prediction_body(result, diagnoser.model, rid)
        logger.info(
            "request %s: %s (p=%.3f) in %.0f ms",
            rid,
            result["prediction"],
            result["uncertainty"]["max_probability"],
            1000 * (time.perf_counter() - started),
        )
        if kept is not None:
            await anyio.to_thread.run_sync(keep_request, kept, {}, {**body, "cams": None})
        return body

    @app.get("/api/health", response_model=HealthOut, summary="Liveness and model status")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model_loaded": True,
            "model": diagnoser.model.id,
            "backend": diagnoser.backend["runtime"],
            "precision": diagnoser.backend["precision"],
        }

    @app.get(
        "/api/model",
        summary="The model: classes, input size, temperature, backend, metrics, tasks, metadata",
    )
    async def model() -> dict[str, Any]:
        return diagnoser.describe()

    return app


def _add_request_ids(app: FastAPI) -> None:
    """Give every request an id (the proxy's X-Request-ID if well-formed), echoed in the
    response, and answer an `ApiError` as an `ErrorOut` that carries it."""

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


def _version(predictor: PredictorBase) -> str:
    """The agfnet version that wrote the checkpoint or the ONNX file ("unknown" if unsaid)."""
    info = predictor.info
    version = info.get("agfnet_version") if isinstance(info, dict) else info.version
    return str(version or "unknown")


def app_from_env() -> FastAPI:
    """The app of `AGFNET_CHECKPOINT` (and `AGFNET_DEVICE`) or of `AGFNET_ONNX`, with
    `AppSettings.from_env()`.

    For servers that import the app themselves, one model per worker process:
    `AGFNET_CHECKPOINT=best.ckpt uvicorn --factory agfnet.app.server:app_from_env --workers 2`
    (or `AGFNET_ONNX=model.onnx ...`).

    Returns:
        The FastAPI application.

    Raises:
        UserError: neither or both of AGFNET_CHECKPOINT / AGFNET_ONNX set, or the file
            cannot be loaded.
    """
    checkpoint = os.environ.get("AGFNET_CHECKPOINT") or None
    onnx = os.environ.get("AGFNET_ONNX") or None
    if (checkpoint is None) == (onnx is None):
        raise UserError(
            "set exactly one of AGFNET_CHECKPOINT (the checkpoint to serve, a best.ckpt) or "
            "AGFNET_ONNX (an ONNX file of `agfnet export`)"
        )
    device = os.environ.get("AGFNET_DEVICE") or None
    return create_app(load_predictor(checkpoint, onnx, device), AppSettings.from_env())
