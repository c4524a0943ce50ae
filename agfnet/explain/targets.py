"""Target layers of the class activation maps: the defaults (`default_layers`), names
checked against the model (`layer_names`, `resolve_layer`) and the resolution of the maps
they give (`map_sizes`)."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from agfnet.errors import UserError
from agfnet.models.output import MODALITIES

__all__ = [
    "DEFAULT_STRIDES",
    "MIN_MAP_SIDE",
    "default_layers",
    "layer_names",
    "map_sizes",
    "resolve_layer",
]

#: The output strides of the default target stages, fused as Layer-CAM's authors fuse
#: stages: stride 8 gives the resolution (12 x 12 at 96 px, 28 x 28 at 224 px), stride 16
#: the class evidence. The last stage (stride 32) is 3 x 3 at 96 px.
DEFAULT_STRIDES: tuple[int, ...] = (8, 16)

#: Maps coarser than this on either side are flagged in the outputs: a 6 x 6 map cannot
#: point at a lesion a tenth of the image wide.
MIN_MAP_SIDE = 7


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule of `model` at dotted path `name`.

    Args:
        model: any module.
        name: dotted path, e.g. "encoders.backbones.clinical.layer4".

    Returns:
        The submodule.

    Raises:
        UserError: no such submodule; the message lists the closest names.
    """
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        hint = f" Closest names: {', '.join(close)}." if close else ""
        raise UserError(
            f"model has no layer {name!r}.{hint} Give a dotted name from "
            "model.named_modules(), e.g. the last stage of an encoder."
        ) from None


def _stage_name(backbone: nn.Module, module: str, modality: str) -> str:
    """The submodule name of timm's `feature_info` entry `module` in `backbone`."""
    # timm's FeatureListNet flattens nested stages: "stages.3" becomes "stages_3".
    for candidate in (module, module.replace(".", "_")):
        with contextlib.suppress(AttributeError):
            backbone.get_submodule(candidate)
            return candidate
    raise UserError(f"cannot find the stage {module!r} of the {modality} encoder: pass layers=")


def default_layers(model: nn.Module) -> dict[str, list[str]]:
    """The default target layers of each modality the model encodes: the encoder stages
    whose output stride is in `DEFAULT_STRIDES` (timm's `feature_info` reductions).

    For every stride the deepest stage with at most that reduction is taken (`layer2`
    and `layer3` on a ResNet, `stages_1` and `stages_2` on a ConvNeXt, `blocks.2` and
    `blocks.4` on an EfficientNet); a backbone coarser than a stride everywhere falls
    back to its first stage. docs/commands/explain.md gives the measurements behind
    the choice.

    Args:
        model: an `agfnet.models` network (it has `encoders`).

    Returns:
        modality -> dotted names, finest first; a single-modality model has one entry.
        With a shared encoder both modalities name the same modules.

    Raises:
        UserError: the model has no `encoders` (pass `layers` explicitly).
    """
    encoders = getattr(model, "encoders", None)
    if encoders is None:
        raise UserError(
            f"{type(model).__name__} has no `encoders`, so there is no default target layer: "
            "pass layers={modality: [dotted name]}"
        )
    path = {id(module): name for name, module in model.named_modules()}
    layers = {}
    for m in encoders.modalities:
        backbone = encoders.backbone(m)
        # Every stage timm knows, not only the levels the model returns (a late-fusion
        # baseline returns the last one; the earlier stages still run inside it).
        stages = backbone.feature_info.info
        reductions = [s["reduction"] for s in stages]
        modules = [s["module"] for s in stages]
        chosen: list[str] = []
        for stride in DEFAULT_STRIDES:
            fitting = [i for i, r in enumerate(reductions) if r <= stride] or [0]
            name = _stage_name(backbone, modules[fitting[-1]], m)
            if name not in chosen:
                chosen.append(name)
        layers[m] = [f"{path[id(backbone)]}.{name}" for name in chosen]
    return layers


def layer_names(
    model: nn.Module, layers: Mapping[str, str | Sequence[str]] | None = None
) -> dict[str, list[str]]:
    """The target layer names of each modality: `layers` checked, or the defaults.

    Args:
        model: an `agfnet.models` network.
        layers: modality -> dotted name or names; None for `default_layers(model)`.

    Returns:
        modality -> list of dotted names.

    Raises:
        UserError: a key is not a modality, or a name is not a layer of the model.
    """
    if layers is None:
        return default_layers(model)
    unknown = set(layers) - set(MODALITIES)
    if unknown:
        raise UserError(f"layers keys must be modalities {MODALITIES}, got {sorted(unknown)}")
    names = {m: [v] if isinstance(v, str) else list(v) for m, v in layers.items()}
    for name in (n for group in names.values() for n in group):
        resolve_layer(model, name)
    return names


@torch.no_grad()
def map_sizes(
    model: nn.Module, layers: Mapping[str, Sequence[str]], image_size: int | tuple[int, int]
) -> dict[str, list[int]]:
    """The resolution of each modality's CAM: the finest (h, w) among its target layers'
    outputs for an image of `image_size`, found by one forward pass of a blank pair.

    Args:
        model: an `agfnet.models` network.
        layers: modality -> dotted names (`layer_names`).
        image_size: the input side, or (H, W).

    Returns:
        modality -> [h, w]; a layer that outputs no (B, C, h, w) map is left out.
    """
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    device = next(model.parameters()).device
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(_module, _inputs, out) -> None:  # returns None: the output is kept
            seen.setdefault(name, tuple(getattr(out, "shape", ())))

        return hook

    names = {n for group in layers.values() for n in group}
    handles = [resolve_layer(model, n).register_forward_hook(record(n)) for n in names]
    training = model.training
    model.eval()
    try:
        blank = torch.zeros(1, 3, *hw, device=device)
        model.forward_output(blank, blank)
    finally:
        model.train(training)
        for h in handles:
            h.remove()
    sizes = {}
    for m, names in layers.items():
        shapes = [seen[n][-2:] for n in names if len(seen.get(n, ())) == 4]
        if shapes:
            sizes[m] = list(max(shapes, key=lambda s: s[0] * s[1]))
    return sizes
