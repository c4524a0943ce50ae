"""The clinical photograph of a synthetic lesion: skin, colour, border, hair, ruler, camera.

Draw order matters: each generator (`geo` for the scene, `tex` for fine texture) is read
in a fixed sequence, so a seed gives the same photograph on every call and the same scene
at every image size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from agfnet.data.synth.primitives import blur, mix, smooth_field

__all__ = ["render_clinical"]

_SKIN_FAIR = np.array([0.93, 0.80, 0.72], np.float32)
_SKIN_BROWN = np.array([0.70, 0.50, 0.37], np.float32)
_PINK = np.array([0.86, 0.42, 0.45], np.float32)
_DARK = np.array([0.22, 0.14, 0.12], np.float32)
_TAN_FACTOR = np.array([0.74, 0.61, 0.50], np.float32)
_BLUE_GREY = np.array([0.36, 0.38, 0.48], np.float32)
_KERATIN = np.array([0.93, 0.90, 0.84], np.float32)
_HAIR = np.array([0.12, 0.09, 0.07], np.float32)


@dataclass(frozen=True)
class _Outline:
    """Star-shaped lesion outline: inside iff distance to the centre < radius_at(angle)."""

    radius: float
    aspect: float
    rotation: float
    harmonics: np.ndarray  # (k, 3): order, amplitude, phase

    def radius_at(self, theta: np.ndarray) -> np.ndarray:
        t = theta - self.rotation
        ellipse = self.aspect / np.sqrt((self.aspect * np.cos(t)) ** 2 + np.sin(t) ** 2)
        wobble = np.ones_like(theta)
        for order, amp, phase in self.harmonics:
            wobble = wobble + amp * np.cos(order * theta + phase)
        return self.radius * ellipse * np.clip(wobble, 0.55, 1.6)


@dataclass(frozen=True)
class _Scene:
    """The photograph's nuisances; lengths are fractions of the image side."""

    radius: float
    aspect: float
    rotation: float
    harmonics: np.ndarray
    ruler: bool
    ruler_top: bool
    ruler_offset: float
    hair_strands: int
    pos: np.ndarray  # (2,): where the lesion sits in its free range, x then y, in [0, 1)
    light_angle: float
    light_grad: float
    vignette: float
    brightness: float
    white_balance: np.ndarray
    blur: float
    colour_jitter: np.ndarray
    noise_level: float


def _lesion_outline(
    rng: np.random.Generator, irregular: bool
) -> tuple[float, float, float, np.ndarray]:
    """Radius, aspect, rotation and border harmonics, in fractions of the image size."""
    radius = float(rng.uniform(0.13, 0.22))
    aspect = float(rng.uniform(0.72, 1.0))
    rotation = float(rng.uniform(0, np.pi))
    if irregular:
        # Asymmetric, lobulated outline: random harmonics, weaker at higher orders.
        orders = np.arange(2, 9, dtype=np.float64)
        amps = rng.normal(0.0, 1.0, size=orders.size) * 0.2 / orders**0.8
    else:
        orders = np.array([2.0, 3.0])
        amps = rng.uniform(0.0, 0.03, size=2)
    phases = rng.uniform(0, 2 * np.pi, size=orders.size)
    return radius, aspect, rotation, np.stack([orders, amps, phases], axis=1)


def _draw_scene(geo: np.random.Generator, irregular: bool) -> _Scene:
    """Every nuisance, drawn first and in a fixed count: the same scene at any image size."""
    radius, aspect, rotation, harmonics = _lesion_outline(geo, irregular)
    ruler = bool(geo.random() < 0.2)
    ruler_top = bool(geo.random() < 0.5)
    ruler_offset = float(geo.random())
    hair_strands = int(geo.integers(1, 7)) if geo.random() < 0.35 else 0
    pos = geo.random(2)
    light_angle, light_grad, vignette = (
        geo.uniform(0, 2 * np.pi),
        geo.uniform(0, 0.25),
        geo.uniform(0, 0.3),
    )
    brightness = float(geo.uniform(0.85, 1.08))
    white_balance = geo.uniform(0.95, 1.05, size=3).astype(np.float32)
    blur_sigma = float(
        geo.uniform(0.0, 0.005) + (geo.uniform(0.004, 0.01) if geo.random() < 0.1 else 0.0)
    )
    colour_jitter = geo.normal(0, 0.05, size=3).astype(np.float32)
    noise_level = float(geo.uniform(0.004, 0.02))
    return _Scene(
        radius=radius,
        aspect=aspect,
        rotation=rotation,
        harmonics=harmonics,
        ruler=ruler,
        ruler_top=ruler_top,
        ruler_offset=ruler_offset,
        hair_strands=hair_strands,
        pos=pos,
        light_angle=light_angle,
        light_grad=light_grad,
        vignette=vignette,
        brightness=brightness,
        white_balance=white_balance,
        blur=blur_sigma,
        colour_jitter=colour_jitter,
        noise_level=noise_level,
    )


def _place_lesion(scene: _Scene, s: float) -> tuple[_Outline, float, float, int]:
    """The outline in pixels, its centre (x, y) and the ruler band height.

    The lesion must lie inside the image and clear of the ruler band.
    """
    outline = _Outline(scene.radius * s, scene.aspect, scene.rotation, scene.harmonics)
    angles = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    r = outline.radius_at(angles)
    left, right = (
        (r * -np.minimum(np.cos(angles), 0)).max(),
        (r * np.maximum(np.cos(angles), 0)).max(),
    )
    up, down = (r * -np.minimum(np.sin(angles), 0)).max(), (r * np.maximum(np.sin(angles), 0)).max()
    margin = 0.04 * s + 1
    band_h = max(3, round(0.09 * s))
    y_lo = margin + up + (band_h if scene.ruler and scene.ruler_top else 0)
    y_hi = s - margin - down - (band_h if scene.ruler and not scene.ruler_top else 0)
    cx = float(margin + left + scene.pos[0] * max(s - 2 * margin - left - right, 0))
    cy = float(y_lo + scene.pos[1] * max(y_hi - y_lo, 0))
    return outline, cx, cy, band_h


def _skin(
    skin: np.ndarray, geo: np.random.Generator, tex: np.random.Generator, size: int
) -> np.ndarray:
    """Float RGB (size, size, 3) skin of colour `skin` with mottling and pores."""
    mottle = 1 + 0.04 * smooth_field(geo, size, 5)
    pores = 1 + 0.03 * blur(
        tex.standard_normal((size, size)).astype(np.float32), max(0.5, 0.004 * float(size))
    )
    return skin[None, None, :] * (mottle * pores)[..., None]


def _lesion_colour(
    attrs: Mapping[str, str],
    skin: np.ndarray,
    scene: _Scene,
    inside_depth: np.ndarray,
    geo: np.random.Generator,
    tex: np.random.Generator,
) -> np.ndarray:
    """Float RGB (S, S, 3) of the lesion's colour family and surface texture."""
    size = inside_depth.shape[0]
    s = float(size)
    irregular = attrs["border"] == "irregular"
    colour = attrs["colour"]
    if colour == "pink":
        target = mix(skin, _PINK, 0.8)
    elif colour == "dark":
        target = mix(skin, _DARK, 0.85)
    else:
        target = skin * _TAN_FACTOR
    target = np.clip(target * (1 + scene.colour_jitter), 0, 1)
    shade = smooth_field(geo, size, 6)
    veil = np.clip(smooth_field(geo, size, 5) - 0.3, 0, 1)
    lesion_rgb = target[None, None, :] * (1 + (0.18 if irregular else 0.06) * shade)[..., None]
    if colour == "pink":
        # Pearly, translucent rim of an erythematous papule.
        rim = np.clip(1 - inside_depth / (0.25 * scene.radius * s), 0, 1) * (inside_depth > 0)
        lesion_rgb = mix(lesion_rgb, np.float32([0.95, 0.78, 0.78]), 0.35 * rim[..., None])
    elif colour == "dark":
        # Blue-grey veil over part of a dark lesion.
        lesion_rgb = mix(lesion_rgb, _BLUE_GREY, 0.5 * veil[..., None])

    texture = attrs["texture"]
    fine = blur(tex.standard_normal((size, size)).astype(np.float32), max(0.6, 0.008 * s))
    fine /= fine.std() + 1e-6
    if texture == "scaly":
        flakes = np.clip((fine - 1.0) * 1.5, 0, 1)
        lesion_rgb = mix(lesion_rgb, _KERATIN, 0.5 * flakes[..., None])
    elif texture == "dotted":
        dots = np.clip((fine - 1.4) * 2.0, 0, 1)
        lesion_rgb = mix(lesion_rgb, target * 0.45, dots[..., None])
    return lesion_rgb


def _hair_layer(rng: np.random.Generator, size: int, strands: int) -> np.ndarray:
    """Alpha (size, size) of thin curved hairs, drawn at 3x and downsampled (anti-aliased)."""
    geometry = rng.uniform(-0.1, 1.1, size=(strands, 3, 2))
    widths = rng.uniform(0.004, 0.008, size=strands)
    if strands == 0:
        return np.zeros((size, size), np.float32)
    scale = 3 * size
    canvas = Image.new("L", (scale, scale), 0)
    draw = ImageDraw.Draw(canvas)
    t = np.linspace(0, 1, 24)[:, None]
    for (p0, p1, p2), w in zip(geometry, widths, strict=True):
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        points = [tuple(pt) for pt in (curve * scale).tolist()]
        draw.line(points, fill=255, width=max(2, round(w * scale)), joint="curve")
    small = canvas.resize((size, size), Image.BOX)
    return np.asarray(small, np.float32) / 255.0


def _draw_ruler(img: np.ndarray, band: tuple[int, int], top: bool, offset: float) -> None:
    """A millimetre-ruler strip across the image in rows band[0]:band[1], ticks inwards."""
    size = img.shape[0]
    y0, y1 = band
    img[y0:y1] = np.array([0.90, 0.88, 0.78], np.float32)
    step = max(2.0, 0.03 * size)
    height = y1 - y0
    for i, x in enumerate(np.arange(offset * step, size, step)):
        length = max(1, round(height * (0.7 if i % 5 == 0 else 0.4)))
        xi = int(x)
        rows = slice(y0, y0 + length) if top else slice(y1 - length, y1)
        img[rows, xi : xi + 1] = 0.15


def _camera(
    img: np.ndarray, scene: _Scene, u: np.ndarray, v: np.ndarray, tex: np.random.Generator
) -> np.ndarray:
    """Uneven lighting, white balance, defocus and sensor noise; `u`, `v` in [-0.5, 0.5]."""
    light = 1 + scene.light_grad * (u * np.cos(scene.light_angle) + v * np.sin(scene.light_angle))
    light = light - scene.vignette * (u**2 + v**2)
    img = img * (scene.brightness * light)[..., None] * scene.white_balance
    img = blur(img, scene.blur * img.shape[0])
    return img + scene.noise_level * tex.standard_normal(img.shape).astype(np.float32)


def render_clinical(
    attrs: Mapping[str, str],
    skin_tone: float,
    geo: np.random.Generator,
    tex: np.random.Generator,
    size: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """RGB photograph (size, size, 3) uint8, lesion mask (size, size) bool, nuisance values."""
    s = float(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    irregular = attrs["border"] == "irregular"
    scene = _draw_scene(geo, irregular)
    outline, cx, cy, band_h = _place_lesion(scene, s)

    skin = mix(_SKIN_FAIR, _SKIN_BROWN, skin_tone)
    img = _skin(skin, geo, tex, size)

    # Lesion: signed distance to the outline (pixels), soft edge, colour family.
    dist = np.hypot(xx - cx, yy - cy)
    theta = np.arctan2(yy - cy, xx - cx)
    inside_depth = outline.radius_at(theta) - dist
    mask = inside_depth > 0
    edge = np.float32(0.6 + 0.004 * s)
    fade = smooth_field(geo, size, 4)
    if irregular:
        # Ill-defined in places: the fade width varies along the outline.
        edge = edge + 0.03 * s * np.clip(fade, 0, None)
    alpha = np.clip(inside_depth / edge + 0.5, 0, 1)
    lesion_rgb = _lesion_colour(attrs, skin, scene, inside_depth, geo, tex)
    img = mix(img, lesion_rgb, alpha[..., None])

    if scene.hair_strands:
        hair = _hair_layer(geo, size, scene.hair_strands)
        img = mix(img, _HAIR, 0.85 * hair[..., None])
    if scene.ruler:
        band = (0, band_h) if scene.ruler_top else (size - band_h, size)
        _draw_ruler(img, band, scene.ruler_top, scene.ruler_offset)

    img = _camera(img, scene, xx / s - 0.5, yy / s - 0.5, tex)
    rgb = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    nuisances = {
        "lesion_radius": scene.radius,
        "aspect": scene.aspect,
        "rotation_deg": float(np.degrees(scene.rotation)),
        "centre_x": cx / s,
        "centre_y": cy / s,
        "hair_strands": scene.hair_strands,
        "ruler": int(scene.ruler),
        "blur": scene.blur,
        "lighting": float(scene.light_grad),
    }
    return rgb, mask, nuisances
