"""Image primitives of the synthetic renderers: Gaussian blur, smooth random fields, blending."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

__all__ = ["blur", "blur_axis", "mix", "smooth_curve", "smooth_field"]


def blur_axis(a: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """Gaussian blur along `axis` (sigma in pixels), reflected edges (`a` itself below 0.25)."""
    if sigma < 0.25:
        return a
    radius = min(int(np.ceil(3 * sigma)), a.shape[axis] - 1)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    pad = [(0, 0)] * a.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(a, pad, mode="reflect")
    n = a.shape[axis]
    out = np.zeros_like(a, dtype=np.float32)
    index: list[Any] = [slice(None)] * a.ndim
    for i, w in enumerate(taps):
        index[axis] = slice(i, i + n)
        out += w * padded[tuple(index)]
    return out


def blur(a: np.ndarray, sigma_y: float, sigma_x: float | None = None) -> np.ndarray:
    """Separable Gaussian blur of the first two axes (sigmas in pixels), reflected edges."""
    return blur_axis(blur_axis(a, sigma_y, 0), sigma_y if sigma_x is None else sigma_x, 1)


def smooth_field(rng: np.random.Generator, size: int, cells: int | tuple[int, int]) -> np.ndarray:
    """Smooth random field (size, size), zero mean, unit std: a coarse grid upsampled.

    The number of random draws depends on `cells` only, not on `size`, so a seed gives the
    same large-scale pattern at every image size.
    """
    cy, cx = (cells, cells) if isinstance(cells, int) else cells
    grid = rng.standard_normal((cy, cx)).astype(np.float32)
    up = np.asarray(Image.fromarray(grid, "F").resize((size, size), Image.BICUBIC))
    return (up - up.mean()) / (up.std() + 1e-6)


def smooth_curve(rng: np.random.Generator, size: int, knots: int = 6) -> np.ndarray:
    """Smooth random 1-D curve of `size` samples, zero mean, unit std."""
    values = rng.standard_normal(knots)
    x = np.linspace(0, knots - 1, size)
    curve = np.interp(x, np.arange(knots), values)
    curve = blur_axis(curve.astype(np.float32), size / (2.5 * knots), 0)
    return (curve - curve.mean()) / (curve.std() + 1e-6)


def mix(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Linear blend: `a` where t = 0, `b` where t = 1."""
    return a + (b - a) * t
