"""Cross-validation: folds written first, one run per fold, resumable, guarded against mix-ups."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from agfnet.engine.cv import run_cv
from agfnet.errors import UserError


def test_cv_runs_every_fold_and_resumes(
    manifest_path: Path, tiny_config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config(model="clinical_only_tiny", epochs=1)
    out = tmp_path / "cv"
    result = run_cv(config, manifest_path, out, n_folds=2)

    with open(out / "folds.csv", newline="") as f:
        folds = list(csv.DictReader(f))
    assert list(folds[0]) == ["row", "patient_id", "fold"]
    assert {r["fold"] for r in folds} == {"0", "1"}
    for k in (0, 1):
        metrics = json.loads((out / f"fold_{k}" / "test" / "metrics.json").read_text())
        with open(out / f"fold_{k}" / "test" / "predictions.csv", newline="") as f:
            tested = sorted(int(r["row"]) for r in csv.DictReader(f))
        # Each fold is tested on exactly its own rows, never trained on them.
        assert tested == sorted(int(r["row"]) for r in folds if r["fold"] == str(k))
        with open(out / f"fold_{k}" / "split.csv", newline="") as f:
            trained = {int(r["row"]) for r in csv.DictReader(f)}
        assert not trained & set(tested)
        assert metrics["accuracy"] == result.folds[k]["accuracy"]
    summary = json.loads((out / "summary.json").read_text())
    acc = summary["models"]["clinical_only_tiny"]["summary"]["accuracy"]
    assert acc["values"] == [f["accuracy"] for f in result.folds]
    assert (out / "summary.md").is_file()

    # Rerun after losing fold 1's evaluation: fold 0 is skipped, fold 1 redone.
    fold0 = out / "fold_0" / "test" / "metrics.json"
    mtime0 = fold0.stat().st_mtime_ns
    (out / "fold_1" / "test" / "metrics.json").unlink()
    caplog.set_level(logging.INFO, logger="agfnet")
    again = run_cv(config, manifest_path, out, n_folds=2)
    assert fold0.stat().st_mtime_ns == mtime0
    assert "fold_0: finished earlier, skipped" in caplog.text
    assert "fold_1: finished earlier" not in caplog.text
    assert (out / "fold_1" / "test" / "metrics.json").is_file()
    assert again.folds[1]["accuracy"] == result.folds[1]["accuracy"]  # same best.ckpt

    # Other settings into the same folder: refused before anything is touched.
    with pytest.raises(UserError, match=r"different settings.*config_hash.*--overwrite"):
        run_cv(
            tiny_config("optim.lr=0.5", model="clinical_only_tiny", epochs=1),
            manifest_path,
            out,
            n_folds=2,
        )
    with pytest.raises(UserError, match="n_folds"):
        run_cv(config, manifest_path, out, n_folds=3)
    assert fold0.stat().st_mtime_ns == mtime0


def test_cv_with_a_split_column_runs_the_fixed_split(
    manifest_path: Path, tiny_config, tmp_path: Path
) -> None:
    with open(manifest_path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["split"] = ("test", "train", "train")[int(r["patient_id"][1:]) % 3]
    path = manifest_path.parent / "fixed.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "cv"
    result = run_cv(tiny_config(model="clinical_only_tiny", epochs=1), path, out, n_folds=5)
    assert len(result.folds) == 1
    assert (out / "split.csv").is_file() and not (out / "folds.csv").exists()
    test_rows = [i for i, r in enumerate(rows, 1) if r["split"] == "test"]
    assert result.folds[0]["n"] == len(test_rows)
