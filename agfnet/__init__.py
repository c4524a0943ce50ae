"""agfnet: skin lesion diagnosis from paired clinical photographs and skin ultrasound.

Implements AGFNet (Xiao et al., "Attention-Guided Learning with Feature Reconstruction
for Skin Lesion Diagnosis using Clinical and Ultrasound Images", IEEE TMI 44(1), 2025,
DOI 10.1109/TMI.2024.3450682), its baselines and ablations, and the tools around them.

Importing this package is cheap: torch, timm and lightning are imported by the
submodules that need them, never here. `agfnet.Predictor` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Predictor":
        from agfnet.inference import Predictor

        return Predictor
    raise AttributeError(f"module 'agfnet' has no attribute {name!r}")
