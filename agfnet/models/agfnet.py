"""AGFNet, its ablations and variants (Xiao et al., "Attention-Guided Learning with Feature
Reconstruction for Skin Lesion Diagnosis using Clinical and Ultrasound Images", IEEE TMI
44(1), 2025): ALL (local), AGL (global) and FRL (reconstruction), as read in METHOD.md."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from agfnet.constants import MODALITIES
from agfnet.layers import (
    BidirectionalBlock,
    FeatureReconstruction,
    create_attention_pool,
    create_scale_fusion,
    map_to_tokens,
    merge_saliency,
)
from agfnet.models.agl import AttentionGuidedGlobal, GlobalFusion
from agfnet.models.base import EncoderConfig, PairedNet, check_option
from agfnet.models.output import ModelOutput
from agfnet.models.registry import SIZE_PRESETS, register_model

__all__ = [
    "AGFNet",
    "AGFNetConfig",
    "AGFNetFeatures",
    "AttentionGuidedGlobal",
    "GlobalFusion",
    "LocalScale",
    "ScaleFeatures",
]


#: The string options of `AGFNetConfig` and their values (the first is the default).
_CHOICES = {
    "saliency": ("attention", "score"),
    "scale_fusion": ("concat", "progressive"),
    "frl_mask": ("attention", "random"),
}


@dataclass
class AGFNetConfig(EncoderConfig):
    """AGFNet options; every assumption of docs/method.md is one of these.

    Attributes:
        out_indices: backbone levels fused by ALL; the deepest also gives gc, gu. The
            last two by default (issue 15: three were not measurably more accurate and
            cost more, docs/results.md); (-3, -2, -1) is `agfnet_three_scale_<size>`.
        scale_dim: cap on the projected width d_s = min(C_s, scale_dim) of each scale
            (rounded up to a multiple of num_heads). 128 by default (the paper size; was
            256 before issue 15: `model.overrides.scale_dim=256`); tiny and lite set theirs.
        embed_dim: width D of the AGL tokens and of the fused representation f.
        num_heads: heads of the ALL attention and pooling.
        kv_size: ALL keys/values are pooled to at most kv_size x kv_size tokens (M).
        mlp_ratio: FFN hidden width / d_s in ALL.
        gate_init: initial value of the learned ALL gates.
        use_all: False gives agfnet_no_all (plain GAP of the projected maps).
        intra: keep ALL's intra-modality attention (False: agfnet_no_intra).
        inter: keep ALL's inter-modality attention (False: agfnet_no_inter).
        saliency: attention-guided pooling, "attention" (learned query) or "score".
        scale_fusion: "concat" (concatenate + project) or "progressive" (fine to coarse).
        use_agl: False gives agfnet_no_agl (an MLP over [gc, gu, zc, zu]).
        agl_depth: AGL transformer blocks.
        agl_heads: AGL attention heads.
        aux_heads: auxiliary classifiers on gc and gu.
        frl: feature reconstruction learning in training (False: agfnet_no_frl).
        frl_mask: "attention" (saliency-weighted) or "random" token masking.
        frl_mask_ratio: fraction rho of the deepest scale's tokens masked per modality.
        frl_decoder_dim: FRL decoder width (a multiple of 4 and of num_heads).
        frl_decoder_depth: FRL decoder blocks.
    """

    out_indices: tuple[int, ...] = (-2, -1)
    scale_dim: int = 128
    embed_dim: int = 256
    num_heads: int = 4
    kv_size: int = 7
    mlp_ratio: float = 4.0
    gate_init: float = 0.1
    use_all: bool = True
    intra: bool = True
    inter: bool = True
    saliency: str = "attention"
    scale_fusion: str = "concat"
    use_agl: bool = True
    agl_depth: int = 1
    agl_heads: int = 4
    aux_heads: bool = True
    frl: bool = True
    frl_mask: str = "attention"
    frl_mask_ratio: float = 0.5
    frl_decoder_dim: int = 128
    frl_decoder_depth: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.out_indices = tuple(self.out_indices)
        check_option(len(self.out_indices) >= 1, "out_indices", self.out_indices, "give >= 1")
        for key, allowed in _CHOICES.items():
            value, fix = getattr(self, key), " or ".join(f'"{a}"' for a in allowed)
            check_option(value in allowed, key, value, f"use {fix}")
        check_option(
            0.0 < self.frl_mask_ratio < 1.0, "frl_mask_ratio", self.frl_mask_ratio, "use (0, 1)"
        )
        check_option(
            not self.use_all or self.intra or self.inter,
            "intra",
            self.intra,
            "ALL needs intra or inter attention; to remove both set use_all=False",
        )
        check_option(
            self.embed_dim % self.agl_heads == 0,
            "embed_dim",
            self.embed_dim,
            f"use a multiple of agl_heads={self.agl_heads}",
        )
        check_option(
            self.frl_decoder_dim % math.lcm(4, self.num_heads) == 0 or not self.frl,
            "frl_decoder_dim",
            self.frl_decoder_dim,
            f"use a multiple of 4 and of num_heads ({math.lcm(4, self.num_heads)})",
        )


class LocalScale(nn.Module):
    """ALL at one scale: project both maps to d_s, mix them with gated intra/inter
    attention, and pool each into a local descriptor with a saliency map."""

    def __init__(
        self,
        in_chs: int,
        dim: int,
        num_heads: int = 4,
        *,
        use_all: bool = True,
        intra: bool = True,
        inter: bool = True,
        kv_size: int = 7,
        mlp_ratio: float = 4.0,
        gate_init: float = 0.1,
        saliency: str = "attention",
    ) -> None:
        """
        Args:
            in_chs: C_s, backbone channels at this scale.
            dim: d_s, the common width both modalities are projected to.
            num_heads: heads of the attention and of the pooling.
            use_all: the attention and pooling (False: projection + GAP only).
            intra: keep the intra-modality attention term.
            inter: keep the inter-modality attention term.
            kv_size: keys/values pooled to at most kv_size x kv_size tokens.
            mlp_ratio: FFN hidden width / d_s.
            gate_init: initial value of the learned gates.
            saliency: the attention-guided pooling, "attention" or "score".
        """
        super().__init__()
        self.proj = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Conv2d(in_chs, dim, 1, bias=False), nn.BatchNorm2d(dim))
                for m in MODALITIES
            }
        )
        self.mix = None
        self.pool = None
        if use_all:
            self.mix = BidirectionalBlock(
                dim,
                MODALITIES,
                num_heads,
                kv_size=kv_size,
                mlp_ratio=mlp_ratio,
                intra=intra,
                inter=inter,
                gate_init=gate_init,
            )
            self.pool = nn.ModuleDict(
                {m: create_attention_pool(saliency, dim, num_heads) for m in MODALITIES}
            )

    def tokens(
        self, feats: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, tuple[int, int]]]:
        """(B, C_s, h, w) maps -> (B, h*w, d_s) projected tokens T and each map's (h, w)."""
        maps = {m: self.proj[m](f) for m, f in feats.items()}
        tokens = {m: map_to_tokens(x) for m, x in maps.items()}
        return tokens, {m: (x.shape[-2], x.shape[-1]) for m, x in maps.items()}

    def attend(
        self, tokens: dict[str, torch.Tensor], hw: dict[str, tuple[int, int]]
    ) -> dict[str, torch.Tensor]:
        """T -> L = T + g_a*intra + g_b*inter (+ FFN); identity without ALL."""
        return tokens if self.mix is None else self.mix(tokens, hw)

    def describe(
        self, mixed: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        """L (B, N, d_s) -> descriptors (B, d_s) and saliency (B, N); GAP without ALL."""
        if self.pool is None:
            return {m: t.mean(dim=1) for m, t in mixed.items()}, None
        pooled = {m: self.pool[m](t) for m, t in mixed.items()}
        return {m: p[0] for m, p in pooled.items()}, {m: p[1] for m, p in pooled.items()}


class ScaleFeatures(NamedTuple):
    """What ALL computed at one scale, each a modality -> value dict."""

    tokens: dict[str, torch.Tensor]  # T: (B, N, d_s) projected tokens
    hw: dict[str, tuple[int, int]]  # the map's (h, w), N = h*w
    desc: dict[str, torch.Tensor]  # l: (B, d_s) local descriptor
    saliency: dict[str, torch.Tensor] | None  # (B, N), sums to 1; None without ALL


class AGFNetFeatures(NamedTuple):
    """`AGFNet.forward_features`: everything before multi-scale fusion, AGL and the heads."""

    scales: list[ScaleFeatures]  # ALL at each fused scale, fine to coarse
    global_desc: dict[str, torch.Tensor]  # g: (B, C_last), GAP of the deepest map
    modalities: torch.Tensor  # (B, 2) bool: the inputs used (`ModelOutput.modalities`)
    metadata: torch.Tensor | None = None  # (B, D) metadata token; None without metadata


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


class AGFNet(PairedNet):
    """AGFNet: encoders -> ALL per scale -> multi-scale fusion -> AGL -> head, plus
    auxiliary heads and FRL in training. See docs/method.md for shapes.

    `forward_features` runs the encoders and ALL, `forward_head` the fusion, AGL and main
    head (timm's split); `forward_output` adds what the losses and explanations need.
    """

    config_cls = AGFNetConfig

    def __init__(
        self,
        config: AGFNetConfig,
        num_classes: int,
        *,
        tasks: Mapping[str, int] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """
        Args:
            config: the options (presets come from the registry).
            num_classes: K.
            tasks: extra tasks, name -> classes: a linear head each on f.
            metadata: a metadata spec dict: the metadata vector is one more AGL token.
        """
        super().__init__(
            config, num_classes, out_indices=config.out_indices, tasks=tasks, metadata=metadata
        )
        chs = self.encoders.channels
        dims = [_round_up(min(c, config.scale_dim), config.num_heads) for c in chs]
        self.dims = dims
        all_options = {
            "use_all": config.use_all,
            "intra": config.intra,
            "inter": config.inter,
            "kv_size": config.kv_size,
            "mlp_ratio": config.mlp_ratio,
            "gate_init": config.gate_init,
            "saliency": config.saliency,
        }
        self.local = nn.ModuleList(
            LocalScale(c, d, config.num_heads, **all_options)
            for c, d in zip(chs, dims, strict=True)
        )
        fusion = config.scale_fusion
        self.fusion = nn.ModuleDict(
            {m: create_scale_fusion(fusion, dims, config.embed_dim) for m in MODALITIES}
        )
        # The order in which modules are built fixes the initial random draws: keep it, or
        # the same seed gives other weights.
        self.agl = AttentionGuidedGlobal(
            chs[-1],
            config.embed_dim,
            use_agl=config.use_agl,
            depth=config.agl_depth,
            num_heads=config.agl_heads,
            extra_tokens=int(self.metadata_spec is not None),
        )
        self.head = nn.Sequential(
            nn.Dropout(config.drop_rate), nn.Linear(config.embed_dim, num_classes)
        )
        self.aux_heads = None
        if config.aux_heads:
            self.aux_heads = nn.ModuleDict({m: nn.Linear(chs[-1], num_classes) for m in MODALITIES})
        self.frl = None
        if config.frl:
            self.frl = FeatureReconstruction(
                dims[-1],
                MODALITIES,
                mask_mode=config.frl_mask,
                mask_ratio=config.frl_mask_ratio,
                decoder_dim=config.frl_decoder_dim,
                decoder_depth=config.frl_decoder_depth,
                num_heads=config.num_heads,
                kv_size=config.kv_size,
            )
        self.init_weights()
        self.metadata_encoder = self.build_metadata_encoder(config.embed_dim)
        self.task_heads = self.build_task_heads(config.embed_dim)

    def forward(self, clinical: torch.Tensor, ultrasound: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) clinical and ultrasound images -> (B, K) logits."""
        features = self.forward_features(clinical, ultrasound)
        return self.forward_head(features)

    def forward_features(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor | None = None,
        metadata: Mapping[str, torch.Tensor] | None = None,
    ) -> AGFNetFeatures:
        """Encoders and ALL at every fused scale, and the metadata token.

        Args:
            clinical: (B, 3, Hc, Wc).
            ultrasound: (B, 3, Hu, Wu).
            present: optional (B, 2) bool availability (needs modality_dropout > 0 for
                a pair with one image missing).
            metadata: optional encoded metadata (`PairedNet.encode_metadata`); None =
                every field missing. Ignored by a model without metadata.

        Returns:
            `AGFNetFeatures`: per scale, fine to coarse, the projected tokens T (B, N_s,
            d_s), the map sizes, the local descriptors l_s (B, d_s) and the saliency
            (B, N_s); the global descriptors g (B, C_last); the (B, 2) inputs used; the
            (B, D) metadata token (None without metadata).
        """
        feats, used = self.encoders(clinical, ultrasound, present)
        scales = []
        for i, stage in enumerate(self.local):
            tokens, hw = stage.tokens({m: f[i] for m, f in feats.items()})
            desc, saliency = stage.describe(stage.attend(tokens, hw))
            scales.append(ScaleFeatures(tokens, hw, desc, saliency))
        g = {m: f[-1].mean(dim=(2, 3)) for m, f in feats.items()}
        return AGFNetFeatures(scales, g, used, self.encode_metadata(metadata, clinical))

    def forward_head(self, features: AGFNetFeatures, *, pre_logits: bool = False) -> torch.Tensor:
        """Multi-scale fusion of the local descriptors, AGL, main head.

        Args:
            features: from `forward_features`.
            pre_logits: return f, the (B, D) input of the main head, instead of logits.

        Returns:
            (B, K) logits, or (B, D) with pre_logits.
        """
        z = {m: self.fusion[m]([s.desc[m] for s in features.scales]) for m in MODALITIES}
        extra = () if features.metadata is None else (features.metadata,)
        f = self.agl(features.global_desc, z, extra)
        return f if pre_logits else self.head(f)

    def forward_output(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor | None = None,
        metadata: Mapping[str, torch.Tensor] | None = None,
    ) -> ModelOutput:
        """
        Args:
            clinical, ultrasound, present, metadata: as `forward_features`.

        Returns:
            `ModelOutput`; rec_loss and masked_logits only in training with FRL; the
            task logits (on f, like the main head) with tasks.
        """
        features = self.forward_features(clinical, ultrasound, present, metadata)
        f = self.forward_head(features, pre_logits=True)
        logits = self.head(f)
        g = features.global_desc
        aux = {} if self.aux_heads is None else {m: h(g[m]) for m, h in self.aux_heads.items()}
        rec_loss = masked_logits = None
        if self.training and self.frl is not None:
            rec_loss, masked_logits = self.forward_reconstruction(features)
        return ModelOutput(
            logits=logits,
            aux_logits=aux,
            masked_logits=masked_logits,
            rec_loss=rec_loss,
            saliency=self.saliency_maps(features.scales),
            modalities=features.modalities,
            task_logits=self.task_logits(f),
        )

    def forward_reconstruction(self, features: AGFNetFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """FRL on the deepest scale: mask, re-run ALL there (not the backbones), decode.

        Args:
            features: from `forward_features`.

        Returns:
            the reconstruction loss (scalar) and the masked pass's logits (B, K).
        """
        deep, stage = features.scales[-1], self.local[-1]
        masked, masks = self.frl.mask(deep.tokens, deep.saliency)
        mixed = stage.attend(masked, deep.hw)
        pred = self.frl(mixed, deep.hw)
        # An absent modality's tokens are its absent embedding: nothing worth reconstructing.
        used = features.modalities
        masks = {m: masks[m] & used[:, i, None] for i, m in enumerate(MODALITIES)}
        rec_loss = self.frl.loss(pred, deep.tokens, masks)
        desc, _ = stage.describe(mixed)
        # The masked pass's descriptor replaces the deepest one; the head is shared.
        scales = [*features.scales[:-1], deep._replace(desc=desc)]
        return rec_loss, self.forward_head(features._replace(scales=scales))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # Checkpoints written before AGL's module was named `agl` call it `glob`. Children
        # load from this dict after this call, so renaming the keys here suffices.
        old = f"{prefix}glob."
        for key in [k for k in state_dict if k.startswith(old)]:
            state_dict[f"{prefix}agl.{key[len(old) :]}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @staticmethod
    def saliency_maps(scales: list[ScaleFeatures]) -> dict[str, torch.Tensor]:
        """Average the per-scale saliency, upsampled to the finest fused scale.

        Returns:
            modality -> (B, h_1, w_1), summing to 1 per sample; {} without ALL.
        """
        if scales[0].saliency is None:
            return {}
        return {
            m: merge_saliency([s.saliency[m] for s in scales], [s.hw[m] for s in scales])
            for m in MODALITIES
        }


_WIDTHS = {
    "tiny": {"scale_dim": 64, "embed_dim": 64, "mlp_ratio": 2.0, "frl_decoder_dim": 32},
    # Lite0's last stages have 40, 112 and 320 channels (the default fuses the last two):
    # width 128 keeps the new layers small next to the pretrained encoders, for a few
    # hundred training pairs.
    "lite": {"scale_dim": 128, "embed_dim": 128, "mlp_ratio": 2.0, "frl_decoder_dim": 64},
    "paper": {},
}

_VARIANTS: dict[str, tuple[dict, str]] = {
    "agfnet": ({}, "AGFNet: ALL + AGL + auxiliary heads + FRL"),
    "agfnet_no_frl": ({"frl": False}, "ablation: no feature reconstruction learning"),
    "agfnet_no_agl": ({"use_agl": False}, "ablation: MLP over [gc, gu, zc, zu] instead of AGL"),
    "agfnet_no_all": ({"use_all": False}, "ablation: GAP local descriptors, no ALL attention"),
    "agfnet_no_intra": ({"intra": False}, "ablation: ALL without intra-modality attention"),
    "agfnet_no_inter": ({"inter": False}, "ablation: ALL without inter-modality attention"),
    # The other reading of two of docs/method.md's assumptions, as names so that
    # `agfnet compare` can set them side by side with the default.
    "agfnet_score_saliency": (
        {"saliency": "score"},
        "variant: ALL saliency from a learned one-channel score, not a learned query",
    ),
    "agfnet_progressive_fusion": (
        {"scale_fusion": "progressive"},
        "variant: multi-scale fusion fine to coarse, not concatenate + project",
    ),
    # The fused scales and their width (issue 15 section 3): one option away from the
    # default, so that `agfnet compare` measures what each costs and gives.
    "agfnet_three_scale": (
        {"out_indices": (-3, -2, -1)},
        "variant: ALL fuses the last three backbone stages, not the last two (the default "
        "before issue 15)",
    ),
}

#: Variants whose option depends on the size: a function of the size's AGFNet options.
_SIZED_VARIANTS = {
    "agfnet_narrow": (
        lambda widths: {"scale_dim": widths.get("scale_dim", AGFNetConfig.scale_dim) // 2},
        "variant: scale_dim halved from the size's default (paper 64, lite 64, tiny 32)",
    ),
}

for _size, _preset in SIZE_PRESETS.items():
    _sized = {n: (f(_WIDTHS[_size]), d) for n, (f, d) in _SIZED_VARIANTS.items()}
    for _name, (_options, _description) in {**_VARIANTS, **_sized}.items():
        register_model(
            f"{_name}_{_size}",
            AGFNet,
            description=_description,
            **{**_preset, **_WIDTHS[_size], **_options},
        )
