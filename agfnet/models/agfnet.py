"""AGFNet and its ablations (Xiao et al., "Attention-Guided Learning with Feature
Reconstruction for Skin Lesion Diagnosis using Clinical and Ultrasound Images", IEEE TMI
44(1), 2025): ALL (local), AGL (global) and FRL (reconstruction), as read in METHOD.md."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from agfnet.layers import (
    BidirectionalBlock,
    FeatureReconstruction,
    TokenTransformer,
    create_attention_pool,
    map_to_tokens,
)
from agfnet.models.base import EncoderConfig, PairedNet, check_option
from agfnet.models.output import MODALITIES, ModelOutput
from agfnet.models.registry import SIZE_PRESETS, register_model

__all__ = ["AGFNet", "AGFNetConfig"]


@dataclass
class AGFNetConfig(EncoderConfig):
    """AGFNet options; every assumption of docs/method.md is one of these.

    Attributes:
        out_indices: backbone levels fused by ALL; the deepest also gives gc, gu.
        scale_dim: cap on the projected width d_s = min(C_s, scale_dim) of each scale
            (rounded up to a multiple of num_heads).
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

    out_indices: tuple[int, ...] = (-3, -2, -1)
    scale_dim: int = 256
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
        check_option(
            self.saliency in ("attention", "score"),
            "saliency",
            self.saliency,
            'use "attention" or "score"',
        )
        check_option(
            self.scale_fusion in ("concat", "progressive"),
            "scale_fusion",
            self.scale_fusion,
            'use "concat" or "progressive"',
        )
        check_option(
            self.frl_mask in ("attention", "random"),
            "frl_mask",
            self.frl_mask,
            'use "attention" or "random"',
        )
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

    def __init__(self, in_chs: int, dim: int, cfg: AGFNetConfig) -> None:
        """
        Args:
            in_chs: C_s, backbone channels at this scale.
            dim: d_s, the common width both modalities are projected to.
            cfg: the model options (use_all, intra, inter, saliency, ...).
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
        if cfg.use_all:
            self.mix = BidirectionalBlock(
                dim,
                MODALITIES,
                cfg.num_heads,
                kv_size=cfg.kv_size,
                mlp_ratio=cfg.mlp_ratio,
                intra=cfg.intra,
                inter=cfg.inter,
                gate_init=cfg.gate_init,
            )
            self.pool = nn.ModuleDict(
                {m: create_attention_pool(cfg.saliency, dim, cfg.num_heads) for m in MODALITIES}
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


class ConcatFusion(nn.Module):
    """Multi-scale fusion: z = W [LN(l_1); ...; LN(l_S)]."""

    def __init__(self, dims: list[int], out_dim: int) -> None:
        """
        Args:
            dims: d_s of each scale.
            out_dim: D.
        """
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.proj = nn.Linear(sum(dims), out_dim)

    def forward(self, descs: list[torch.Tensor]) -> torch.Tensor:
        """list of (B, d_s), fine to coarse -> (B, D)."""
        return self.proj(torch.cat([n(d) for n, d in zip(self.norms, descs, strict=True)], -1))


class ProgressiveFusion(nn.Module):
    """Multi-scale fusion from fine to coarse: z_s = GELU(W_s [z_{s-1}; LN(l_s)])."""

    def __init__(self, dims: list[int], out_dim: int) -> None:
        """
        Args:
            dims: d_s of each scale, fine to coarse.
            out_dim: D.
        """
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.steps = nn.ModuleList(
            nn.Linear(d + (out_dim if i else 0), out_dim) for i, d in enumerate(dims)
        )

    def forward(self, descs: list[torch.Tensor]) -> torch.Tensor:
        """list of (B, d_s), fine to coarse -> (B, D)."""
        z = descs[0].new_zeros(descs[0].shape[0], 0)
        for norm, step, d in zip(self.norms, self.steps, descs, strict=True):
            z = F.gelu(step(torch.cat([z, norm(d)], -1)))
        return z


_FUSIONS: dict[str, type[nn.Module]] = {"concat": ConcatFusion, "progressive": ProgressiveFusion}


class GlobalFusion(nn.Module):
    """AGL: [cls, gc, gu, zc, zu] through a small transformer; f is the cls output.

    Without AGL (the agfnet_no_agl ablation) f = MLP(LN([gc; gu; zc; zu])).
    """

    def __init__(
        self, global_dim: int, dim: int, *, use_agl: bool, depth: int, num_heads: int
    ) -> None:
        """
        Args:
            global_dim: channels of the global descriptors gc, gu (deepest backbone stage).
            dim: D, width of the local descriptors zc, zu and of f.
            use_agl: the transformer (True) or the MLP ablation (False).
            depth: transformer blocks.
            num_heads: transformer heads.
        """
        super().__init__()
        self.proj = nn.ModuleDict({m: nn.Linear(global_dim, dim) for m in MODALITIES})
        if use_agl:
            self.fuse = TokenTransformer(dim, 4, depth=depth, num_heads=num_heads)
        else:
            self.fuse = nn.Sequential(nn.Flatten(1), nn.LayerNorm(4 * dim), Mlp(4 * dim, dim, dim))

    def forward(self, g: dict[str, torch.Tensor], z: dict[str, torch.Tensor]) -> torch.Tensor:
        """
        Args:
            g: modality -> (B, C_last) global descriptor.
            z: modality -> (B, D) fused local descriptor.

        Returns:
            (B, D) fused representation f.
        """
        tokens = [self.proj[m](g[m]) for m in MODALITIES] + [z[m] for m in MODALITIES]
        return self.fuse(torch.stack(tokens, dim=1))


class _Scale(NamedTuple):
    """What ALL computed at one scale (per modality)."""

    tokens: dict[str, torch.Tensor]  # T: (B, N, d_s) projected tokens
    hw: dict[str, tuple[int, int]]  # the map's (h, w)
    desc: dict[str, torch.Tensor]  # l: (B, d_s) local descriptor
    saliency: dict[str, torch.Tensor] | None  # (B, N), sums to 1; None without ALL


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


class AGFNet(PairedNet):
    """AGFNet: encoders -> ALL per scale -> multi-scale fusion -> AGL -> head, plus
    auxiliary heads and FRL in training. See docs/method.md for shapes."""

    config_cls = AGFNetConfig

    def __init__(self, config: AGFNetConfig, num_classes: int) -> None:
        """
        Args:
            config: the options (presets come from the registry).
            num_classes: K.
        """
        super().__init__(config, num_classes, out_indices=config.out_indices)
        chs = self.encoders.channels
        dims = [_round_up(min(c, config.scale_dim), config.num_heads) for c in chs]
        self.dims = dims
        self.local = nn.ModuleList(LocalScale(c, d, config) for c, d in zip(chs, dims, strict=True))
        self.fusion = nn.ModuleDict(
            {m: _FUSIONS[config.scale_fusion](dims, config.embed_dim) for m in MODALITIES}
        )
        self.glob = GlobalFusion(
            chs[-1],
            config.embed_dim,
            use_agl=config.use_agl,
            depth=config.agl_depth,
            num_heads=config.agl_heads,
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

    def forward_output(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor | None = None,
    ) -> ModelOutput:
        """
        Args:
            clinical: (B, 3, Hc, Wc).
            ultrasound: (B, 3, Hu, Wu).
            present: optional (B, 2) bool availability (needs modality_dropout > 0 for
                a pair with one image missing).

        Returns:
            `ModelOutput`; rec_loss and aux_logits["masked"] only in training with FRL.
        """
        feats, used = self.encoders(clinical, ultrasound, present)
        scales = self.forward_local(feats)
        g = {m: f[-1].mean(dim=(2, 3)) for m, f in feats.items()}
        logits = self.forward_head(g, [s.desc for s in scales])
        aux = {} if self.aux_heads is None else {m: h(g[m]) for m, h in self.aux_heads.items()}
        rec_loss = None
        if self.training and self.frl is not None:
            rec_loss, aux["masked"] = self.forward_reconstruction(scales, g, used)
        return ModelOutput(
            logits=logits,
            aux_logits=aux,
            rec_loss=rec_loss,
            saliency=self.saliency_maps(scales),
            modalities=used,
        )

    def forward_local(self, feats: dict[str, list[torch.Tensor]]) -> list[_Scale]:
        """ALL at every fused scale, fine to coarse."""
        scales = []
        for i, stage in enumerate(self.local):
            tokens, hw = stage.tokens({m: f[i] for m, f in feats.items()})
            desc, saliency = stage.describe(stage.attend(tokens, hw))
            scales.append(_Scale(tokens, hw, desc, saliency))
        return scales

    def forward_head(
        self, g: dict[str, torch.Tensor], descs: list[dict[str, torch.Tensor]]
    ) -> torch.Tensor:
        """Multi-scale fusion of the local descriptors, AGL, main head -> (B, K)."""
        z = {m: self.fusion[m]([d[m] for d in descs]) for m in MODALITIES}
        return self.head(self.glob(g, z))

    def forward_reconstruction(
        self, scales: list[_Scale], g: dict[str, torch.Tensor], used: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """FRL on the deepest scale: mask, re-run ALL there (not the backbones), decode.

        Returns:
            the reconstruction loss (scalar) and the masked pass's logits (B, K).
        """
        deep, stage = scales[-1], self.local[-1]
        masked, masks = self.frl.mask(deep.tokens, deep.saliency)
        mixed = stage.attend(masked, deep.hw)
        pred = self.frl(mixed, deep.hw)
        # An absent modality's tokens are its absent embedding: nothing worth reconstructing.
        masks = {m: masks[m] & used[:, i, None] for i, m in enumerate(MODALITIES)}
        rec_loss = self.frl.loss(pred, deep.tokens, masks)
        desc, _ = stage.describe(mixed)
        masked_logits = self.forward_head(g, [s.desc for s in scales[:-1]] + [desc])
        return rec_loss, masked_logits

    @staticmethod
    def saliency_maps(scales: list[_Scale]) -> dict[str, torch.Tensor]:
        """Average the per-scale saliency, upsampled to the finest fused scale.

        Returns:
            modality -> (B, h_1, w_1), summing to 1 per sample; {} without ALL.
        """
        if scales[0].saliency is None:
            return {}
        maps = {}
        for m in MODALITIES:
            size = scales[0].hw[m]
            up = [
                F.interpolate(
                    s.saliency[m].unflatten(1, s.hw[m]).unsqueeze(1),
                    size=size,
                    mode="bilinear",
                    align_corners=False,
                )
                for s in scales
            ]
            avg = torch.stack(up).mean(dim=0).squeeze(1)
            maps[m] = avg / avg.sum(dim=(1, 2), keepdim=True)
        return maps


_WIDTHS = {
    "tiny": {"scale_dim": 64, "embed_dim": 64, "mlp_ratio": 2.0, "frl_decoder_dim": 32},
    "paper": {},
}

_VARIANTS: dict[str, tuple[dict, str]] = {
    "agfnet": ({}, "AGFNet: ALL + AGL + auxiliary heads + FRL"),
    "agfnet_no_frl": ({"frl": False}, "ablation: no feature reconstruction learning"),
    "agfnet_no_agl": ({"use_agl": False}, "ablation: MLP over [gc, gu, zc, zu] instead of AGL"),
    "agfnet_no_all": ({"use_all": False}, "ablation: GAP local descriptors, no ALL attention"),
    "agfnet_no_intra": ({"intra": False}, "ablation: ALL without intra-modality attention"),
    "agfnet_no_inter": ({"inter": False}, "ablation: ALL without inter-modality attention"),
}

for _size, _preset in SIZE_PRESETS.items():
    for _name, (_options, _description) in _VARIANTS.items():
        register_model(
            f"{_name}_{_size}",
            AGFNet,
            description=_description,
            **_preset,
            **_WIDTHS[_size],
            **_options,
        )
