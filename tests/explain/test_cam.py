"""Grad-CAM family maps per modality (`explain_pair`) and ALL attention maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agfnet.errors import UserError
from agfnet.explain.cam import (
    DEFAULT_METHOD,
    METHODS,
    MIN_MAP_SIDE,
    attention_maps,
    default_layers,
    explain_pair,
    layer_names,
    map_sizes,
    resolve_layer,
)
from agfnet.models import create_model

K = 3
# 48 and 40 px: small and unequal (the default layers' maps are then 6x6 + 3x3 and 5x5 + 3x3).
C_SIZE, U_SIZE = 48, 40

_MODELS: dict[tuple, torch.nn.Module] = {}


def model(name: str, **overrides) -> torch.nn.Module:
    """A cached tiny model with seeded random weights (tests must not modify it)."""
    key = (name, tuple(sorted(overrides.items())))
    if key not in _MODELS:
        _MODELS[key] = create_model(name, num_classes=K, seed=0, **overrides).eval()
    return _MODELS[key]


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, C_SIZE, C_SIZE, generator=gen), torch.randn(
        2, 3, U_SIZE, U_SIZE, generator=gen
    )


@pytest.mark.parametrize(
    ("name", "method"),
    [("agfnet_tiny", m) for m in METHODS]
    + [("late_concat_tiny", "gradcam"), ("cross_attn_tiny", "layercam")],
)
def test_maps_have_input_size_and_unit_range(name: str, method: str, pair) -> None:
    clinical, ultrasound = pair
    maps = explain_pair(model(name), clinical, ultrasound, method=method)
    assert maps["clinical"].shape == (2, C_SIZE, C_SIZE)
    assert maps["ultrasound"].shape == (2, U_SIZE, U_SIZE)
    for m in maps.values():
        assert m.dtype == np.float32
        assert m.min() >= 0.0 and m.max() <= 1.0


def test_unbatched_input_gives_one_map(pair) -> None:
    """A single pair gets the map it gets inside a batch (this fails without the
    batch-size-1 workaround in explain_pair: PyTorch's BatchNorm backward bug)."""
    clinical, ultrasound = pair
    single = explain_pair(model("agfnet_tiny"), clinical[1], ultrasound[1], method="layercam")
    batch = explain_pair(model("agfnet_tiny"), clinical, ultrasound, method="layercam")
    assert single["clinical"].shape == (C_SIZE, C_SIZE)
    np.testing.assert_allclose(single["clinical"], batch["clinical"][1], atol=1e-5)
    np.testing.assert_allclose(single["ultrasound"], batch["ultrasound"][1], atol=1e-5)


def test_target_none_explains_the_argmax(pair) -> None:
    net = model("agfnet_tiny")
    clinical, ultrasound = pair
    with torch.no_grad():
        argmax = net(clinical, ultrasound).argmax(dim=1).tolist()
    auto = explain_pair(net, clinical, ultrasound, method="layercam")
    explicit = explain_pair(net, clinical, ultrasound, method="layercam", target=argmax)
    other = explain_pair(
        net, clinical, ultrasound, method="layercam", target=[(t + 1) % K for t in argmax]
    )
    for m in auto:
        np.testing.assert_array_equal(auto[m], explicit[m])
    # ... and the target matters, so the equality above is not trivial.
    assert any(not np.allclose(auto[m], other[m]) for m in auto)


@pytest.mark.parametrize(
    ("name", "seen", "unseen"),
    [
        ("clinical_only_tiny", "clinical", "ultrasound"),
        ("ultrasound_only_tiny", "ultrasound", "clinical"),
    ],
)
def test_single_modality_model_gives_flat_map_for_the_other(name, seen, unseen, pair) -> None:
    net = model(name)
    assert list(default_layers(net)) == [seen]
    maps = explain_pair(net, *pair, method="layercam")
    assert not maps[unseen].any()
    assert maps[seen].max() > 0.5


def test_shared_encoder_maps_match_separate_encoders_with_equal_weights(pair) -> None:
    """The oracle: a shared backbone explained per modality must give exactly the maps of
    a two-backbone model whose backbones are copies of it. Mixing the two passes through
    the shared last stage would break this."""
    shared = model("agfnet_tiny", share_encoder=True)
    separate = create_model("agfnet_tiny", num_classes=K, seed=1).eval()
    state = {}
    for key, value in shared.state_dict().items():
        for m in ("clinical", "ultrasound"):
            state[key.replace(".shared.", f".{m}.")] = value
    separate.load_state_dict(state)
    layers = default_layers(shared)
    expected = ["encoders.backbones.shared.layer2", "encoders.backbones.shared.layer3"]
    assert layers["clinical"] == layers["ultrasound"] == expected
    a = explain_pair(shared, *pair, method="layercam")
    b = explain_pair(separate, *pair, method="layercam")
    for m in a:
        np.testing.assert_allclose(a[m], b[m], atol=1e-5)
    # Same images through the shared encoder, yet each modality gets its own map.
    same = explain_pair(shared, pair[0], pair[0], method="layercam")
    assert not np.allclose(same["clinical"], same["ultrasound"])


def test_dotted_layer_names(pair) -> None:
    # Three fused scales: with the default two, these seeded random weights give an
    # all-zero Grad-CAM at both layers, and the maps could not differ.
    net = model("agfnet_three_scale_tiny")
    name = "encoders.backbones.clinical.layer3"
    assert resolve_layer(net, name) is net.encoders.backbones["clinical"].layer3
    maps = explain_pair(
        net,
        *pair,
        layers={
            "clinical": name,
            "ultrasound": [
                "encoders.backbones.ultrasound.layer3",
                "encoders.backbones.ultrasound.layer4",
            ],
        },
    )
    assert maps["clinical"].shape == (2, C_SIZE, C_SIZE)
    assert maps["ultrasound"].shape == (2, U_SIZE, U_SIZE)
    default = explain_pair(net, *pair)
    assert not np.allclose(maps["clinical"], default["clinical"])
    with pytest.raises(
        UserError,
        match=r"no layer 'encoders\.backbones\.clinical\.layr4'.*"
        r"Closest names: encoders\.backbones\.clinical\.layer4",
    ):
        layer_names(net, {"clinical": "encoders.backbones.clinical.layr4"})
    with pytest.raises(UserError, match="keys must be modalities"):
        layer_names(net, {"photo": name})


def test_layers_that_do_not_see_the_image_once_are_refused(pair) -> None:
    net = model("agfnet_tiny")
    other = {
        "clinical": "encoders.backbones.ultrasound.layer4",
        "ultrasound": "encoders.backbones.ultrasound.layer4",
    }
    with pytest.raises(UserError, match="ran 0 times"):
        explain_pair(net, *pair, layers=other)
    # 16 px: the stride-16 stage of the default layers is then 1x1.
    with pytest.raises(UserError, match="1x1 map"):
        explain_pair(net, pair[0][..., :16, :16], pair[1])


def test_bad_method_and_target(pair) -> None:
    net = model("agfnet_tiny")
    with pytest.raises(UserError, match="gradcam, gradcam\\+\\+, layercam"):
        explain_pair(net, *pair, method="scorecam")
    with pytest.raises(UserError, match="class index"):
        explain_pair(net, *pair, target=K)


def test_model_state_is_restored(pair) -> None:
    net = create_model("late_concat_tiny", num_classes=K, seed=0)
    net.train()
    frozen = next(net.parameters())
    frozen.requires_grad_(False)
    explain_pair(net, *pair)
    assert net.training
    assert not frozen.requires_grad
    assert all(p.requires_grad for p in list(net.parameters())[1:])
    assert all(p.grad is None for p in net.parameters())


def test_attention_maps(pair) -> None:
    # Three fused scales: the finest is then 6 x 6 at 48 px; with the default two it is
    # 3 x 3 and these random weights give a near-uniform saliency, whose argmax is a tie.
    net = model("agfnet_three_scale_tiny")
    maps = attention_maps(net, *pair)
    assert maps["clinical"].shape == (2, C_SIZE, C_SIZE)
    assert maps["ultrasound"].shape == (2, U_SIZE, U_SIZE)
    for m in maps.values():
        np.testing.assert_allclose(m.reshape(2, -1).min(axis=1), 0.0)
        np.testing.assert_allclose(m.reshape(2, -1).max(axis=1), 1.0)
    # The location of the low-resolution saliency maximum stays the maximum after upsampling.
    with torch.no_grad():
        low = net.forward_output(*pair).saliency["clinical"][0]
    cell = np.unravel_index(int(low.argmax()), low.shape)
    scale = C_SIZE / low.shape[0]
    peak = np.unravel_index(int(maps["clinical"][0].argmax()), (C_SIZE, C_SIZE))
    assert (
        abs(peak[0] / scale - (cell[0] + 0.5)) <= 1 and abs(peak[1] / scale - (cell[1] + 0.5)) <= 1
    )
    with pytest.raises(UserError, match="no attention"):
        attention_maps(model("late_concat_tiny"), *pair)


@pytest.mark.parametrize(
    ("backbone", "expected"),
    [
        ("resnet10t", ["layer2", "layer3"]),
        ("efficientnet_lite0", ["blocks.2", "blocks.4"]),
        ("convnext_atto", ["stages_1", "stages_2"]),
    ],
)
def test_default_layers_are_the_stride_8_and_16_stages(backbone, expected) -> None:
    """Every family gets its stride-8 and stride-16 stages, whatever timm calls them, and
    their maps are 1/8 and 1/16 of the input: at least 7 x 7 from 56 px up."""
    net = create_model(
        "late_concat_tiny", num_classes=K, seed=0, backbone=backbone, backbone_kwargs={}
    ).eval()
    layers = default_layers(net)
    assert layers["clinical"] == [f"encoders.backbones.clinical.{n}" for n in expected]
    sizes = map_sizes(net, layers, (96, 160))
    assert sizes == {"clinical": [12, 20], "ultrasound": [12, 20]}
    assert min(map_sizes(net, layers, 56)["clinical"]) >= MIN_MAP_SIDE


def test_every_entry_point_uses_the_checked_default_method() -> None:
    """The sanity tests (test_sanity.py) check DEFAULT_METHOD at the default layers; the
    demo, `agfnet explain`, `agfnet analyze`, `agfnet predict --cam` and the web page
    must all use that setting."""
    import inspect

    from agfnet.app.diagnoser import CAM_METHOD
    from agfnet.cli.analyze import analyze
    from agfnet.cli.explain import explain
    from agfnet.explain.run import run_explain
    from agfnet.inference.predictor import Predictor
    from agfnet.workflows.analyze import run_analysis

    assert DEFAULT_METHOD == "layercam" and CAM_METHOD == DEFAULT_METHOD
    for fn in (explain_pair, run_explain, Predictor.explain, run_analysis):
        assert inspect.signature(fn).parameters["method"].default == DEFAULT_METHOD, fn
    for command in (explain, analyze):
        assert inspect.signature(command).parameters["method"].default.default == DEFAULT_METHOD
