"""Lightning checkpoint I/O through `agfnet.runtime.checkpoint.atomic_save`; the loader
and the checkpoint format live in `agfnet.runtime.checkpoint` (re-exported here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from agfnet.runtime.checkpoint import (
    META_KEY,
    MODEL_PREFIX,
    CheckpointInfo,
    atomic_save,
    build_model,
    load_model,
    model_state_dict,
    read_checkpoint,
)

__all__ = [
    "META_KEY",
    "MODEL_PREFIX",
    "AtomicCheckpointIO",
    "CheckpointInfo",
    "atomic_save",
    "build_model",
    "load_model",
    "model_state_dict",
    "read_checkpoint",
]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes through `atomic_save`."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Write `checkpoint` to `path` atomically (`storage_options` is not supported)."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_save(checkpoint, path)
