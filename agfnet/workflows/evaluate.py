"""`agfnet evaluate`: a trained checkpoint on the rows of a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["evaluate_checkpoint"]


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str | None = "test",
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
    sampling: Any = None,
    compile: bool | str = "auto",
) -> dict[str, Any]:
    """Evaluate a trained checkpoint on a manifest (the `agfnet evaluate` command).

    Args:
        checkpoint: a best.ckpt / last.ckpt of `agfnet train`.
        data: manifest CSV; labels must be classes of the checkpoint.
        out: evaluation folder to write.
        split: rows of this `split` value when the manifest has the column; None or a
            manifest without the column evaluates every row.
        batch_size: inference batch size.
        device: where to run; None picks a GPU when present.
        progress: show a progress bar.
        sampling: an `agfnet.runtime.stochastic.Sampling` (`--mc N` / `--tta N`), or
            None for one deterministic pass.
        compile: `torch.compile` the network: "auto" (on for CUDA, off on the CPU), True
            or False (`agfnet.runtime.compile.maybe_compile`).

    Returns:
        The metrics dict written to OUT/metrics.json.
    """
    from agfnet.evaluation.evaluate import evaluate_model
    from agfnet.runtime.compile import maybe_compile
    from agfnet.runtime.device import resolve_device
    from agfnet.runtime.selection import load_for_evaluation

    inputs = load_for_evaluation(checkpoint, data, split)
    maybe_compile(inputs.model, compile, resolve_device(device))
    return evaluate_model(
        inputs.model,
        inputs.info,
        inputs.manifest,
        inputs.positions,
        out,
        title=inputs.title("Evaluation", checkpoint, data),
        batch_size=batch_size,
        device=device,
        progress=progress,
        sampling=sampling,
    )
