"""Data pipeline: pairs per second the training DataLoader delivers with its default settings.

The loader is the one `agfnet train` builds (`PairedDataModule.train_dataloader`: training
augmentation, shuffling sampler, persistent workers), with the batch size and worker
count of the training preset. Its images are synthetic pairs (`agfnet.data.synth`) at
the preset's side, written as PNG; a few are rendered and the training index list
repeats them, since decoding and augmenting a pair costs the same whether or not the
pair was seen before, and rendering is far slower than loading.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from agfnet.benchmark.common import Plan, Reporter, make_plan, resolve_device, spread

__all__ = ["measure_loader"]

#: Distinct pairs rendered per class (5 classes).
PAIRS_PER_CLASS = 2


def measure_loader(
    device: str | torch.device,
    quick: bool,
    *,
    consume_pairs_per_s: float,
    plan: Plan | None = None,
    workdir: Path | None = None,
    report: Reporter | None = None,
) -> dict[str, Any]:
    """Pairs/s of the default training DataLoader, over the pairs/s training consumes.

    One warm-up epoch (it starts the workers), then `plan.loader_epochs` timed epochs of
    `plan.loader_batches` batches each, iterated with nothing else running.

    Args:
        device: "cpu" or "cuda" (only where pinned memory is used).
        quick: tiny preset (when `plan` is not given).
        consume_pairs_per_s: pairs per second an `agfnet` training step consumes,
            measured in the same run (`measure_overhead`).
        plan: sizes; default `make_plan(quick, device)`.
        workdir: folder for the rendered pairs; default a temporary one.
        report: progress callback.

    Returns:
        dict(preset, batch_size, num_workers, img_size, pairs_per_epoch, pairs_per_s
        (whole timed span), epoch_pairs_per_s (spread over epochs), consume_pairs_per_s,
        supply_ratio = pairs_per_s / consume_pairs_per_s).
    """
    from agfnet.data import TransformConfig, read_manifest
    from agfnet.data.synth import generate
    from agfnet.engine.config import load_config, resolve_num_workers
    from agfnet.engine.datamodule import PairedDataModule

    device = resolve_device(device)
    plan = plan or make_plan(quick, device)
    config = load_config(plan.config)
    batch, workers = config.data.batch_size, resolve_num_workers(config.data.num_workers)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        if report:
            report(f"render {5 * PAIRS_PER_CLASS} synthetic pairs at {plan.img_size} px")
        generate(Path(tmp) / "synth", n_per_class=PAIRS_PER_CLASS, size=plan.img_size, seed=0)
        manifest = read_manifest(Path(tmp) / "synth" / "manifest.csv")
        n = batch * plan.loader_batches
        data = PairedDataModule(
            manifest,
            train_indices=[i % len(manifest.rows) for i in range(n)],
            val_indices=[0],
            transform=TransformConfig(**config.data.transform, img_size=plan.img_size),
            batch_size=batch,
            num_workers=workers,
            seed=config.seed,
        )
        loader = data.train_dataloader()
        epoch_seconds, delivered = [], 0
        for epoch in range(1 + plan.loader_epochs):
            if report:
                kind = "warm-up" if epoch == 0 else f"{epoch}/{plan.loader_epochs}"
                report(f"{workers} workers, batch {batch}: epoch {kind}")
            loader.sampler.set_epoch(epoch)
            start = time.perf_counter()
            pairs = sum(int(b["label"].shape[0]) for b in loader)
            if epoch:
                epoch_seconds.append(time.perf_counter() - start)
                delivered += pairs
        # Stop the persistent workers before their images are deleted.
        del loader
    supply = delivered / sum(epoch_seconds)
    return {
        "preset": plan.config,
        "batch_size": batch,
        "num_workers": workers,
        "img_size": plan.img_size,
        "pairs_per_epoch": n,
        "pairs_per_s": supply,
        "epoch_pairs_per_s": spread([n / s for s in epoch_seconds]),
        "consume_pairs_per_s": consume_pairs_per_s,
        "supply_ratio": supply / consume_pairs_per_s,
    }
