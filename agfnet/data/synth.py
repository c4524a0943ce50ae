"""Synthetic paired clinical photograph + skin ultrasound benchmark, built so fusion is necessary.

Every sample has latent attributes: surface attributes that only the clinical photograph
shows (colour family, border) and depth attributes that only the ultrasound shows
(invasion depth, echogenicity, posterior features). The class-attribute table (`TABLE`) is
chosen so the photograph alone confuses BCC with SCC and melanoma with seborrheic
keratosis, the ultrasound alone confuses BCC with nevus and SCC with melanoma, and the pair
separates all five. Each attribute deviates from its class prototype with a documented
probability, so the Bayes-optimal accuracies (`bayes_accuracies`) are known exactly.

The images depend only on the attributes and on nuisances (size, position, skin tone,
lighting, hair, gain, speckle ...), never on the class itself. Pure numpy + PIL.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from agfnet.errors import UserError

GENERATOR_VERSION = "1.0"
MIN_SIZE = 32
MAX_SIZE = 1024

CLASSES: tuple[str, ...] = ("BCC", "SCC", "MEL", "SK", "NEV")
CLASS_NAMES: dict[str, str] = {
    "BCC": "basal cell carcinoma",
    "SCC": "squamous cell carcinoma",
    "MEL": "melanoma",
    "SK": "seborrheic keratosis",
    "NEV": "melanocytic nevus",
}
MODALITIES: tuple[str, ...] = ("clinical", "ultrasound")


@dataclass(frozen=True)
class Attribute:
    """One latent attribute of a lesion.

    Args:
        name: column name in attributes.csv.
        modality: the image that shows it, "clinical" or "ultrasound".
        levels: its discrete values.
        noise: probability that a sample's value deviates from its class prototype (the
            new value is then uniform over the other levels); None for a free nuisance
            attribute, drawn uniformly whatever the class, so it carries no class information.
    """

    name: str
    modality: str
    levels: tuple[str, ...]
    noise: Fraction | None


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("colour", "clinical", ("pink", "dark", "tan"), Fraction(1, 40)),
    Attribute("border", "clinical", ("regular", "irregular"), Fraction(1, 10)),
    Attribute("texture", "clinical", ("smooth", "scaly", "dotted"), None),
    Attribute("depth", "ultrasound", ("superficial", "dermal", "deep"), Fraction(1, 20)),
    Attribute("echo", "ultrasound", ("hypoechoic", "hyperechoic"), Fraction(1, 10)),
    Attribute("posterior", "ultrasound", ("none", "enhancement", "shadow"), Fraction(1, 10)),
    Attribute("heterogeneity", "ultrasound", ("homogeneous", "heterogeneous"), None),
)
ATTRIBUTE_BY_NAME: dict[str, Attribute] = {a.name: a for a in ATTRIBUTES}
NOISY_ATTRIBUTES: tuple[Attribute, ...] = tuple(a for a in ATTRIBUTES if a.noise is not None)

# Class prototypes of the informative attributes. Clinical partition: {BCC, SCC} pink and
# regular, {MEL, SK} dark and irregular, {NEV} tan and regular. Ultrasound partition:
# {BCC, NEV} dermal, hypoechoic, no posterior feature; {SCC, MEL} deep, hypoechoic,
# posterior enhancement; {SK} superficial, hyperechoic, posterior shadow.
TABLE: dict[str, dict[str, str]] = {
    "BCC": {
        "colour": "pink",
        "border": "regular",
        "depth": "dermal",
        "echo": "hypoechoic",
        "posterior": "none",
    },
    "SCC": {
        "colour": "pink",
        "border": "regular",
        "depth": "deep",
        "echo": "hypoechoic",
        "posterior": "enhancement",
    },
    "MEL": {
        "colour": "dark",
        "border": "irregular",
        "depth": "deep",
        "echo": "hypoechoic",
        "posterior": "enhancement",
    },
    "SK": {
        "colour": "dark",
        "border": "irregular",
        "depth": "superficial",
        "echo": "hyperechoic",
        "posterior": "shadow",
    },
    "NEV": {
        "colour": "tan",
        "border": "regular",
        "depth": "dermal",
        "echo": "hypoechoic",
        "posterior": "none",
    },
}

# Fraction of patients with two lesions, so grouped k-fold has groups to respect.
TWO_LESION_PATIENT_FRACTION = 0.2

MANIFEST_COLUMNS: tuple[str, ...] = (
    "clinical",
    "ultrasound",
    "label",
    "patient_id",
    "lesion_id",
    "clinical_mask",
    "ultrasound_mask",
)
NUISANCE_COLUMNS: tuple[str, ...] = (
    "skin_tone",
    "lesion_radius",
    "aspect",
    "rotation_deg",
    "centre_x",
    "centre_y",
    "scan_row",
    "hair_strands",
    "ruler",
    "blur",
    "lighting",
    "gain",
    "attenuation",
    "dermis_thickness",
    "lesion_thickness",
)
OUTPUT_FILES: tuple[str, ...] = (
    "manifest.csv",
    "attributes.csv",
    "README.md",
    "synth.json",
    "images",
    "masks",
)


@dataclass(frozen=True)
class SampleSpec:
    """Everything decided about one sample before its images are rendered.

    Args:
        index: 0-based position in the manifest.
        lesion_id: unique id, also the image file stem.
        patient_id: id shared by the lesions of one patient.
        label: class name, one of `CLASSES`.
        attributes: level of every attribute in `ATTRIBUTES`.
        flipped: for every noisy attribute, whether it deviates from the class prototype.
        skin_tone: 0 (fair) .. 1 (brown), shared by the lesions of one patient.
        render_seed: seed sequence of the rendering nuisances.
    """

    index: int
    lesion_id: str
    patient_id: str
    label: str
    attributes: dict[str, str]
    flipped: dict[str, bool]
    skin_tone: float
    render_seed: np.random.SeedSequence = field(repr=False)


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


@dataclass(frozen=True)
class SynthSummary:
    """What `generate` wrote.

    Args:
        out: the output folder.
        manifest: path of manifest.csv.
        n_pairs: number of rows (pairs) written.
        n_per_class: pairs per class.
        size: image side in pixels.
        seed: the seed.
        classes: class names in table order.
        bayes: Bayes-optimal accuracies, keys "clinical", "ultrasound", "both".
    """

    out: Path
    manifest: Path
    n_pairs: int
    n_per_class: int
    size: int
    seed: int
    classes: tuple[str, ...]
    bayes: dict[str, float]


# ---------------------------------------------------------------------------------------
# Attribute model and Bayes-optimal accuracies
# ---------------------------------------------------------------------------------------


def _modality_attributes(modality: str) -> tuple[Attribute, ...]:
    names = MODALITIES if modality == "both" else (modality,)
    if modality != "both" and modality not in MODALITIES:
        raise ValueError(f"modality must be clinical, ultrasound or both, got {modality!r}")
    return tuple(a for a in NOISY_ATTRIBUTES if a.modality in names)


def _level_probability(attr: Attribute, level: str, prototype: str) -> Fraction:
    """P(observed level | class prototype) under the noise model of `attr`."""
    assert attr.noise is not None
    if level == prototype:
        return 1 - attr.noise
    return attr.noise / (len(attr.levels) - 1)


def class_likelihoods(attributes: Mapping[str, str], modality: str = "both") -> list[Fraction]:
    """Exact likelihood of the observed attributes under each class.

    Args:
        attributes: attribute levels of one sample (extra keys are ignored).
        modality: "clinical", "ultrasound" or "both": which attributes are seen.

    Returns:
        One exact probability per class, in `CLASSES` order. Free nuisance attributes are
        left out: their distribution is the same for every class.
    """
    attrs = _modality_attributes(modality)
    out = []
    for label in CLASSES:
        p = Fraction(1)
        for a in attrs:
            p *= _level_probability(a, attributes[a.name], TABLE[label][a.name])
        out.append(p)
    return out


def bayes_predict(attributes: Mapping[str, str], modality: str = "both") -> str:
    """The Bayes-optimal decision (equal class priors) from the true latent attributes.

    Args:
        attributes: attribute levels of one sample.
        modality: "clinical", "ultrasound" or "both".

    Returns:
        The class name of highest posterior; ties go to the first in `CLASSES` order.
    """
    lik = class_likelihoods(attributes, modality)
    return CLASSES[max(range(len(CLASSES)), key=lambda k: (lik[k], -k))]


def bayes_accuracies() -> dict[str, float]:
    """Exact Bayes-optimal accuracies of the benchmark, with equal class priors.

    Sums, over every combination x of the visible noisy attributes, max_k P(x | k) / K,
    in exact rational arithmetic (the free nuisance attributes cancel out).

    Returns:
        {"clinical": ..., "ultrasound": ..., "both": ...}: the best accuracy any
        classifier can reach seeing the photograph only, the ultrasound only, or both.
    """
    result = {}
    for modality in (*MODALITIES, "both"):
        attrs = _modality_attributes(modality)
        total = Fraction(0)
        for levels in itertools.product(*(a.levels for a in attrs)):
            observed = {a.name: lv for a, lv in zip(attrs, levels, strict=True)}
            total += max(class_likelihoods(observed, modality))
        result[modality] = float(total / len(CLASSES))
    return result


def _sample_attributes_one(rng: np.random.Generator, label: str) -> tuple[dict, dict]:
    attributes: dict[str, str] = {}
    flipped: dict[str, bool] = {}
    for a in ATTRIBUTES:
        if a.noise is None:
            attributes[a.name] = a.levels[int(rng.integers(len(a.levels)))]
            continue
        proto = TABLE[label][a.name]
        flip = bool(rng.random() < float(a.noise))
        if flip:
            others = [lv for lv in a.levels if lv != proto]
            attributes[a.name] = others[int(rng.integers(len(others)))]
        else:
            attributes[a.name] = proto
        flipped[a.name] = flip
    return attributes, flipped


def _assign_patients(rng: np.random.Generator, n: int) -> list[int]:
    """Patient number of each sample: about 20% of patients have two lesions."""
    n_double = round(n * TWO_LESION_PATIENT_FRACTION / (1 + TWO_LESION_PATIENT_FRACTION))
    perm = rng.permutation(n)
    groups = [perm[2 * i : 2 * i + 2].tolist() for i in range(n_double)]
    groups += [[int(i)] for i in perm[2 * n_double :]]
    # Number patients in order of their first lesion, so ids read naturally in the manifest.
    groups.sort(key=min)
    patient = [0] * n
    for number, members in enumerate(groups):
        for i in members:
            patient[i] = number
    return patient


def sample_attributes(n_per_class: int, seed: int) -> list[SampleSpec]:
    """Draw the labels, patients and latent attributes of a benchmark without rendering.

    Cheap (no images), so a large set can be drawn to check the Bayes figures. `generate`
    renders exactly these samples for the same arguments.

    Args:
        n_per_class: samples per class; classes are interleaved (row i has class i mod 5).
        seed: the benchmark seed.

    Returns:
        One `SampleSpec` per sample, in manifest order.
    """
    n = n_per_class * len(CLASSES)
    root = np.random.SeedSequence(seed)
    plan_seq, *sample_seqs = root.spawn(n + 1)
    plan_rng = np.random.default_rng(plan_seq)
    patient = _assign_patients(plan_rng, n)
    tones = plan_rng.beta(2.0, 2.5, size=max(patient, default=-1) + 1)
    specs = []
    for i, seq in enumerate(sample_seqs):
        attr_seq, render_seq = seq.spawn(2)
        label = CLASSES[i % len(CLASSES)]
        attributes, flipped = _sample_attributes_one(np.random.default_rng(attr_seq), label)
        specs.append(
            SampleSpec(
                index=i,
                lesion_id=f"L{i + 1:05d}",
                patient_id=f"P{patient[i] + 1:05d}",
                label=label,
                attributes=attributes,
                flipped=flipped,
                skin_tone=float(tones[patient[i]]),
                render_seed=render_seq,
            )
        )
    return specs


# ---------------------------------------------------------------------------------------
# Image primitives
# ---------------------------------------------------------------------------------------


def _blur_axis(a: np.ndarray, sigma: float, axis: int) -> np.ndarray:
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


def _blur(a: np.ndarray, sigma_y: float, sigma_x: float | None = None) -> np.ndarray:
    """Separable Gaussian blur of the first two axes (sigmas in pixels), reflected edges."""
    return _blur_axis(_blur_axis(a, sigma_y, 0), sigma_y if sigma_x is None else sigma_x, 1)


def _smooth_field(rng: np.random.Generator, size: int, cells: int | tuple[int, int]) -> np.ndarray:
    """Smooth random field (size, size), zero mean, unit std: a coarse grid upsampled.

    The number of random draws depends on `cells` only, not on `size`, so a seed gives the
    same large-scale pattern at every image size.
    """
    cy, cx = (cells, cells) if isinstance(cells, int) else cells
    grid = rng.standard_normal((cy, cx)).astype(np.float32)
    up = np.asarray(Image.fromarray(grid, "F").resize((size, size), Image.BICUBIC))
    return (up - up.mean()) / (up.std() + 1e-6)


def _smooth_curve(rng: np.random.Generator, size: int, knots: int = 6) -> np.ndarray:
    """Smooth random 1-D curve of `size` samples, zero mean, unit std."""
    values = rng.standard_normal(knots)
    x = np.linspace(0, knots - 1, size)
    curve = np.interp(x, np.arange(knots), values)
    curve = _blur_axis(curve.astype(np.float32), size / (2.5 * knots), 0)
    return (curve - curve.mean()) / (curve.std() + 1e-6)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    return a + (b - a) * t


# ---------------------------------------------------------------------------------------
# Clinical photograph
# ---------------------------------------------------------------------------------------

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


def _render_clinical(
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

    # Nuisances drawn first and in a fixed count, so a seed gives the same scene at any size.
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
    blur = float(
        geo.uniform(0.0, 0.005) + (geo.uniform(0.004, 0.01) if geo.random() < 0.1 else 0.0)
    )
    colour_jitter = geo.normal(0, 0.05, size=3).astype(np.float32)
    noise_level = float(geo.uniform(0.004, 0.02))

    # The lesion must lie inside the image and clear of the ruler band.
    outline = _Outline(radius * s, aspect, rotation, harmonics)
    angles = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    r = outline.radius_at(angles)
    left, right = (
        (r * -np.minimum(np.cos(angles), 0)).max(),
        (r * np.maximum(np.cos(angles), 0)).max(),
    )
    up, down = (r * -np.minimum(np.sin(angles), 0)).max(), (r * np.maximum(np.sin(angles), 0)).max()
    margin = 0.04 * s + 1
    band_h = max(3, round(0.09 * s))
    y_lo = margin + up + (band_h if ruler and ruler_top else 0)
    y_hi = s - margin - down - (band_h if ruler and not ruler_top else 0)
    cx = float(margin + left + pos[0] * max(s - 2 * margin - left - right, 0))
    cy = float(y_lo + pos[1] * max(y_hi - y_lo, 0))

    # Skin: tone, mottling and pores.
    skin = _mix(_SKIN_FAIR, _SKIN_BROWN, skin_tone)
    mottle = 1 + 0.04 * _smooth_field(geo, size, 5)
    pores = 1 + 0.03 * _blur(
        tex.standard_normal((size, size)).astype(np.float32), max(0.5, 0.004 * s)
    )
    img = skin[None, None, :] * (mottle * pores)[..., None]

    # Lesion: signed distance to the outline (pixels), soft edge, colour family.
    dist = np.hypot(xx - cx, yy - cy)
    theta = np.arctan2(yy - cy, xx - cx)
    inside_depth = outline.radius_at(theta) - dist
    mask = inside_depth > 0
    edge = np.float32(0.6 + 0.004 * s)
    fade = _smooth_field(geo, size, 4)
    if irregular:
        # Ill-defined in places: the fade width varies along the outline.
        edge = edge + 0.03 * s * np.clip(fade, 0, None)
    alpha = np.clip(inside_depth / edge + 0.5, 0, 1)

    colour = attrs["colour"]
    if colour == "pink":
        target = _mix(skin, _PINK, 0.8)
    elif colour == "dark":
        target = _mix(skin, _DARK, 0.85)
    else:
        target = skin * _TAN_FACTOR
    target = np.clip(target * (1 + colour_jitter), 0, 1)
    shade = _smooth_field(geo, size, 6)
    veil = np.clip(_smooth_field(geo, size, 5) - 0.3, 0, 1)
    lesion_rgb = target[None, None, :] * (1 + (0.18 if irregular else 0.06) * shade)[..., None]
    if colour == "pink":
        # Pearly, translucent rim of an erythematous papule.
        rim = np.clip(1 - inside_depth / (0.25 * radius * s), 0, 1) * mask
        lesion_rgb = _mix(lesion_rgb, np.float32([0.95, 0.78, 0.78]), 0.35 * rim[..., None])
    elif colour == "dark":
        # Blue-grey veil over part of a dark lesion.
        lesion_rgb = _mix(lesion_rgb, _BLUE_GREY, 0.5 * veil[..., None])

    texture = attrs["texture"]
    fine = _blur(tex.standard_normal((size, size)).astype(np.float32), max(0.6, 0.008 * s))
    fine /= fine.std() + 1e-6
    if texture == "scaly":
        flakes = np.clip((fine - 1.0) * 1.5, 0, 1)
        lesion_rgb = _mix(lesion_rgb, _KERATIN, 0.5 * flakes[..., None])
    elif texture == "dotted":
        dots = np.clip((fine - 1.4) * 2.0, 0, 1)
        lesion_rgb = _mix(lesion_rgb, target * 0.45, dots[..., None])
    img = _mix(img, lesion_rgb, alpha[..., None])

    if hair_strands:
        hair = _hair_layer(geo, size, hair_strands)
        img = _mix(img, _HAIR, 0.85 * hair[..., None])
    if ruler:
        band = (0, band_h) if ruler_top else (size - band_h, size)
        _draw_ruler(img, band, ruler_top, ruler_offset)

    u, v = xx / s - 0.5, yy / s - 0.5
    light = 1 + light_grad * (u * np.cos(light_angle) + v * np.sin(light_angle))
    light = light - vignette * (u**2 + v**2)
    img = img * (brightness * light)[..., None] * white_balance
    img = _blur(img, blur * s)
    img = img + noise_level * tex.standard_normal(img.shape).astype(np.float32)
    rgb = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    nuisances = {
        "lesion_radius": radius,
        "aspect": aspect,
        "rotation_deg": float(np.degrees(rotation)),
        "centre_x": cx / s,
        "centre_y": cy / s,
        "hair_strands": hair_strands,
        "ruler": int(ruler),
        "blur": blur,
        "lighting": float(light_grad),
    }
    return rgb, mask, nuisances


# ---------------------------------------------------------------------------------------
# Ultrasound B-mode image
# ---------------------------------------------------------------------------------------

# Lesion thickness as a fraction of the dermis thickness, per invasion depth: superficial
# stays in the upper dermis, dermal ends inside it, deep crosses into the subcutis.
_THICKNESS = {"superficial": (0.14, 0.24), "dermal": (0.5, 0.75), "deep": (1.35, 1.75)}
_ECHO_LEVEL = {"hypoechoic": 0.06, "hyperechoic": 1.6}
_POSTERIOR_GAIN = {"none": 0.0, "enhancement": 1.3, "shadow": -0.85}


def _render_ultrasound(
    attrs: Mapping[str, str],
    scan: tuple[float, float],
    geo: np.random.Generator,
    tex: np.random.Generator,
    size: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """B-mode cross-section along the photograph's x axis; `scan` = lesion's (x0, x1) there."""
    s = float(size)
    y = (np.arange(size, dtype=np.float32) + 0.5)[:, None]
    x = (np.arange(size, dtype=np.float32) + 0.5)[None, :]

    entry0 = geo.uniform(0.10, 0.16) * s
    tilt = geo.uniform(-0.04, 0.04)
    dermis = float(geo.uniform(0.25, 0.31))
    subcutis = geo.uniform(0.26, 0.34) * s
    thickness = float(geo.uniform(*_THICKNESS[attrs["depth"]])) * dermis
    profile_power = geo.uniform(0.3, 0.5)
    gain = float(geo.uniform(0.75, 1.3))
    attenuation = float(geo.uniform(0.6, 1.6))
    compression = geo.uniform(15, 30)
    speckle_x, speckle_y = geo.uniform(0.007, 0.011), geo.uniform(0.0035, 0.005)
    noise_level = geo.uniform(0.01, 0.03)

    entry = entry0 + tilt * (x - s / 2) + 0.008 * s * _smooth_curve(geo, size)[None, :]
    dermis_bottom = entry + dermis * s * (1 + 0.06 * _smooth_curve(geo, size)[None, :])
    fascia = dermis_bottom + subcutis * (1 + 0.05 * _smooth_curve(geo, size)[None, :])

    def ridge(centre: np.ndarray, width: float) -> np.ndarray:
        return np.exp(-0.5 * ((y - centre) / max(0.6, width * s)) ** 2)

    def step(edge: np.ndarray) -> np.ndarray:
        return np.clip(y - edge + 0.5, 0, 1)

    # Tissue echo amplitude per layer: anechoic gel, fibrous dermis, dark subcutis with
    # bright septa, bright fascia, striated muscle.
    fibres = _smooth_field(geo, size, (24, 6))
    septa = (np.abs(_smooth_field(geo, size, (6, 4))) < 0.18).astype(np.float32)
    stria = 0.5 + 0.5 * np.sin(2 * np.pi * (y / (0.03 * s) + 0.15 * x / s))
    amp = np.full((size, size), 0.03, np.float32)
    amp = _mix(amp, 0.5 * (1 + 0.15 * fibres), step(entry))
    amp = _mix(amp, 0.2 + 0.45 * _blur(septa, max(0.5, 0.004 * s)), step(dermis_bottom))
    amp = _mix(amp, 0.28 + 0.12 * stria, step(fascia))
    amp = amp + 0.8 * ridge(fascia, 0.006)

    # Lesion: a dome hanging from the entry echo over the photograph's scan-line extent.
    x0, x1 = scan
    half = max((x1 - x0) / 2, 0.5)
    u = (x - (x0 + x1) / 2) / half
    dome = np.clip(1 - u**2, 0, None) ** profile_power
    inside_cols = (np.abs(u) < 1).astype(np.float32)
    # An uneven lower edge, and at least one pixel of lesion in every column it spans.
    wobble = 1 + 0.08 * _smooth_curve(geo, size)[None, :]
    bottom = entry + np.maximum(thickness * s * dome * wobble, 1.0) * inside_cols
    lesion = (y >= entry) & (y < bottom) & (inside_cols > 0)
    level = _ECHO_LEVEL[attrs["echo"]]
    blobs = _smooth_field(geo, size, 10)
    if attrs["heterogeneity"] == "heterogeneous":
        interior = level * np.clip(1 + 0.6 * blobs, 0.2, 2.5) + 0.12 * np.clip(blobs - 0.8, 0, None)
    else:
        interior = np.full((size, size), level, np.float32)
    soft = np.clip(np.minimum(y - entry, bottom - y) / max(0.6, 0.004 * s) + 0.5, 0, 1) * lesion
    amp = _mix(amp, interior, soft)
    amp = amp + 1.3 * ridge(entry, 0.006)

    # Posterior feature: enhancement or acoustic shadow in the lesion's columns below it.
    taper = np.clip((1 - np.abs(u)) * half / max(1.0, 0.02 * s), 0, 1)
    below = np.clip((y - bottom) / max(1.0, 0.01 * s), 0, 1) * np.exp(
        -(y - bottom).clip(0) / (0.6 * s)
    )
    amp = amp * (1 + _POSTERIOR_GAIN[attrs["posterior"]] * taper * below)

    depth = np.clip(y - entry, 0, None) / s
    intensity = amp * np.exp(-attenuation * depth) * gain
    # Fully developed speckle: magnitude of a correlated complex Gaussian field (Rayleigh).
    field_re = _blur(
        tex.standard_normal((size, size)).astype(np.float32), speckle_y * s, speckle_x * s
    )
    field_im = _blur(
        tex.standard_normal((size, size)).astype(np.float32), speckle_y * s, speckle_x * s
    )
    speckle = np.hypot(field_re, field_im)
    speckle /= speckle.mean() + 1e-6
    intensity = intensity * speckle
    image = np.log1p(compression * intensity) / np.log1p(compression * 1.6)
    image = image + noise_level * tex.standard_normal(image.shape).astype(np.float32)
    grey = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    nuisances = {
        "gain": gain,
        "attenuation": attenuation,
        "dermis_thickness": dermis,
        "lesion_thickness": thickness,
    }
    return grey, lesion, nuisances


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
    clinical, cmask, nz_c = _render_clinical(spec.attributes, spec.skin_tone, geo_c, tex_c, size)
    # Scan line: the photograph row through the lesion centre; the ultrasound shows the
    # lesion over exactly the columns the photograph's mask covers on that row.
    scan_row = min(int(nz_c["centre_y"] * size), size - 1)
    cols = np.flatnonzero(cmask[scan_row])
    scan = (float(cols[0]), float(cols[-1] + 1))
    ultrasound, umask, nz_u = _render_ultrasound(spec.attributes, scan, geo_u, tex_u, size)
    nuisances = {"skin_tone": spec.skin_tone, **nz_c, "scan_row": scan_row, **nz_u}
    return RenderedPair(clinical, ultrasound, cmask, umask, nuisances)


# ---------------------------------------------------------------------------------------
# Writing a benchmark folder
# ---------------------------------------------------------------------------------------


def _png_bytes(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    # Fixed settings and no metadata: the same pixels always give the same bytes.
    Image.fromarray(array, mode).save(buffer, format="PNG", compress_level=6, optimize=False)
    return buffer.getvalue()


def _relative_paths(lesion_id: str) -> dict[str, str]:
    return {
        "clinical": f"images/clinical/{lesion_id}.png",
        "ultrasound": f"images/ultrasound/{lesion_id}.png",
        "clinical_mask": f"masks/clinical/{lesion_id}.png",
        "ultrasound_mask": f"masks/ultrasound/{lesion_id}.png",
    }


def _render_and_write(task: tuple[SampleSpec, int, str]) -> dict[str, float]:
    spec, size, root = task
    pair = render_pair(spec, size)
    paths = _relative_paths(spec.lesion_id)
    contents = {
        "clinical": _png_bytes(pair.clinical, "RGB"),
        "ultrasound": _png_bytes(pair.ultrasound, "L"),
        "clinical_mask": _png_bytes(pair.clinical_mask.astype(np.uint8) * 255, "L"),
        "ultrasound_mask": _png_bytes(pair.ultrasound_mask.astype(np.uint8) * 255, "L"),
    }
    for key, data in contents.items():
        Path(root, paths[key]).write_bytes(data)
    return pair.nuisances


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _format(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def attribute_table_markdown() -> str:
    """The class-attribute table as Markdown (one row per class, prototypes only)."""
    names = [a.name for a in NOISY_ATTRIBUTES]
    lines = [
        "| class | name | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for label in CLASSES:
        cells = " | ".join(TABLE[label][n] for n in names)
        lines.append(f"| {label} | {CLASS_NAMES[label]} (simulated) | {cells} |")
    return "\n".join(lines)


def _readme(n_per_class: int, size: int, seed: int, bayes: Mapping[str, float]) -> str:
    noise = "\n".join(
        f"- `{a.name}` ({a.modality}): {', '.join(a.levels)}; "
        + (
            f"deviates from the class prototype with probability {float(a.noise):.3f}"
            if a.noise is not None
            else "free nuisance, uniform whatever the class"
        )
        for a in ATTRIBUTES
    )
    return f"""# agfnet synthetic benchmark

Simulated data, not patient data: {n_per_class} pairs per class, {size} px, seed {seed},
generator version {GENERATOR_VERSION}. Written by `agfnet synth`.

Each row of `manifest.csv` pairs a clinical photograph with a skin ultrasound image (a
vertical cross-section through the lesion centre along the photograph's x axis). The
classes are named after common skin tumours but their appearance is simulated.

## Classes and their prototype attributes

{attribute_table_markdown()}

## Attributes

{noise}

`attributes.csv` holds the true attributes of every sample, whether each noisy attribute
was flipped away from its prototype, and the nuisance values. `masks/` holds the lesion
mask of every image.

## Bayes-optimal accuracy (equal class priors, exact)

| images seen | accuracy |
| --- | --- |
| clinical only | {bayes["clinical"]:.4f} |
| ultrasound only | {bayes["ultrasound"]:.4f} |
| both | {bayes["both"]:.4f} |
"""


def _check_arguments(n_per_class: int, size: int, workers: int) -> None:
    if n_per_class < 1:
        raise UserError(
            f"--n-per-class must be at least 1, got {n_per_class}; pass e.g. --n-per-class 100."
        )
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(
            f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}; "
            "pass e.g. --size 128 (lesions are unreadable below 32 px)."
        )
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}.")


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty `out` unless overwriting an earlier benchmark folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose another output folder.")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise UserError(
            f"output folder {out} is not empty; choose an empty or new folder, "
            "or pass --overwrite to replace an earlier benchmark there."
        )
    if not (out / "synth.json").is_file():
        raise UserError(
            f"--overwrite refused: {out} is not empty and holds no synth.json, so it is not "
            "a benchmark written by agfnet synth; choose an empty or new folder."
        )


def _install(tmp: Path, out: Path) -> None:
    """Move the finished folder `tmp` to `out` (one rename: never half-written)."""
    if out.exists():
        old = out.with_name(f".{out.name}.old{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def default_workers() -> int:
    """Default number of worker processes: min(2, CPU count)."""
    return max(1, min(2, os.cpu_count() or 1))


def generate(
    out: Path,
    n_per_class: int = 100,
    size: int = 128,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> SynthSummary:
    """Write a synthetic benchmark folder.

    Writes, under `out`: manifest.csv (clinical, ultrasound, label, patient_id, lesion_id;
    paths relative to `out`), images/{clinical,ultrasound}/*.png, masks/{clinical,
    ultrasound}/*.png (0/255 single channel), attributes.csv, README.md and synth.json.
    Everything is written to a hidden sibling folder and renamed into place at the end,
    so an interrupted run leaves no folder that looks finished. The same arguments give
    byte-identical files, whatever `workers`.

    Args:
        out: output folder; must be new or empty (or an earlier benchmark if `overwrite`).
        n_per_class: pairs per class (>= 1).
        size: image side in pixels (32 .. 1024).
        seed: benchmark seed.
        workers: processes rendering in parallel; None for `default_workers()`.
        progress: show a rich progress bar.
        overwrite: replace an earlier benchmark folder at `out`.

    Returns:
        A `SynthSummary` of what was written.

    Raises:
        UserError: invalid arguments or an output folder that may not be replaced.
    """
    out = Path(out)
    workers = default_workers() if workers is None else workers
    _check_arguments(n_per_class, size, workers)
    _prepare_out(out, overwrite)
    specs = sample_attributes(n_per_class, seed)
    bayes = bayes_accuracies()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        for sub in ("images/clinical", "images/ultrasound", "masks/clinical", "masks/ultrasound"):
            (tmp / sub).mkdir(parents=True)
        tasks = [(spec, size, str(tmp)) for spec in specs]
        nuisances = _run_tasks(tasks, workers, progress)
        _write_tables(tmp, specs, nuisances)
        (tmp / "README.md").write_text(_readme(n_per_class, size, seed, bayes), encoding="utf-8")
        meta = {
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "size": size,
            "n_per_class": n_per_class,
            "n_pairs": len(specs),
            "classes": list(CLASSES),
            "class_names": CLASS_NAMES,
            "bayes_accuracy": bayes,
            "attributes": {
                a.name: {
                    "modality": a.modality,
                    "levels": list(a.levels),
                    "noise": None if a.noise is None else float(a.noise),
                }
                for a in ATTRIBUTES
            },
            "table": TABLE,
        }
        (tmp / "synth.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        _install(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(
        out=out,
        manifest=out / "manifest.csv",
        n_pairs=len(specs),
        n_per_class=n_per_class,
        size=size,
        seed=seed,
        classes=CLASSES,
        bayes=bayes,
    )


def _run_tasks(
    tasks: list[tuple[SampleSpec, int, str]], workers: int, progress: bool
) -> list[dict[str, float]]:
    """Render and write every task, in order, optionally in worker processes."""
    advance: Callable[[], None] = lambda: None  # noqa: E731
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        bar.start()
        task_id = bar.add_task("rendering pairs", total=len(tasks))

        def advance() -> None:
            bar.advance(task_id)

    try:
        results = []
        if workers == 1 or len(tasks) < 2 * workers:
            for task in tasks:
                results.append(_render_and_write(task))
                advance()
            return results
        # fork where available: the workers need numpy and PIL only, and spawn would
        # re-import whatever the parent imported.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            for result in pool.imap(_render_and_write, tasks, chunksize=4):
                results.append(result)
                advance()
        return results
    finally:
        if bar is not None:
            bar.stop()


def _write_tables(
    root: Path, specs: Sequence[SampleSpec], nuisances: Sequence[dict[str, float]]
) -> None:
    attr_names = [a.name for a in ATTRIBUTES]
    flip_names = [f"{a.name}_flipped" for a in NOISY_ATTRIBUTES]
    attr_rows = []
    manifest_rows = []
    for spec, nz in zip(specs, nuisances, strict=True):
        paths = _relative_paths(spec.lesion_id)
        manifest_rows.append(
            [
                paths["clinical"],
                paths["ultrasound"],
                spec.label,
                spec.patient_id,
                spec.lesion_id,
                paths["clinical_mask"],
                paths["ultrasound_mask"],
            ]
        )
        attr_rows.append(
            [spec.lesion_id, spec.patient_id, spec.label]
            + [spec.attributes[n] for n in attr_names]
            + [int(spec.flipped[a.name]) for a in NOISY_ATTRIBUTES]
            + [_format(nz[c]) for c in NUISANCE_COLUMNS]
        )
    _write_csv(
        root / "attributes.csv",
        ["lesion_id", "patient_id", "label", *attr_names, *flip_names, *NUISANCE_COLUMNS],
        attr_rows,
    )
    _write_csv(root / "manifest.csv", MANIFEST_COLUMNS, manifest_rows)
