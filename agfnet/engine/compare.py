"""Model comparison: every model cross-validated on the same folds, then one table."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agfnet.engine.config import TrainConfig, config_hash
from agfnet.engine.cv import FOLDS_FILE, SPLIT_FILE, CVResult, claim_folder, plan_folds, run_cv
from agfnet.engine.train import read_data
from agfnet.errors import UserError

log = logging.getLogger(__name__)

TABLE_STEM = "table"


@dataclass(frozen=True)
class CompareResult:
    """What `run_compare` produced.

    Args:
        out: the compare folder.
        runs: per model, its `CVResult` (a cv folder OUT/<model>/).
        table: the content of table.json (summaries and paired tests vs the first model).
    """

    out: Path
    runs: dict[str, CVResult]
    table: dict[str, Any]


def parse_models(models: str | list[str]) -> list[str]:
    """`"a,b, c"` or `["a", "b"]` -> a list of distinct registered model names.

    Raises:
        UserError: an empty list, a duplicate, or a name `agfnet models` does not know.
    """
    from agfnet.models import list_models

    names = [m.strip() for m in (models.split(",") if isinstance(models, str) else models)]
    names = [m for m in names if m]
    if not names:
        raise UserError(
            "--models is empty; give model names, e.g. --models agfnet_tiny,late_concat_tiny"
        )
    dupes = sorted({m for m in names if names.count(m) > 1})
    if dupes:
        raise UserError(f"--models names {', '.join(dupes)} more than once; list each model once")
    known = set(list_models())
    unknown = [m for m in names if m not in known]
    if unknown:
        raise UserError(
            f"unknown model(s) {', '.join(unknown)} in --models; `agfnet models` lists "
            f"the {len(known)} known names"
        )
    return names


def _with_model(config: TrainConfig, name: str) -> TrainConfig:
    return config.model_copy(update={"model": config.model.model_copy(update={"name": name})})


def run_compare(
    config: TrainConfig,
    data: str | Path | Any,
    out: str | Path,
    *,
    models: str | list[str],
    n_folds: int = 5,
    overwrite: bool = False,
    command: str | None = None,
) -> CompareResult:
    """Cross-validate several models on the same folds and seeds (the `agfnet compare` command).

    Writes OUT/folds.csv first (shared by every model), then OUT/<model>/ (a cv folder
    per model; `model.name` of `config` replaced), then table.md, table.csv, table.json
    and table.png: mean ± std per model and metric, with paired t-test and Wilcoxon
    p-values across folds against the first model. Rerunning skips finished folds.
    An ablation study is the same call with ablation names.

    Args:
        config: the shared config; only `model.name` changes between models.
        data: manifest path, or a manifest already read.
        out: the compare folder.
        models: model names (a list or a comma-separated string); the first is the reference.
        n_folds: folds (ignored with a manifest `split` column: one fixed split).
        overwrite: if OUT holds a comparison of other settings, delete it instead of failing.
        command: recorded in every run's version.json.

    Returns:
        A `CompareResult`.
    """
    from agfnet.evaluation.tables import write_comparison

    out = Path(out)
    names = parse_models(models)
    manifest = read_data(data, config)
    state = {
        "models": names,
        "config_hash": config_hash(_with_model(config, "")),
        "n_folds": n_folds,
        "n_rows": len(manifest.rows),
    }
    saved = out / "compare.json"
    earlier = json.loads(saved.read_text()).get("models", []) if saved.is_file() else []
    claim_folder(
        out,
        state,
        overwrite,
        "compare",
        [FOLDS_FILE, SPLIT_FILE, f"{TABLE_STEM}.*", *names, *earlier],
    )
    folds_file = out / FOLDS_FILE
    plan_folds(manifest, n_folds, config, folds_file)
    runs = {}
    for i, name in enumerate(names, 1):
        log.info("model %d/%d: %s", i, len(names), name)
        runs[name] = run_cv(
            _with_model(config, name),
            manifest,
            out / name,
            n_folds=n_folds,
            overwrite=overwrite,
            folds_file=folds_file,
            command=command,
        )
    table = write_comparison(
        out,
        {name: run.folds for name, run in runs.items()},
        stem=TABLE_STEM,
        title=f"Comparison of {len(names)} models ({len(next(iter(runs.values())).folds)} folds)",
    )
    return CompareResult(out, runs, table)
