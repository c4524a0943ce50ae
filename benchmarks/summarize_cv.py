"""Side-by-side table of several `agfnet cv` folders run on the same folds.

Usage: python benchmarks/summarize_cv.py NAME=CV_DIR [NAME=CV_DIR ...]
Prints, per run: test accuracy, balanced accuracy and mean task accuracy (mean ± std over
folds), the best epoch of each fold (the epoch of best.ckpt), and the paired t-test p-value
of accuracy against the first run (folds are paired: same rows).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats


def _folds(cv_dir: Path) -> list[Path]:
    return sorted(p for p in cv_dir.glob("fold_*") if (p / "test" / "metrics.json").is_file())


def _values(cv_dir: Path, key: str) -> list[float | None]:
    return [json.loads((f / "test" / "metrics.json").read_text()).get(key) for f in _folds(cv_dir)]


def _fmt(values: list[float | None]) -> str:
    if not values or any(v is None for v in values):
        return "n/a"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def main(args: list[str]) -> None:
    runs = [(a.split("=", 1)[0], Path(a.split("=", 1)[1])) for a in args]
    reference = _values(runs[0][1], "accuracy")
    print(
        "| run | folds | accuracy | balanced accuracy | mean task accuracy | best epoch per fold "
        "| p (paired t, accuracy vs first) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, cv_dir in runs:
        acc = _values(cv_dir, "accuracy")
        epochs = [json.loads((f / "metrics.json").read_text())["epoch"] for f in _folds(cv_dir)]
        p = "-"
        if cv_dir != runs[0][1] and len(acc) == len(reference) > 1:
            p = f"{stats.ttest_rel(acc, reference).pvalue:.2f}"
        balanced = _fmt(_values(cv_dir, "balanced_accuracy"))
        tasks = _fmt(_values(cv_dir, "mean_task_accuracy"))
        best = ", ".join(map(str, epochs))
        print(f"| {name} | {len(acc)} | {_fmt(acc)} | {balanced} | {tasks} | {best} | {p} |")


if __name__ == "__main__":
    main(sys.argv[1:])
