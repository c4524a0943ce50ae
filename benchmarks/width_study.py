"""Accuracy of AGFNet's fusion width: `model.overrides.scale_dim` variants, same folds.

docs/performance.md: the paper architecture misses the CPU fusion-overhead targets, and
fusing at d_s = min(C_s, 128) instead of min(C_s, 256) meets them. This script measures
what that costs in accuracy: each variant is cross-validated on the same folds with the
same seed, fold by fold in turn (fold 0 of every variant, then fold 1, ...), so a run
cut short still gives paired results. The JSON is rewritten after every fold.

    python benchmarks/width_study.py --data out/bench/manifest.csv --out out/width \
        --widths 256,128 --folds 3 trainer.epochs=30 optim.lr=1e-3

Extra arguments are `key=value` config overrides applied to the preset (default: paper).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "ece", "nll")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="manifest CSV")
    parser.add_argument("--out", required=True, help="folder; width_study.json goes in it")
    parser.add_argument("--config", default="paper", help="preset or YAML file")
    parser.add_argument("--widths", default="256,128", help="scale_dim values to compare")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args()

    from agfnet.engine.config import load_config
    from agfnet.engine.cv import FOLDS_FILE, plan_folds, run_fold
    from agfnet.engine.train import read_data

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    widths = [int(w) for w in args.widths.split(",")]
    configs = {
        w: load_config(args.config, [*args.overrides, f"model.overrides.scale_dim={w}"])
        for w in widths
    }
    first = configs[widths[0]]
    manifest = read_data(args.data, first)
    plans = plan_folds(manifest, args.folds, first, out / FOLDS_FILE)
    result: dict = {
        "command": "python benchmarks/width_study.py "
        + " ".join(
            [
                f"--data {args.data}",
                f"--out {args.out}",
                f"--config {args.config}",
                f"--widths {args.widths}",
                f"--folds {args.folds}",
                *args.overrides,
            ]
        ),
        "model": first.model.name,
        "widths": widths,
        "folds": {},
        "seconds": {},
    }
    for plan in plans:
        for w in widths:
            start = time.perf_counter()
            metrics = run_fold(configs[w], manifest, plan, out / f"scale_dim_{w}" / plan.name)
            result["seconds"].setdefault(str(w), []).append(time.perf_counter() - start)
            result["folds"].setdefault(str(w), []).append({k: metrics[k] for k in KEYS})
        result["summary"] = {
            str(w): {
                k: {
                    "mean": statistics.fmean(f[k] for f in result["folds"][str(w)]),
                    "std": statistics.stdev(f[k] for f in result["folds"][str(w)])
                    if len(result["folds"][str(w)]) > 1
                    else None,
                }
                for k in KEYS
            }
            for w in widths
        }
        (out / "width_study.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["summary"]), flush=True)


if __name__ == "__main__":
    main()
