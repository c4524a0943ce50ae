"""Write a synthetic benchmark folder: render every pair (in worker processes) and its files."""

from __future__ import annotations

import io
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from agfnet.data.synth.attributes import CLASSES, SampleSpec, sample_attributes
from agfnet.data.synth.bayes import bayes_accuracies
from agfnet.data.synth.local import local_bayes_accuracies, sample_local
from agfnet.data.synth.local_files import local_metadata, local_readme, write_local_tables
from agfnet.data.synth.local_render import render_local_pair
from agfnet.data.synth.patient import draw_metadata
from agfnet.data.synth.readme import metadata, readme
from agfnet.data.synth.render import render_pair
from agfnet.data.synth.tables import IMAGE_FOLDERS, relative_paths, write_tables
from agfnet.errors import UserError
from agfnet.fileio import staged_folder, write_json

__all__ = [
    "KINDS",
    "MAX_SIZE",
    "MIN_SIZE",
    "OUTPUT_FILES",
    "SynthSummary",
    "default_workers",
    "generate",
]

MIN_SIZE = 32
MAX_SIZE = 1024
#: The benchmarks `generate` writes: "lesion" (global attributes of a lesion, the
#: default) and "local" (small evidence patches among decoys, `agfnet.data.synth.local`).
KINDS: tuple[str, ...] = ("lesion", "local")

OUTPUT_FILES: tuple[str, ...] = (
    "manifest.csv",
    "attributes.csv",
    "README.md",
    "synth.json",
    "images",
    "masks",
)


@dataclass(frozen=True)
class SynthSummary:
    """What `generate` wrote.

    Args:
        out: the output folder.
        manifest: path of manifest.csv.
        n_pairs: number of rows (pairs) written.
        n_per_class: pairs per class.
        size: image side in pixels.
        seed: the seed.
        classes: class names in table order.
        bayes: Bayes-optimal accuracies, keys "clinical", "ultrasound", "both".
        kind: the benchmark, one of `KINDS`.
    """

    out: Path
    manifest: Path
    n_pairs: int
    n_per_class: int
    size: int
    seed: int
    classes: tuple[str, ...]
    bayes: dict[str, float]
    kind: str = "lesion"


def _png_bytes(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    # Fixed settings and no metadata: the same pixels always give the same bytes.
    Image.fromarray(array, mode).save(buffer, format="PNG", compress_level=6, optimize=False)
    return buffer.getvalue()


def _render_and_write(task: tuple[SampleSpec, int, str, str]) -> dict[str, float]:
    spec, size, root, kind = task
    pair = (render_local_pair if kind == "local" else render_pair)(spec, size)
    paths = relative_paths(spec.lesion_id)
    contents = {
        "clinical": _png_bytes(pair.clinical, "RGB"),
        "ultrasound": _png_bytes(pair.ultrasound, "L"),
        "clinical_mask": _png_bytes(pair.clinical_mask.astype(np.uint8) * 255, "L"),
        "ultrasound_mask": _png_bytes(pair.ultrasound_mask.astype(np.uint8) * 255, "L"),
    }
    for key, data in contents.items():
        Path(root, paths[key]).write_bytes(data)
    return pair.nuisances


def _check_arguments(n_per_class: int, size: int, workers: int, kind: str) -> None:
    if kind not in KINDS:
        raise UserError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}.")
    if n_per_class < 1:
        raise UserError(
            f"--n-per-class must be at least 1, got {n_per_class}; pass e.g. --n-per-class 100."
        )
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UserError(
            f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}; "
            "pass e.g. --size 128 (lesions are unreadable below 32 px)."
        )
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}.")


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty `out` unless overwriting an earlier benchmark folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; choose another output folder.")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise UserError(
            f"output folder {out} is not empty; choose an empty or new folder, "
            "or pass --overwrite to replace an earlier benchmark there."
        )
    if not (out / "synth.json").is_file():
        raise UserError(
            f"--overwrite refused: {out} is not empty and holds no synth.json, so it is not "
            "a benchmark written by agfnet synth; choose an empty or new folder."
        )


def default_workers() -> int:
    """Default number of worker processes: min(2, CPU count)."""
    return max(1, min(2, os.cpu_count() or 1))


def generate(
    out: Path,
    n_per_class: int = 100,
    size: int = 128,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
    kind: str = "lesion",
) -> SynthSummary:
    """Write a synthetic benchmark folder.

    Writes, under `out`: manifest.csv (clinical, ultrasound, label, patient_id, lesion_id,
    the mask paths, every attribute as a task column and the site and age metadata;
    paths relative to `out`), images/{clinical,ultrasound}/*.png, masks/{clinical,
    ultrasound}/*.png (0/255 single channel), attributes.csv, README.md and synth.json.
    Everything is written to a hidden sibling folder and renamed into place at the end,
    so an interrupted run leaves no folder that looks finished. The same arguments give
    byte-identical files, whatever `workers`.

    Args:
        out: output folder; must be new or empty (or an earlier benchmark if `overwrite`).
        n_per_class: pairs per class (>= 1).
        size: image side in pixels (32 .. 1024).
        seed: benchmark seed.
        workers: processes rendering in parallel; None for `default_workers()`.
        progress: show a rich progress bar.
        overwrite: replace an earlier benchmark folder at `out`.
        kind: "lesion" (the default benchmark) or "local" (small evidence patches among
            decoys; same files, its own task columns: `agfnet.data.synth.local`).

    Returns:
        A `SynthSummary` of what was written.

    Raises:
        UserError: invalid arguments or an output folder that may not be replaced.
    """
    out = Path(out)
    workers = default_workers() if workers is None else workers
    _check_arguments(n_per_class, size, workers, kind)
    _prepare_out(out, overwrite)
    local = kind == "local"
    specs = sample_local(n_per_class, seed) if local else sample_attributes(n_per_class, seed)
    bayes = local_bayes_accuracies() if local else bayes_accuracies()

    with staged_folder(out) as tmp:
        for sub in IMAGE_FOLDERS:
            (tmp / sub).mkdir(parents=True)
        tasks = [(spec, size, str(tmp), kind) for spec in specs]
        nuisances = _run_tasks(tasks, workers, progress)
        tables, text, meta = (
            (write_local_tables, local_readme, local_metadata)
            if local
            else (write_tables, readme, metadata)
        )
        tables(tmp, specs, nuisances, draw_metadata(specs, seed))
        (tmp / "README.md").write_text(text(n_per_class, size, seed, bayes), encoding="utf-8")
        write_json(tmp / "synth.json", meta(n_per_class, size, seed, len(specs), bayes))
    return SynthSummary(
        out=out,
        manifest=out / "manifest.csv",
        n_pairs=len(specs),
        n_per_class=n_per_class,
        size=size,
        seed=seed,
        classes=CLASSES,
        bayes=bayes,
        kind=kind,
    )


def _run_tasks(
    tasks: list[tuple[SampleSpec, int, str, str]], workers: int, progress: bool
) -> list[dict[str, float]]:
    """Render and write every task, in order, optionally in worker processes."""
    advance: Callable[[], None] = lambda: None  # noqa: E731
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        bar.start()
        task_id = bar.add_task("rendering pairs", total=len(tasks))

        def advance() -> None:
            bar.advance(task_id)

    try:
        results = []
        if workers == 1 or len(tasks) < 2 * workers:
            for task in tasks:
                results.append(_render_and_write(task))
                advance()
            return results
        # fork where available: the workers need numpy and PIL only, and spawn would
        # re-import whatever the parent imported.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            for result in pool.imap(_render_and_write, tasks, chunksize=4):
                results.append(result)
                advance()
        return results
    finally:
        if bar is not None:
            bar.stop()
