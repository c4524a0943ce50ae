"""Feature reconstruction learning (FRL): token masking, a light cross-modal decoder and
the masked-token reconstruction loss (after MAE, He et al., CVPR 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import build_sincos2d_pos_embed
from torch import nn

from agfnet.layers.blocks import BidirectionalBlock

__all__ = ["FeatureReconstruction", "ReconstructionDecoder", "choose_masked"]

MASK_MODES = ("random", "attention")


def choose_masked(
    batch: int,
    num_tokens: int,
    ratio: float,
    saliency: torch.Tensor | None = None,
    *,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Pick round(ratio * N) tokens (at least one) per sample to mask.

    Without a saliency map every subset is equally likely. With one, tokens are drawn
    without replacement with probability proportional to saliency (Gumbel-top-k): the
    most salient tokens are masked most often, but not always, so the network cannot rely
    on a single hot spot.

    Args:
        batch: B.
        num_tokens: N.
        ratio: fraction of tokens to mask, in (0, 1).
        saliency: optional (B, N) non-negative weights (need not be normalised).
        device: device of the mask when no saliency is given.

    Returns:
        (B, N) bool, True where masked; every row has the same count.
    """
    num_mask = max(1, round(ratio * num_tokens))
    device = saliency.device if saliency is not None else device
    uniform = torch.rand(batch, num_tokens, device=device)
    if saliency is None:
        score = uniform
    else:
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-9, 1 - 1e-9)))
        score = saliency.detach().clamp_min(1e-12).log() + gumbel
    index = score.topk(num_mask, dim=1).indices
    return torch.zeros(batch, num_tokens, dtype=torch.bool, device=device).scatter_(1, index, True)


class ReconstructionDecoder(nn.Module):
    """Light decoder: embed, add 2-D sin-cos positions, bidirectional blocks, predict.

    Each stream attends to the other stream's tokens, so a masked clinical region can be
    recovered from the ultrasound context and vice versa. Positions are needed because
    every masked token starts as the same learned mask token.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        names: tuple[str, str],
        *,
        depth: int = 1,
        num_heads: int = 4,
        kv_size: int = 7,
        mlp_ratio: float = 2.0,
    ) -> None:
        """
        Args:
            in_dim: width C of the tokens to reconstruct.
            dim: decoder width; a multiple of 4 (sin-cos positions) and of `num_heads`.
            names: the two stream names.
            depth: decoder blocks.
            num_heads: attention heads.
            kv_size: keys/values pooled to at most kv_size x kv_size tokens.
            mlp_ratio: FFN hidden width / dim.
        """
        super().__init__()
        if dim % 4:
            raise ValueError(f"decoder width {dim} must be a multiple of 4 (2-D sin-cos positions)")
        self.dim = dim
        self.embed = nn.ModuleDict({n: nn.Linear(in_dim, dim) for n in names})
        # Full-strength gates: the decoder is trained from scratch and has nothing to preserve.
        self.blocks = nn.ModuleList(
            BidirectionalBlock(
                dim, names, num_heads, kv_size=kv_size, mlp_ratio=mlp_ratio, gate_init=1.0
            )
            for _ in range(depth)
        )
        self.norm = nn.ModuleDict({n: nn.LayerNorm(dim) for n in names})
        self.pred = nn.ModuleDict({n: nn.Linear(dim, in_dim) for n in names})

    def forward(
        self, x: dict[str, torch.Tensor], hw: dict[str, tuple[int, int]]
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            x: stream -> (B, N, C) tokens of the masked pass.
            hw: stream -> the map's (h, w).

        Returns:
            stream -> (B, N, C) predicted original tokens.
        """
        x = {
            n: self.embed[n](t) + build_sincos2d_pos_embed(list(hw[n]), self.dim, device=t.device)
            for n, t in x.items()
        }
        for block in self.blocks:
            x = block(x, hw)
        return {n: self.pred[n](self.norm[n](t)) for n, t in x.items()}


class FeatureReconstruction(nn.Module):
    """FRL: mask tokens, (the caller re-mixes them), decode, and score the reconstruction."""

    def __init__(
        self,
        dim: int,
        names: tuple[str, str],
        *,
        mask_mode: str = "attention",
        mask_ratio: float = 0.5,
        decoder_dim: int = 128,
        decoder_depth: int = 1,
        num_heads: int = 4,
        kv_size: int = 7,
    ) -> None:
        """
        Args:
            dim: width C of the tokens to mask and reconstruct.
            names: the two stream names.
            mask_mode: "random" or "attention" (saliency-weighted, see `choose_masked`).
            mask_ratio: fraction of each stream's tokens to mask.
            decoder_dim: decoder width.
            decoder_depth: decoder blocks.
            num_heads: decoder attention heads.
            kv_size: decoder keys/values pooled to at most kv_size x kv_size tokens.
        """
        super().__init__()
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        self.mask_mode = mask_mode
        self.mask_ratio = mask_ratio
        self.mask_token = nn.ParameterDict({n: nn.Parameter(torch.zeros(dim)) for n in names})
        self.decoder = ReconstructionDecoder(
            dim, decoder_dim, names, depth=decoder_depth, num_heads=num_heads, kv_size=kv_size
        )
        for token in self.mask_token.values():
            nn.init.trunc_normal_(token, std=0.02)

    def mask(
        self, tokens: dict[str, torch.Tensor], saliency: dict[str, torch.Tensor] | None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Replace a fraction of each stream's tokens with that stream's mask token.

        Args:
            tokens: stream -> (B, N, C).
            saliency: stream -> (B, N), used when `mask_mode` is "attention"; None falls
                back to random masking.

        Returns:
            masked tokens (stream -> (B, N, C)) and masks (stream -> (B, N) bool).
        """
        masked, masks = {}, {}
        for n, t in tokens.items():
            weights = (
                saliency[n] if saliency is not None and self.mask_mode == "attention" else None
            )
            m = choose_masked(t.shape[0], t.shape[1], self.mask_ratio, weights, device=t.device)
            masked[n] = torch.where(m.unsqueeze(-1), self.mask_token[n].to(t.dtype), t)
            masks[n] = m
        return masked, masks

    def forward(
        self, mixed: dict[str, torch.Tensor], hw: dict[str, tuple[int, int]]
    ) -> dict[str, torch.Tensor]:
        """Decode the masked pass. Args/Returns as `ReconstructionDecoder.forward`."""
        return self.decoder(mixed, hw)

    @staticmethod
    def loss(
        pred: dict[str, torch.Tensor],
        target: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """Mean squared error over the masked tokens of all streams together.

        Targets are the original tokens, layer-normalised (MAE's normalised-pixel trick,
        applied to features) and detached, so the loss cannot shrink by collapsing them.

        Args:
            pred: stream -> (B, N, C) predictions.
            target: stream -> (B, N, C) original tokens.
            masks: stream -> (B, N) bool; only True positions count.

        Returns:
            scalar; 0 when nothing is masked.
        """
        total = pred[next(iter(pred))].new_zeros(())
        count = total.clone()
        for n, p in pred.items():
            t = target[n].detach()
            t = F.layer_norm(t, t.shape[-1:])
            err = (p - t).pow(2).mean(dim=-1)
            m = masks[n].to(err.dtype)
            total = total + (err * m).sum()
            count = count + m.sum()
        return total / count.clamp_min(1.0)
