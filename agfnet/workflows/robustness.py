"""`agfnet robustness`: a checkpoint under image corruptions and missing modalities."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agfnet.errors import UserError

__all__ = ["run_robustness"]


def run_robustness(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str | None = "test",
    severities: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a checkpoint under every condition and write the outputs (`agfnet robustness`).

    Args:
        checkpoint: a best.ckpt / last.ckpt of `agfnet train`.
        data: labeled manifest CSV; labels must be classes of the checkpoint.
        out: folder for robustness.json, .csv, .md and .png.
        split: rows of this `split` value when the manifest has the column; None (or a
            manifest without the column) takes every row.
        severities: in 1..MAX_SEVERITY.
        seed: corruption seed.
        batch_size: inference batch size.
        device: where to run; None picks a GPU when present.
        progress: show a progress bar.

    Returns:
        The content of robustness.json.
    """
    from agfnet.evaluation.robustness import evaluate_robustness, write_robustness
    from agfnet.runtime.selection import load_for_evaluation

    if seed < 0:
        raise UserError(f"--seed {seed}: use a seed >= 0")
    inputs = load_for_evaluation(checkpoint, data, split)
    result = evaluate_robustness(
        inputs.model,
        inputs.info,
        inputs.manifest,
        inputs.positions,
        severities=severities,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    result = {"data": str(data), "split": inputs.split, **result}
    write_robustness(out, result, title=inputs.title("Robustness", checkpoint, data))
    return result
