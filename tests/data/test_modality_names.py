"""The modalities' display names: defaults, the config key `data.modality_names`, old configs."""

from __future__ import annotations

import pytest

from agfnet.data.manifest.display import (
    DEFAULT_MODALITY_NAMES,
    config_modality_names,
    image_noun,
    in_sentence,
    modality_names,
)
from agfnet.errors import UserError

DERM = {"clinical": "Clinical photograph", "ultrasound": "Dermoscopic image"}


def test_defaults_and_a_partial_setting() -> None:
    assert modality_names() == DEFAULT_MODALITY_NAMES
    assert DEFAULT_MODALITY_NAMES == {
        "clinical": "Clinical photograph",
        "ultrasound": "Ultrasound image",
    }
    assert modality_names({"ultrasound": " Dermoscopic image "}) == DERM
    assert list(modality_names({"ultrasound": "x", "clinical": "y"})) == ["clinical", "ultrasound"]


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        (
            {"dermoscopic": "Dermoscopic image"},
            r"unknown modality 'dermoscopic'.*clinical, ultrasound",
        ),
        ({"ultrasound": "  "}, "ultrasound must be a non-blank string"),
        ({"clinical": 3}, "clinical must be a non-blank string"),
        (["ultrasound", "x"], "must be a mapping"),
    ],
)
def test_bad_names_are_refused(names: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        modality_names(names)  # type: ignore[arg-type]


def test_a_config_without_the_setting_gets_the_defaults() -> None:
    assert config_modality_names(None) == DEFAULT_MODALITY_NAMES
    assert config_modality_names({"data": {"img_size": 96}}) == DEFAULT_MODALITY_NAMES
    assert config_modality_names({"data": {"modality_names": DERM}}) == DERM


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("Dermoscopic image", "dermoscopic image"),
        ("Clinical photograph", "clinical photograph"),
        ("MRI scan", "MRI scan"),
        ("dermoscopy", "dermoscopy"),
        ("X", "X"),
    ],
)
def test_names_inside_a_sentence(name: str, inside: str) -> None:
    assert in_sentence(name) == inside


def test_messages_keep_their_nouns_for_the_default_names() -> None:
    assert image_noun("clinical", DEFAULT_MODALITY_NAMES) == "clinical image"
    assert image_noun("ultrasound", DEFAULT_MODALITY_NAMES) == "ultrasound image"
    assert image_noun("ultrasound", DERM) == "dermoscopic image"


def test_the_config_key_fills_the_defaults_and_travels_in_the_dump() -> None:
    from agfnet.engine.config import config_hash, config_to_dict, load_config, valid_keys

    base = load_config("tiny")
    assert base.data.modality_names == DEFAULT_MODALITY_NAMES
    derm = load_config("tiny", ["data.modality_names.ultrasound=Dermoscopic image"])
    assert derm.data.modality_names == DERM
    assert config_to_dict(derm)["data"]["modality_names"] == DERM  # what checkpoints store
    assert (
        load_config(None, ["data.modality_names.ultrasound=Dermoscopic image"]).data.modality_names
        == DERM
    )
    assert "data.modality_names.<key>" in valid_keys()
    # A name changes no result: resuming or skipping finished folds is unaffected.
    assert config_hash(derm) == config_hash(base)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("data.modality_names.derm=Dermoscopic image", "unknown modality 'derm'"),
        ("data.modality_names.ultrasound=''", "non-blank"),
    ],
)
def test_the_config_key_refuses_bad_names(override: str, fragment: str) -> None:
    from agfnet.engine.config import load_config

    with pytest.raises(UserError, match=rf"data\.modality_names.*{fragment}"):
        load_config("tiny", [override])
