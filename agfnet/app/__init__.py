"""The web app: a FastAPI server and one HTML page around `agfnet.inference.Predictor` (or
an `OnnxPredictor`: ONNX Runtime, no heatmaps).

Names are imported lazily (PEP 562), so `import agfnet.app` pulls in neither torch nor
FastAPI.

Example:
    from agfnet.app import AppSettings, create_app
    app = create_app("runs/t/checkpoints/best.ckpt", AppSettings(max_upload_bytes=10_000_000))
    app = create_app("model-int8.onnx")
"""

from __future__ import annotations

from agfnet._lazy import lazy_exports

_EXPORTS = {
    "AppSettings": "settings",
    "create_app": "server",
    "app_from_env": "server",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
