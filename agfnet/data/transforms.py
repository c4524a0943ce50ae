"""Paired image transforms: independent augmentation per modality, then normalisation.

The photograph and the ultrasound scan are different views of one lesion (a surface
photo and a depth cross-section), so there is no pixel correspondence to preserve: each
image gets its own random crop, flip and rotation. Colour jitter touches the photograph
only; speckle and gain touch the ultrasound only. Built on torchvision.transforms.v2 and
the global torch RNG, so `torch.manual_seed` makes every draw reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Triple = tuple[float, float, float]


class TransformConfig(BaseModel):
    """Input size, normalisation and augmentation of both modalities (all switchable).

    Attributes:
        img_size: side of the square output, pixels.
        clinical_mean, clinical_std: per-channel normalisation of the photograph (ImageNet).
        ultrasound_mean, ultrasound_std: of the ultrasound (ImageNet too: both encoders are
            ImageNet-initialised, and the grey image is replicated to three channels).
        hflip: random horizontal flip (p=0.5), both modalities.
        vflip: random vertical flip (p=0.5), photograph only: flipping an ultrasound scan
            vertically would put the skin surface at the bottom.
        rotation: random rotation in [-rotation, +rotation] degrees, both; 0 = off.
        scale: area range of RandomResizedCrop, both; (1, 1) with ratio (1, 1) = no crop.
        ratio: aspect-ratio range of RandomResizedCrop.
        color_jitter: (brightness, contrast, saturation, hue) jitter of the photograph;
            all zero = off.
        speckle: largest standard deviation of the multiplicative speckle noise of the
            ultrasound (each image draws its own in [0, speckle]); 0 = off.
        gain: range of the random overall gain (intensity factor) of the ultrasound;
            (1, 1) = off.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    img_size: int = Field(224, ge=8, le=4096)
    clinical_mean: Triple = IMAGENET_MEAN
    clinical_std: Triple = IMAGENET_STD
    ultrasound_mean: Triple = IMAGENET_MEAN
    ultrasound_std: Triple = IMAGENET_STD
    hflip: bool = True
    vflip: bool = True
    rotation: float = Field(15.0, ge=0.0, le=180.0)
    scale: tuple[float, float] = (0.7, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    color_jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.02)
    speckle: float = Field(0.15, ge=0.0, le=2.0)
    gain: tuple[float, float] = (0.8, 1.25)

    @model_validator(mode="after")
    def _check_ranges(self) -> TransformConfig:
        for name in ("scale", "ratio", "gain"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {lo, hi}")
        if self.scale[1] > 1:
            raise ValueError(f"scale is an area fraction: at most 1, got {self.scale}")
        if min(self.color_jitter) < 0 or self.color_jitter[3] > 0.5:
            raise ValueError(
                f"color_jitter values must be >= 0 and hue <= 0.5, got {self.color_jitter}"
            )
        if min(self.clinical_std + self.ultrasound_std) <= 0:
            raise ValueError("std values must be > 0")
        return self


class Gain:
    """Multiply an image tensor in [0, 1] by one factor drawn uniformly from `low, high`."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        factor = self.low + (self.high - self.low) * torch.rand(())
        return (image * factor).clamp_(0.0, 1.0)


class Speckle:
    """Multiplicative speckle: image * n, n ~ Gamma(k, rate=k) per pixel (mean 1, std 1/sqrt(k)).

    Gamma-distributed intensity is the speckle model of ultrasound (k = 1: fully developed
    speckle, Rayleigh amplitude, exponential intensity; larger k: milder). The noise is
    shared by the three channels so a grey scan stays grey. Each call draws its std
    uniformly in [0, max_std].
    """

    def __init__(self, max_std: float) -> None:
        self.max_std = max_std

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        std = float(self.max_std * torch.rand(()))
        if std < 1e-3:
            return image
        k = torch.tensor(1.0 / std**2)
        noise = torch.distributions.Gamma(k, k).sample((1, *image.shape[-2:]))
        return (image * noise).clamp_(0.0, 1.0)


class PairTransform:
    """Apply one pipeline to the photograph and another to the ultrasound image.

    Attributes:
        clinical: PIL RGB image -> float tensor (3, S, S).
        ultrasound: PIL RGB image -> float tensor (3, S, S).
        img_size: S.
    """

    def __init__(
        self,
        clinical: Callable[[Image.Image], torch.Tensor],
        ultrasound: Callable[[Image.Image], torch.Tensor],
        img_size: int,
    ) -> None:
        self.clinical = clinical
        self.ultrasound = ultrasound
        self.img_size = img_size

    def _apply(self, pipeline: Callable[[Any], torch.Tensor], image: Image.Image | None):
        if image is None:
            return torch.zeros(3, self.img_size, self.img_size)
        return pipeline(image)

    def __call__(
        self, clinical: Image.Image | None, ultrasound: Image.Image | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform a pair; a missing image (None) becomes zeros.

        Args:
            clinical: RGB photograph or None.
            ultrasound: RGB ultrasound image or None.

        Returns:
            (clinical, ultrasound): float32 tensors (3, S, S), normalised.
        """
        return self._apply(self.clinical, clinical), self._apply(self.ultrasound, ultrasound)


def _pipeline(
    cfg: TransformConfig,
    train: bool,
    mean: Triple,
    std: Triple,
    *,
    vflip: bool,
    pixel_ops: list[Callable[..., Any]],
) -> v2.Compose:
    size = cfg.img_size
    if not train:
        # Plain resize, not crop: the lesion may lie near an edge of either image.
        geometric: list[Callable[..., Any]] = [v2.Resize((size, size), antialias=True)]
    else:
        geometric = [v2.RandomResizedCrop(size, scale=cfg.scale, ratio=cfg.ratio, antialias=True)]
        if cfg.hflip:
            geometric.append(v2.RandomHorizontalFlip())
        if vflip:
            geometric.append(v2.RandomVerticalFlip())
        if cfg.rotation > 0:
            geometric.append(v2.RandomRotation(cfg.rotation))
    return v2.Compose(
        [
            *geometric,
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            *(pixel_ops if train else []),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def build_transforms(cfg: TransformConfig, train: bool) -> PairTransform:
    """Build the pair transform.

    Training: RandomResizedCrop, flips, rotation, drawn independently for each
    modality; colour jitter on the photograph; gain then speckle on the ultrasound;
    normalisation. Evaluation: resize to (img_size, img_size) and normalise.

    Args:
        cfg: sizes, statistics and augmentation switches.
        train: training (random) or evaluation (deterministic) pipeline.

    Returns:
        A picklable `PairTransform`: (PIL | None, PIL | None) -> two float32 (3, S, S).
    """
    clinical_ops: list[Callable[..., Any]] = []
    if any(cfg.color_jitter):
        b, c, s, h = cfg.color_jitter
        clinical_ops.append(v2.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h))
    ultrasound_ops: list[Callable[..., Any]] = []
    if cfg.gain != (1.0, 1.0):
        ultrasound_ops.append(Gain(*cfg.gain))
    if cfg.speckle > 0:
        ultrasound_ops.append(Speckle(cfg.speckle))
    return PairTransform(
        _pipeline(
            cfg,
            train,
            cfg.clinical_mean,
            cfg.clinical_std,
            vflip=cfg.vflip,
            pixel_ops=clinical_ops,
        ),
        _pipeline(
            cfg,
            train,
            cfg.ultrasound_mean,
            cfg.ultrasound_std,
            vflip=False,
            pixel_ops=ultrasound_ops,
        ),
        cfg.img_size,
    )
