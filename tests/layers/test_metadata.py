"""MetadataEncoder: the spec's layout, shapes, and missing / unknown values as their own
inputs."""

from __future__ import annotations

import pytest
import torch

from agfnet.layers.metadata import MetadataEncoder, metadata_layout

SPEC = {
    "fields": [
        {"name": "site", "kind": "categorical", "vocabulary": ["arm", "back", "face"]},
        {"name": "age", "kind": "numeric", "vocabulary": None, "mean": 50.0, "std": 15.0},
        {"name": "sex", "kind": "categorical", "vocabulary": ["female", "male"]},
    ]
}


def _batch(cat: list[list[int]], num: list[list[float]], present: list[list[bool]]) -> dict:
    return {
        "cat": torch.tensor(cat, dtype=torch.long).reshape(len(cat), -1),
        "num": torch.tensor(num, dtype=torch.float32).reshape(len(num), -1),
        "num_present": torch.tensor(present, dtype=torch.bool).reshape(len(present), -1),
    }


def test_layout_counts_missing_and_unknown_codes_per_categorical_field() -> None:
    assert metadata_layout(SPEC) == ([5, 4], 1)


@pytest.mark.parametrize(
    "field",
    [
        {"name": "site", "kind": "categorical", "vocabulary": None},
        {"name": "site", "kind": "ordinal", "vocabulary": []},
        {"kind": "numeric"},
    ],
)
def test_layout_rejects_a_malformed_field(field: dict) -> None:
    with pytest.raises(ValueError, match="metadata field"):
        metadata_layout({"fields": [field]})


# (spec fields, cat, num, present): both kinds, categorical only, numeric only.
CASES = [
    (SPEC["fields"], [[2, 3], [0, 1]], [[0.5], [0.0]], [[True], [False]]),
    (SPEC["fields"][:1], [[4], [0]], [[], []], [[], []]),
    (SPEC["fields"][1:2], [[], []], [[1.0], [0.0]], [[True], [False]]),
]


@pytest.mark.parametrize(("fields", "cat", "num", "present"), CASES)
def test_output_shape_and_every_parameter_gets_a_gradient(fields, cat, num, present) -> None:
    torch.manual_seed(0)
    encoder = MetadataEncoder({"fields": fields}, 12)
    out = encoder(_batch(cat, num, present))
    assert out.shape == (2, 12) and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_missing_batch_is_every_field_missing() -> None:
    encoder = MetadataEncoder(SPEC, 8)
    missing = encoder.missing(3)
    assert missing["cat"].shape == (3, 2) and missing["cat"].dtype == torch.long
    assert not missing["cat"].any() and not missing["num_present"].any()
    assert missing["num"].shape == missing["num_present"].shape == (3, 1)
    assert encoder(missing).shape == (3, 8)


def test_missing_unknown_and_known_values_are_distinct_inputs() -> None:
    torch.manual_seed(0)
    encoder = MetadataEncoder(SPEC, 8).eval()
    # site: missing, unknown, "arm"; sex fixed; age: absent, present at the mean (0).
    out = encoder(
        _batch(
            [[0, 2], [1, 2], [2, 2], [2, 2]], [[0.0], [0.0], [0.0], [0.0]], [[False]] * 3 + [[True]]
        )
    )
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(out[i], out[j]), (i, j)


def test_field_counts_other_than_the_specs_are_refused() -> None:
    encoder = MetadataEncoder(SPEC, 8)
    with pytest.raises(ValueError, match="built for 2 and 1"):
        encoder(_batch([[2]], [[0.0]], [[True]]))


def test_a_spec_without_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MetadataEncoder({"fields": []}, 8)
