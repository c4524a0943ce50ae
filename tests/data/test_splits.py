"""Folds and splits: patient grouping, stratification, the folds file, the fixed split."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import StratifiedGroupKFold

from agfnet.data.manifest import Manifest, ManifestRow
from agfnet.data.splits import (
    assign_folds,
    fixed_split,
    fold_split,
    read_folds,
    split_summary,
    write_folds,
)
from agfnet.errors import UserError

CLASSES = ["a", "b", "c"]


def _manifest(
    labels: list[str],
    patients: list[str | None],
    splits: list[str] | None = None,
    classes: list[str] = CLASSES,
) -> Manifest:
    rows = [
        ManifestRow(
            row=i + 1,
            clinical=Path(f"/d/c{i}.png"),
            ultrasound=Path(f"/d/u{i}.png"),
            label=label,
            target=classes.index(label),
            patient_id=patient,
            split=splits[i] if splits else None,
        )
        for i, (label, patient) in enumerate(zip(labels, patients, strict=True))
    ]
    columns = ["clinical", "ultrasound", "label", "patient_id"] + (["split"] * bool(splits))
    return Manifest(Path("/d/m.csv"), Path("/d"), rows, list(classes), columns)


@st.composite
def manifests(draw) -> tuple[Manifest, int]:
    n_folds = draw(st.integers(2, 5))
    n_patients = draw(st.integers(3 * n_folds, 40))
    labels, patients = [], []
    for p in range(n_patients):
        label = CLASSES[p % 3] if p < 3 * n_folds else draw(st.sampled_from(CLASSES))
        for _ in range(draw(st.integers(1, 3))):
            labels.append(label)
            # some patients have no id: each of their rows is then its own patient
            patients.append(None if p % 7 == 6 else f"p{p}")
    return _manifest(labels, patients), n_folds


@settings(max_examples=25, deadline=None)
@given(case=manifests(), seed=st.integers(0, 2**16))
def test_no_patient_spans_two_folds(case: tuple[Manifest, int], seed: int) -> None:
    manifest, n_folds = case
    folds = assign_folds(manifest, n_folds, seed)
    assert len(folds) == len(manifest)
    assert set(folds) == set(range(n_folds))
    seen: dict[str, set[int]] = defaultdict(set)
    for row, fold in zip(manifest.rows, folds, strict=True):
        if row.patient_id is not None:
            seen[row.patient_id].add(fold)
    assert all(len(f) == 1 for f in seen.values())
    assert assign_folds(manifest, n_folds, seed) == folds
    k = seed % n_folds
    parts = fold_split(manifest, folds, k, seed=seed)
    assert sorted(i for idx in parts.values() for i in idx) == list(range(len(manifest)))
    groups = {name: {manifest.rows[i].group for i in idx} for name, idx in parts.items()}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert parts["test"] == [i for i, f in enumerate(folds) if f == k]


def _balanced(n_patients: int = 60, seed: int = 0) -> Manifest:
    rng = np.random.default_rng(seed)
    labels, patients = [], []
    for p in range(n_patients):
        for _ in range(rng.integers(1, 3)):
            labels.append(CLASSES[p % 3])
            patients.append(f"p{p}")
    return _manifest(labels, patients)


def test_folds_match_sklearn_and_are_stratified() -> None:
    manifest = _balanced()
    folds = assign_folds(manifest, 5, seed=3)
    oracle = np.full(len(manifest), -1)
    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=3)
    for k, (_, test) in enumerate(
        splitter.split(np.zeros(len(manifest)), manifest.targets, manifest.groups)
    ):
        oracle[test] = k
    assert folds == oracle.tolist()
    total = Counter(manifest.targets)
    for k in range(5):
        counts = Counter(t for t, f in zip(manifest.targets, folds, strict=True) if f == k)
        for c, n in total.items():
            assert abs(counts[c] - n / 5) <= 3, (k, c, counts)


def test_seed_changes_the_folds() -> None:
    manifest = _balanced()
    assert assign_folds(manifest, 5, 0) == assign_folds(manifest, 5, 0)
    assert assign_folds(manifest, 5, 0) != assign_folds(manifest, 5, 1)


def test_too_few_patients_for_the_folds_is_explained() -> None:
    labels = ["a"] * 10 + ["b"] * 10 + ["c"] * 4
    patients = [f"p{i}" for i in range(20)] + ["q1", "q1", "q2", "q3"]
    with pytest.raises(UserError, match=r"class 'c' has 3 patient\(s\).*--folds 3"):
        assign_folds(_manifest(labels, patients), 5, 0)
    assert len(set(assign_folds(_manifest(labels, patients), 3, 0))) == 3


def test_unlabelled_rows_and_one_fold_are_refused() -> None:
    manifest = _balanced()
    with pytest.raises(UserError, match="at least 2 folds"):
        assign_folds(manifest, 1, 0)
    rows = list(manifest.rows)
    rows[4] = ManifestRow(5, None, Path("/d/u.png"), None, -1, "p9")
    unlabelled = Manifest(manifest.path, manifest.root, rows, manifest.classes, manifest.columns)
    with pytest.raises(UserError, match=r"rows \[5\] have no label"):
        assign_folds(unlabelled, 3, 0)


def test_folds_file_round_trip(tmp_path: Path) -> None:
    manifest = _balanced()
    folds = assign_folds(manifest, 4, 0)
    write_folds(tmp_path / "folds.csv", manifest, folds)
    lines = (tmp_path / "folds.csv").read_text().splitlines()
    assert lines[0] == "row,patient_id,fold"
    assert lines[1] == f"1,p0,{folds[0]}"
    assert read_folds(tmp_path / "folds.csv", manifest) == folds


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: _edit(p, "\n1,p0,", "\n99,p0,"), r"rows \[99\] are not in the manifest"),
        (lambda p: _edit(p, "\n1,p0,", "\n1,zz,"), r"row 1: patient 'zz' here but 'p0'"),
        (lambda p: p.write_text("\n".join(p.read_text().splitlines()[:-1])), r"have no fold"),
        (lambda p: _edit(p, "\n1,p0,", "\n1,p0,x"), r"must be integers"),
        (lambda p: p.write_text("row,fold\n1,0\n"), r"missing column\(s\) \['patient_id'\]"),
    ],
)
def test_folds_file_mismatch_is_detected(tmp_path: Path, edit, message: str) -> None:
    manifest = _balanced()
    write_folds(tmp_path / "folds.csv", manifest, assign_folds(manifest, 4, 0))
    edit(tmp_path / "folds.csv")
    with pytest.raises(UserError, match=message):
        read_folds(tmp_path / "folds.csv", manifest)


def test_folds_file_with_a_patient_in_two_folds(tmp_path: Path) -> None:
    manifest = _manifest(["a", "a", "b", "b"], ["p1", "p1", "p2", "p3"])
    write_folds(tmp_path / "f.csv", manifest, [0, 1, 0, 1])
    with pytest.raises(UserError, match=r"patient 'p1' is in folds \[0, 1\].*\nFix:"):
        read_folds(tmp_path / "f.csv", manifest)
    with pytest.raises(UserError, match="not found"):
        read_folds(tmp_path / "absent.csv", manifest)


def test_fixed_split() -> None:
    splits = ["train", "train", "val", "test", "train", "test"]
    manifest = _manifest(["a", "b", "c", "a", "c", "b"], [f"p{i}" for i in range(6)], splits)
    parts = fixed_split(manifest)
    assert parts == {"train": [0, 1, 4], "val": [2], "test": [3, 5]}
    assert split_summary(manifest, parts)["test"] == {"a": 1, "b": 1, "c": 0}
    with pytest.raises(UserError, match="no 'split' column"):
        fixed_split(_balanced())


def test_fold_split_val_is_about_the_fraction_and_seeded() -> None:
    manifest = _balanced(120)
    folds = assign_folds(manifest, 5, 0)
    parts = fold_split(manifest, folds, 2, val_fraction=0.15, seed=1)
    rest = len(manifest) - len(parts["test"])
    assert 0.08 < len(parts["val"]) / rest < 0.22
    assert set(Counter(manifest.targets[i] for i in parts["val"])) == {0, 1, 2}
    assert fold_split(manifest, folds, 2, val_fraction=0.15, seed=1) == parts
    assert fold_split(manifest, folds, 2, val_fraction=0.15, seed=2) != parts
    assert fold_split(manifest, folds, 2, val_fraction=0.0)["val"] == []
    with pytest.raises(UserError, match="fold 5 does not exist"):
        fold_split(manifest, folds, 5)
