"""Class activation maps of a two-input model, one modality at a time (via `grad-cam`).

`pytorch_grad_cam` explains a model of one input. `ModalityView` turns a paired model
`model(clinical, ultrasound) -> logits` into one: it takes the image of the modality
being explained and holds the other modality fixed. Target layers are reached by dotted
name (`model.get_submodule`), as MONAI's `class_activation_maps` does; the default is
Layer-CAM on the modality encoder's stride-8 and stride-16 stages (`default_layers`).

Shared encoders: when both modalities go through one backbone, a hook on its last stage
fires twice per forward pass, and `pytorch_grad_cam` would mix the two passes (it pairs
the first recorded activation with the first gradient). `ModalityView` therefore
computes the fixed modality's backbone features once, without hooks or gradient, and
replays them inside the model's forward pass; only the explained modality runs through
the backbone, so every target layer fires exactly once, which `explain_pair` checks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agfnet.errors import UserError
from agfnet.explain.targets import (
    DEFAULT_STRIDES,
    MIN_MAP_SIDE,
    default_layers,
    layer_names,
    map_sizes,
    resolve_layer,
)
from agfnet.models.output import MODALITIES

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_STRIDES",
    "METHODS",
    "MIN_MAP_SIDE",
    "ModalityView",
    "attention_maps",
    "default_layers",
    "explain_pair",
    "has_attention_maps",
    "layer_names",
    "map_sizes",
    "resolve_layer",
]

#: Method name -> `pytorch_grad_cam` class name.
METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "layercam": "LayerCAM",
}

#: The default method. Layer-CAM (Jiang et al., IEEE TIP 2021) weights every cell by its
#: own positive gradient; Grad-CAM averages the gradient over the map, and in AGFNet, where
#: LayerNorm makes the logit nearly blind to the scale of a whole map, those averages
#: cancel (docs/commands/explain.md: "What was wrong").
DEFAULT_METHOD = "layercam"


def _other(modality: str) -> str:
    return MODALITIES[1 - MODALITIES.index(modality)]


@contextlib.contextmanager
def _replayed(encoders: nn.Module, modality: str, feats: list[torch.Tensor]) -> Iterator[None]:
    """Inside the block, `encoders.backbone(modality)` returns `feats` instead of running."""
    run = encoders.backbone

    def backbone(m: str):
        return (lambda _image: feats) if m == modality else run(m)

    encoders.backbone = backbone
    try:
        yield
    finally:
        del encoders.backbone  # the class method is visible again


class ModalityView(nn.Module):
    """A paired model seen as a model of one image: the other modality is held fixed.

    Args:
        model: a paired network (`agfnet.models`): `forward_output(clinical, ultrasound,
            present)`; its `encoders.backbone(modality)` is used to precompute the fixed
            modality's features when the model has one.
        modality: the modality whose image `forward` takes, "clinical" or "ultrasound".
        fixed: (B, 3, H', W') the other modality's images, held constant.
        present: optional (B, 2) bool availability, passed to the model.

    `forward(image)`: image (B, 3, H, W) of `modality` -> (B, K) logits.
    """

    def __init__(
        self,
        model: nn.Module,
        modality: str,
        fixed: torch.Tensor,
        present: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.modality = modality
        self.fixed = fixed
        self.present = present
        self.fixed_feats: list[torch.Tensor] | None = None
        encoders = getattr(model, "encoders", None)
        if encoders is not None and _other(modality) in getattr(encoders, "modalities", ()):
            with torch.no_grad():
                self.fixed_feats = list(encoders.backbone(_other(modality))(fixed))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pair = {self.modality: image, _other(self.modality): self.fixed}
        replay = (
            _replayed(self.model.encoders, _other(self.modality), self.fixed_feats)
            if self.fixed_feats is not None
            else contextlib.nullcontext()
        )
        with replay:
            out = self.model.forward_output(pair["clinical"], pair["ultrasound"], self.present)
        return out.logits


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim == 3:
        return x.unsqueeze(0)
    if x.ndim != 4:
        raise UserError(f"{name} must be (3, H, W) or (B, 3, H, W), got shape {tuple(x.shape)}")
    return x


def _check_fires_once(
    view: ModalityView, image: torch.Tensor, names: Sequence[str], layers: Sequence[nn.Module]
) -> None:
    """Run `view` once; refuse target layers that do not output one (B, C, h, w) map with
    h * w > 1."""
    calls: dict[str, list[tuple[int, ...]]] = {n: [] for n in names}
    handles = [
        layer.register_forward_hook(
            lambda _m, _i, out, n=n: calls[n].append(tuple(getattr(out, "shape", ())))
        )
        for n, layer in zip(names, layers, strict=True)
    ]
    try:
        with torch.no_grad():
            view(image)
    finally:
        for h in handles:
            h.remove()
    for n, shapes in calls.items():
        if len(shapes) != 1:
            raise UserError(
                f"target layer {n!r} ran {len(shapes)} times in one forward pass explaining "
                f"the {view.modality} image; a Grad-CAM layer must process that image exactly "
                f"once: choose a layer of the {view.modality} encoder"
            )
        if len(shapes[0]) != 4:
            raise UserError(
                f"target layer {n!r} outputs shape {shapes[0]}, not a (B, C, h, w) feature "
                "map: choose a convolutional stage"
            )
        if shapes[0][-2:] == (1, 1):
            raise UserError(
                f"target layer {n!r} outputs a 1x1 map for a {tuple(image.shape[-2:])} "
                f"{view.modality} image, so its CAM would be flat: use larger images (the "
                "model's default_img_size) or an earlier layer (layers= / --layer)"
            )


def _targets(logits: torch.Tensor, target: int | Sequence[int] | None) -> list[int]:
    batch, num_classes = logits.shape
    if target is None:
        return logits.argmax(dim=1).tolist()
    chosen = [int(target)] * batch if isinstance(target, int) else [int(t) for t in target]
    if len(chosen) != batch or not all(0 <= t < num_classes for t in chosen):
        raise UserError(
            f"target {target!r} must be a class index in [0, {num_classes}) or one per sample "
            f"({batch})"
        )
    return chosen


@contextlib.contextmanager
def _eval_frozen(model: nn.Module) -> Iterator[None]:
    """Eval mode and frozen parameters inside the block: CAM gradients flow to the input
    only. The mode, `requires_grad` flags and any `.grad` (which `pytorch_grad_cam`
    clears) are restored after."""
    training = model.training
    state = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    model.eval()
    for p, _, _ in state:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag, grad in state:
            p.requires_grad_(flag)
            p.grad = grad
        model.train(training)


def _squeeze(maps: dict[str, np.ndarray], batched: bool) -> dict[str, np.ndarray]:
    return maps if batched else {m: v[0] for m, v in maps.items()}


def explain_pair(
    model: nn.Module,
    clinical: torch.Tensor,
    ultrasound: torch.Tensor,
    *,
    method: str = DEFAULT_METHOD,
    target: int | Sequence[int] | None = None,
    layers: Mapping[str, str | Sequence[str]] | None = None,
    present: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """Class activation map of each modality of a pair, at input resolution.

    For modality m, `ModalityView` holds the other image fixed and `pytorch_grad_cam`
    explains the logit of `target` with respect to m's target layers (several layers
    are averaged after scaling, as the library does). Each map is scaled to [0, 1] per
    sample (min-max, by the library). A modality the prediction did not use
    (`forward_output(...).modalities`: the other input of a single-modality model, or a
    missing image) gets a flat all-zero map.

    Args:
        model: an `agfnet.models` network; it is run in eval mode and left in its mode.
        clinical: (3, Hc, Wc) or (B, 3, Hc, Wc) preprocessed photographs.
        ultrasound: the same for the ultrasound images (same B; size may differ).
        method: "layercam" (the default), "gradcam" or "gradcam++".
        target: class index explained, one for all or one per sample; None explains
            each sample's predicted (argmax) class.
        layers: modality -> dotted layer name(s); None uses `default_layers(model)`.
        present: optional (B, 2) bool availability, passed to the model.

    Returns:
        modality -> float32 maps in [0, 1]: (H, W) for an unbatched (3, H, W) input,
        (B, H, W) for a batch, each at its own modality's input size.

    Raises:
        UserError: unknown method, bad target, unknown layer name (with close names),
            or a layer that does not see the explained image exactly once.
    """
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if method not in METHODS:
        raise UserError(f"unknown CAM method {method!r}: use one of {', '.join(METHODS)}")
    batched = clinical.ndim == 4
    device = next(model.parameters()).device
    images = {
        "clinical": _as_batch(clinical, "clinical").to(device),
        "ultrasound": _as_batch(ultrasound, "ultrasound").to(device),
    }
    present = None if present is None else present.to(device)
    names = layer_names(model, layers)
    maps = {}
    with _eval_frozen(model):
        with torch.no_grad():
            out = model.forward_output(images["clinical"], images["ultrasound"], present)
        targets = [ClassifierOutputTarget(t) for t in _targets(out.logits, target)]
        used = out.modalities.cpu().numpy()
        for i, m in enumerate(MODALITIES):
            image = images[m]
            maps[m] = np.zeros((image.shape[0], *image.shape[-2:]), dtype=np.float32)
            if not used[:, i].any():
                continue
            if m not in names:
                raise UserError(f"no target layer for the {m} image: pass layers={{{m!r}: ...}}")
            view = ModalityView(model, m, images[_other(m)], present)
            target_layers = [resolve_layer(model, n) for n in names[m]]
            _check_fires_once(view, image, names[m], target_layers)
            cam = getattr(pytorch_grad_cam, METHODS[method])(view, target_layers)
            try:
                # The input carries the gradient: the parameters are frozen.
                grey = cam(image.detach().clone().requires_grad_(True), targets)
            finally:
                cam.activations_and_grads.release()
            maps[m] = np.where(used[:, i, None, None], np.clip(grey, 0.0, 1.0), 0.0).astype(
                np.float32
            )
    return _squeeze(maps, batched)


@torch.no_grad()
def has_attention_maps(model: nn.Module) -> bool:
    """Whether `model` returns ALL attention (saliency) maps, found by one forward pass of a
    blank pair at its preset size (the `agfnet_*` models with ALL do)."""
    device = next(model.parameters()).device
    size = int(getattr(model, "default_img_size", 64))
    blank = torch.zeros(1, 3, size, size, device=device)
    training = model.training
    model.eval()
    try:
        return bool(model.forward_output(blank, blank).saliency)
    finally:
        model.train(training)


@torch.no_grad()
def attention_maps(
    model: nn.Module,
    clinical: torch.Tensor,
    ultrasound: torch.Tensor,
    *,
    present: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """AGFNet's own ALL saliency maps (`forward_output(...).saliency`) at input resolution.

    The maps (finest fused scale, summing to 1) are upsampled bilinearly to each
    modality's input size and scaled to [0, 1] per sample (min-max), like the CAMs, so
    the two kinds of map are drawn and scored alike. Unused modalities get zeros.

    Args:
        model: an `agfnet.models` network with ALL (the `agfnet_*` models except
            `agfnet_no_all`).
        clinical: (3, Hc, Wc) or (B, 3, Hc, Wc) preprocessed photographs.
        ultrasound: the same for the ultrasound images.
        present: optional (B, 2) bool availability.

    Returns:
        modality -> float32 maps in [0, 1], (H, W) or (B, H, W) as `explain_pair`.

    Raises:
        UserError: the model returns no saliency maps.
    """
    batched = clinical.ndim == 4
    device = next(model.parameters()).device
    images = {
        "clinical": _as_batch(clinical, "clinical").to(device),
        "ultrasound": _as_batch(ultrasound, "ultrasound").to(device),
    }
    training = model.training
    model.eval()
    try:
        out = model.forward_output(
            images["clinical"],
            images["ultrasound"],
            None if present is None else present.to(device),
        )
    finally:
        model.train(training)
    if not out.saliency:
        name = getattr(model, "build_spec", {}).get("name", type(model).__name__)
        raise UserError(
            f"model {name} has no attention (ALL saliency) maps: only AGFNet models with ALL "
            "have them; drop --attention or use a Grad-CAM method"
        )
    maps = {}
    for i, m in enumerate(MODALITIES):
        up = F.interpolate(
            out.saliency[m].unsqueeze(1).float(),
            size=images[m].shape[-2:],
            mode="bilinear",
            align_corners=False,
        ).squeeze(1)
        low = up.amin(dim=(1, 2), keepdim=True)
        span = up.amax(dim=(1, 2), keepdim=True) - low
        scaled = torch.where(span > 0, (up - low) / span.clamp_min(1e-12), torch.zeros_like(up))
        scaled = scaled * out.modalities[:, i, None, None]
        maps[m] = scaled.cpu().numpy().astype(np.float32)
    return _squeeze(maps, batched)
