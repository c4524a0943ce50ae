"""Exact Bayes-optimal decisions and accuracies of the synthetic benchmark's attribute model."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from fractions import Fraction

from agfnet.constants import MODALITIES
from agfnet.data.synth.attributes import CLASSES, NOISY_ATTRIBUTES, TABLE, Attribute

__all__ = ["bayes_accuracies", "bayes_predict", "class_likelihoods"]


def _modality_attributes(modality: str) -> tuple[Attribute, ...]:
    names = MODALITIES if modality == "both" else (modality,)
    if modality != "both" and modality not in MODALITIES:
        raise ValueError(f"modality must be clinical, ultrasound or both, got {modality!r}")
    return tuple(a for a in NOISY_ATTRIBUTES if a.modality in names)


def _level_probability(attr: Attribute, level: str, prototype: str) -> Fraction:
    """P(observed level | class prototype) under the noise model of `attr`."""
    assert attr.noise is not None
    if level == prototype:
        return 1 - attr.noise
    return attr.noise / (len(attr.levels) - 1)


def class_likelihoods(attributes: Mapping[str, str], modality: str = "both") -> list[Fraction]:
    """Exact likelihood of the observed attributes under each class.

    Args:
        attributes: attribute levels of one sample (extra keys are ignored).
        modality: "clinical", "ultrasound" or "both": which attributes are seen.

    Returns:
        One exact probability per class, in `CLASSES` order. Free nuisance attributes are
        left out: their distribution is the same for every class.
    """
    attrs = _modality_attributes(modality)
    out = []
    for label in CLASSES:
        p = Fraction(1)
        for a in attrs:
            p *= _level_probability(a, attributes[a.name], TABLE[label][a.name])
        out.append(p)
    return out


def bayes_predict(attributes: Mapping[str, str], modality: str = "both") -> str:
    """The Bayes-optimal decision (equal class priors) from the true latent attributes.

    Args:
        attributes: attribute levels of one sample.
        modality: "clinical", "ultrasound" or "both".

    Returns:
        The class name of highest posterior; ties go to the first in `CLASSES` order.
    """
    lik = class_likelihoods(attributes, modality)
    return CLASSES[max(range(len(CLASSES)), key=lambda k: (lik[k], -k))]


def bayes_accuracies() -> dict[str, float]:
    """Exact Bayes-optimal accuracies of the benchmark, with equal class priors.

    Sums, over every combination x of the visible noisy attributes, max_k P(x | k) / K,
    in exact rational arithmetic (the free nuisance attributes cancel out).

    Returns:
        {"clinical": ..., "ultrasound": ..., "both": ...}: the best accuracy any
        classifier can reach seeing the photograph only, the ultrasound only, or both.
    """
    result = {}
    for modality in (*MODALITIES, "both"):
        attrs = _modality_attributes(modality)
        total = Fraction(0)
        for levels in itertools.product(*(a.levels for a in attrs)):
            observed = {a.name: lv for a, lv in zip(attrs, levels, strict=True)}
            total += max(class_likelihoods(observed, modality))
        result[modality] = float(total / len(CLASSES))
    return result
