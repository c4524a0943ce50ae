"""Patient-grouped, label-stratified folds; the folds file; the fixed split; per-fold indices.

A patient never spans two folds (nor two parts of a fold), so no lesion of a test patient
is seen in training. Rows without `patient_id` are each their own patient.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agfnet.data.manifest import SPLITS, Manifest
from agfnet.errors import UserError
from agfnet.fileio import write_rows_csv

FOLDS_COLUMNS = ("row", "patient_id", "fold")


def _stratified_group_parts(
    targets: Sequence[int], groups: Sequence[str], n_parts: int, seed: int
) -> list[int]:
    """Part number (0..n_parts-1) of every item, by sklearn's StratifiedGroupKFold."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_parts, shuffle=True, random_state=seed)
    parts = np.full(len(targets), -1, dtype=np.int64)
    with warnings.catch_warnings():
        # "least populated class has fewer members than n_splits" is checked (and
        # explained) by the callers where it matters; elsewhere it is expected.
        warnings.simplefilter("ignore", UserWarning)
        for part, (_, test) in enumerate(
            splitter.split(np.zeros(len(targets)), np.asarray(targets), np.asarray(groups))
        ):
            parts[test] = part
    return parts.tolist()


def assign_folds(manifest: Manifest, n_folds: int, seed: int) -> list[int]:
    """Assign every row to one of `n_folds` folds, stratified by label, grouped by patient.

    Uses scikit-learn's `StratifiedGroupKFold(shuffle=True, random_state=seed)`.

    Args:
        manifest: a labelled manifest.
        n_folds: number of folds, at least 2.
        seed: shuffling seed; the same seed gives the same folds.

    Returns:
        fold index (0..n_folds-1) of each row, aligned with `manifest.rows`.

    Raises:
        UserError: fewer than 2 folds, an unlabelled row, or a class with fewer
            patients than folds (the message names the classes and the fix).
    """
    if n_folds < 2:
        raise UserError(f"n_folds={n_folds}: cross-validation needs at least 2 folds.")
    unlabelled = [r.row for r in manifest.rows if r.target < 0]
    if unlabelled:
        raise UserError(
            f"{manifest.path}: rows {unlabelled[:10]} have no label; folds are stratified "
            "by label, so every row needs one. Fill in the labels or remove those rows."
        )
    patients: dict[int, set[str]] = defaultdict(set)
    for r in manifest.rows:
        patients[r.target].add(r.group)
    short = {
        manifest.classes[t]: len(patients.get(t, ()))
        for t in range(len(manifest.classes))
        if 0 < len(patients.get(t, ())) < n_folds
    }
    if short:
        fewest = min(short.values())
        listed = ", ".join(f"'{c}' has {n}" for c, n in short.items())
        raise UserError(
            f"{manifest.path}: {n_folds} folds asked for, but class {listed} patient(s); "
            f"each fold's test part needs every class. Use --folds {max(fewest, 2)} or "
            "fewer, or add patients of those classes."
        )
    return _stratified_group_parts(manifest.targets, manifest.groups, n_folds, seed)


def write_folds(path: str | os.PathLike, manifest: Manifest, folds: Sequence[int]) -> None:
    """Write the folds file (columns row, patient_id, fold) atomically.

    Args:
        path: destination CSV.
        manifest: the manifest the folds belong to.
        folds: fold of each row, aligned with `manifest.rows`.
    """
    if len(folds) != len(manifest):
        raise ValueError(f"{len(folds)} folds for {len(manifest)} manifest rows")
    write_rows_csv(
        path,
        FOLDS_COLUMNS,
        (
            {"row": r.row, "patient_id": r.patient_id or "", "fold": int(f)}
            for r, f in zip(manifest.rows, folds, strict=True)
        ),
    )


def read_folds(path: str | os.PathLike, manifest: Manifest) -> list[int]:
    """Read a folds file and check it belongs to `manifest`.

    Args:
        path: CSV with columns row, patient_id, fold.
        manifest: the manifest it must match (same rows, same patients).

    Returns:
        fold of each row, aligned with `manifest.rows`.

    Raises:
        UserError: the file is missing or malformed, or disagrees with the manifest
            (rows missing or extra, another patient, a patient in two folds); every
            problem is listed.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"folds file not found: {path}; check the path.")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        records = [
            {k.strip().lower(): (v or "").strip() for k, v in rec.items() if k} for rec in reader
        ]
    missing_cols = [c for c in FOLDS_COLUMNS if c not in header]
    if missing_cols:
        raise UserError(
            f"{path}: missing column(s) {missing_cols}; a folds file has the columns "
            f"{', '.join(FOLDS_COLUMNS)} (written by `agfnet cv`)."
        )
    by_row = {r.row: r for r in manifest.rows}
    problems: list[str] = []
    fold_of: dict[int, int] = {}
    for line, rec in enumerate(records, start=2):
        try:
            number, fold = int(rec["row"]), int(rec["fold"])
        except ValueError:
            problems.append(f"line {line}: row and fold must be integers, got {rec}")
            continue
        if fold < 0:
            problems.append(f"line {line}: fold {fold} is negative")
        if number in fold_of:
            problems.append(f"line {line}: row {number} appears twice")
        fold_of[number] = fold
        if number in by_row and rec["patient_id"] != (by_row[number].patient_id or ""):
            problems.append(
                f"row {number}: patient '{rec['patient_id']}' here but "
                f"'{by_row[number].patient_id or ''}' in the manifest"
            )
    extra = sorted(set(fold_of) - set(by_row))
    absent = sorted(set(by_row) - set(fold_of))
    if extra:
        problems.append(f"rows {extra[:10]} are not in the manifest")
    if absent:
        problems.append(f"manifest rows {absent[:10]} have no fold")
    patient_folds: dict[str, set[int]] = defaultdict(set)
    for number, fold in fold_of.items():
        if number in by_row and by_row[number].patient_id is not None:
            patient_folds[by_row[number].patient_id].add(fold)
    problems += [
        f"patient '{p}' is in folds {sorted(fs)}; a patient must stay in one fold"
        for p, fs in patient_folds.items()
        if len(fs) > 1
    ]
    used = sorted(set(fold_of.values()))
    if used and used != list(range(len(used))):
        problems.append(f"folds {used} are not numbered 0..{len(used) - 1}")
    if problems:
        raise UserError(
            f"{path} does not match the manifest {manifest.path}:\n  "
            + "\n  ".join(problems)
            + "\nFix: delete the folds file to have it made again from this manifest, or "
            "point to the folds file written for this manifest."
        )
    return [fold_of[r.row] for r in manifest.rows]


def fixed_split(manifest: Manifest) -> dict[str, list[int]]:
    """Row positions of each part of the manifest's `split` column.

    Args:
        manifest: a manifest with a `split` column.

    Returns:
        {"train": [...], "val": [...], "test": [...]}: positions into `manifest.rows`.

    Raises:
        UserError: no `split` column, or no training row.
    """
    if not manifest.has_split:
        raise UserError(
            f"{manifest.path} has no 'split' column; add one (train/val/test per row) or "
            "use k-fold cross-validation."
        )
    parts: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i, r in enumerate(manifest.rows):
        parts[str(r.split)].append(i)
    if not parts["train"]:
        raise UserError(f"{manifest.path}: no row has split 'train'; nothing to train on.")
    return parts


def fold_split(
    manifest: Manifest,
    folds: Sequence[int],
    k: int,
    *,
    val_fraction: float = 0.15,
    seed: int = 0,
) -> dict[str, list[int]]:
    """Train / val / test positions for fold `k` of a k-fold cross-validation.

    test = the rows of fold k. The other rows are cut into round(1 / val_fraction)
    patient-grouped, label-stratified parts (StratifiedGroupKFold, shuffled with
    `seed`); one of them (about `val_fraction` of those rows) is val, for early stopping
    and model selection; the rest is train. No patient spans two of the three.

    Args:
        manifest: the manifest.
        folds: fold of each row (`assign_folds` / `read_folds`).
        k: the test fold, 0..n_folds-1.
        val_fraction: fraction of the non-test rows held out for validation, in [0, 0.5];
            0 = no val part.
        seed: seed of the val draw.

    Returns:
        {"train": [...], "val": [...], "test": [...]}: positions into `manifest.rows`.
    """
    n_folds = max(folds) + 1 if len(folds) else 0
    if not 0 <= k < n_folds:
        raise UserError(f"fold {k} does not exist: folds are numbered 0..{n_folds - 1}.")
    if not 0 <= val_fraction <= 0.5:
        raise UserError(f"val_fraction={val_fraction}: use a value in [0, 0.5].")
    test = [i for i, f in enumerate(folds) if f == k]
    rest = [i for i, f in enumerate(folds) if f != k]
    groups = [manifest.rows[i].group for i in rest]
    targets = [manifest.rows[i].target for i in rest]
    # StratifiedGroupKFold needs at least as many groups as parts, and some class with
    # at least as many rows; tiny data sets get fewer, larger parts.
    largest_class = max(Counter(targets).values(), default=0)
    n_parts = min(round(1 / val_fraction), len(set(groups)), largest_class) if val_fraction else 0
    if n_parts < 2:
        return {"train": rest, "val": [], "test": test}
    parts = _stratified_group_parts(targets, groups, n_parts, seed)
    return {
        "train": [i for i, p in zip(rest, parts, strict=True) if p != 0],
        "val": [i for i, p in zip(rest, parts, strict=True) if p == 0],
        "test": test,
    }


def split_summary(manifest: Manifest, parts: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    """Rows per class in each part, for logs and reports.

    Args:
        manifest: the manifest.
        parts: part name -> positions into `manifest.rows`.

    Returns:
        part name -> {class name: rows}.
    """
    out = {}
    for name, idx in parts.items():
        counts = Counter(manifest.rows[i].label for i in idx)
        out[name] = {c: counts.get(c, 0) for c in manifest.classes}
    return out
