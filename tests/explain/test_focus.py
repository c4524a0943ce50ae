"""Focus metrics on hand-made maps and masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agfnet.explain.focus import (
    energy_inside,
    focus_scores,
    load_mask,
    mean_scores,
    pointing_game,
    resize_mask,
)

CAM = np.array([[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        ([[1, 0], [0, 1]], (1 + 4) / 10),
        ([[0, 0], [1, 0]], 3 / 10),
        ([[1, 1], [1, 1]], 1.0),
        ([[0, 0], [0, 0]], None),
    ],
)
def test_energy_inside_is_the_exact_fraction(mask, expected) -> None:
    assert energy_inside(CAM, np.array(mask, dtype=bool)) == expected


def test_energy_inside_resizes_the_mask_with_nearest() -> None:
    # A 4x4 mask whose top-left 2x2 block is lesion covers exactly the top-left map cell.
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2, :2] = True
    assert resize_mask(mask, (2, 2)).tolist() == [[True, False], [False, False]]
    assert energy_inside(CAM, mask) == pytest.approx(1 / 10)
    # And up: one cell of a 2x2 mask becomes a 3x3 block of a 6x6 map.
    up = resize_mask(np.array([[0, 1], [0, 0]], dtype=bool), (6, 6))
    assert up.sum() == 9 and up[:3, 3:].all()


def test_flat_map_has_no_energy_and_no_pointing() -> None:
    mask = np.array([[1, 0], [0, 0]], dtype=bool)
    assert energy_inside(np.zeros((2, 2)), mask) is None
    assert pointing_game(np.full((2, 2), 0.5), mask) is None


@pytest.mark.parametrize(
    ("mask", "hit"),
    [([[0, 0], [0, 1]], True), ([[1, 1], [1, 0]], False), ([[0, 0], [0, 0]], None)],
)
def test_pointing_game(mask, hit) -> None:
    assert pointing_game(CAM, np.array(mask, dtype=bool)) is hit


def test_pointing_game_tie_takes_the_first_maximum() -> None:
    cam = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert pointing_game(cam, np.array([[0, 1], [0, 0]], dtype=bool)) is True
    assert pointing_game(cam, np.array([[0, 0], [1, 0]], dtype=bool)) is False


def test_uniform_map_scores_the_mask_fraction() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((8, 8)) < 0.3
    scores = focus_scores(np.ones((8, 8)), mask)
    assert scores["mask_fraction"] == pytest.approx(mask.mean())
    assert scores["energy_inside"] == pytest.approx(mask.mean())
    assert scores["pointing_game"] is None


def test_mean_scores_ignore_undefined() -> None:
    rows = [
        {"energy_inside": 0.2, "pointing_game": True, "mask_fraction": 0.1},
        {"energy_inside": 0.6, "pointing_game": False, "mask_fraction": 0.3},
        {"energy_inside": None, "pointing_game": None, "mask_fraction": 0.2},
        {"energy_inside": 1.0, "pointing_game": True, "mask_fraction": 0.2},
    ]
    means = mean_scores(rows)
    assert means["energy_inside"] == pytest.approx(0.6)
    assert means["pointing_game"] == pytest.approx(2 / 3)
    assert means["mask_fraction"] == pytest.approx(0.2)
    assert (means["n"], means["n_undefined"]) == (4, 1)
    assert mean_scores([])["energy_inside"] is None


def test_load_mask(tmp_path: Path) -> None:
    pixels = np.zeros((5, 7), dtype=np.uint8)
    pixels[1:3, 2:6] = 255
    Image.fromarray(pixels).save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png")
    assert mask.dtype == bool and mask.shape == (5, 7) and mask.sum() == 8


def _row(energy, fraction=0.1):
    return {"energy_inside": energy, "pointing_game": None, "mask_fraction": fraction}


def test_versus_chance_verdicts() -> None:
    from agfnet.explain.focus import versus_chance

    # 8 of 8 rows above their lesion share: p = 1/256, a clear yes.
    strong = versus_chance([_row(0.3)] * 8)
    assert strong["verdict"] == "beats chance"
    assert strong["lift"] == pytest.approx(3.0) and strong["rows_above_chance"] == 8
    assert strong["p_above_chance"] == pytest.approx(1 / 256)
    # Even 4 of 4 cannot reach p < 0.05 (1/16): said, not claimed.
    few = versus_chance([_row(0.3)] * 4)
    assert few["verdict"] == "not significantly above chance"
    assert few["p_above_chance"] == pytest.approx(1 / 16)
    # Below a uniform map on average (the 0.069 against a 0.093 share).
    below = versus_chance([_row(0.069, 0.093)] * 20)
    assert below["verdict"] == "does not beat chance" and below["lift"] < 1
    # High mean energy from one row does not hide that most rows miss; flat maps count
    # as misses.
    skewed = versus_chance([_row(0.9)] + [_row(0.05)] * 6 + [_row(None)] * 3)
    assert skewed["lift"] > 1 and skewed["rows_above_chance"] == 1
    assert skewed["verdict"] == "not significantly above chance"
    # The exact one-sided sign test: P(X >= 9 | n = 10) = 11 / 1024.
    assert versus_chance([_row(0.2)] * 9 + [_row(0.01)])["p_above_chance"] == pytest.approx(
        11 / 1024
    )
    assert versus_chance([])["lift"] is None


def test_mean_scores_carry_the_chance_comparison() -> None:
    means = mean_scores([_row(0.3)] * 6)
    assert means["verdict"] == "beats chance" and means["rows_above_chance"] == 6
