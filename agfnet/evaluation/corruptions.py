"""Image corruptions of `agfnet robustness`: photograph and ultrasound degradations, 3 severities.

Every corruption acts on a decoded image (a PIL image at its own size, 8-bit) before the
evaluation transform, so it degrades what the scanner or camera would have delivered.
Pixel values are handled as floats in [0, 1], clipped and rounded back to 8 bits; the
mode and size of the image are kept. Randomness comes only from the `numpy` generator
passed in (`row_rng` gives one per manifest row and modality), so a result is
reproducible, and every severity of a row draws the same random numbers: a higher
severity scales the same noise field instead of drawing a new one.

Gaussian noise, Gaussian blur and JPEG use severities 1, 3 and 5 of ImageNet-C (Hendrycks
and Dietterich, "Benchmarking neural network robustness to common corruptions and
perturbations", ICLR 2019); blur is scaled to the image's size. The ultrasound
corruptions follow the physics the synthetic benchmark simulates (docs/synthetic.md):
speckle, overall gain, depth attenuation.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from PIL import Image

from agfnet.data.manifest import MODALITIES

__all__ = [
    "CORRUPTIONS",
    "FAMILIES",
    "MAX_SEVERITY",
    "Corruption",
    "corrupt",
    "row_rng",
]

MAX_SEVERITY = 3

# The side, in pixels, that blur sigmas refer to (ImageNet-C's image size).
REFERENCE_SIDE = 224

Params = Mapping[str, float]
PixelFn = Callable[[np.ndarray, np.random.Generator, Params], np.ndarray]


def _gaussian_noise(x: np.ndarray, rng: np.random.Generator, p: Params) -> np.ndarray:
    # Independent per pixel and channel: sensor read noise.
    return x + p["sigma"] * rng.standard_normal(x.shape, dtype=np.float32)


def _gaussian_blur(x: np.ndarray, rng: np.random.Generator, p: Params) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    # Scaled to the image so that, after the resize to the model's input, a severity
    # blurs the same fraction of the lesion whatever the stored resolution.
    sigma = p["sigma_224"] * min(x.shape[:2]) / REFERENCE_SIDE
    return gaussian_filter(x, sigma=(sigma, sigma, 0.0), mode="reflect")


def _brightness_contrast(x: np.ndarray, rng: np.random.Generator, p: Params) -> np.ndarray:
    # Contrast about the image's mean grey level keeps the colour balance; both terms
    # grow linearly with severity, so each pixel's change grows too.
    mean = x.mean()
    return (x - mean) * p["contrast"] + mean + p["brightness"]


def _jpeg(x: np.ndarray, rng: np.random.Generator, p: Params) -> np.ndarray:
    image = Image.fromarray(_to_uint8(x).squeeze(-1) if x.shape[-1] == 1 else _to_uint8(x))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(p["quality"]))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return _to_float(decoded.convert(image.mode))


def _speckle(x: np.ndarray, rng: np.random.Generator, p: Params) -> np.ndarray:
    # A fraction s of each pixel's intensity becomes fully developed speckle (exponential
    # intensity, Rayleigh amplitude): factor (1 - s) + s * E, E ~ Exp(1), mean 1, std s.
    # One field for all channels, so a grey scan stays grey.
    s = p["std"]
    field = rng.standard_exponential(x.shape[:2], dtype=np.float32)[..., None]
    return x * ((1.0 - s) + s * field)


def _gain(x: np.ndarray, rng: np.random.Generator, p: Params) -> np.ndarray:
    return x * p["factor"]


def _depth_attenuation(x: np.ndarray, rng: np.random.Generator, p: Params) -> np.ndarray:
    # Under-compensated attenuation: the loss in dB grows linearly with depth (image rows,
    # skin surface at the top) and reaches `bottom_db` at the last row.
    depth = np.linspace(0.0, 1.0, x.shape[0], dtype=np.float32)[:, None, None]
    return x * 10.0 ** (-p["bottom_db"] * depth / 20.0)


@dataclass(frozen=True)
class Corruption:
    """One corruption: what it does and its parameters at severities 1..MAX_SEVERITY.

    Attributes:
        name: registry key.
        modality: "clinical", "ultrasound", or "any" (blur serves both).
        description: one line for the docs and reports.
        levels: the parameters of severities 1, 2, 3 (index 0 is severity 1).
        fn: (float32 (H, W, C) in [0, 1], generator, parameters) -> float32 (H, W, C),
            clipped afterwards.
    """

    name: str
    modality: str
    description: str
    levels: tuple[Params, ...]
    fn: PixelFn

    def params(self, severity: int) -> dict[str, float]:
        """Args: severity in 1..MAX_SEVERITY. Returns: its parameters (a new dict)."""
        _check_severity(severity)
        return dict(self.levels[severity - 1])

    def __call__(self, image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
        """Corrupt one image.

        Args:
            image: a PIL image (mode RGB or L), any size.
            severity: 0 (identity, a copy) to MAX_SEVERITY.
            rng: the random source (see `row_rng`).

        Returns:
            A new PIL image of the same mode and size.
        """
        if severity == 0:
            return image.copy()
        params = self.params(severity)
        out = self.fn(_to_float(image), rng, params)
        return _from_float(out, image.mode)


def _check_severity(severity: int) -> None:
    if not 0 <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity must be in 0..{MAX_SEVERITY}; got {severity}")


def _to_float(image: Image.Image) -> np.ndarray:
    """PIL (RGB or L) -> float32 (H, W, C) in [0, 1]."""
    if image.mode not in ("RGB", "L"):
        raise ValueError(f"corruptions take RGB or L images; got mode {image.mode}")
    x = np.asarray(image, dtype=np.float32) / 255.0
    return x[..., None] if x.ndim == 2 else x


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _from_float(x: np.ndarray, mode: str) -> Image.Image:
    pixels = _to_uint8(x)
    return Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode=mode)


CORRUPTIONS: Mapping[str, Corruption] = MappingProxyType(
    {
        c.name: c
        for c in (
            Corruption(
                "gaussian_noise",
                "clinical",
                "additive Gaussian noise per pixel and channel, std sigma (of full scale)",
                tuple({"sigma": s} for s in (0.08, 0.18, 0.38)),
                _gaussian_noise,
            ),
            Corruption(
                "gaussian_blur",
                "any",
                "Gaussian blur, std sigma_224 pixels per 224 pixels of the shorter side",
                tuple({"sigma_224": s} for s in (1.0, 3.0, 6.0)),
                _gaussian_blur,
            ),
            Corruption(
                "brightness_contrast",
                "clinical",
                "contrast scaled about the image mean, then brightness added (of full scale)",
                tuple({"contrast": 1.0 - 0.2 * s, "brightness": 0.1 * s} for s in (1, 2, 3)),
                _brightness_contrast,
            ),
            Corruption(
                "jpeg",
                "clinical",
                "JPEG compression at this quality (Pillow, 4:2:0 chroma subsampling)",
                tuple({"quality": q} for q in (25, 15, 7)),
                _jpeg,
            ),
            Corruption(
                "speckle",
                "ultrasound",
                "multiplicative speckle (1 - std) + std * Exp(1), one field for all channels",
                tuple({"std": s} for s in (0.25, 0.5, 0.8)),
                _speckle,
            ),
            Corruption(
                "gain",
                "ultrasound",
                "overall gain: every intensity times factor",
                tuple({"factor": f} for f in (0.7, 0.5, 0.3)),
                _gain,
            ),
            Corruption(
                "depth_attenuation",
                "ultrasound",
                "intensity loss growing linearly in dB with depth, bottom_db at the last row",
                tuple({"bottom_db": d} for d in (6.0, 12.0, 20.0)),
                _depth_attenuation,
            ),
        )
    }
)

# Pairs applied together for the target "both", at the same severity; each family also
# names the corruption of each single-modality target.
FAMILIES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "noise": {"clinical": "gaussian_noise", "ultrasound": "speckle"},
        "blur": {"clinical": "gaussian_blur", "ultrasound": "gaussian_blur"},
        "intensity": {"clinical": "brightness_contrast", "ultrasound": "gain"},
        "signal_loss": {"clinical": "jpeg", "ultrasound": "depth_attenuation"},
    }
)


def corrupt(image: Image.Image, name: str, severity: int, rng: np.random.Generator) -> Image.Image:
    """Apply the registered corruption `name` (see `CORRUPTIONS`).

    Args:
        image: PIL image, mode RGB or L.
        name: a key of `CORRUPTIONS`.
        severity: 0 (identity) to MAX_SEVERITY.
        rng: random source.

    Returns:
        The corrupted image: same mode and size.
    """
    if name not in CORRUPTIONS:
        raise KeyError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name](image, severity, rng)


def row_rng(seed: int, row: int, modality: str) -> np.random.Generator:
    """The random source of one image: a function of the seed, the row and the modality only.

    Args:
        seed: the run's seed (>= 0).
        row: 1-based manifest row number.
        modality: "clinical" or "ultrasound" (the two images of a row get different noise).

    Returns:
        A fresh `numpy.random.Generator`.
    """
    return np.random.default_rng([seed, row, MODALITIES.index(modality)])
