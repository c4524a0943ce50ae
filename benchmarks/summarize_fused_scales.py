"""Tables of the fused-scales study (benchmarks/study_fused_scales.sh), per benchmark and pooled.

Usage: python benchmarks/summarize_fused_scales.py NAME=DIR[+DIR2@ALIAS] [...] OUT.md
Reads each `agfnet compare` folder's per-fold held-out metrics (and those of the one model
of a further compare folder DIR2 on the same folds, named ALIAS) and writes OUT.md and
OUT.csv: per benchmark and model the accuracy of every fold, mean ± sd (ddof 1) of
accuracy, macro F1, macro AUC and NLL, the mean paired difference in accuracy to the
first model with its 95 % t interval and the paired t-test and Wilcoxon p-values; then
the same difference pooled over every benchmark's folds (one paired test over all).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

METRICS = ("accuracy", "macro_f1", "macro_auc", "nll")


def _fold_metrics(model_dir: Path) -> list[dict]:
    folds = sorted(model_dir.glob("fold_*"), key=lambda p: int(p.name.split("_")[1]))
    return [json.loads((f / "test" / "metrics.json").read_text()) for f in folds]


def _tests(diff: np.ndarray) -> tuple[float, float, float, float]:
    """Mean difference, its 95 % t half-width, the paired t-test and Wilcoxon p-values."""
    n = len(diff)
    half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    p_t = stats.ttest_1samp(diff, 0.0).pvalue if n > 1 and diff.std() > 0 else 1.0
    p_w = stats.wilcoxon(diff).pvalue if np.any(diff != 0) else 1.0
    return float(diff.mean()), float(half), float(p_t), float(p_w)


def main(args: list[str]) -> None:
    *runs, out = args
    out = Path(out)
    lines, rows, pooled = [], [], {}
    for run in runs:
        name, folders = run.split("=", 1)
        folder, *extra = folders.split("+")
        compare = json.loads((Path(folder) / "compare.json").read_text())
        models = list(compare["models"])
        values = {m: _fold_metrics(Path(folder) / m) for m in models}
        for item in extra:
            other, alias = item.split("@")
            same = (Path(other) / "folds.csv").read_bytes() == (
                Path(folder) / "folds.csv"
            ).read_bytes()
            if not same:
                raise SystemExit(f"{other} was run on other folds than {folder}")
            (model,) = json.loads((Path(other) / "compare.json").read_text())["models"]
            models.append(alias)
            values[alias] = _fold_metrics(Path(other) / model)
        n = min(len(v) for v in values.values())
        ref = np.array([f["accuracy"] for f in values[models[0]][:n]])
        lines += [
            f"### {name} ({n} folds, reference {models[0]})",
            "",
            "| model | " + " | ".join(f"fold {k}" for k in range(n)) + " | accuracy | macro F1 "
            "| macro AUC | NLL | accuracy - reference (95 % CI) | p (paired t) | p (Wilcoxon) |",
            "| --- | " + " | ".join("---" for _ in range(n)) + " | --- | --- | --- | --- | --- "
            "| --- | --- |",
        ]
        for m in models:
            folds = values[m][:n]
            acc = np.array([f["accuracy"] for f in folds])
            stats_ = {
                k: (np.mean([f[k] for f in folds]), np.std([f[k] for f in folds], ddof=1))
                for k in METRICS
            }
            cells = [f"{a:.3f}" for a in acc] + [
                f"{stats_[k][0]:.3f} ± {stats_[k][1]:.3f}" for k in METRICS
            ]
            if m == models[0]:
                cells += ["", "", ""]
                test = (np.nan,) * 4
            else:
                test = _tests(acc - ref)
                pooled.setdefault(m, []).extend(acc - ref)
                cells += [f"{test[0]:+.3f} ({test[0] - test[1]:+.3f}, {test[0] + test[1]:+.3f})"]
                cells += [f"{test[2]:.3f}", f"{test[3]:.3f}"]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
            rows.append(
                {"benchmark": name, "model": m, "n_folds": n}
                | {f"fold_{k}_accuracy": round(float(a), 4) for k, a in enumerate(acc)}
                | {f"{k}_mean": round(float(s[0]), 4) for k, s in stats_.items()}
                | {f"{k}_sd": round(float(s[1]), 4) for k, s in stats_.items()}
                | dict(
                    zip(
                        ("accuracy_diff", "accuracy_diff_ci95", "p_ttest", "p_wilcoxon"),
                        (round(v, 4) for v in test),
                        strict=True,
                    )
                )
            )
        lines.append("")
    lines += [
        f"### Pooled over {', '.join(r.split('=', 1)[0] for r in runs)}",
        "",
        "| model | paired folds | accuracy - reference (95 % CI) | p (paired t) | p (Wilcoxon) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m, diffs in pooled.items():
        d, half, p_t, p_w = _tests(np.array(diffs))
        lines.append(
            f"| {m} | {len(diffs)} | {d:+.3f} ({d - half:+.3f}, {d + half:+.3f}) | {p_t:.3f} "
            f"| {p_w:.3f} |"
        )
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with out.with_suffix(".csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    print(out.read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
