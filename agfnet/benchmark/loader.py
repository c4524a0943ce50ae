"""Data pipeline: pairs per second the training DataLoader delivers with its default settings.

The loader is the one `agfnet train` builds (`PairedDataModule.train_dataloader`: training
augmentation, shuffling sampler, persistent workers), with the batch size and worker
count of a training preset. A few distinct pairs are written and the training index list
repeats them, since decoding and augmenting a pair costs the same whether or not the
pair was seen before. Two measurements share one timing method (`_time_loaders`):

- `measure_loader`: the plan's preset on synthetic pairs (`agfnet.data.synth`) at the
  preset's side, written as PNG (rendering is far slower than loading, hence few).
- `measure_photo_loader`: the lite preset on pairs of 768x512 JPEG photographs (quality
  90, the size of Derm7pt's images), so that the JPEG decoder and the resize from a
  real photograph's size are in the figure; the loader decodes JPEGs at a reduced DCT
  scale where the transform allows it (`agfnet.data.dataset`), and is timed against the
  same loader decoding every image at full size, epochs interleaved.
"""

from __future__ import annotations

import csv
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agfnet.benchmark.common import Plan, Reporter, make_plan, resolve_device, spread

__all__ = ["measure_loader", "measure_photo_loader", "photo_like", "write_photographs"]

#: Distinct synthetic pairs rendered per class (5 classes).
PAIRS_PER_CLASS = 2
#: (width, height) and JPEG quality of the photographs; distinct photograph pairs written.
PHOTO_SIZE = (768, 512)
PHOTO_QUALITY = 90
PHOTO_PAIRS = 8
#: Amplitude spectrum ~ 1 / f**PHOTO_SLOPE: natural images fall off about so (power ~ 1/f^2
#: to 1/f^3); at 1.3 a 768x512 file at quality 90 holds ~100-150 kB, as real photographs
#: of that size do, and decodes as slowly.
PHOTO_SLOPE = 1.3


def photo_like(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A photograph-like RGB image: noise with a natural-image spectrum, skin-toned.

    Args:
        size: (width, height).
        rng: the random source.

    Returns:
        uint8 (height, width, 3).
    """
    width, height = size
    freq = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :])
    freq[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spectrum = rng.normal(size=freq.shape) + 1j * rng.normal(size=freq.shape)
        field = np.fft.irfft2(spectrum / freq**PHOTO_SLOPE, s=(height, width))
        channels.append((field - field.mean()) / field.std())
    # Correlated channels around a skin tone: most of the variation is shared brightness.
    mix = np.array([[1.0, 0.8, 0.7], [0.0, 0.4, 0.3], [0.0, 0.0, 0.3]])
    image = np.array([190.0, 140.0, 120.0]) + 35.0 * (np.stack(channels, -1) @ mix)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_photographs(
    folder: Path,
    n_pairs: int = PHOTO_PAIRS,
    *,
    size: tuple[int, int] = PHOTO_SIZE,
    quality: int = PHOTO_QUALITY,
    seed: int = 0,
) -> Path:
    """Write `n_pairs` pairs of photograph-like JPEGs (`photo_like`) and their manifest.

    Both images of a pair are colour photographs of `size` (a clinical and a dermoscopic
    image, as in Derm7pt); labels cycle through five classes.

    Args:
        folder: created if missing.
        n_pairs: pairs to write.
        size: (width, height) of every image.
        quality: JPEG quality.
        seed: of the image content.

    Returns:
        The manifest CSV (columns clinical, ultrasound, label).
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_pairs):
        names = (f"clinical_{i}.jpg", f"second_{i}.jpg")
        for name in names:
            Image.fromarray(photo_like(size, rng)).save(folder / name, quality=quality)
        rows.append({"clinical": names[0], "ultrasound": names[1], "label": f"class{i % 5}"})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _train_loader(
    manifest: Any, config: Any, *, img_size: int, batch: int, n: int, draft: bool = True
) -> Any:
    """The training DataLoader `agfnet train` builds for `config`, over `n` positions that
    cycle through the manifest's rows; `draft=False` decodes every image at full size."""
    from agfnet.data import TransformConfig
    from agfnet.engine.config import resolve_num_workers
    from agfnet.engine.datamodule import PairedDataModule

    data = PairedDataModule(
        manifest,
        train_indices=[i % len(manifest.rows) for i in range(n)],
        val_indices=[0],
        transform=TransformConfig(**config.data.transform, img_size=img_size),
        batch_size=batch,
        num_workers=resolve_num_workers(config.data.num_workers),
        seed=config.seed,
    )
    loader = data.train_dataloader()
    # Set before the first epoch pickles the dataset into the workers.
    loader.dataset.draft = draft
    return loader


def _time_loaders(
    loaders: dict[str, Any], epochs: int, report: Reporter | None
) -> dict[str, list[float]]:
    """Seconds of each timed epoch of every loader, iterated one at a time with nothing
    else running: one warm-up epoch each (it starts the workers), then `epochs` rounds in
    alternating order (A B, B A, ...).

    Returns:
        {name: [seconds of each timed epoch]}.
    """
    seconds: dict[str, list[float]] = {name: [] for name in loaders}
    for epoch in range(1 + epochs):
        order = list(loaders) if epoch % 2 == 0 else list(reversed(loaders))
        for name in order:
            loader = loaders[name]
            if report:
                kind = "warm-up" if epoch == 0 else f"{epoch}/{epochs}"
                label = f"{name}, " if len(loaders) > 1 else ""
                report(
                    f"{label}{loader.num_workers} workers, batch {loader.batch_size}: epoch {kind}"
                )
            loader.sampler.set_epoch(epoch)
            start = time.perf_counter()
            for _ in loader:
                pass
            if epoch:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def _supply(loader: Any, seconds: list[float], consume_pairs_per_s: float) -> dict[str, Any]:
    """The figures of one timed loader (every epoch delivers the same full batches)."""
    n = len(loader) * loader.batch_size
    supply = n * len(seconds) / sum(seconds)
    return {
        "batch_size": loader.batch_size,
        "num_workers": loader.num_workers,
        "pairs_per_epoch": n,
        "pairs_per_s": supply,
        "epoch_pairs_per_s": spread([n / s for s in seconds]),
        "consume_pairs_per_s": consume_pairs_per_s,
        "supply_ratio": supply / consume_pairs_per_s,
    }


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
    from agfnet.data import read_manifest
    from agfnet.data.synth import generate
    from agfnet.engine.config import load_config

    device = resolve_device(device)
    plan = plan or make_plan(quick, device)
    config = load_config(plan.config)
    batch = config.data.batch_size
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        if report:
            report(f"render {5 * PAIRS_PER_CLASS} synthetic pairs at {plan.img_size} px")
        generate(Path(tmp) / "synth", n_per_class=PAIRS_PER_CLASS, size=plan.img_size, seed=0)
        manifest = read_manifest(Path(tmp) / "synth" / "manifest.csv")
        loader = _train_loader(
            manifest, config, img_size=plan.img_size, batch=batch, n=batch * plan.loader_batches
        )
        seconds = _time_loaders({"synthetic": loader}, plan.loader_epochs, report)["synthetic"]
        out = {"preset": plan.config, "img_size": plan.img_size}
        out |= _supply(loader, seconds, consume_pairs_per_s)
        # Stop the persistent workers before their images are deleted.
        del loader
    return out


def measure_photo_loader(
    device: str | torch.device,
    quick: bool,
    *,
    consume_pairs_per_s: float,
    img_size: int,
    batch_size: int,
    plan: Plan | None = None,
    workdir: Path | None = None,
    report: Reporter | None = None,
) -> dict[str, Any]:
    """Pairs/s of the lite preset's training DataLoader on 768x512 JPEG photograph pairs,
    over the pairs/s the lite training step consumes; with reduced-scale JPEG decoding
    (the default) and, interleaved, with every image decoded at full size.

    Args:
        device: "cpu" or "cuda" (only where pinned memory is used).
        quick: fewer batches (when `plan` is not given).
        consume_pairs_per_s: pairs/s of the lite training step measured in the same run
            (`measure_training`), at `img_size` and `batch_size`.
        img_size: output side of the transform: the lite step's (160; 64 with --quick).
        batch_size: pairs per batch: the lite step's (16; 4 with --quick).
        plan: sizes; default `make_plan(quick, device)`.
        workdir: folder for the photographs; default a temporary one.
        report: progress callback.

    Returns:
        dict(preset="lite", img_size, photos={size, quality, pairs, mean_bytes}, the
        figures of `measure_loader` (batch_size, num_workers, pairs_per_epoch, pairs_per_s,
        epoch_pairs_per_s, consume_pairs_per_s, supply_ratio) for the default loader,
        full_decode (the same for full-size decoding), draft_speedup (median over rounds of
        full-decode epoch seconds / default epoch seconds)).
    """
    from agfnet.data import read_manifest
    from agfnet.engine.config import load_config

    device = resolve_device(device)
    plan = plan or make_plan(quick, device)
    config = load_config("lite")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        if report:
            report(f"write {PHOTO_PAIRS} pairs of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEGs")
        manifest_path = write_photographs(Path(tmp) / "photos")
        mean_bytes = statistics.mean(f.stat().st_size for f in manifest_path.parent.glob("*.jpg"))
        manifest = read_manifest(manifest_path)
        loaders = {
            name: _train_loader(
                manifest,
                config,
                img_size=img_size,
                batch=batch_size,
                n=batch_size * plan.loader_batches,
                draft=draft,
            )
            for name, draft in (("draft", True), ("full decode", False))
        }
        seconds = _time_loaders(loaders, plan.loader_epochs, report)
        out: dict[str, Any] = {
            "preset": "lite",
            "img_size": img_size,
            "photos": {
                "size": list(PHOTO_SIZE),
                "quality": PHOTO_QUALITY,
                "pairs": PHOTO_PAIRS,
                "mean_bytes": mean_bytes,
            },
        }
        out |= _supply(loaders["draft"], seconds["draft"], consume_pairs_per_s)
        out["full_decode"] = _supply(
            loaders["full decode"], seconds["full decode"], consume_pairs_per_s
        )
        out["draft_speedup"] = spread(
            [f / d for f, d in zip(seconds["full decode"], seconds["draft"], strict=True)]
        )
        del loaders
    return out


def main() -> None:
    """Print the lite training step's pairs/s and `measure_photo_loader`'s figures as JSON:
    the `lite_loader_supply_ratio` step of `agfnet benchmark`, without the rest."""
    import argparse
    import json

    from agfnet.benchmark.training import measure_training

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    plan = make_plan(args.quick, device)
    lite = measure_training(device, args.quick, plan=plan)["lite"]
    out = measure_photo_loader(
        device,
        args.quick,
        consume_pairs_per_s=lite["pairs_per_s"]["median"],
        img_size=lite["img_size"],
        batch_size=lite["batch"],
        plan=plan,
    )
    print(json.dumps({"lite_training": lite, "lite_loader": out}, indent=1))


if __name__ == "__main__":
    main()
