"""The self-describing run folder of `agfnet train`: config.yaml, classes.json, split.csv
and version.json (the code, the command and the machine that made the run)."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import agfnet
from agfnet.engine.config import (
    TrainConfig,
    config_hash,
    load_config,
    save_config,
)
from agfnet.errors import UserError
from agfnet.fileio import write_json

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"


@dataclass(frozen=True)
class Split:
    """Which manifest positions train and validate a run, and where the split came from."""

    train: list[int]
    val: list[int]
    source: str


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(agfnet.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def version_info(command: str | None = None) -> dict[str, Any]:
    """Versions of agfnet and its main dependencies, the git commit and the command line."""
    import lightning
    import timm
    import torch

    return {
        "agfnet": agfnet.__version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "lightning": lightning.__version__,
        "cuda": torch.version.cuda,
        "command": command if command is not None else " ".join(sys.argv),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _write_split(path: Path, manifest: Any, split: Split) -> None:
    from agfnet.data.manifest import write_rows_csv

    role = {i: "train" for i in split.train} | {i: "val" for i in split.val}
    write_rows_csv(
        path,
        ["row", "patient_id", "lesion_id", "label", "split"],
        (
            {
                "row": manifest.rows[i].row,
                "patient_id": manifest.rows[i].patient_id or "",
                "lesion_id": manifest.rows[i].lesion_id,
                "label": manifest.rows[i].label,
                "split": role[i],
            }
            for i in sorted(role)
        ),
    )


def prepare_run_folder(
    out: Path, config: TrainConfig, manifest: Any, split: Split, resume: bool, command: str | None
) -> None:
    """Check the run folder against the request and write its self-describing files.

    Raises:
        UserError: OUT holds a run and `resume` is off, or holds one of another config.
    """
    last = out / CHECKPOINT_DIR / "last.ckpt"
    if last.is_file() and not resume:
        raise UserError(
            f"{out} already holds a training run ({last}); pass --resume to continue it, "
            "or choose another --out"
        )
    if resume and last.is_file():
        saved = load_config(out / CONFIG_FILE)
        if config_hash(saved) != config_hash(config):
            raise UserError(
                f"--resume: the config differs from the run's {out / CONFIG_FILE}; resume "
                "with the same settings, or train into another --out"
            )
        versions = json.loads((out / "version.json").read_text())
        versions.setdefault("resumed", []).append(version_info(command))
        write_json(out / "version.json", versions)
        return
    if resume:
        log.warning("--resume: %s has no last.ckpt yet; starting from scratch", out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / CONFIG_FILE)
    write_json(out / "classes.json", list(manifest.classes))
    _write_split(out / "split.csv", manifest, split)
    write_json(out / "version.json", version_info(command))
