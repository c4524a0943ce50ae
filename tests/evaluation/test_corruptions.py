"""The corruption functions of `agfnet robustness`: identity, monotone severity, determinism."""

from __future__ import annotations

import csv
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agfnet.errors import UserError
from agfnet.evaluation.corruptions import (
    CORRUPTIONS,
    FAMILIES,
    MAX_SEVERITY,
    corrupt,
    row_rng,
)
from agfnet.evaluation.robustness import TARGETS, build_conditions, parse_severities

# Corruptions that draw random numbers; the others are deterministic functions of the image.
STOCHASTIC = {"gaussian_noise", "speckle"}
# (corruption, modality of the image it is tested on): each on its own modality, blur on both.
CASES = [
    (name, modality)
    for name, c in CORRUPTIONS.items()
    for modality in ("clinical", "ultrasound")
    if c.modality in (modality, "any")
]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image.Image]:
    """One synthetic pair at 96 px (large enough for the mildest blur to show)."""
    from agfnet.data import read_image
    from agfnet.data.synth import generate

    out = tmp_path_factory.mktemp("corrupt") / "synth"
    generate(out, n_per_class=1, size=96, seed=3, workers=1)
    with open(out / "manifest.csv", newline="") as f:
        first = next(csv.DictReader(f))
    return {m: read_image(Path(out, first[m])) for m in ("clinical", "ultrasound")}


def _mean_abs(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def _psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.parametrize(("name", "modality"), CASES)
def test_severity_zero_is_identity_and_deviation_grows(name, modality, images):
    image = images[modality]
    same = corrupt(image, name, 0, row_rng(0, 1, modality))
    assert same is not image and np.array_equal(np.asarray(same), np.asarray(image))

    outs = [corrupt(image, name, s, row_rng(0, 1, modality)) for s in range(1, MAX_SEVERITY + 1)]
    for out in outs:
        assert out.mode == image.mode and out.size == image.size
    deviation = [_mean_abs(out, image) for out in outs]
    psnr = [_psnr(out, image) for out in outs]
    assert deviation[0] > 0, f"{name} severity 1 leaves the {modality} image unchanged"
    assert all(a < b for a, b in pairwise(deviation)), deviation
    assert all(a > b for a, b in pairwise(psnr)), psnr


@pytest.mark.parametrize(("name", "modality"), CASES)
def test_grey_image_keeps_its_mode(name, modality, images):
    grey = images[modality].convert("L")
    out = corrupt(grey, name, 2, row_rng(0, 1, modality))
    assert out.mode == "L" and out.size == grey.size
    assert _mean_abs(out, grey) > 0


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_deterministic_per_seed_and_row(name, images):
    modality = "clinical" if CORRUPTIONS[name].modality in ("clinical", "any") else "ultrasound"
    image = images[modality]
    first = np.asarray(corrupt(image, name, 2, row_rng(7, 4, modality)))
    again = np.asarray(corrupt(image, name, 2, row_rng(7, 4, modality)))
    assert np.array_equal(first, again)
    other_row = np.asarray(corrupt(image, name, 2, row_rng(7, 5, modality)))
    other_seed = np.asarray(corrupt(image, name, 2, row_rng(8, 4, modality)))
    if name in STOCHASTIC:
        assert not np.array_equal(first, other_row)
        assert not np.array_equal(first, other_seed)
    else:
        assert np.array_equal(first, other_row) and np.array_equal(first, other_seed)


def test_the_two_images_of_a_row_draw_different_noise():
    a = row_rng(0, 1, "clinical").standard_normal(8)
    b = row_rng(0, 1, "ultrasound").standard_normal(8)
    assert not np.allclose(a, b)


def test_gaussian_noise_has_the_documented_std():
    grey = Image.new("RGB", (128, 128), (128, 128, 128))
    for severity in (1, 2):
        sigma = CORRUPTIONS["gaussian_noise"].params(severity)["sigma"]
        out = np.asarray(corrupt(grey, "gaussian_noise", severity, row_rng(0, 1, "clinical")))
        assert out.std() / 255.0 == pytest.approx(sigma, rel=0.08)


def test_speckle_is_multiplicative_with_mean_one_and_the_documented_std():
    grey = Image.new("RGB", (128, 128), (100, 100, 100))
    std = CORRUPTIONS["speckle"].params(1)["std"]
    out = np.asarray(corrupt(grey, "speckle", 1, row_rng(0, 1, "ultrasound")), dtype=np.float64)
    ratio = out[..., 0] / 100.0
    assert ratio.mean() == pytest.approx(1.0, abs=0.02)
    assert ratio.std() == pytest.approx(std, rel=0.08)
    assert np.array_equal(out[..., 0], out[..., 2])  # one field: a grey scan stays grey


def test_depth_attenuation_spares_the_surface_and_dims_the_bottom_by_its_db():
    grey = Image.new("L", (16, 40), 200)
    out = np.asarray(corrupt(grey, "depth_attenuation", 1, row_rng(0, 1, "ultrasound")))
    bottom_db = CORRUPTIONS["depth_attenuation"].params(1)["bottom_db"]
    assert (out[0] == 200).all()
    assert out[-1].mean() == pytest.approx(200 * 10 ** (-bottom_db / 20), abs=0.6)
    assert (np.diff(out[:, 0].astype(int)) <= 0).all()  # darker with depth


def test_gain_scales_every_pixel():
    grey = Image.new("RGB", (8, 8), (200, 100, 50))
    factor = CORRUPTIONS["gain"].params(3)["factor"]
    out = np.asarray(corrupt(grey, "gain", 3, row_rng(0, 1, "ultrasound")))
    assert out[0, 0].tolist() == [round(v * factor) for v in (200, 100, 50)]


def test_families_pair_a_clinical_with_an_ultrasound_corruption():
    seen = {"clinical": set(), "ultrasound": set()}
    for pair in FAMILIES.values():
        for modality, name in pair.items():
            assert CORRUPTIONS[name].modality in (modality, "any")
            seen[modality].add(name)
    assert seen["clinical"] == {"gaussian_noise", "gaussian_blur", "brightness_contrast", "jpeg"}
    assert seen["ultrasound"] == {"speckle", "gaussian_blur", "gain", "depth_attenuation"}


def test_bad_severity_and_name_are_refused(images):
    with pytest.raises(ValueError, match="severity"):
        corrupt(images["clinical"], "jpeg", MAX_SEVERITY + 1, row_rng(0, 1, "clinical"))
    with pytest.raises(KeyError, match="known"):
        corrupt(images["clinical"], "fog", 1, row_rng(0, 1, "clinical"))


def test_parse_severities():
    assert parse_severities("3, 1,1") == [1, 3]
    for bad in ("", "0", "4", "1,x", "2.5"):
        with pytest.raises(UserError, match="--severities"):
            parse_severities(bad)


def test_conditions_cover_every_target_family_and_severity():
    conditions = build_conditions([1, 3])
    names = [c.name for c in conditions]
    assert len(names) == len(set(names)) == 1 + len(TARGETS) * len(FAMILIES) * 2 + 2
    assert names[0] == "clean" and names[-2:] == ["clinical/missing", "ultrasound/missing"]
    both = next(c for c in conditions if c.name == "both/noise/3")
    assert both.corruptions == {"clinical": "gaussian_noise", "ultrasound": "speckle"}
    assert both.label == "gaussian_noise+speckle"
    only = next(c for c in conditions if c.name == "ultrasound/blur/1")
    assert only.corruptions == {"ultrasound": "gaussian_blur"} and only.dropped is None
