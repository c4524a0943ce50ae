"""The model behind the app: its identity and metrics, its lock, and one diagnosis per call.

The model is a PyTorch `Predictor` (a checkpoint) or an `OnnxPredictor` (an exported ONNX
file, fp32 or int8, on ONNX Runtime); `backend_of` says which. An ONNX model makes no
heatmaps (Grad-CAM needs the PyTorch graph): the app then answers as with `--no-cam`,
and says why (`cam_unavailable`).

Every call into the model holds one lock per predictor: Grad-CAM hooks and swaps parts
of the network while it runs, so a forward pass of another request in between would
corrupt both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import weakref
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from agfnet.app.images import decode_upload, png_data_url
from agfnet.app.schemas import DISCLAIMER, ModelRef
from agfnet.app.settings import AppSettings
from agfnet.app.uploads import ApiError, Upload
from agfnet.constants import MODALITIES
from agfnet.data.io import IMAGE_SUFFIXES
from agfnet.data.manifest.display import image_noun
from agfnet.errors import UserError
from agfnet.inference.base import PredictorBase
from agfnet.inference.onnx_runtime import OnnxPredictor

__all__ = [
    "ACCEPTED_SUFFIXES",
    "CAM_METHOD",
    "NO_CAM",
    "ONNX_NO_CAM",
    "Diagnoser",
    "backend_of",
    "cam_unavailable",
    "file_sha256",
    "find_evaluation",
    "model_lock",
]

logger = logging.getLogger("agfnet.app")

#: File suffixes the page offers (those `agfnet.data.read_image` documents). Only a hint
#: for the browser: the server decides by decoding the file, whatever its name.
ACCEPTED_SUFFIXES = tuple(sorted(IMAGE_SUFFIXES))

#: The CAM method of the overlays: `agfnet.explain.cam.DEFAULT_METHOD` (a test keeps them
#: equal), written out so that importing the app does not import the CAM code.
CAM_METHOD = "layercam"


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


#: Why a server has no heatmaps: turned off, or an ONNX model (`cam_unavailable`).
NO_CAM = "Heatmaps are turned off on this server (agfnet serve --no-cam)."
ONNX_NO_CAM = (
    "Heatmaps are unavailable for an ONNX model: Grad-CAM needs the PyTorch network (its "
    "layers' activations and gradients), which an ONNX export does not carry. Serve the "
    "checkpoint (agfnet serve --checkpoint best.ckpt) for heatmaps."
)


def backend_of(predictor: PredictorBase) -> dict[str, Any]:
    """What runs the model: `runtime` ("torch" or "onnxruntime"), `precision` ("fp32", or
    "int8" for an export of `agfnet export --quantize int8`), and `device` (torch) or
    `providers` and `quantization` (the file's own description, or None) for ONNX.

    Args:
        predictor: a `Predictor` or an `OnnxPredictor`.

    Returns:
        The JSON-ready dict.
    """
    if not isinstance(predictor, OnnxPredictor):
        return {"runtime": "torch", "precision": "fp32", "device": str(predictor.device)}
    quantization = None
    try:
        quantization = json.loads(predictor.info.get("quantization", "null"))
    except ValueError:
        logger.warning("%s: its quantization metadata is not JSON", predictor.source)
    return {
        "runtime": "onnxruntime",
        "precision": "int8" if quantization else "fp32",
        "providers": list(predictor.session.get_providers()),
        "quantization": quantization,
    }


def cam_unavailable(predictor: PredictorBase, settings: AppSettings) -> str | None:
    """Why this server makes no heatmaps (`NO_CAM`, `ONNX_NO_CAM`); None when it makes them."""
    if isinstance(predictor, OnnxPredictor) or not hasattr(predictor, "explain"):
        return ONNX_NO_CAM
    return None if settings.cam else NO_CAM


def find_evaluation(predictor: PredictorBase) -> dict[str, Any] | None:
    """The evaluation metrics of the predictor's checkpoint, if it or its run folder holds them.

    Looked for under `metrics` in the checkpoint metadata, then in a metrics.json beside
    the checkpoint or in its run folder (`RUN/metrics.json` for `RUN/checkpoints/best.ckpt`,
    as `agfnet train` writes). A metrics.json counts only if it names this checkpoint file
    and its temperature is the checkpoint's, so metrics of another state are never shown.
    An ONNX file holds no metrics (its checks are in the .onnx.json `agfnet export` wrote).

    Args:
        predictor: a loaded `Predictor` (an `OnnxPredictor` has none: None).

    Returns:
        The metrics dict plus `source` ("checkpoint" or "metrics.json"), or None.
    """
    if isinstance(predictor, OnnxPredictor):
        return None
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


# One lock per Predictor, shared by every app built on it.
_MODEL_LOCKS: weakref.WeakKeyDictionary[PredictorBase, threading.Lock] = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def model_lock(predictor: PredictorBase) -> threading.Lock:
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


class Diagnoser:
    """The model behind the app: decodes uploads, predicts one pair at a time, renders CAMs.

    Attributes:
        backend: `backend_of(predictor)`.
        cam_unavailable: why no heatmaps are made (`cam_unavailable`), or None.
        cam: whether heatmaps are made (the settings ask and the model can).

    Args:
        predictor: a loaded `Predictor` or `OnnxPredictor`.
        settings: the app settings (pixel limit, CAM size).
    """

    def __init__(self, predictor: PredictorBase, settings: AppSettings) -> None:
        self.predictor = predictor
        self.settings = settings
        self.backend = backend_of(predictor)
        self.cam_unavailable = cam_unavailable(predictor, settings)
        self.cam = self.cam_unavailable is None
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
        id, the backend, CAM and upload settings, evaluation metrics or None)."""
        return {
            **self.predictor.describe(),
            # Only the file name: the server's folders are nobody's business.
            "source": Path(self.predictor.source).name,
            "id": self.model.id,
            "checkpoint_sha256": self.checkpoint_sha256,
            "backend": self.backend,
            "cam": self.cam,
            "cam_method": CAM_METHOD if self.cam else None,
            "cam_unavailable": self.cam_unavailable,
            "max_upload_bytes": self.settings.max_upload_bytes,
            "max_image_pixels": self.settings.max_image_pixels,
            "accepted_suffixes": list(ACCEPTED_SUFFIXES),
            "evaluation": self.evaluation,
            "disclaimer": DISCLAIMER,
        }

    def check_metadata(self, metadata: dict[str, str]) -> None:
        """Refuse a numeric metadata field that is not a number, naming the field.

        Raises:
            ApiError: 422, with the field.
        """
        from agfnet.data.metadata import NUMERIC, parse_number

        spec = self.predictor.metadata_spec
        for f in [] if spec is None else spec.fields:
            value = metadata.get(f.name, "")
            if f.kind == NUMERIC and value and parse_number(value) is None:
                raise ApiError(
                    422,
                    f"metadata '{f.name}': {value!r} is not a number; give a number or leave "
                    "it blank for missing",
                    f.name,
                )

    def decode(self, upload: Upload) -> Image.Image:
        """Decode one upload to an RGB image, under the app's pixel limit (`decode_upload`).

        Args:
            upload: the file of one field.

        Returns:
            The RGB PIL image.

        Raises:
            ApiError: 422 empty or unreadable (the message names the field and says why),
                413 too many pixels.
        """
        noun = image_noun(upload.field, self.predictor.modality_names)
        return decode_upload(upload, self.settings.max_image_pixels, noun)

    def diagnose(
        self, uploads: dict[str, Upload], with_cam: bool, metadata: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Diagnose one uploaded pair.

        Args:
            uploads: field -> file, for the images given.
            with_cam: also render the Grad-CAM overlay of each image used (ignored where
                the server makes none: `cam_unavailable`).
            metadata: metadata field -> value, for the fields sent (a model that uses
                metadata; blank or absent = missing).

        Returns:
            `Prediction.to_dict()` plus `cams`: modality -> PNG data URL, or None (not
            asked for, or none made); when heatmaps were asked for but none made, also
            `cam_unavailable`: why (turned off, an ONNX model, or the model cannot make
            them, e.g. at too small an input size).

        Raises:
            ApiError: 422 an image the model needs is missing, an image is unreadable,
                or a numeric metadata field is not a number; 413 an image declares too
                many pixels.
        """
        self.check_metadata(metadata or {})
        try:
            self.predictor.check_modalities([[m in uploads for m in MODALITIES]])
        except UserError as err:
            missing = next(m for m in MODALITIES if m not in uploads)
            message = str(err).replace(self.predictor.source, Path(self.predictor.source).name)
            raise ApiError(422, message, missing) from None
        images = {m: self.decode(uploads[m]) if m in uploads else None for m in MODALITIES}
        explanation = None
        why = self.cam_unavailable if with_cam else None
        with self._lock:
            if with_cam and self.cam:
                try:
                    explanation = self.predictor.explain(
                        *images.values(), method=CAM_METHOD, metadata=metadata
                    )
                except UserError as err:
                    # E.g. inputs too small for the target layer: answer without heatmaps.
                    logger.warning("no Grad-CAM for this request: %s", err)
                    why = f"No heatmaps for this request: {err}"
            if explanation is not None:
                prediction = explanation.prediction
            else:
                prediction = self.predictor.predict(*images.values(), metadata=metadata)
        cams = None
        if explanation is not None:
            cams = {
                m: png_data_url(overlay, self.settings.cam_max_side)
                for m, overlay in explanation.overlays().items()
            }
        out = {**prediction.to_dict(), "cams": cams}
        return out if why is None else {**out, "cam_unavailable": why}
