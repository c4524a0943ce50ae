"""Render one pair of the local-evidence benchmark: background, one evidence patch, two decoys.

Photograph: skin of the patient's tone under smooth lighting and colour mottling larger
than the patches, pixel noise; the patches add a chroma of fixed length in their hue's
direction (equal mean intensity for every hue) and a fine random-orientation grain.
Ultrasound: a depth-graded speckle image; the patches modulate the echo by a +-1 pattern
of fixed amplitude (equal mean and contrast for every texture). Draw order is fixed, so a
seed gives the same pair on every call.
"""

from __future__ import annotations

import numpy as np

from agfnet.data.synth.attributes import SampleSpec
from agfnet.data.synth.local import DECOY_CODES, LOCAL_TASK_COLUMNS, PATCH_AREA
from agfnet.data.synth.primitives import blur, smooth_field
from agfnet.data.synth.render import RenderedPair

__all__ = ["LOCAL_NUISANCE_COLUMNS", "render_local_pair"]

#: Hue angle (degrees) of every clinical code, evidence and decoy.
_HUE = {"red": 0, "yellow": 60, "green": 120, "cyan": 180, "blue": 240, "magenta": 300}
_CHROMA = 0.16  # length of a patch's chroma vector, RGB in [0, 1]
_TEXTURE_AMPLITUDE = 0.45  # relative echo modulation of an ultrasound patch
_LOOKS = 3  # speckle looks averaged in the ultrasound
_MARGIN = 0.08  # patches keep this fraction of the side away from the edges
_N_PATCHES = 3  # one evidence patch and two decoys

#: Columns of attributes.csv after the codes: each image's evidence patch and decoys.
LOCAL_NUISANCE_COLUMNS: tuple[str, ...] = tuple(
    f"{m}_{k}" for m in ("clinical", "ultrasound") for k in ("x", "y", "side", "decoy_1", "decoy_2")
)

# Two unit vectors spanning the RGB plane of equal mean: a hue is a direction in it.
_U = np.array([2.0, -1.0, -1.0]) / np.sqrt(6.0)
_V = np.array([0.0, 1.0, -1.0]) / np.sqrt(2.0)
_FAIR, _BROWN = np.array([0.93, 0.78, 0.68]), np.array([0.55, 0.38, 0.27])


def _hue_vector(code: str) -> np.ndarray:
    angle = np.deg2rad(_HUE[code])
    return np.cos(angle) * _U + np.sin(angle) * _V


def _place(rng: np.random.Generator, size: int) -> list[tuple[int, int, int]]:
    """(x0, y0, side) of `_N_PATCHES` non-overlapping squares of `PATCH_AREA` of the image."""
    side = max(4, round(np.sqrt(rng.uniform(*PATCH_AREA)) * size))
    lo, hi = round(_MARGIN * size), size - round(_MARGIN * size) - side
    gap = max(2, size // 32)
    boxes: list[tuple[int, int, int]] = []
    while len(boxes) < _N_PATCHES:
        x, y = (int(v) for v in rng.integers(lo, hi + 1, size=2))
        if all(abs(x - bx) >= side + gap or abs(y - by) >= side + gap for bx, by, _ in boxes):
            boxes.append((x, y, side))
    return boxes


def _texture(code: str, side: int, period: int) -> np.ndarray:
    """A +-1 pattern (side, side): stripes, a checkerboard or diagonal stripes."""
    y, x = np.mgrid[0:side, 0:side]
    phase = {
        "horizontal": y,
        "vertical": x,
        "diagonal": x + y,
        "antidiagonal": x - y,
    }
    if code == "checker":
        # Cells a little wider than the stripes: a checkerboard's fundamental is at sqrt(2)
        # times the frequency of stripes of the same cell, and speckle blurs it more.
        cell = period // 2 + 1
        return np.where((x // cell + y // cell) % 2 == 0, 1.0, -1.0)
    return np.where((phase[code] % period) < period / 2, 1.0, -1.0)


def _clinical(
    spec: SampleSpec, codes: list[str], boxes: list, rng: np.random.Generator, size: int
) -> np.ndarray:
    skin = _FAIR + (_BROWN - _FAIR) * spec.skin_tone
    light = 1 + 0.10 * smooth_field(rng, size, 3)
    tint = (
        0.06
        * smooth_field(rng, size, 4)[..., None]
        * _hue_vector(("red", "green", "blue")[int(rng.integers(3))])
    )
    img = skin[None, None, :] * light[..., None] + tint
    for code, (x, y, side) in zip(codes, boxes, strict=True):
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:side, 0:side]
        grain = 0.04 * np.sign(np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * np.pi / 2))
        img[y : y + side, x : x + side] += _CHROMA * _hue_vector(code) + grain[..., None]
    img += 0.035 * rng.standard_normal(img.shape)
    return (np.clip(blur(img.astype(np.float32), 0.5), 0, 1) * 255).round().astype(np.uint8)


def _ultrasound(codes: list[str], boxes: list, rng: np.random.Generator, size: int) -> np.ndarray:
    depth = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
    echo = (0.55 - 0.25 * depth) * (1 + 0.25 * smooth_field(rng, size, 4))
    period = max(4, 2 * round(size / 48))
    for code, (x, y, side) in zip(codes, boxes, strict=True):
        pattern = _texture(code, side, period)
        echo[y : y + side, x : x + side] *= 1 + _TEXTURE_AMPLITUDE * pattern
    # Speckle compounded over `_LOOKS` looks (as spatial compounding does): Rayleigh
    # amplitudes averaged, so the patches' texture stays readable at a few pixels' period.
    sigma = max(0.5, size / 160)
    speckle = np.zeros((size, size), dtype=np.float32)
    for _ in range(_LOOKS):
        re, im = (blur(rng.standard_normal((size, size)).astype(np.float32), sigma) for _ in "ri")
        speckle += np.hypot(re, im)
    img = echo * speckle / (speckle.mean() + 1e-6)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def render_local_pair(spec: SampleSpec, size: int) -> RenderedPair:
    """The photograph, the ultrasound image and their evidence masks of one local sample.

    Args:
        spec: the sample (from `sample_local`).
        size: image side in pixels (>= 32).

    Returns:
        The pair; the masks are the evidence patches; the nuisances are the
        `LOCAL_NUISANCE_COLUMNS` (positions and sides as fractions of the side).
    """
    seq = spec.render_seed
    rng_c, rng_u = (
        np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, i)))
        for i in range(2)
    )
    images, masks, nuisances = {}, {}, {}
    for modality, column, rng in zip(
        ("clinical", "ultrasound"), LOCAL_TASK_COLUMNS, (rng_c, rng_u), strict=True
    ):
        boxes = _place(rng, size)
        decoys = [str(d) for d in rng.choice(DECOY_CODES[modality], size=2)]
        codes = [spec.attributes[column], *decoys]
        if modality == "clinical":
            images[modality] = _clinical(spec, codes, boxes, rng, size)
        else:
            images[modality] = _ultrasound(codes, boxes, rng, size)
        x, y, side = boxes[0]
        mask = np.zeros((size, size), dtype=bool)
        mask[y : y + side, x : x + side] = True
        masks[modality] = mask
        nuisances.update(
            {
                f"{modality}_x": (x + side / 2) / size,
                f"{modality}_y": (y + side / 2) / size,
                f"{modality}_side": side / size,
                f"{modality}_decoy_1": decoys[0],
                f"{modality}_decoy_2": decoys[1],
            }
        )
    return RenderedPair(
        images["clinical"], images["ultrasound"], masks["clinical"], masks["ultrasound"], nuisances
    )
