"""agfnet: skin lesion diagnosis from paired clinical photographs and skin ultrasound.

Implements AGFNet (Xiao et al., "Attention-Guided Learning with Feature Reconstruction
for Skin Lesion Diagnosis using Clinical and Ultrasound Images", IEEE TMI 44(1), 2025,
DOI 10.1109/TMI.2024.3450682), its baselines and ablations, and the tools around them.

Importing this package is cheap: torch, timm and lightning are imported by the
submodules that need them, never here. `agfnet.create_model`, `agfnet.list_models` and
`agfnet.Predictor` are loaded on first use.
"""

from __future__ import annotations

from agfnet._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {"Predictor": "inference", "create_model": "models", "list_models": "models"}

__all__ = [*sorted(_EXPORTS), "__version__"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
