"""Attention primitives and blocks used by the models (plain `nn.Module`s, no model logic)."""

from __future__ import annotations

from agfnet.layers.attention import (
    PooledAttention,
    QueryAttentionPool,
    ScoreAttentionPool,
    create_attention_pool,
    map_to_tokens,
    merge_saliency,
    pool_tokens,
)
from agfnet.layers.blocks import BidirectionalBlock, GatedAttentionBlock
from agfnet.layers.fusion import ConcatFusion, ProgressiveFusion, create_scale_fusion
from agfnet.layers.modality import AbsentEmbedding, drop_modalities
from agfnet.layers.reconstruction import FeatureReconstruction, ReconstructionDecoder, choose_masked
from agfnet.layers.transformer import TokenTransformer

__all__ = [
    "AbsentEmbedding",
    "BidirectionalBlock",
    "ConcatFusion",
    "FeatureReconstruction",
    "GatedAttentionBlock",
    "PooledAttention",
    "ProgressiveFusion",
    "QueryAttentionPool",
    "ReconstructionDecoder",
    "ScoreAttentionPool",
    "TokenTransformer",
    "choose_masked",
    "create_attention_pool",
    "create_scale_fusion",
    "drop_modalities",
    "map_to_tokens",
    "merge_saliency",
    "pool_tokens",
]
