"""Multi-scale fusion: every kind maps per-scale descriptors to one vector."""

from __future__ import annotations

import pytest
import torch

from agfnet.layers import ConcatFusion, ProgressiveFusion, create_scale_fusion

KINDS = [("concat", ConcatFusion), ("progressive", ProgressiveFusion)]


@pytest.mark.parametrize(("kind", "cls"), KINDS)
@pytest.mark.parametrize("dims", [[8], [8, 16, 12]])
def test_fusion_maps_descriptors_to_the_output_width(kind: str, cls: type, dims: list[int]) -> None:
    fusion = create_scale_fusion(kind, dims, 10)
    assert isinstance(fusion, cls)
    out = fusion([torch.randn(3, d) for d in dims])
    assert out.shape == (3, 10) and torch.isfinite(out).all()
