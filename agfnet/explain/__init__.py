"""Explanations: Grad-CAM family maps per modality, AGFNet's ALL attention maps, and how
much of each falls on the lesion (focus metrics).

Example:
    maps = explain_pair(model, clinical, ultrasound)  # Layer-CAM, (H, W) in [0, 1]
    attention = attention_maps(model, clinical, ultrasound)
    energy_inside(maps["clinical"], lesion_mask)
"""

from __future__ import annotations

from agfnet.explain.cam import (
    DEFAULT_METHOD,
    METHODS,
    ModalityView,
    attention_maps,
    default_layers,
    explain_pair,
    layer_names,
    map_sizes,
    resolve_layer,
)
from agfnet.explain.focus import (
    energy_inside,
    focus_scores,
    mean_scores,
    pointing_game,
    versus_chance,
)
from agfnet.explain.run import find_masks, run_explain

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "ModalityView",
    "attention_maps",
    "default_layers",
    "energy_inside",
    "explain_pair",
    "find_masks",
    "focus_scores",
    "layer_names",
    "map_sizes",
    "mean_scores",
    "pointing_game",
    "resolve_layer",
    "run_explain",
    "versus_chance",
]
