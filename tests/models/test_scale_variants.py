"""The fused-scale variants (issue 15 section 3): three scales instead of the default two,
half the width.

Each differs from `agfnet_<size>` in exactly one option, so `agfnet compare` measures that
option alone.
"""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.models import create_model, list_models
from agfnet.models.agfnet import AGFNetConfig
from agfnet.models.registry import SIZE_PRESETS, get_entry

SIZES = tuple(SIZE_PRESETS)


def _difference(name: str, reference: str) -> dict:
    a, b = get_entry(name).preset, get_entry(reference).preset
    return {k: (b.get(k), a.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}


@pytest.mark.parametrize("size", SIZES)
def test_three_scale_differs_from_agfnet_only_in_the_fused_stages(size: str) -> None:
    diff = _difference(f"agfnet_three_scale_{size}", f"agfnet_{size}")
    assert set(diff) == {"out_indices"}
    assert tuple(diff["out_indices"][1]) == (-3, -2, -1)
    assert AGFNetConfig().out_indices == (-2, -1)


def test_the_paper_width_is_128_and_the_small_sizes_keep_theirs() -> None:
    assert AGFNetConfig().scale_dim == 128
    dims = {s: create_model(f"agfnet_{s}", num_classes=5).dims for s in ("tiny", "lite")}
    assert dims == {"tiny": [64, 64], "lite": [112, 128]}
    with torch.device("meta"):
        paper = create_model("agfnet_paper", num_classes=5)
    assert paper.dims == [128, 128]


@pytest.mark.parametrize(("size", "width"), [("tiny", 32), ("lite", 64), ("paper", 64)])
def test_narrow_halves_the_scale_width_of_its_size(size: str, width: int) -> None:
    diff = _difference(f"agfnet_narrow_{size}", f"agfnet_{size}")
    assert set(diff) == {"scale_dim"}
    assert diff["scale_dim"][1] == width
    assert "halved" in get_entry(f"agfnet_narrow_{size}").description


def test_tiny_variants_build_with_the_scales_and_widths_they_say() -> None:
    base = create_model("agfnet_tiny", num_classes=5)
    three = create_model("agfnet_three_scale_tiny", num_classes=5)
    narrow = create_model("agfnet_narrow_tiny", num_classes=5)
    assert len(three.local) == len(base.local) + 1
    # ResNet-10-T/4's last three stages have 32, 64, 128 channels: d_s = min(C_s, scale_dim).
    assert base.dims == [64, 64] and three.dims == [32, 64, 64] and narrow.dims == [32, 32]
    x = torch.randn(2, 3, 64, 64)
    for model in (base, three, narrow):
        model.eval()
        with torch.no_grad():
            out = model.forward_output(x, x)
        assert out.logits.shape == (2, 5)
    # The saliency is given at the finest fused scale: 8x8 for stride 8, 4x4 for 16.
    with torch.no_grad():
        assert three.forward_output(x, x).saliency["clinical"].shape == (2, 8, 8)
        assert base.forward_output(x, x).saliency["clinical"].shape == (2, 4, 4)


def test_the_variants_are_listed_by_agfnet_models() -> None:
    names = set(list_models())
    for size in SIZES:
        assert {f"agfnet_three_scale_{size}", f"agfnet_narrow_{size}"} <= names
        assert f"agfnet_two_scale_{size}" not in names  # that is agfnet_<size> now
    result = CliRunner().invoke(app, ["models", "--filter", "narrow_tiny"])
    assert result.exit_code == 0, result.output
    assert "`agfnet_narrow_tiny`" in result.stdout and "halved" in result.stdout
