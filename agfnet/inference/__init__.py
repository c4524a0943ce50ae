"""Inference: `Predictor` (PyTorch), `OnnxPredictor` (onnxruntime) and ONNX export.

Names are imported lazily (PEP 562), so `import agfnet.inference` does not pull in torch.

Example:
    from agfnet.inference import Predictor
    result = Predictor.from_checkpoint("runs/t/checkpoints/best.ckpt").predict("c.jpg", "u.png")
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Predictor": "predictor",
    "PredictorBase": "predictor",
    "Prediction": "predictor",
    "Explanation": "predictor",
    "Uncertainty": "predictor",
    "load_checkpoint": "predictor",
    "write_predictions_csv": "predictor",
    "OnnxPredictor": "onnx_runtime",
    "ExportReport": "export",
    "export_onnx": "export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agfnet.inference' has no attribute '{name}'")
    return getattr(importlib.import_module(f"agfnet.inference.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
