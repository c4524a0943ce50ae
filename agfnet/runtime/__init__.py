"""Running a trained network: the one checkpoint loader, batch prediction (with MC dropout
and test-time augmentation beside it), device choice, compilation (`torch.compile`) and
the rows a command works on.

Every command, the `Predictor` and the web app go through this layer; it sits above the
models and the data and below evaluation, explanations, training and inference. Names are
imported lazily (PEP 562), so importing the package does not pull in torch.

Example:
    from agfnet.runtime import load_model, predict
    model, info = load_model("runs/t/checkpoints/best.ckpt")
"""

from __future__ import annotations

from agfnet._lazy import lazy_exports

_EXPORTS = {
    "CheckpointInfo": "checkpoint",
    "atomic_save": "checkpoint",
    "build_model": "checkpoint",
    "load_model": "checkpoint",
    "read_checkpoint": "checkpoint",
    "resolve_device": "device",
    "compile_model": "compile",
    "compile_settings": "compile",
    "maybe_compile": "compile",
    "resolve_compile": "compile",
    "Predictions": "batch",
    "forward_batch": "batch",
    "predict": "batch",
    "Sampling": "stochastic",
    "parse_sampling": "stochastic",
    "sample_logits": "stochastic",
    "EvaluationInputs": "selection",
    "check_modalities": "selection",
    "load_for_evaluation": "selection",
    "refuse_missing": "selection",
    "split_positions": "selection",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
