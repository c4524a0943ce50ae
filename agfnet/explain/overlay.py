"""Overlay figures: each modality's image with its explanation map alpha-blended on top."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["blend", "denormalise", "write_overlay"]

#: Colour map of every explanation map (perceptually ordered, unlike jet).
CMAP = "turbo"
#: Weight of the map's colour over the image.
ALPHA = 0.5


def denormalise(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo the transform's normalisation, for display.

    Args:
        image: float (3, H, W), normalised as `TransformConfig` says.
        mean: the per-channel mean used.
        std: the per-channel std used.

    Returns:
        uint8 (H, W, 3) RGB.
    """
    pixels = image * np.asarray(std)[:, None, None] + np.asarray(mean)[:, None, None]
    return (np.clip(pixels, 0.0, 1.0).transpose(1, 2, 0) * 255).round().astype(np.uint8)


def blend(image: np.ndarray, cam: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Colour `cam` with `CMAP` and alpha-blend it over `image`.

    Args:
        image: uint8 (H, W, 3) RGB.
        cam: float (H, W) in [0, 1].
        alpha: weight of the map's colour (0: image only, 1: map only).

    Returns:
        uint8 (H, W, 3) RGB.
    """
    import matplotlib

    colour = matplotlib.colormaps[CMAP](np.clip(cam, 0.0, 1.0))[..., :3]
    mixed = (1 - alpha) * image.astype(np.float64) / 255 + alpha * colour
    return (mixed * 255).round().astype(np.uint8)


def write_overlay(
    path: str | Path,
    images: Mapping[str, np.ndarray],
    maps: Mapping[str, Mapping[str, np.ndarray]],
    title: str,
    masks: Mapping[str, np.ndarray | None] | None = None,
) -> Path:
    """Write a PNG grid: one column per modality, one row per kind of map.

    Args:
        path: the PNG to write (atomically); its folder must exist.
        images: modality -> uint8 (H, W, 3) de-normalised image.
        maps: kind (e.g. "Grad-CAM", "attention") -> modality -> float (H, W) in [0, 1].
        title: the figure's title (prediction, probability, true label).
        masks: modality -> bool lesion mask at the map's size, outlined in white; None
            or missing entries draw no outline.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from agfnet.evaluation.plots import DPI, save_figure

    masks = masks or {}
    modalities = list(images)
    fig = Figure(figsize=(2.6 * len(modalities), 2.6 * len(maps) + 0.5), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(len(maps), len(modalities), squeeze=False)
    for row, (kind, by_modality) in zip(axes, maps.items(), strict=True):
        for ax, m in zip(row, modalities, strict=True):
            ax.imshow(blend(images[m], by_modality[m]))
            mask = masks.get(m)
            if mask is not None and mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
            ax.set_title(f"{m}: {kind}", fontsize=9)
            ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
