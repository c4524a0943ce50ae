"""Display names of the two image slots: how every human-facing output names each modality.

The slots keep their internal names (`clinical`, `ultrasound`: manifest columns, tensor
order, API fields, CLI flags); what a person reads (the web page, `agfnet predict`, the
reports) names each image as the data says. A data set whose second image is not an
ultrasound (Derm7pt: dermoscopic) sets the config key `data.modality_names`, which the
checkpoint stores with the rest of the training config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agfnet.constants import MODALITIES

__all__ = [
    "DEFAULT_MODALITY_NAMES",
    "config_modality_names",
    "image_noun",
    "in_sentence",
    "modality_names",
]

#: The names of the default data (a clinical photograph and a skin ultrasound image).
DEFAULT_MODALITY_NAMES: dict[str, str] = {
    "clinical": "Clinical photograph",
    "ultrasound": "Ultrasound image",
}


def modality_names(names: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The display name of each modality: the defaults, with `names` over them.

    Args:
        names: modality -> name, for some or all of `MODALITIES`; None for the defaults.

    Returns:
        modality -> name, for every modality, in `MODALITIES` order.

    Raises:
        ValueError: a key that is not a modality, or a name that is not a non-blank string.
    """
    if names is not None and not isinstance(names, Mapping):
        raise ValueError(f"modality names must be a mapping of modality -> name, not {names!r}")
    names = dict(names or {})
    unknown = sorted(set(names) - set(MODALITIES))
    if unknown:
        raise ValueError(
            f"unknown modality {', '.join(map(repr, unknown))}; the modalities are "
            f"{', '.join(MODALITIES)} (the image slots; name the images, not the slots)"
        )
    bad = [m for m, v in names.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"the name of {', '.join(bad)} must be a non-blank string")
    return {m: str(names.get(m, DEFAULT_MODALITY_NAMES[m])).strip() for m in MODALITIES}


def config_modality_names(config: Mapping[str, Any] | None) -> dict[str, str]:
    """The names a stored training config sets (a checkpoint's `hyper_parameters/agfnet/config`).

    Args:
        config: the config as a plain dict; None, or one written before the setting
            existed, gives the defaults.

    Returns:
        modality -> name, as `modality_names`.
    """
    data = (config or {}).get("data") or {}
    return modality_names(data.get("modality_names"))


def in_sentence(name: str) -> str:
    """A display name inside a sentence: "Dermoscopic image" -> "dermoscopic image".

    Only a capitalised first word is lowered, so initialisms stay ("MRI scan").
    """
    if len(name) > 1 and name[0].isupper() and not name[1].isupper():
        return name[0].lower() + name[1:]
    return name


def image_noun(modality: str, names: Mapping[str, str]) -> str:
    """How a message names the image of `modality`: "clinical image" or "ultrasound image"
    with the default names (as every message of agfnet says), else the display name
    inside a sentence ("dermoscopic image").

    Args:
        modality: one of `MODALITIES`.
        names: modality -> display name, as `modality_names` returns.

    Returns:
        The noun phrase, without an article.
    """
    name = names[modality]
    return f"{modality} image" if name == DEFAULT_MODALITY_NAMES[modality] else in_sentence(name)
