"""Model comparison: every model on the same folds, one table with exact columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from agfnet.engine.compare import parse_models, run_compare
from agfnet.engine.cv import run_cv
from agfnet.errors import UserError
from agfnet.evaluation.tables import DEFAULT_METRICS

MODELS = ["late_concat_tiny", "clinical_only_tiny"]


def test_compare_two_models_on_the_same_folds(
    manifest_path: Path, tiny_config, tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    # The first model was cross-validated on its own beforehand (as a separate job would):
    # compare finds its folds finished and reuses them.
    run_cv(tiny_config(epochs=1, model=MODELS[0]), manifest_path, out / MODELS[0], n_folds=2)
    done = out / MODELS[0] / "fold_0" / "test" / "metrics.json"
    mtime = done.stat().st_mtime_ns
    result = run_compare(
        tiny_config(epochs=1), manifest_path, out, models=",".join(MODELS), n_folds=2
    )
    assert done.stat().st_mtime_ns == mtime

    with open(out / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    expected = ["model", "n_folds"] + [
        f"{m}_{s}" for m in DEFAULT_METRICS for s in ("mean", "std", "p_ttest", "p_wilcoxon")
    ]
    assert list(rows[0]) == expected
    assert [r["model"] for r in rows] == MODELS
    for row, name in zip(rows, MODELS, strict=True):
        values = [f["accuracy"] for f in result.runs[name].folds]
        assert float(row["accuracy_mean"]) == pytest.approx(sum(values) / 2)
    table_md = (out / "table.md").read_text()
    model_lines = [
        line
        for line in table_md.splitlines()
        if line.startswith("| ") and line.split("|")[1].strip() in MODELS
    ]
    assert [line.split("|")[1].strip() for line in model_lines[:2]] == MODELS
    table = json.loads((out / "table.json").read_text())
    assert table["reference"] == MODELS[0]
    assert "accuracy" in table["models"][MODELS[1]]["tests"]
    assert (out / "table.png").stat().st_size > 0

    # One set of folds; every model tested each fold on the very same rows.
    assert (out / "folds.csv").read_text() == (out / MODELS[0] / "folds.csv").read_text()
    assert not (out / MODELS[1] / "folds.csv").exists()
    for k in (0, 1):
        tested = []
        for m in MODELS:
            with open(out / m / f"fold_{k}" / "test" / "predictions.csv", newline="") as f:
                tested.append([int(r["row"]) for r in csv.DictReader(f)])
        assert tested[0] == tested[1]

    # A rerun finds everything finished and rewrites the same table.
    again = run_compare(tiny_config(epochs=1), manifest_path, out, models=MODELS, n_folds=2)
    assert again.table == result.table
    with pytest.raises(UserError, match="models"):
        run_compare(tiny_config(epochs=1), manifest_path, out, models=MODELS[::-1], n_folds=2)


@pytest.mark.parametrize(
    ("models", "match"),
    [
        ("", "empty"),
        ("agfnet_tiny,agfnet_tiny", "more than once"),
        ("agfnet_tiny,resnet", "resnet"),
    ],
)
def test_model_list_errors(models: str, match: str) -> None:
    with pytest.raises(UserError, match=match):
        parse_models(models)
