"""Inference: `Predictor` (PyTorch), `OnnxPredictor` (onnxruntime) and ONNX export.

Names are imported lazily (PEP 562), so `import agfnet.inference` does not pull in torch.

Example:
    from agfnet.inference import Predictor
    result = Predictor.from_checkpoint("runs/t/checkpoints/best.ckpt").predict("c.jpg", "u.png")
"""

from __future__ import annotations

from agfnet._lazy import lazy_exports

_EXPORTS = {
    "Predictor": "predictor",
    "PredictorBase": "base",
    "Prediction": "results",
    "Explanation": "results",
    "Uncertainty": "results",
    "load_checkpoint": "predictor",
    "write_predictions_csv": "predictor",
    "OnnxPredictor": "onnx_runtime",
    "ExportReport": "export",
    "export_onnx": "export",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
