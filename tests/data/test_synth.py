"""The synthetic benchmark: files, determinism, physics, Bayes figures and learnability."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agfnet.data import synth
from agfnet.data.synth import (
    ATTRIBUTES,
    CLASSES,
    NOISY_ATTRIBUTES,
    TABLE,
    bayes_accuracies,
    bayes_predict,
    generate,
    render_pair,
    sample_attributes,
    writer,
)
from agfnet.errors import UserError

REPO = Path(__file__).resolve().parents[2]
N_PER_CLASS = 5
SIZE = 40


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "bench"
    generate(out, n_per_class=N_PER_CLASS, size=SIZE, seed=3, workers=1)
    return out


# --- files -------------------------------------------------------------------------------


def test_manifest_has_the_data_columns_and_existing_relative_paths(bench: Path) -> None:
    with (bench / "manifest.csv").open(newline="") as f:
        header = next(csv.reader(f))
    assert header[:7] == [
        "clinical",
        "ultrasound",
        "label",
        "patient_id",
        "lesion_id",
        "clinical_mask",
        "ultrasound_mask",
    ]
    # Then the task columns (every attribute) and the metadata columns.
    assert header[7:] == [a.name for a in ATTRIBUTES] + ["site", "age"]
    rows = _read_csv(bench / "manifest.csv")
    assert Counter(r["label"] for r in rows) == {c: N_PER_CLASS for c in CLASSES}
    assert len({r["lesion_id"] for r in rows}) == len(rows)
    for r in rows:
        for column, mode in (
            ("clinical", "RGB"),
            ("ultrasound", "L"),
            ("clinical_mask", "L"),
            ("ultrasound_mask", "L"),
        ):
            path = Path(r[column])
            assert not path.is_absolute()
            with Image.open(bench / path) as im:
                assert (im.mode, im.size) == (mode, (SIZE, SIZE))


def test_some_patients_have_two_lesions(bench: Path) -> None:
    counts = Counter(r["patient_id"] for r in _read_csv(bench / "manifest.csv"))
    assert max(counts.values()) == 2
    doubles = sum(1 for c in counts.values() if c == 2)
    assert 0.1 <= doubles / len(counts) <= 0.3


def test_attributes_csv_matches_manifest_and_prototypes(bench: Path) -> None:
    manifest = _read_csv(bench / "manifest.csv")
    attrs = _read_csv(bench / "attributes.csv")
    assert [a["lesion_id"] for a in attrs] == [m["lesion_id"] for m in manifest]
    assert [a["label"] for a in attrs] == [m["label"] for m in manifest]
    for row in attrs:
        for a in ATTRIBUTES:
            assert row[a.name] in a.levels
        for a in NOISY_ATTRIBUTES:
            deviates = row[a.name] != TABLE[row["label"]][a.name]
            assert row[f"{a.name}_flipped"] == str(int(deviates))


def test_synth_json_and_readme_state_the_bayes_figures(bench: Path) -> None:
    meta = json.loads((bench / "synth.json").read_text())
    assert meta["seed"] == 3
    assert meta["size"] == SIZE
    assert meta["n_per_class"] == N_PER_CLASS
    assert meta["classes"] == list(CLASSES)
    assert meta["bayes_accuracy"] == pytest.approx(bayes_accuracies())
    readme = (bench / "README.md").read_text()
    assert f"{bayes_accuracies()['both']:.4f}" in readme
    assert "simulated" in readme.lower()


def _load_masks(bench: Path, lesion_id: str) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for modality in ("clinical", "ultrasound"):
        with Image.open(bench / "masks" / modality / f"{lesion_id}.png") as im:
            assert im.mode == "L"
            out.append(np.asarray(im))
    return out[0], out[1]


def test_masks_are_binary_and_the_lesion_lies_inside_the_image(bench: Path) -> None:
    for row in _read_csv(bench / "attributes.csv"):
        for mask in _load_masks(bench, row["lesion_id"]):
            assert mask.shape == (SIZE, SIZE)
            assert set(np.unique(mask).tolist()) == {0, 255}
        clinical, _ = _load_masks(bench, row["lesion_id"])
        border = np.concatenate([clinical[0], clinical[-1], clinical[:, 0], clinical[:, -1]])
        assert not border.any(), f"{row['lesion_id']}: lesion touches the image border"


def test_ultrasound_lesion_spans_the_photograph_scan_line(bench: Path) -> None:
    for row in _read_csv(bench / "attributes.csv"):
        clinical, ultrasound = _load_masks(bench, row["lesion_id"])
        scan = clinical[int(row["scan_row"])] > 0
        cols_c = np.flatnonzero(scan)
        cols_u = np.flatnonzero(ultrasound.any(axis=0))
        assert abs(cols_c[0] - cols_u[0]) <= 1
        assert abs(cols_c[-1] - cols_u[-1]) <= 1
        # The scan row passes through the lesion centre: its extent is close to the widest.
        assert cols_c.size >= 0.5 * (clinical > 0).any(axis=0).sum()


@pytest.mark.parametrize("size", [32, 64, 96, 128])
def test_any_size_renders_a_visible_lesion(size: int) -> None:
    for spec in sample_attributes(1, seed=size)[:5]:
        pair = render_pair(spec, size)
        assert pair.clinical.shape == (size, size, 3)
        assert pair.ultrasound.shape == (size, size)
        assert pair.clinical_mask.sum() >= 0.02 * size * size
        assert pair.ultrasound_mask.sum() >= 0.005 * size * size


# --- determinism -----------------------------------------------------------------------


def test_rendering_a_sample_twice_gives_the_same_pair_and_sizes_share_the_scene() -> None:
    spec = sample_attributes(1, seed=2)[3]
    a, b = render_pair(spec, 64), render_pair(spec, 64)
    assert np.array_equal(a.clinical, b.clinical)
    assert np.array_equal(a.ultrasound, b.ultrasound)
    big = render_pair(spec, 128)
    for key in ("lesion_radius", "centre_x", "centre_y", "hair_strands", "lesion_thickness"):
        # Equal up to the one-pixel margin kept from the image border.
        assert big.nuisances[key] == pytest.approx(a.nuisances[key], abs=1 / 64), key


def test_same_seed_gives_identical_bytes_whatever_the_workers(bench: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, n_per_class=N_PER_CLASS, size=SIZE, seed=3, workers=2)
    assert _hashes(again) == _hashes(bench)


def test_different_seed_gives_different_files(bench: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate(other, n_per_class=N_PER_CLASS, size=SIZE, seed=4, workers=1)
    a, b = _hashes(bench), _hashes(other)
    assert a.keys() == b.keys()
    images = [k for k in a if k.startswith("images")]
    assert all(a[k] != b[k] for k in images)


# --- output folder safety -------------------------------------------------------------


def test_non_empty_folder_is_refused_and_overwrite_replaces_a_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "b"
    generate(out, n_per_class=1, size=32, seed=0, workers=1)
    with pytest.raises(UserError, match=r"--overwrite"):
        generate(out, n_per_class=1, size=32, seed=1, workers=1)
    generate(out, n_per_class=2, size=32, seed=1, workers=1, overwrite=True)
    assert len(_read_csv(out / "manifest.csv")) == 2 * len(CLASSES)
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_overwrite_never_deletes_a_folder_that_is_not_a_benchmark(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(UserError, match=r"synth\.json"):
        generate(tmp_path, n_per_class=1, size=32, seed=0, workers=1, overwrite=True)
    assert precious.read_text() == "keep me"


def test_interrupted_run_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def failing(task: tuple) -> dict:
        calls.append(task)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(task)

    real = writer._render_and_write
    monkeypatch.setattr(writer, "_render_and_write", failing)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "b", n_per_class=2, size=32, seed=0, workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"size": 8}, "--size"), ({"n_per_class": 0}, "--n-per-class"), ({"workers": 0}, "--workers")],
)
def test_invalid_arguments_are_user_errors(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"n_per_class": 1, "size": 32, "seed": 0, "workers": 1, **kwargs}
    with pytest.raises(UserError, match=match):
        generate(tmp_path / "b", **args)
    assert not (tmp_path / "b").exists()


# --- the attribute model and the Bayes figures ------------------------------------------


def test_bayes_figures_meet_the_design_targets() -> None:
    bayes = bayes_accuracies()
    assert bayes["clinical"] <= 0.75
    assert bayes["ultrasound"] <= 0.75
    assert bayes["both"] >= 0.95


def test_documented_bayes_figures_match_the_exact_computation() -> None:
    text = (REPO / "docs" / "synthetic.md").read_text()
    bayes = bayes_accuracies()
    for label, key in (
        ("clinical only", "clinical"),
        ("ultrasound only", "ultrasound"),
        ("both", "both"),
    ):
        found = re.search(rf"^\| {label} \| ([0-9.]+) \|", text, re.MULTILINE)
        assert found, f"docs/synthetic.md has no '| {label} | ... |' row"
        assert float(found.group(1)) == pytest.approx(bayes[key], abs=5e-5)


def test_documented_noise_rates_match_the_attribute_table() -> None:
    text = (REPO / "docs" / "synthetic.md").read_text()
    for a in NOISY_ATTRIBUTES:
        assert re.search(rf"^\| `{a.name}` \|.*\| {float(a.noise):.3f} \|", text, re.MULTILINE), (
            a.name
        )


def test_table_needs_both_images_to_separate_every_class() -> None:
    def signature(label: str, modality: str) -> tuple:
        return tuple(TABLE[label][a.name] for a in NOISY_ATTRIBUTES if a.modality == modality)

    for modality in ("clinical", "ultrasound"):
        groups = Counter(signature(c, modality) for c in CLASSES)
        assert max(groups.values()) >= 2, f"{modality} alone separates every class"
    assert len({(signature(c, "clinical"), signature(c, "ultrasound")) for c in CLASSES}) == 5


@pytest.fixture(scope="module")
def many() -> list:
    return sample_attributes(300, seed=11)


def test_oracle_on_sampled_attributes_reaches_the_exact_bayes_accuracy(many: list) -> None:
    bayes = bayes_accuracies()
    for modality in ("clinical", "ultrasound", "both"):
        hits = [bayes_predict(s.attributes, modality) == s.label for s in many]
        # 1500 samples: the standard error of an accuracy near 0.6 is 0.013.
        assert np.mean(hits) == pytest.approx(bayes[modality], abs=0.04), modality


def test_flip_rates_match_the_noise_model_and_nuisances_carry_no_class(many: list) -> None:
    for a in NOISY_ATTRIBUTES:
        rate = np.mean([s.flipped[a.name] for s in many])
        assert rate == pytest.approx(float(a.noise), abs=0.025), a.name
    for a in (a for a in ATTRIBUTES if a.noise is None):
        for label in CLASSES:
            values = Counter(s.attributes[a.name] for s in many if s.label == label)
            for level in a.levels:
                assert values[level] / 300 == pytest.approx(1 / len(a.levels), abs=0.1)


# --- learnability: the attributes are visible in the pixels -------------------------------


def _image_features(pair: synth.RenderedPair) -> tuple[list[float], list[float]]:
    """Hand-made image statistics a classifier can use; masks locate the lesion."""
    rgb = pair.clinical.astype(np.float64) / 255
    cm = pair.clinical_mask
    inside, outside = rgb[cm].mean(0), rgb[~cm].mean(0)
    # Border irregularity: squared boundary length over area (larger for lobulated outlines).
    edge = cm & ~(np.roll(cm, 1, 0) & np.roll(cm, -1, 0) & np.roll(cm, 1, 1) & np.roll(cm, -1, 1))
    clinical = [*(inside / outside), *(inside - outside), edge.sum() ** 2 / cm.sum()]

    us = pair.ultrasound.astype(np.float64) / 255
    um = pair.ultrasound_mask
    size = us.shape[0]
    cols = np.flatnonzero(um.any(0))
    rows = np.flatnonzero(um.any(1))
    top, bottom = rows[0], rows[-1]
    band = slice(top, bottom + 1)
    beside = np.ones(size, bool)
    beside[cols[0] : cols[-1] + 1] = False
    below = slice(bottom + 2, min(size, bottom + 2 + size // 4))
    posterior = us[below][:, cols].mean() / (us[below][:, beside].mean() + 1e-3)
    echo = us[um].mean() / (us[band][:, beside].mean() + 1e-3)
    ultrasound = [(bottom - top) / size, echo, posterior]
    return clinical, ultrasound


def test_image_statistics_reach_the_bayes_accuracy_per_modality() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    specs = sample_attributes(60, seed=5)
    feats = [_image_features(render_pair(s, 48)) for s in specs]
    y = np.array([s.label for s in specs])
    bayes = bayes_accuracies()
    x = {
        "clinical": np.array([f[0] for f in feats]),
        "ultrasound": np.array([f[1] for f in feats]),
    }
    x["both"] = np.hstack([x["clinical"], x["ultrasound"]])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=10.0, max_iter=2000))
    for modality, features in x.items():
        acc = cross_val_score(model, features, y, cv=5).mean()
        # 300 samples: an accuracy estimate is good to about +-0.03; the upper bound
        # catches class information leaking into the pixels beyond the attributes.
        assert bayes[modality] - 0.1 <= acc <= bayes[modality] + 0.07, (modality, acc)
