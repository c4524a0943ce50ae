"""Metadata fields: fitting on training rows, the codes (missing 0, unknown 1), JSON round trip."""

from __future__ import annotations

import json

import pytest
import torch

from agfnet.data.metadata import (
    MISSING_CODE,
    UNKNOWN_CODE,
    MetadataField,
    MetadataSpec,
    fit_metadata,
    parse_number,
)

TRAIN = [
    {"sex": "female", "site": "back", "age": "40"},
    {"sex": "male", "site": "", "age": "60"},
    {"sex": "female", "site": "face", "age": ""},
    {"sex": "", "site": "back", "age": "50"},
]


def test_fit_learns_sorted_vocabularies_and_numeric_statistics() -> None:
    spec = fit_metadata(TRAIN, ["sex", "site", "age"])
    sex, site, age = spec.fields
    assert (sex.kind, sex.vocabulary) == ("categorical", ["female", "male"])
    assert (site.kind, site.vocabulary) == ("categorical", ["back", "face"])
    assert (age.kind, age.vocabulary) == ("numeric", None)
    assert age.mean == pytest.approx(50.0)
    assert age.std == pytest.approx((200 / 3) ** 0.5)  # population std of 40, 60, 50
    assert spec.names == ["sex", "site", "age"]
    assert spec.categorical == ["sex", "site"] and spec.numeric == ["age"]
    assert spec.cardinalities == [4, 4]  # 2 values + missing + unknown
    assert spec.n_numeric == 1


def test_encode_codes_missing_unknown_and_known_values() -> None:
    spec = fit_metadata(TRAIN, ["sex", "site", "age"])
    codes = spec.encode({"sex": "male", "site": "", "age": "60"})
    assert codes["cat"] == [2 + 1, MISSING_CODE]
    assert codes["num"] == pytest.approx([10 / (200 / 3) ** 0.5])
    assert codes["num_present"] == [True]
    unseen = spec.encode({"sex": "other", "site": "scalp"})  # age left out = missing
    assert unseen["cat"] == [UNKNOWN_CODE, UNKNOWN_CODE]
    assert unseen["num"] == [0.0] and unseen["num_present"] == [False]
    assert spec.encode({"sex": None, "site": "  face ", "age": " "})["cat"] == [0, 3]
    with pytest.raises(ValueError, match=r"'age': 'old' is not a number"):
        spec.encode({"age": "old"})


def test_encode_tensors_dtypes_and_empty_shapes() -> None:
    spec = fit_metadata(TRAIN, ["sex", "age"])
    t = spec.encode_tensors({"sex": "female", "age": "45"})
    assert t["cat"].dtype == torch.int64 and t["cat"].tolist() == [2]
    assert t["num"].dtype == torch.float32 and t["num"].shape == (1,)
    assert t["num_present"].dtype == torch.bool and t["num_present"].tolist() == [True]
    empty = MetadataSpec().encode_tensors({"sex": "female"})
    assert {k: (v.shape, v.dtype) for k, v in empty.items()} == {
        "cat": ((0,), torch.int64),
        "num": ((0,), torch.float32),
        "num_present": ((0,), torch.bool),
    }


def test_kinds_declared_or_inferred() -> None:
    rows = [{"code": "1", "mixed": "2"}, {"code": "3", "mixed": "two"}, {"code": "", "mixed": ""}]
    inferred = fit_metadata(rows, ["code", "mixed"])
    assert [f.kind for f in inferred.fields] == ["numeric", "categorical"]
    declared = fit_metadata(rows, ["code", "mixed"], {"code": "categorical"})
    assert declared.fields[0].vocabulary == ["1", "3"]
    with pytest.raises(ValueError, match=r"'mixed' is numeric but has 'two'"):
        fit_metadata(rows, ["mixed"], {"mixed": "numeric"})
    with pytest.raises(ValueError, match=r"kind 'number'"):
        fit_metadata(rows, ["code"], {"code": "number"})


def test_degenerate_fields() -> None:
    rows = [{"age": "30", "site": ""}, {"age": "30", "site": ""}]
    spec = fit_metadata(rows, ["age", "site", "absent"], {"absent": "numeric"})
    age, site, absent = spec.fields
    assert (age.mean, age.std) == (30.0, 1.0)  # std 0 -> 1
    assert site.kind == "categorical" and site.vocabulary == []  # no value: missing/unknown only
    assert (absent.mean, absent.std) == (0.0, 1.0)
    assert spec.cardinalities == [2]


def test_only_the_rows_given_are_learnt_from() -> None:
    train, val = TRAIN[:2], [{"sex": "female", "site": "face", "age": "90"}]
    spec = fit_metadata(train, ["site"])
    assert spec.fields[0].vocabulary == ["back"]
    assert spec.encode(val[0])["cat"] == [UNKNOWN_CODE]  # face is seen in validation only


def test_round_trip_through_json() -> None:
    spec = fit_metadata(TRAIN, ["sex", "site", "age"])
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["fields"][0] == {
        "name": "sex",
        "kind": "categorical",
        "vocabulary": ["female", "male"],
        "mean": None,
        "std": None,
    }
    again = MetadataSpec.from_dict(data)
    assert again == spec
    values = {"sex": "male", "site": "x", "age": "41"}
    assert again.encode(values) == spec.encode(values)
    with pytest.raises(ValueError, match="not a metadata spec"):
        MetadataSpec.from_dict({"fields": [{"kind": "numeric"}]})


def test_field_checks_and_numbers() -> None:
    with pytest.raises(ValueError, match="needs a vocabulary"):
        MetadataField("sex", "categorical")
    with pytest.raises(ValueError, match="std > 0"):
        MetadataField("age", "numeric", mean=1.0, std=0.0)
    assert [parse_number(c) for c in ("42", " 0.5 ", "-1e3", "nan", "inf", "x", "")] == [
        42.0,
        0.5,
        -1000.0,
        None,
        None,
        None,
        None,
    ]


def test_fit_reads_manifest_rows(paired_dir, make_manifest) -> None:
    import csv

    from agfnet.data.manifest import read_manifest

    with open(paired_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        r["sex"] = ("female", "male", "")[i % 3]
    make_manifest(paired_dir / "manifest.csv", rows)
    manifest = read_manifest(paired_dir / "manifest.csv", metadata=["sex"])
    spec = fit_metadata(manifest.rows[:6], manifest.metadata_fields)
    assert spec.fields[0].vocabulary == ["female", "male"]
    assert spec.encode(manifest.rows[2].metadata)["cat"] == [MISSING_CODE]
