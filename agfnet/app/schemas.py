"""The JSON the app answers with: response models, the disclaimer, and the OpenAPI extras."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from agfnet.constants import MODALITIES
from agfnet.data.manifest.display import DEFAULT_MODALITY_NAMES

__all__ = [
    "DISCLAIMER",
    "ERROR_RESPONSES",
    "UPLOAD_FORM",
    "ErrorOut",
    "HealthOut",
    "ModelRef",
    "PredictionOut",
    "TaskOut",
    "UncertaintyOut",
    "prediction_body",
    "upload_form",
]

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


class TaskOut(BaseModel):
    """One task head's answer (e.g. a criterion of the seven-point checklist)."""

    prediction: str
    probabilities: dict[str, float]


class PredictionOut(BaseModel):
    """The diagnosis of one pair: `Prediction.to_dict()` plus the model, request id and CAMs.

    `tasks` comes only from a model with task heads, `seven_point_score` and
    `checklist_melanoma` only when they are the seven criteria, `metadata_missing` and
    `metadata_unknown` only from a model that uses metadata (the route leaves out what
    the model does not have, so other models answer as before). `cam_unavailable` says
    why `cams` is null when heatmaps were asked for but none made (`--no-cam`, an ONNX
    model, inputs too small for Grad-CAM); absent otherwise.
    """

    probabilities: dict[str, float]
    prediction: str
    uncertainty: UncertaintyOut
    modalities: dict[str, bool]
    model: ModelRef
    request_id: str
    cams: dict[str, str] | None
    disclaimer: str
    cam_unavailable: str | None = None
    tasks: dict[str, TaskOut] | None = None
    seven_point_score: int | None = None
    checklist_melanoma: bool | None = None
    metadata_missing: list[str] | None = None
    metadata_unknown: list[str] | None = None


class ErrorOut(BaseModel):
    """A refused request: the message says what is wrong and how to fix it."""

    detail: str
    field: str | None = None
    request_id: str | None = None


class HealthOut(BaseModel):
    """Liveness: the process is up and its model loaded; `backend` is what runs it ("torch"
    or "onnxruntime"), `precision` "fp32" or "int8" (an int8 ONNX export)."""

    status: str
    model_loaded: bool
    model: str
    backend: str
    precision: str


_REFUSALS = {
    400: "malformed or incomplete multipart body",
    413: "a file over the size limit, or an image declaring more pixels than allowed",
    415: "not multipart/form-data",
    422: "a missing, empty, unreadable or non-image file, an image the model needs absent, "
    "an unknown form field, or a numeric metadata field that is not a number",
    500: "the model failed; the error is in the server log under the request id",
}

#: The `responses=` of `POST /api/predict`: each refusal's status, body model and cause.
ERROR_RESPONSES = {code: {"model": ErrorOut, "description": why} for code, why in _REFUSALS.items()}


def metadata_properties(fields: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The OpenAPI properties of the metadata form fields (`describe()["metadata"]`)."""
    out: dict[str, Any] = {}
    for f in fields:
        if f["kind"] == "numeric":
            out[f["name"]] = {
                "type": "string",
                "description": "metadata (numeric): a number; blank or left out = missing",
            }
        else:
            out[f["name"]] = {
                "type": "string",
                "description": "metadata (categorical): one of "
                f"{', '.join(f['vocabulary'])}; blank or left out = missing, another value "
                "= unknown",
            }
    return out


def upload_form(
    names: Mapping[str, str], metadata: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The `openapi_extra=` of `POST /api/predict`: the multipart form (the route reads the
    body itself, so FastAPI cannot infer it), one binary field per modality, and one text
    field per metadata field of the model.

    Args:
        names: modality -> how the model names its image (the field names stay).
        metadata: the model's metadata fields ({"name", "kind", "vocabulary"}); none by
            default.

    Returns:
        The OpenAPI fragment.
    """
    return {
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
                                "description": f"{names[m]}: JPEG, PNG, TIFF, BMP or DICOM; "
                                "may be left out only if the model accepts a missing image",
                            }
                            for m in MODALITIES
                        }
                        | metadata_properties(metadata),
                    }
                }
            },
        }
    }


#: `upload_form` of the default names (its name before models named their images).
UPLOAD_FORM = upload_form(DEFAULT_MODALITY_NAMES)


def prediction_body(result: dict[str, Any], model: ModelRef, request_id: str) -> dict[str, Any]:
    """The answer of `POST /api/predict` (see `PredictionOut`).

    Args:
        result: what `Diagnoser.diagnose` returned.
        model: the model that answered.
        request_id: the request's id.

    Returns:
        `result` plus the model, the request id and the disclaimer.
    """
    return {
        **result,
        "model": model.model_dump(),
        "request_id": request_id,
        "disclaimer": DISCLAIMER,
    }
