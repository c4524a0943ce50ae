"""Does the planted-evidence model of tests/explain/test_sanity.py use the decoys? Blank
the evidence patches, or the decoys, with the image's background mean and see what the
accuracy and the true class's probability do (docs/commands/explain.md).

Run: HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python benchmarks/cam_occlusion.py 1 2  (the seeds)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "explain"))

import test_sanity as sanity

from agfnet.models.output import MODALITIES


def main(seeds: list[int]) -> None:
    for seed in seeds:
        sanity.SEED = seed
        model, (c, u, y, evid, decoy) = sanity.trained.__wrapped__()
        images = {"clinical": c, "ultrasound": u}

        def score(clinical: torch.Tensor, ultrasound: torch.Tensor, model=model, y=y) -> str:
            with torch.no_grad():
                p = model(clinical, ultrasound).softmax(1)
            accuracy = (p.argmax(1) == y).float().mean().item()
            return f"accuracy {accuracy:.3f}, p(true) {p[torch.arange(len(y)), y].mean():.3f}"

        print(f"seed {seed}: clean {score(c, u)}")
        for m in MODALITIES:
            for name, masks in (("evidence", evid), ("decoys", decoy)):
                x = images[m].clone()
                mask = torch.tensor(masks[m])[:, None].expand_as(x)
                background = torch.tensor(~(evid[m] | decoy[m]))[:, None].expand_as(x)
                fill = (x * background).sum((2, 3), keepdim=True) / background.sum(
                    (2, 3), keepdim=True
                )
                x = torch.where(mask, fill.expand_as(x), x)
                pair = (x, u) if m == "clinical" else (c, x)
                print(f"  {m} {name} blanked: {score(*pair)}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [0])
