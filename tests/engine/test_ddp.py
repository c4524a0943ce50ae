"""DDP with two CPU processes (gloo): each rank trains on its own shard; the result loads."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from agfnet.engine.checkpoint import load_model

# Lightning's DDP launcher re-runs this script for rank 1, so it must be a file.
SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from agfnet.engine.callbacks import SeenRowsRecorder
    from agfnet.engine.config import load_config
    from agfnet.engine.train import fit

    manifest, out = sys.argv[1:3]
    config = load_config(
        "tiny",
        ["data.img_size=32", "data.batch_size=4", "trainer.progress_bar=false",
         "data.val_fraction=0.2"],
        epochs=1, model="clinical_only_tiny", devices=2, strategy="ddp", accelerator="cpu",
    )
    fit(config, manifest, out, callbacks=[SeenRowsRecorder(Path(out) / "seen_rows")])
    """
)


def test_ddp_two_cpu_processes_see_disjoint_data(manifest_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MASTER_PORT": str(29500 + os.getpid() % 1000),
    }
    done = subprocess.run(
        [sys.executable, str(script), str(manifest_path), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    seen = {
        rank: [int(x) for x in (out / "seen_rows" / f"rank{rank}_epoch0.txt").read_text().split()]
        for rank in (0, 1)
    }
    with open(out / "split.csv", newline="") as f:
        train_rows = {int(r["row"]) for r in csv.DictReader(f) if r["split"] == "train"}
    assert seen[0] and seen[1]
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) <= train_rows
    # Every rank runs its share of full batches (the sampler pads, then batches drop).
    assert len(seen[0]) == len(seen[1]) >= (len(train_rows) // 8) * 4

    model, info = load_model(out / "checkpoints" / "best.ckpt")
    assert info.build_spec["name"] == "clinical_only_tiny"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert (out / "metrics.json").is_file()  # rank 0 calibrated and scored
