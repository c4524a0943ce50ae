"""Cross-validation: one training per fold, each evaluated on its held-out fold; resumable."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agfnet.engine.config import TrainConfig, config_hash, load_config
from agfnet.engine.train import CONFIG_FILE, Split, fit, holdout, read_data
from agfnet.errors import UserError
from agfnet.fileio import write_json

log = logging.getLogger(__name__)

FOLDS_FILE = "folds.csv"
SPLIT_FILE = "split.csv"  # instead of folds.csv when the manifest fixes the split
TEST_DIR = "test"
SUMMARY_STEM = "summary"


@dataclass(frozen=True)
class FoldPlan:
    """The rows of one fold, as positions in `manifest.rows`.

    Args:
        name: folder name (`fold_<k>`, or `fixed` for a manifest `split` column).
        train: rows the model trains on.
        val: rows that pick the best epoch and fit the temperature.
        test: held-out rows the best checkpoint is evaluated on.
    """

    name: str
    train: list[int]
    val: list[int]
    test: list[int]


@dataclass(frozen=True)
class CVResult:
    """What `run_cv` produced.

    Args:
        out: the cv folder.
        folds: per fold, the test metrics (as in fold_<k>/test/metrics.json).
        summary: per metric mean, std, n and the per-fold values (summary.json).
    """

    out: Path
    folds: list[dict[str, Any]]
    summary: dict[str, Any]


def plan_folds(
    manifest: Any, n_folds: int, config: TrainConfig, folds_file: Path
) -> list[FoldPlan]:
    """Decide the folds and write them to `folds_file` first (or read it when it exists).

    Folds are stratified by label and grouped by patient (`agfnet.data.splits`). Fold k
    tests on its rows and trains on the others, minus a seeded validation hold-out of
    `data.val_fraction`. A manifest with a `split` column gives one fixed "fold" instead:
    train/val/test rows as the column says, written to split.csv beside `folds_file`.

    Args:
        manifest: the validated manifest.
        n_folds: number of folds (>= 2).
        config: gives the seed and `data.val_fraction`.
        folds_file: the folds.csv of the run (row, patient_id, fold).

    Returns:
        One `FoldPlan` per fold.
    """
    from agfnet.data.splits import assign_folds, fold_split, read_folds, write_folds

    if manifest.has_split:
        return [_fixed_plan(manifest, config, folds_file.with_name(SPLIT_FILE))]
    if folds_file.is_file():
        folds = read_folds(folds_file, manifest)
        if max(folds) + 1 != n_folds:
            raise UserError(
                f"{folds_file} holds {max(folds) + 1} folds, not {n_folds}; rerun with "
                f"--folds {max(folds) + 1}, or use another --out"
            )
    else:
        folds = assign_folds(manifest, n_folds, seed=config.seed)
        write_folds(folds_file, manifest, folds)
    plans = []
    for k in range(n_folds):
        parts = fold_split(
            manifest, folds, k, val_fraction=config.data.val_fraction, seed=config.seed + k
        )
        plans.append(FoldPlan(f"fold_{k}", parts["train"], parts["val"], parts["test"]))
    return plans


def _fixed_plan(manifest: Any, config: TrainConfig, split_file: Path) -> FoldPlan:
    from agfnet.data.manifest import write_rows_csv
    from agfnet.data.splits import fixed_split

    parts = fixed_split(manifest)
    if not parts["test"]:
        raise UserError(
            f"{manifest.path}: the split column has no 'test' rows, so there is nothing to "
            "evaluate on; mark some rows split=test, or drop the column for k-fold "
            "cross-validation"
        )
    train, val = parts["train"], parts["val"]
    if not val:
        split = holdout(manifest, train, config.data.val_fraction, config.seed)
        train, val = split.train, split.val
    role = (
        {i: "train" for i in train} | {i: "val" for i in val} | {i: "test" for i in parts["test"]}
    )
    write_rows_csv(
        split_file,
        ["row", "patient_id", "split"],
        (
            {
                "row": manifest.rows[i].row,
                "patient_id": manifest.rows[i].patient_id or "",
                "split": role[i],
            }
            for i in sorted(role)
        ),
    )
    return FoldPlan("fixed", train, val, parts["test"])


def _state(config: TrainConfig, n_folds: int, manifest: Any) -> dict[str, Any]:
    return {
        "config_hash": config_hash(config),
        "model": config.model.name,
        "n_folds": 1 if manifest.has_split else n_folds,
        "n_rows": len(manifest.rows),
        "classes": list(manifest.classes),
    }


def claim_folder(
    out: Path, state: dict[str, Any], overwrite: bool, what: str, outputs: Sequence[str]
) -> None:
    """Make sure a rerun into `out` is the same experiment; write its state file.

    Args:
        out: the experiment folder.
        state: what identifies the experiment (config hash, folds, models).
        overwrite: on a mismatch, delete `outputs` and start over instead of failing.
        what: the command name: the state file is OUT/<what>.json.
        outputs: names (globs) in `out` that belong to the experiment.

    Raises:
        UserError: `out` holds a different experiment and `overwrite` is off.
    """
    path = out / f"{what}.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != state:
            changed = sorted(k for k in state.keys() | saved.keys() if saved.get(k) != state.get(k))
            if not overwrite:
                raise UserError(
                    f"{out} holds an earlier `agfnet {what}` with different settings "
                    f"({', '.join(changed)} changed); use another --out, or --overwrite "
                    "to delete its results and start over"
                )
            log.warning("--overwrite: deleting the earlier %s results in %s", what, out)
            for pattern in outputs:
                for p in out.glob(pattern):
                    if p.is_dir():
                        shutil.rmtree(p)
                    else:
                        p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, state)


def fold_finished(fold_dir: Path, config: TrainConfig) -> bool:
    """A fold is finished when its test metrics exist and its config matches `config`."""
    if not (fold_dir / TEST_DIR / "metrics.json").is_file():
        return False
    return config_hash(load_config(fold_dir / CONFIG_FILE)) == config_hash(config)


def run_fold(
    config: TrainConfig, manifest: Any, plan: FoldPlan, fold_dir: Path, command: str | None = None
) -> dict[str, Any]:
    """Train on a fold (continuing an interrupted run) and evaluate on its test rows.

    Returns:
        The test metrics (fold_dir/test/metrics.json).
    """
    from agfnet.evaluation.evaluate import evaluate_model
    from agfnet.runtime.checkpoint import load_model

    if fold_finished(fold_dir, config):
        log.info("%s: finished earlier, skipped", plan.name)
        return json.loads((fold_dir / TEST_DIR / "metrics.json").read_text())
    log.info(
        "%s: training on %d rows, validating on %d, testing on %d",
        plan.name,
        len(plan.train),
        len(plan.val),
        len(plan.test),
    )
    result = fit(
        config,
        manifest,
        fold_dir,
        resume=True,
        split=Split(plan.train, plan.val, f"{plan.name} of the cross-validation"),
        command=command,
    )
    model, info = load_model(result.best_checkpoint)
    return evaluate_model(
        model,
        info,
        manifest,
        plan.test,
        fold_dir / TEST_DIR,
        title=f"{config.model.name}, {plan.name}: held-out rows",
        batch_size=config.data.batch_size,
    )


def run_cv(
    config: TrainConfig,
    data: str | Path | Any,
    out: str | Path,
    *,
    n_folds: int = 5,
    overwrite: bool = False,
    folds_file: str | Path | None = None,
    command: str | None = None,
) -> CVResult:
    """k-fold cross-validation of one model config (the `agfnet cv` command).

    Writes OUT/folds.csv first, then per fold OUT/fold_<k>/ (a run folder as `fit` makes,
    plus test/: the evaluation of best.ckpt on the held-out fold), then summary.json,
    summary.md, summary.csv and summary.png (mean ± std over folds). A rerun skips the
    finished folds and resumes an interrupted one from its last.ckpt.

    Args:
        config: the resolved config (same for every fold).
        data: manifest path, or a manifest already read.
        out: the cv folder.
        n_folds: number of folds (ignored when the manifest has a `split` column: one
            fixed split is run instead).
        overwrite: if OUT holds a cv of other settings, delete it instead of failing.
        folds_file: use these folds (e.g. shared by `compare`) instead of OUT/folds.csv.
        command: recorded in each fold's version.json.

    Returns:
        A `CVResult`.
    """
    from agfnet.evaluation.tables import write_comparison

    out = Path(out)
    manifest = read_data(data, config)
    state = _state(config, n_folds, manifest)
    claim_folder(
        out,
        state,
        overwrite,
        "cv",
        [FOLDS_FILE, SPLIT_FILE, "fold_*", "fixed", f"{SUMMARY_STEM}.*"],
    )
    plans = plan_folds(manifest, n_folds, config, Path(folds_file or out / FOLDS_FILE))
    per_fold = [run_fold(config, manifest, p, out / p.name, command) for p in plans]
    data_out = write_comparison(
        out,
        {config.model.name: per_fold},
        stem=SUMMARY_STEM,
        title=f"Cross-validation of {config.model.name} ({len(plans)} folds)",
    )
    summary = data_out["models"][config.model.name]["summary"]
    return CVResult(out, per_fold, summary)
