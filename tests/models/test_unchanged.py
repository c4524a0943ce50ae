"""Without tasks and metadata every model is exactly the model of before issue 14: the same
parameters (names, shapes, initial draws) and the same outputs, checked against
fingerprints taken from the code before tasks and metadata existed.

AGFNet models are built with the three fused scales (and, at the paper size, the width 256)
they had when the fingerprints were taken: issue 15 made two scales the default, and 128
the paper size's width.

Regenerate (only on purpose, when a model changes): `python tests/models/test_unchanged.py`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from agfnet.models import create_model, list_models
from agfnet.models.agfnet import AGFNet
from agfnet.models.registry import get_entry

FINGERPRINTS = Path(__file__).with_name("unchanged_fingerprints.json")

# (name, overrides): every tiny model, and the fusion families with modality dropout
# (which adds the absent embeddings) fed a pair with one image missing.
CASES = [(name, {}) for name in list_models("_tiny")] + [
    (name, {"modality_dropout": 0.5})
    for name in ("agfnet_tiny", "cross_attn_tiny", "decision_mean_tiny")
]


def _as_then(name: str, overrides: dict) -> dict:
    """`overrides` plus the options that give `name` the architecture it had then: the
    AGFNet defaults of that time where the name's preset does not set them."""
    entry = get_entry(name)
    if entry.model_cls is not AGFNet:
        return dict(overrides)
    then = {"out_indices": (-3, -2, -1), "scale_dim": 256}
    return {**{k: v for k, v in then.items() if k not in entry.preset}, **overrides}


def _case_id(name: str, overrides: dict) -> str:
    return name + "".join(f"+{k}={v}" for k, v in overrides.items())


def _digest(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Names and shapes as a hash; values as sums (float64) that an order change breaks."""
    layout = [[k, list(v.shape)] for k, v in tensors.items()]
    sums = [v.double().sum().item() for v in tensors.values()]
    return {
        "layout_sha256": hashlib.sha256(json.dumps(layout).encode()).hexdigest(),
        "count": len(layout),
        "sum": sum(sums),
        "abs_sum": sum(v.double().abs().sum().item() for v in tensors.values()),
        "ordered_sum": sum((i + 1) * s for i, s in enumerate(sums)),
    }


def _flat(x: torch.Tensor | None) -> list[float] | None:
    return None if x is None else [round(v, 6) for v in x.detach().double().flatten().tolist()]


def fingerprint(name: str, overrides: dict) -> dict[str, Any]:
    """The state dict's digest and the outputs (training and eval) on fixed inputs."""
    model = create_model(name, num_classes=3, seed=0, **_as_then(name, overrides))
    g = torch.Generator().manual_seed(0)
    x, u = torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 3, 64, 48, generator=g)
    present = torch.tensor([[True, False], [True, True]]) if overrides else None
    torch.manual_seed(0)  # FRL's masking draws
    train = model.forward_output(x, u, present)
    model.eval()
    with torch.no_grad():
        out = model.forward_output(x, u, present)
        logits = model(x, u)
    return {
        "name": name,
        "overrides": overrides,
        "state_dict": _digest(model.state_dict()),
        "train": {
            "logits": _flat(train.logits),
            "aux": {k: _flat(v) for k, v in train.aux_logits.items()},
            "masked": _flat(train.masked_logits),
            "rec": _flat(train.rec_loss),
        },
        "eval": {
            "logits": _flat(out.logits),
            "forward": _flat(logits),
            "saliency_sq": {k: _flat((v**2).sum()) for k, v in out.saliency.items()},
        },
    }


def _paper_layout(name: str) -> str:
    with torch.device("meta"):
        model = create_model(name, num_classes=5, **_as_then(name, {}))
    return _digest({k: torch.empty(v.shape) for k, v in model.state_dict().items()})[
        "layout_sha256"
    ]


def _outputs(fp: dict[str, Any]) -> tuple[Any, list[float]]:
    """The outputs' structure (keys, None, lengths) and every output number, in order."""
    numbers: list[float] = []

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: walk(v) for k, v in sorted(x.items())}
        if x is not None:
            numbers.extend(x)
            return len(x)
        return None

    return walk({"train": fp["train"], "eval": fp["eval"]}), numbers


# The models that existed then (names registered later have nothing to compare with).
_STORED = json.loads(FINGERPRINTS.read_text())


@pytest.mark.parametrize("case", sorted(_STORED["tiny"]))
def test_tiny_model_without_tasks_or_metadata_is_unchanged(case: str) -> None:
    want = _STORED["tiny"][case]
    got = fingerprint(want["name"], want["overrides"])
    got_sd, want_sd = got["state_dict"], want["state_dict"]
    assert (got_sd["layout_sha256"], got_sd["count"]) == (
        want_sd["layout_sha256"],
        want_sd["count"],
    ), "parameter names or shapes changed"
    for key in ("sum", "abs_sum", "ordered_sum"):
        assert got_sd[key] == pytest.approx(want_sd[key], rel=1e-9), f"initial weights: {key}"
    (got_shape, got_numbers), (want_shape, want_numbers) = _outputs(got), _outputs(want)
    assert got_shape == want_shape
    torch.testing.assert_close(
        torch.tensor(got_numbers), torch.tensor(want_numbers), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("size", ["tiny", "paper"])
def test_the_old_default_is_agfnet_three_scale(size: str) -> None:
    # Same parameters, in the same order, drawn the same: one name away from the old model.
    width = {"scale_dim": 256} if size == "paper" else {}  # the paper size's width then
    new = create_model(f"agfnet_three_scale_{size}", num_classes=5, seed=0, **width)
    old = create_model(f"agfnet_{size}", num_classes=5, seed=0, **_as_then(f"agfnet_{size}", {}))
    assert _digest(new.state_dict()) == _digest(old.state_dict())
    assert len(create_model(f"agfnet_{size}", num_classes=5).local) == 2


@pytest.mark.parametrize("name", sorted(_STORED["paper"]))
def test_paper_model_parameters_are_unchanged(name: str) -> None:
    assert _paper_layout(name) == _STORED["paper"][name]


if __name__ == "__main__":
    data = {
        "tiny": {_case_id(*c): fingerprint(*c) for c in CASES},
        "paper": {name: _paper_layout(name) for name in list_models("_paper")},
    }
    FINGERPRINTS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
