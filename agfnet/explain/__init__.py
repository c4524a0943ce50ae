"""Explanations: Grad-CAM family maps per modality, AGFNet's ALL attention maps, and how
much of each falls on the lesion (focus metrics).

Example:
    maps = explain_pair(model, clinical, ultrasound, method="gradcam")  # (H, W) in [0, 1]
    attention = attention_maps(model, clinical, ultrasound)
    energy_inside(maps["clinical"], lesion_mask)
"""

from __future__ import annotations

from agfnet.explain.cam import (
    METHODS,
    ModalityView,
    attention_maps,
    default_layers,
    explain_pair,
    layer_names,
    resolve_layer,
)
from agfnet.explain.focus import energy_inside, focus_scores, mean_scores, pointing_game
from agfnet.explain.run import find_masks, run_explain

__all__ = [
    "METHODS",
    "ModalityView",
    "attention_maps",
    "default_layers",
    "energy_inside",
    "explain_pair",
    "find_masks",
    "focus_scores",
    "layer_names",
    "mean_scores",
    "pointing_game",
    "resolve_layer",
    "run_explain",
]
