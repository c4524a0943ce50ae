"""Exact Bayes-optimal decisions and accuracies of the synthetic benchmark's attribute model."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from fractions import Fraction

from agfnet.constants import MODALITIES
from agfnet.data.synth.attributes import ATTRIBUTES, CLASSES, NOISY_ATTRIBUTES, TABLE, Attribute
from agfnet.data.synth.patient import SITE_MISSING, SITE_TABLE, SITES

__all__ = [
    "bayes_accuracies",
    "bayes_accuracies_with_site",
    "bayes_predict",
    "class_likelihoods",
    "task_bayes_accuracies",
]


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


def _site_probability(label: str, site: str) -> Fraction:
    """P(site cell | class); "" is the blank (missing) cell."""
    return SITE_MISSING if site == "" else (1 - SITE_MISSING) * SITE_TABLE[label][site]


def bayes_accuracies_with_site() -> dict[str, float]:
    """Exact Bayes-optimal accuracies of the diagnosis when the `site` metadata is seen too.

    Returns:
        {"site": ..., "clinical+site": ..., "ultrasound+site": ..., "both+site": ...};
        "site" sees no image. A blank site (probability `SITE_MISSING`) is an observation
        like the others, of the same probability under every class.
    """
    result = {}
    for modality in (None, *MODALITIES, "both"):
        attrs = _modality_attributes(modality) if modality else ()
        total = Fraction(0)
        for levels in itertools.product(*(a.levels for a in attrs)):
            observed = {a.name: lv for a, lv in zip(attrs, levels, strict=True)}
            # No image seen: every class is as likely, only the site tells them apart.
            likelihood = (
                class_likelihoods(observed, modality) if modality else [Fraction(1)] * len(CLASSES)
            )
            for site in ("", *SITES):
                total += max(
                    p * _site_probability(k, site) for p, k in zip(likelihood, CLASSES, strict=True)
                )
        result[f"{modality}+site" if modality else "site"] = float(total / len(CLASSES))
    return result


def _attribute_probability(attr: Attribute, level: str, label: str) -> Fraction:
    """P(level of `attr` | class); uniform for a free nuisance attribute."""
    if attr.noise is None:
        return Fraction(1, len(attr.levels))
    return _level_probability(attr, level, TABLE[label][attr.name])


def task_bayes_accuracies() -> dict[str, dict[str, float]]:
    """Exact Bayes-optimal accuracies of each task (an attribute) without its own image.

    The image that shows an attribute is drawn from it, so from that image the attribute
    can be read without error (an upper bound of 1, not an exact figure for a learned
    model). These are what the class structure alone gives:

    Returns:
        attribute -> {"diagnosis": the accuracy knowing the true class (max over levels
        of P(level | class), averaged over the classes), "other_image": the accuracy
        from the attributes the other image shows (equal class priors)}.
    """
    result = {}
    for attr in ATTRIBUTES:
        other = "ultrasound" if attr.modality == "clinical" else "clinical"
        seen = _modality_attributes(other)
        from_class = sum(
            max(_attribute_probability(attr, lv, k) for lv in attr.levels) for k in CLASSES
        )
        total = Fraction(0)
        for levels in itertools.product(*(a.levels for a in seen)):
            observed = {a.name: lv for a, lv in zip(seen, levels, strict=True)}
            likelihood = class_likelihoods(observed, other)
            total += max(
                sum(
                    p * _attribute_probability(attr, lv, k)
                    for p, k in zip(likelihood, CLASSES, strict=True)
                )
                for lv in attr.levels
            )
        result[attr.name] = {
            "diagnosis": float(from_class / len(CLASSES)),
            "other_image": float(total / len(CLASSES)),
        }
    return result
