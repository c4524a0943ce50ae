"""Render one synthetic sample: its photograph and its ultrasound image, on one scan line."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agfnet.data.synth.attributes import SampleSpec
from agfnet.data.synth.clinical import render_clinical
from agfnet.data.synth.ultrasound import render_ultrasound

__all__ = ["RenderedPair", "render_pair"]


@dataclass(frozen=True)
class RenderedPair:
    """The two images of one sample and their lesion masks.

    Args:
        clinical: uint8 (S, S, 3) RGB photograph.
        ultrasound: uint8 (S, S) grey B-mode image; depth grows downwards, the lateral
            axis is the photograph's x axis along row `nuisances["scan_row"]`.
        clinical_mask: bool (S, S) lesion mask of the photograph.
        ultrasound_mask: bool (S, S) lesion mask of the ultrasound image.
        nuisances: one value per `NUISANCE_COLUMNS`: lengths as fractions of the image
            side, `scan_row` in pixels, counts and flags as int.
    """

    clinical: np.ndarray
    ultrasound: np.ndarray
    clinical_mask: np.ndarray
    ultrasound_mask: np.ndarray
    nuisances: dict[str, float]


def render_pair(spec: SampleSpec, size: int) -> RenderedPair:
    """Render the clinical photograph and the ultrasound image of one sample.

    Args:
        spec: the sample (from `sample_attributes`).
        size: image side in pixels (>= 32).

    Returns:
        The pair, its masks and its nuisance values. Depends only on the attributes, the
        skin tone and the render seed: never on the class itself.
    """
    # Children built from the spawn key, not with `spawn()`, which would advance the
    # sequence's state and give a different pair on every call.
    seq = spec.render_seed
    geo_c, tex_c, geo_u, tex_u = (
        np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, i)))
        for i in range(4)
    )
    clinical, cmask, nz_c = render_clinical(spec.attributes, spec.skin_tone, geo_c, tex_c, size)
    # Scan line: the photograph row through the lesion centre; the ultrasound shows the
    # lesion over exactly the columns the photograph's mask covers on that row.
    scan_row = min(int(nz_c["centre_y"] * size), size - 1)
    cols = np.flatnonzero(cmask[scan_row])
    scan = (float(cols[0]), float(cols[-1] + 1))
    ultrasound, umask, nz_u = render_ultrasound(spec.attributes, scan, geo_u, tex_u, size)
    nuisances = {"skin_tone": spec.skin_tone, **nz_c, "scan_row": scan_row, **nz_u}
    return RenderedPair(clinical, ultrasound, cmask, umask, nuisances)
