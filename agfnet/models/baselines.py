"""Baselines: single-modality nets, late feature concatenation, decision averaging and
stage-wise bidirectional cross-attention (the TFormer family, simplified).

With metadata, the concatenation families append the metadata vector (as wide as one
modality's pooled features) to what their head reads; cross_attn fuses it after the image
stages, where TFormer does (docs/method.md, "Tasks and metadata")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from timm.layers import ClassifierHead, Mlp
from torch import nn

from agfnet.layers import BidirectionalBlock, GatedAttentionBlock, map_to_tokens
from agfnet.models.base import EncoderConfig, PairedNet, check_option
from agfnet.models.output import MODALITIES, ModelOutput
from agfnet.models.registry import SIZE_PRESETS, register_model

__all__ = [
    "CrossAttentionNet",
    "CrossAttnConfig",
    "DecisionMeanNet",
    "LateConcatConfig",
    "LateConcatNet",
    "SingleModalityConfig",
    "SingleModalityNet",
]


def _metadata_dim(model: PairedNet) -> int:
    """Width of the metadata vector a concatenation family appends: that of one
    modality's pooled features, so the metadata weighs like one more input; 0 without."""
    return 0 if model.metadata_spec is None else model.encoders.channels[-1]


def _append(x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """(B, W) -> (B, W + metadata width): x with the metadata vector m appended, if any."""
    return x if m is None else torch.cat([x, m], dim=1)


@dataclass
class SingleModalityConfig(EncoderConfig):
    """Options of a single-modality net.

    Attributes:
        modality: "clinical" or "ultrasound", the only input it reads.
    """

    modality: str = "clinical"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_option(
            self.modality in MODALITIES, "modality", self.modality, f"use one of {MODALITIES}"
        )


class SingleModalityNet(PairedNet):
    """One backbone + global average pooling + linear head; the other input is ignored."""

    config_cls = SingleModalityConfig

    def __init__(self, config: SingleModalityConfig, num_classes: int, **extensions: Any) -> None:
        """
        Args:
            config: the options.
            num_classes: K.
            **extensions: `tasks` and `metadata`, as `PairedNet`.
        """
        super().__init__(config, num_classes, modalities=(config.modality,), **extensions)
        # With metadata the head's linear layer reads [pooled image; metadata].
        width = self.encoders.channels[-1] + _metadata_dim(self)
        self.head = ClassifierHead(width, num_classes, drop_rate=config.drop_rate)
        self.init_weights()
        self.metadata_encoder = self.build_metadata_encoder(_metadata_dim(self))
        self.task_heads = self.build_task_heads(width)

    def forward_output(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor | None = None,
        metadata: Mapping[str, torch.Tensor] | None = None,
    ) -> ModelOutput:
        """
        Args:
            clinical: (B, 3, H, W).
            ultrasound: (B, 3, H, W); one of the two is never read.
            present: optional (B, 2) bool; this model's own column must be all True.
            metadata: optional encoded metadata; None = every field missing.

        Returns:
            `ModelOutput` with logits, modalities ([True, False] for clinical_only) and
            the task logits.
        """
        feats, used = self.encoders(clinical, ultrasound, present)
        pooled = self.head(feats[self.config.modality][-1], pre_logits=True)
        f = _append(pooled, self.encode_metadata(metadata, pooled))
        return ModelOutput(logits=self.head.fc(f), modalities=used, task_logits=self.task_logits(f))


@dataclass
class LateConcatConfig(EncoderConfig):
    """Options of the late-concatenation baseline.

    Attributes:
        hidden_dim: width of the MLP head's hidden layer.
    """

    hidden_dim: int = 256


class LateConcatNet(PairedNet):
    """Both backbones, global-average-pooled last stages concatenated (with the metadata
    vector, if any), MLP head; the task heads read the same concatenated vector."""

    config_cls = LateConcatConfig

    def __init__(self, config: LateConcatConfig, num_classes: int, **extensions: Any) -> None:
        """
        Args:
            config: the options.
            num_classes: K.
            **extensions: `tasks` and `metadata`, as `PairedNet`.
        """
        super().__init__(config, num_classes, **extensions)
        width = 2 * self.encoders.channels[-1] + _metadata_dim(self)
        self.head = Mlp(width, config.hidden_dim, num_classes, drop=config.drop_rate)
        self.init_weights()
        self.metadata_encoder = self.build_metadata_encoder(_metadata_dim(self))
        self.task_heads = self.build_task_heads(width)

    def forward_output(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor | None = None,
        metadata: Mapping[str, torch.Tensor] | None = None,
    ) -> ModelOutput:
        """Args/Returns as `AGFNet.forward_output`, with no aux logits or saliency."""
        feats, used = self.encoders(clinical, ultrasound, present)
        pooled = torch.cat([feats[m][-1].mean(dim=(2, 3)) for m in MODALITIES], dim=1)
        f = _append(pooled, self.encode_metadata(metadata, pooled))
        return ModelOutput(logits=self.head(f), modalities=used, task_logits=self.task_logits(f))


class DecisionMeanNet(PairedNet):
    """Two single-modality nets trained jointly; the prediction is the mean of their logits.

    Fusion stays at the decision: each net appends the (shared) metadata vector to its own
    pooled features, has its own task heads, and every task's logits are averaged too.
    """

    def __init__(self, config: EncoderConfig, num_classes: int, **extensions: Any) -> None:
        """
        Args:
            config: the options.
            num_classes: K.
            **extensions: `tasks` and `metadata`, as `PairedNet`.
        """
        super().__init__(config, num_classes, **extensions)
        width = self.encoders.channels[-1] + _metadata_dim(self)
        self.heads = nn.ModuleDict(
            {m: ClassifierHead(width, num_classes, drop_rate=config.drop_rate) for m in MODALITIES}
        )
        self.init_weights()
        self.metadata_encoder = self.build_metadata_encoder(_metadata_dim(self))
        if self.tasks:
            self.task_heads = nn.ModuleDict({m: self.build_task_heads(width) for m in MODALITIES})

    def forward_output(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor | None = None,
        metadata: Mapping[str, torch.Tensor] | None = None,
    ) -> ModelOutput:
        """Args/Returns as `AGFNet.forward_output`, with no aux logits or saliency."""
        feats, used = self.encoders(clinical, ultrasound, present)
        meta = self.encode_metadata(metadata, clinical)
        f = {m: _append(self.heads[m](feats[m][-1], pre_logits=True), meta) for m in MODALITIES}
        logits = torch.stack([self.heads[m].fc(f[m]) for m in MODALITIES]).mean(dim=0)
        heads = [] if self.task_heads is None else [self.task_heads[m](f[m]) for m in MODALITIES]
        task_logits = {t: torch.stack([h[t] for h in heads]).mean(dim=0) for t in self.tasks}
        return ModelOutput(logits=logits, modalities=used, task_logits=task_logits)


@dataclass
class CrossAttnConfig(EncoderConfig):
    """Options of the cross-attention baseline.

    Attributes:
        out_indices: backbone levels fused.
        dim: common width every fused stage is projected to.
        num_heads: attention heads.
        kv_size: keys/values pooled to at most kv_size x kv_size tokens.
        mlp_ratio: FFN hidden width / dim.
    """

    out_indices: tuple[int, ...] = (-3, -2, -1)
    dim: int = 256
    num_heads: int = 4
    kv_size: int = 7
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.out_indices = tuple(self.out_indices)
        check_option(
            self.dim % self.num_heads == 0,
            "dim",
            self.dim,
            f"use a multiple of num_heads={self.num_heads}",
        )


class CrossAttentionNet(PairedNet):
    """At every fused stage: project both maps to `dim`, one bidirectional
    cross-attention block (each modality queries the other, no intra term, residual
    scales starting at 1), global-average-pool; then LN + linear on all pooled vectors.

    Simplified from TFormer (Zhang et al., 2023): the fused features do not flow back
    into the backbones, and there is no AGL, FRL or auxiliary head.

    Metadata joins as in TFormer, after the image modalities are fused (its
    "multi-modal transformer post-fusion" block): the metadata vector queries the 2S
    pooled stage vectors in one cross-attention block, and the result is appended to
    them before the head's LayerNorm. The task heads read that normalised vector.
    """

    config_cls = CrossAttnConfig

    def __init__(self, config: CrossAttnConfig, num_classes: int, **extensions: Any) -> None:
        """
        Args:
            config: the options.
            num_classes: K.
            **extensions: `tasks` and `metadata`, as `PairedNet`.
        """
        super().__init__(config, num_classes, out_indices=config.out_indices, **extensions)
        self.proj = nn.ModuleList(
            nn.ModuleDict(
                {
                    m: nn.Sequential(
                        nn.Conv2d(c, config.dim, 1, bias=False), nn.BatchNorm2d(config.dim)
                    )
                    for m in MODALITIES
                }
            )
            for c in self.encoders.channels
        )
        self.fuse = nn.ModuleList(
            BidirectionalBlock(
                config.dim,
                MODALITIES,
                config.num_heads,
                kv_size=config.kv_size,
                mlp_ratio=config.mlp_ratio,
                intra=False,
                gate_init=1.0,
            )
            for _ in self.encoders.channels
        )
        n_images = 2 * len(self.encoders.channels)
        width = (n_images + int(self.metadata_spec is not None)) * config.dim
        self.head = nn.Sequential(
            nn.LayerNorm(width), nn.Dropout(config.drop_rate), nn.Linear(width, num_classes)
        )
        self.init_weights()
        self.post_fusion = None
        if self.metadata_spec is not None:
            # kv_size = the token count: the 2S pooled vectors are attended unpooled.
            block = GatedAttentionBlock(
                config.dim,
                config.num_heads,
                kv_size=n_images,
                mlp_ratio=config.mlp_ratio,
                intra=False,
                gate_init=1.0,
            )
            self.post_fusion = self.init_extension(block)
        self.metadata_encoder = self.build_metadata_encoder(config.dim)
        self.task_heads = self.build_task_heads(width)

    def forward_output(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor | None = None,
        metadata: Mapping[str, torch.Tensor] | None = None,
    ) -> ModelOutput:
        """Args/Returns as `AGFNet.forward_output`, with no aux logits or saliency."""
        feats, used = self.encoders(clinical, ultrasound, present)
        pooled = []
        for i, (proj, fuse) in enumerate(zip(self.proj, self.fuse, strict=True)):
            maps = {m: proj[m](feats[m][i]) for m in MODALITIES}
            tokens = fuse(
                {m: map_to_tokens(x) for m, x in maps.items()},
                {m: (x.shape[-2], x.shape[-1]) for m, x in maps.items()},
            )
            pooled += [tokens[m].mean(dim=1) for m in MODALITIES]
        meta = self.encode_metadata(metadata, clinical)
        if meta is not None:
            images = torch.stack(pooled, dim=1)
            pooled.append(self.post_fusion(meta[:, None], (1, 1), images, (1, len(pooled)))[:, 0])
        f = self.head[0](torch.cat(pooled, dim=1))  # the LayerNorm: what every head reads
        logits = self.head[1:](f)
        return ModelOutput(logits=logits, modalities=used, task_logits=self.task_logits(f))


# Head widths per size, as in AGFNet (tiny: 64, lite: 128, paper: 256).
_HEADS = {"tiny": (64, 2.0), "lite": (128, 2.0), "paper": (256, 4.0)}


def _variants(size: str) -> dict[str, tuple[type[PairedNet], dict, str]]:
    """name -> (class, options, description) of every baseline at one size."""
    width, mlp_ratio = _HEADS[size]
    return {
        "clinical_only": (
            SingleModalityNet,
            {"modality": "clinical"},
            "clinical photograph only: backbone + GAP + linear head",
        ),
        "ultrasound_only": (
            SingleModalityNet,
            {"modality": "ultrasound"},
            "ultrasound image only: backbone + GAP + linear head",
        ),
        "late_concat": (
            LateConcatNet,
            {"hidden_dim": width},
            "both backbones, pooled features concatenated, MLP head",
        ),
        "decision_mean": (DecisionMeanNet, {}, "two single-modality nets, logits averaged"),
        "cross_attn": (
            CrossAttentionNet,
            {"dim": width, "mlp_ratio": mlp_ratio},
            "stage-wise bidirectional cross-attention fusion (TFormer family)",
        ),
    }


for _size, _preset in SIZE_PRESETS.items():
    for _name, (_cls, _options, _description) in _variants(_size).items():
        register_model(f"{_name}_{_size}", _cls, description=_description, **_preset, **_options)
