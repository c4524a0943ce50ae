"""Figures of the CAM sanity checks (tests/explain/test_sanity.py) for each method and
target layer, over several training seeds: docs/commands/explain.md quotes them.

Run: HF_HUB_OFFLINE=1 python benchmarks/cam_sanity.py --seeds 0 1 2
Writes OUT.csv and OUT.md. About 40 s per seed on two CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "explain"))

import test_sanity as sanity

from agfnet.explain.cam import explain_pair
from agfnet.explain.focus import pointing_game
from agfnet.models import create_model
from agfnet.models.output import MODALITIES

SETTINGS = {
    "Grad-CAM, layer4 (old default)": ("gradcam", ["layer4"]),
    "Layer-CAM, layer4": ("layercam", ["layer4"]),
    "Grad-CAM, layer3": ("gradcam", ["layer3"]),
    "Layer-CAM, layer3": ("layercam", ["layer3"]),
    "Grad-CAM++, layer2 + layer3": ("gradcam++", ["layer2", "layer3"]),
    "Grad-CAM, layer2 + layer3": ("gradcam", ["layer2", "layer3"]),
    "Layer-CAM, layer2 + layer3 (default)": ("layercam", ["layer2", "layer3"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cam_sanity"))
    parser.add_argument("--table-only", action="store_true", help="rewrite OUT.md from OUT.csv")
    args = parser.parse_args()
    if args.table_only:
        with open(args.out.with_suffix(".csv"), newline="") as f:
            write_table(list(csv.DictReader(f)), args.out)
        return
    rows = []
    for seed in args.seeds:
        sanity.SEED = seed
        model, (c, u, y, evid, decoy) = sanity.trained.__wrapped__()
        random = create_model("agfnet_tiny", num_classes=4, seed=1000 + seed).eval()
        for label, (method, stages) in SETTINGS.items():
            layers = {m: [f"encoders.backbones.{m}.{s}" for s in stages] for m in MODALITIES}
            maps = explain_pair(model, c, u, method=method, layers=layers, target=y.tolist())
            rand = explain_pair(random, c, u, method=method, layers=layers, target=y.tolist())
            ratios = sanity._ratios(maps, evid, decoy)
            for m in MODALITIES:
                hits = [pointing_game(maps[m][j], evid[m][j]) for j in range(len(y))]
                rho = np.mean([sanity._spearman(maps[m][j], rand[m][j]) for j in range(len(y))])
                rows.append(
                    {
                        "seed": seed,
                        "setting": label,
                        "modality": m,
                        "energy_over_share": round(ratios[m][0], 2),
                        "energy_over_decoy": round(ratios[m][1], 2),
                        "pointing_game": round(float(np.mean([bool(h) for h in hits])), 2),
                        "flat_maps": sum(h is None for h in hits),
                        "rho_vs_random_model": round(float(rho), 2),
                    }
                )
        print(f"seed {seed} done", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_table(rows, args.out)


def write_table(rows: list[dict], out: Path) -> None:
    """OUT.md: per setting, min-max over seeds and the seeds that pass the test's bar."""
    seeds = sorted({int(r["seed"]) for r in rows})
    lines = [
        f"# CAM sanity figures (agfnet_tiny, planted evidence, {sanity.SIZE} px, seeds "
        f"{', '.join(map(str, seeds))})",
        "",
        "Per cell: min-max over seeds; clinical / ultrasound. A seed passes when, for both "
        "modalities, energy/share >= 3 and energy/decoy >= 2 (the bar of "
        "tests/explain/test_sanity.py).",
        "",
        "| setting | seeds passing | energy / share | energy / decoy | pointing game "
        "| rho vs random model |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label in SETTINGS:
        mine = [r for r in rows if r["setting"] == label]
        passing = sum(
            all(
                float(r["energy_over_share"]) >= 3 and float(r["energy_over_decoy"]) >= 2
                for r in mine
                if int(r["seed"]) == seed
            )
            for seed in seeds
        )
        cells = [f"{passing} of {len(seeds)}"]
        for key in (
            "energy_over_share",
            "energy_over_decoy",
            "pointing_game",
            "rho_vs_random_model",
        ):
            parts = []
            for m in MODALITIES:
                v = [float(r[key]) for r in mine if r["modality"] == m]
                parts.append(f"{min(v):.2f}-{max(v):.2f}" if min(v) != max(v) else f"{v[0]:.2f}")
            cells.append(" / ".join(parts))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
