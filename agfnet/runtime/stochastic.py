"""Several stochastic passes per prediction: Monte-Carlo dropout and test-time augmentation.

One deterministic forward pass gives one probability vector, whose entropy mixes what the
data leave open with what the model does not know. T stochastic passes give T vectors:
their mean is the prediction, their spread (standard deviation per class, mutual
information) is the model's own doubt (`agfnet.evaluation.uncertainty.summarize_passes`).

- **MC dropout** (`Sampling("mc", T)`): the network in eval mode (batch norm uses its
  running statistics, FRL and modality dropout stay off), with only its dropout layers
  (`nn.Dropout*` with p > 0, timm's `DropPath` with drop_prob > 0) sampling. A network
  trained without dropout has nothing to sample: that is refused with the config key to
  set. Masks depend on the pass seed and on the batch the pair is in.
- **TTA** (`Sampling("tta", T)`): pass 0 is the plain image; pass k >= 1 transforms the
  preprocessed batch with a seeded random view per modality: a horizontal flip with
  probability 0.5 and a crop of 90-100 % of the side at a random position, resized back.
  No vertical flip (the ultrasound's skin surface stays on top), no colour change. The
  view depends only on (seed, k), not on the batch, so results do not depend on the batch
  size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from agfnet.errors import UserError

__all__ = [
    "Sampling",
    "dropout_layers",
    "mc_dropout",
    "parse_sampling",
    "sample_logits",
    "tta_view",
]

#: Fewest passes that make a spread meaningful.
MIN_PASSES = 2
#: Crop side range of a TTA view, as a fraction of the image side.
TTA_SCALE = (0.9, 1.0)
#: The config key that gives a network dropout to sample (for the refusal message).
DROP_RATE_KEY = "model.overrides.drop_rate"


@dataclass(frozen=True)
class Sampling:
    """How to draw several predictions of one pair.

    Attributes:
        method: "mc" (Monte-Carlo dropout) or "tta" (test-time augmentation).
        passes: forward passes per pair (>= 2).
        seed: seed of the dropout masks or of the views.
    """

    method: Literal["mc", "tta"]
    passes: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("mc", "tta"):
            raise ValueError(f"Sampling method must be 'mc' or 'tta'; got {self.method!r}")
        if int(self.passes) < MIN_PASSES:
            raise ValueError(f"Sampling needs at least {MIN_PASSES} passes; got {self.passes}")
        if int(self.seed) < 0:
            raise ValueError(f"Sampling seed must be >= 0; got {self.seed}")

    def to_dict(self) -> dict[str, object]:
        """Returns: {"method", "passes", "seed"}."""
        return {"method": self.method, "passes": self.passes, "seed": self.seed}


def parse_sampling(mc: int | None, tta: int | None, seed: int = 0) -> Sampling | None:
    """The `--mc N` / `--tta N` command-line options as a `Sampling` (None: one pass).

    Raises:
        UserError: both given, or N < 2.
    """
    mc, tta = mc or 0, tta or 0
    if mc and tta:
        raise UserError("give --mc N or --tta N, not both: each is one way to sample passes")
    for flag, n in (("--mc", mc), ("--tta", tta)):
        if n and n < MIN_PASSES:
            raise UserError(
                f"{flag} {n}: a spread needs at least {MIN_PASSES} passes; use e.g. {flag} 20"
            )
    if mc:
        return Sampling("mc", mc, seed)
    if tta:
        return Sampling("tta", tta, seed)
    return None


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """The modules of `model` that sample in train mode: dropout with p > 0 and timm's
    DropPath with drop_prob > 0."""

    def samples(module: nn.Module) -> bool:
        if isinstance(module, nn.modules.dropout._DropoutNd):
            return module.p > 0
        return type(module).__name__ == "DropPath" and getattr(module, "drop_prob", 0) > 0

    return [module for module in model.modules() if samples(module)]


@contextlib.contextmanager
def mc_dropout(model: nn.Module, name: str = "the model") -> Iterator[None]:
    """Put only the dropout layers of an eval-mode `model` in train mode, and back.

    Raises:
        UserError: the model has no dropout layer with p > 0.
    """
    layers = dropout_layers(model)
    if not layers:
        raise UserError(
            f"--mc: {name} has no dropout (it was trained with drop_rate 0), so Monte-Carlo "
            f"dropout would repeat one prediction. Use --tta N instead, or train with "
            f"dropout: `agfnet train ... {DROP_RATE_KEY}=0.2`"
        )
    modes = [layer.training for layer in layers]
    try:
        for layer in layers:
            layer.train()
        yield
    finally:
        for layer, mode in zip(layers, modes, strict=True):
            layer.train(mode)


def _view(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    import torchvision.transforms.v2.functional as tvf

    flip, scale, dx, dy = torch.rand(4, generator=generator).tolist()
    side_h, side_w = image.shape[-2:]
    frac = TTA_SCALE[0] + (TTA_SCALE[1] - TTA_SCALE[0]) * scale
    h, w = max(1, round(side_h * frac)), max(1, round(side_w * frac))
    top, left = round((side_h - h) * dy), round((side_w - w) * dx)
    out = image[..., top : top + h, left : left + w]
    if (h, w) != (side_h, side_w):
        out = tvf.resize(out, [side_h, side_w], antialias=True)
    return tvf.horizontal_flip(out) if flip < 0.5 else out


def tta_view(
    clinical: torch.Tensor, ultrasound: torch.Tensor, index: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """View `index` of a preprocessed batch (0: unchanged), the same for every pair.

    Args:
        clinical: float (B, 3, S, S), preprocessed.
        ultrasound: float (B, 3, S, S).
        index: the pass number.
        seed: seed of the views.

    Returns:
        The transformed (clinical, ultrasound), same shapes.
    """
    if index == 0:
        return clinical, ultrasound
    generator = torch.Generator().manual_seed(int(seed) * 100_003 + int(index))
    return _view(clinical, generator), _view(ultrasound, generator)


def sample_logits(
    forward: Callable[[torch.Tensor, torch.Tensor], np.ndarray],
    clinical: torch.Tensor,
    ultrasound: torch.Tensor,
    sampling: Sampling,
    model: nn.Module | None = None,
    name: str = "the model",
) -> np.ndarray:
    """Logits of `sampling.passes` stochastic passes over one batch.

    Args:
        forward: runs the network on (clinical, ultrasound) and returns logits (B, K).
        clinical: float (B, 3, S, S), preprocessed.
        ultrasound: float (B, 3, S, S).
        sampling: the method, passes and seed.
        model: the PyTorch network (needed for "mc": its dropout layers are switched on).
        name: the model, for the refusal message.

    Returns:
        float64 (T, B, K).

    Raises:
        UserError: "mc" without a PyTorch model, or a model without dropout.
    """
    passes = []
    if sampling.method == "tta":
        for k in range(sampling.passes):
            passes.append(forward(*tta_view(clinical, ultrasound, k, sampling.seed)))
        return np.stack(passes).astype(np.float64)
    if model is None:
        raise UserError(
            f"--mc: {name} is an ONNX file, whose export has no dropout to sample; use the "
            "checkpoint (--checkpoint) for --mc, or --tta N"
        )
    # Keep the caller's random streams: those of the CPU and of the model's GPU, if any.
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with mc_dropout(model, name), torch.random.fork_rng(devices=devices):
        for k in range(sampling.passes):
            pass_seed = int(sampling.seed) * 100_003 + k
            # Seed only the streams fork_rng restores (torch.manual_seed would reseed all
            # GPUs); dropout draws from the generator of the tensor's device.
            torch.random.default_generator.manual_seed(pass_seed)
            for index in devices:
                torch.cuda.default_generators[index].manual_seed(pass_seed)
            passes.append(forward(clinical, ultrasound))
    return np.stack(passes).astype(np.float64)
