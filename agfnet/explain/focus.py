"""Focus metrics: how much of an explanation map falls on the lesion (energy inside the
mask, pointing game) and their means over a set of rows."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHANCE_ALPHA",
    "energy_inside",
    "focus_scores",
    "load_mask",
    "mean_scores",
    "pointing_game",
    "resize_mask",
    "versus_chance",
]

#: The per-map scores, in the order the reports list them.
SCORES: tuple[str, ...] = ("energy_inside", "pointing_game", "mask_fraction")


def load_mask(path: str | Path) -> np.ndarray:
    """Read a lesion mask image; any non-zero pixel is lesion.

    Args:
        path: a single-channel (or RGB) image file, e.g. masks/clinical/L00001.png of
            the synthetic benchmark (0 / 255).

    Returns:
        bool (H, W).
    """
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L")) > 0


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a mask to a map's size with nearest-neighbour sampling.

    The evaluation transform is a plain resize of the whole image, so the resized mask
    covers the same part of the picture as in the original.

    Args:
        mask: bool (H0, W0).
        shape: (H, W) of the map.

    Returns:
        bool (H, W).
    """
    if mask.shape == tuple(shape):
        return mask.astype(bool)
    from PIL import Image

    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.resize((shape[1], shape[0]), Image.Resampling.NEAREST)) > 0


def energy_inside(cam: np.ndarray, mask: np.ndarray) -> float | None:
    """Fraction of the map's mass inside the lesion: sum(cam * mask) / sum(cam).

    A map spread evenly over the image scores the lesion's area fraction; a map wholly
    on the lesion scores 1.

    Args:
        cam: float (H, W), non-negative.
        mask: bool (H0, W0), resized to (H, W) with `resize_mask`.

    Returns:
        The fraction in [0, 1]; None when the map is all zero or the mask is empty.
    """
    mask = resize_mask(mask, cam.shape)
    total = float(cam.sum())
    if total <= 0 or not mask.any():
        return None
    return float(cam[mask].sum()) / total


def pointing_game(cam: np.ndarray, mask: np.ndarray) -> bool | None:
    """Whether the map's maximum lies inside the lesion (Zhang et al., 2016, without a
    tolerance margin). On a tie the first maximum in row-major order counts.

    Args:
        cam: float (H, W).
        mask: bool (H0, W0), resized to (H, W) with `resize_mask`.

    Returns:
        True for a hit; None when the map is flat (no maximum) or the mask is empty.
    """
    mask = resize_mask(mask, cam.shape)
    if float(cam.max()) <= float(cam.min()) or not mask.any():
        return None
    return bool(mask.flat[int(np.argmax(cam))])


def focus_scores(cam: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """All focus scores of one map.

    Args:
        cam: float (H, W).
        mask: bool (H0, W0).

    Returns:
        {"energy_inside": float | None, "pointing_game": bool | None, "mask_fraction":
        float}: mask_fraction is the lesion's share of the map's pixels, i.e. the
        energy a uniform map would get (the chance level of `energy_inside`).
    """
    resized = resize_mask(mask, cam.shape)
    return {
        "energy_inside": energy_inside(cam, resized),
        "pointing_game": pointing_game(cam, resized),
        "mask_fraction": float(resized.mean()),
    }


def mean_scores(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean of each score over rows, ignoring undefined (None) values.

    Args:
        rows: `focus_scores` dicts.

    Returns:
        {score: mean or None, "n": number of rows, "n_undefined": rows whose map was
        flat or mask empty (energy_inside undefined, left out of its mean)};
        pointing_game's mean is the hit rate.
    """
    rows = list(rows)
    means: dict[str, Any] = {}
    for key in SCORES:
        values = [float(r[key]) for r in rows if r.get(key) is not None]
        means[key] = math.fsum(values) / len(values) if values else None
    means["n"] = len(rows)
    means["n_undefined"] = sum(r.get("energy_inside") is None for r in rows)
    return means | versus_chance(rows)


#: Significance level of the sign test behind `versus_chance`'s verdict.
CHANCE_ALPHA = 0.05


def _sign_test(wins: int, n: int) -> float:
    """One-sided exact sign test: P(at least `wins` of `n` fair coin flips)."""
    return math.fsum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n if n else 1.0


def versus_chance(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """How a set of maps compares with a uniform map (the chance level), row by row.

    A uniform map puts the lesion's area share (`mask_fraction`) of its mass inside
    the lesion; a map "beats chance" when its energy inside exceeds that share on more
    rows than a fair coin would give (one-sided exact sign test at `CHANCE_ALPHA`).
    Rows where the map is flat count against it: a flat map shows nothing.

    Args:
        rows: `focus_scores` dicts.

    Returns:
        {"lift": mean energy inside / mean lesion share (1 = chance; None without
        scores), "rows_above_chance": rows whose energy exceeds their share,
        "p_above_chance": the sign test's p-value, "verdict": "beats chance", "not
        significantly above chance" (above on average, not on enough rows; with 4 rows
        even 4 of 4 is p = 0.06) or "does not beat chance" (at or below it on average)}.
    """
    rows = [r for r in rows if r.get("mask_fraction")]
    scored = [(r["energy_inside"], r["mask_fraction"]) for r in rows if r.get("energy_inside")]
    above = sum(e > f for e, f in scored)
    lift = math.fsum(e for e, _ in scored) / math.fsum(f for _, f in scored) if scored else None
    p = _sign_test(above, len(rows))
    if lift is None or lift <= 1.0:
        verdict = "does not beat chance"
    elif p < CHANCE_ALPHA:
        verdict = "beats chance"
    else:
        verdict = "not significantly above chance"
    return {
        "lift": lift,
        "rows_above_chance": above,
        "p_above_chance": p,
        "verdict": verdict,
    }
