"""The ultrasound B-mode image of a synthetic lesion: skin layers, lesion, posterior echo, speckle.

A vertical cross-section along the photograph's x axis: depth grows downwards. Draw
order matters: `geo` (geometry and probe settings) and `tex` (speckle) are each read in a
fixed sequence, so a seed gives the same image on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from agfnet.data.synth.primitives import blur, mix, smooth_curve, smooth_field

__all__ = ["render_ultrasound"]

# Lesion thickness as a fraction of the dermis thickness, per invasion depth: superficial
# stays in the upper dermis, dermal ends inside it, deep crosses into the subcutis.
_THICKNESS = {"superficial": (0.14, 0.24), "dermal": (0.5, 0.75), "deep": (1.35, 1.75)}
_ECHO_LEVEL = {"hypoechoic": 0.06, "hyperechoic": 1.6}
_POSTERIOR_GAIN = {"none": 0.0, "enhancement": 1.3, "shadow": -0.85}


@dataclass(frozen=True)
class _Probe:
    """Anatomy and scanner settings of one image; `dermis` and `thickness` are fractions
    of the image side, `entry0` and `subcutis` pixels, `speckle_*` fractions."""

    entry0: float
    tilt: float
    dermis: float
    subcutis: float
    thickness: float
    profile_power: float
    gain: float
    attenuation: float
    compression: float
    speckle_x: float
    speckle_y: float
    noise_level: float


def _draw_probe(geo: np.random.Generator, depth: str, s: float) -> _Probe:
    entry0 = geo.uniform(0.10, 0.16) * s
    tilt = geo.uniform(-0.04, 0.04)
    dermis = float(geo.uniform(0.25, 0.31))
    subcutis = geo.uniform(0.26, 0.34) * s
    thickness = float(geo.uniform(*_THICKNESS[depth])) * dermis
    profile_power = geo.uniform(0.3, 0.5)
    gain = float(geo.uniform(0.75, 1.3))
    attenuation = float(geo.uniform(0.6, 1.6))
    compression = geo.uniform(15, 30)
    speckle_x, speckle_y = geo.uniform(0.007, 0.011), geo.uniform(0.0035, 0.005)
    noise_level = geo.uniform(0.01, 0.03)
    return _Probe(
        entry0=entry0,
        tilt=tilt,
        dermis=dermis,
        subcutis=subcutis,
        thickness=thickness,
        profile_power=profile_power,
        gain=gain,
        attenuation=attenuation,
        compression=compression,
        speckle_x=speckle_x,
        speckle_y=speckle_y,
        noise_level=noise_level,
    )


def _ridge(y: np.ndarray, centre: np.ndarray, width: float, s: float) -> np.ndarray:
    """A bright interface echo at depth `centre`, `width` a fraction of the side."""
    return np.exp(-0.5 * ((y - centre) / max(0.6, width * s)) ** 2)


def _step(y: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """0 above `edge`, 1 below it, one pixel of anti-aliased transition."""
    return np.clip(y - edge + 0.5, 0, 1)


def _tissue(
    probe: _Probe, geo: np.random.Generator, y: np.ndarray, x: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Tissue echo amplitude (size, size) without the lesion, and the skin entry depth (1, size).

    Layers: anechoic gel, fibrous dermis, dark subcutis with bright septa, bright fascia,
    striated muscle.
    """
    s = float(size)
    entry = probe.entry0 + probe.tilt * (x - s / 2) + 0.008 * s * smooth_curve(geo, size)[None, :]
    dermis_bottom = entry + probe.dermis * s * (1 + 0.06 * smooth_curve(geo, size)[None, :])
    fascia = dermis_bottom + probe.subcutis * (1 + 0.05 * smooth_curve(geo, size)[None, :])

    fibres = smooth_field(geo, size, (24, 6))
    septa = (np.abs(smooth_field(geo, size, (6, 4))) < 0.18).astype(np.float32)
    stria = 0.5 + 0.5 * np.sin(2 * np.pi * (y / (0.03 * s) + 0.15 * x / s))
    amp = np.full((size, size), 0.03, np.float32)
    amp = mix(amp, 0.5 * (1 + 0.15 * fibres), _step(y, entry))
    amp = mix(amp, 0.2 + 0.45 * blur(septa, max(0.5, 0.004 * s)), _step(y, dermis_bottom))
    amp = mix(amp, 0.28 + 0.12 * stria, _step(y, fascia))
    amp = amp + 0.8 * _ridge(y, fascia, 0.006, s)
    return amp, entry


def _add_lesion(
    amp: np.ndarray,
    entry: np.ndarray,
    attrs: Mapping[str, str],
    scan: tuple[float, float],
    probe: _Probe,
    geo: np.random.Generator,
    y: np.ndarray,
    x: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The amplitude with the lesion and its posterior feature, and the lesion mask.

    The lesion is a dome hanging from the entry echo over the photograph's scan-line
    extent `scan` = (x0, x1) in pixels.
    """
    size = amp.shape[0]
    s = float(size)
    x0, x1 = scan
    half = max((x1 - x0) / 2, 0.5)
    u = (x - (x0 + x1) / 2) / half
    dome = np.clip(1 - u**2, 0, None) ** probe.profile_power
    inside_cols = (np.abs(u) < 1).astype(np.float32)
    # An uneven lower edge, and at least one pixel of lesion in every column it spans.
    wobble = 1 + 0.08 * smooth_curve(geo, size)[None, :]
    bottom = entry + np.maximum(probe.thickness * s * dome * wobble, 1.0) * inside_cols
    lesion = (y >= entry) & (y < bottom) & (inside_cols > 0)
    level = _ECHO_LEVEL[attrs["echo"]]
    blobs = smooth_field(geo, size, 10)
    if attrs["heterogeneity"] == "heterogeneous":
        interior = level * np.clip(1 + 0.6 * blobs, 0.2, 2.5) + 0.12 * np.clip(blobs - 0.8, 0, None)
    else:
        interior = np.full((size, size), level, np.float32)
    soft = np.clip(np.minimum(y - entry, bottom - y) / max(0.6, 0.004 * s) + 0.5, 0, 1) * lesion
    amp = mix(amp, interior, soft)
    amp = amp + 1.3 * _ridge(y, entry, 0.006, s)

    # Posterior feature: enhancement or acoustic shadow in the lesion's columns below it.
    taper = np.clip((1 - np.abs(u)) * half / max(1.0, 0.02 * s), 0, 1)
    below = np.clip((y - bottom) / max(1.0, 0.01 * s), 0, 1) * np.exp(
        -(y - bottom).clip(0) / (0.6 * s)
    )
    amp = amp * (1 + _POSTERIOR_GAIN[attrs["posterior"]] * taper * below)
    return amp, lesion


def _scan(
    amp: np.ndarray, entry: np.ndarray, probe: _Probe, tex: np.random.Generator, y: np.ndarray
) -> np.ndarray:
    """uint8 B-mode image of the echo amplitude: attenuation, gain, speckle, log compression."""
    size = amp.shape[0]
    s = float(size)
    depth = np.clip(y - entry, 0, None) / s
    intensity = amp * np.exp(-probe.attenuation * depth) * probe.gain
    # Fully developed speckle: magnitude of a correlated complex Gaussian field (Rayleigh).
    field_re, field_im = (
        blur(
            tex.standard_normal((size, size)).astype(np.float32),
            probe.speckle_y * s,
            probe.speckle_x * s,
        )
        for _ in range(2)
    )
    speckle = np.hypot(field_re, field_im)
    speckle /= speckle.mean() + 1e-6
    intensity = intensity * speckle
    image = np.log1p(probe.compression * intensity) / np.log1p(probe.compression * 1.6)
    image = image + probe.noise_level * tex.standard_normal(image.shape).astype(np.float32)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def render_ultrasound(
    attrs: Mapping[str, str],
    scan: tuple[float, float],
    geo: np.random.Generator,
    tex: np.random.Generator,
    size: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """B-mode cross-section along the photograph's x axis; `scan` = lesion's (x0, x1) there.

    Returns:
        uint8 (size, size) grey image, bool (size, size) lesion mask, nuisance values.
    """
    s = float(size)
    y = (np.arange(size, dtype=np.float32) + 0.5)[:, None]
    x = (np.arange(size, dtype=np.float32) + 0.5)[None, :]
    probe = _draw_probe(geo, attrs["depth"], s)
    amp, entry = _tissue(probe, geo, y, x, size)
    amp, lesion = _add_lesion(amp, entry, attrs, scan, probe, geo, y, x)
    grey = _scan(amp, entry, probe, tex, y)
    nuisances = {
        "gain": probe.gain,
        "attenuation": probe.attenuation,
        "dermis_thickness": probe.dermis,
        "lesion_thickness": probe.thickness,
    }
    return grey, lesion, nuisances
