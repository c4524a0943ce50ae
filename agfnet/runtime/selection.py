"""Which rows a command works on, and which pairs a model can diagnose.

`load_for_evaluation` is what `agfnet evaluate`, `explain` and `robustness` share: load
the checkpoint, read the manifest against its classes, choose the split, refuse rows
with an image the model needs missing. `refuse_missing` is the one rule for a missing
image, used by those commands, by training and by every predictor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agfnet.constants import MODALITIES
from agfnet.data.manifest.display import image_noun, modality_names
from agfnet.errors import UserError

__all__ = [
    "DROPOUT_KEY",
    "EvaluationInputs",
    "check_modalities",
    "load_for_evaluation",
    "manifest_columns",
    "refuse_missing",
    "split_positions",
]

#: The config key that makes a fusion model accept a missing image (docs/method.md).
DROPOUT_KEY = "model.overrides.modality_dropout"


def _join(items: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def missing_refusal(
    modality: str, name: str, names: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Why a pair without `modality` is refused by a model trained without modality
    dropout, and the fix (both for the message).

    Args:
        modality: the missing one.
        name: the model, as named in the message (e.g. "agfnet_tiny (best.ckpt)").
        names: modality -> display name (`data.modality_names`); None for the defaults.

    Returns:
        (what is wrong, how to fix it).
    """
    noun = image_noun(modality, modality_names(names))
    return (
        f"the {noun} is missing, but {name} was trained without modality "
        "dropout, so it needs both images",
        f"Give the {noun} too, or use a model trained to accept a missing image: "
        f"set the config key {DROPOUT_KEY} (e.g. `agfnet train --data M.csv "
        f"{DROPOUT_KEY}=0.2`).",
    )


def refuse_missing(
    present: Any,
    *,
    reads: Sequence[str],
    supports_missing: bool,
    name: str,
    where: Sequence[str] | None = None,
    refusal: Any = None,
    names: Mapping[str, str] | None = None,
) -> None:
    """Refuse pairs a model cannot diagnose, saying which image is missing and why.

    Args:
        present: bool (B, 2), [clinical, ultrasound] given.
        reads: the modalities the model reads.
        supports_missing: whether it was trained to accept a missing image.
        name: the model as named in messages (e.g. "agfnet_tiny (runs/t/best.ckpt)").
        where: a label per pair for the message (e.g. "row 7"); None for one pair.
        refusal: `modality -> (what, fix)` for a fusion model without modality dropout;
            None for `missing_refusal`.
        names: modality -> display name (`data.modality_names`); None for the defaults.

    Raises:
        UserError: a pair lacks an image the model needs.
    """
    present = np.asarray(present, dtype=bool).reshape(-1, 2)
    labels = list(where) if where is not None else [""] * len(present)

    def refuse(bad: np.ndarray, what: str, fix: str) -> None:
        if not bad.any():
            return
        rows = [labels[i] for i in np.flatnonzero(bad)]
        prefix = f"{_join(rows)}: " if where is not None else ""
        raise UserError(f"{prefix}{what}. {fix}")

    names = modality_names(names)
    nouns = {m: image_noun(m, names) for m in MODALITIES}
    refuse(
        ~present.any(axis=1),
        "no image given",
        f"Give a {nouns['clinical']} and an {nouns['ultrasound']}."
        if nouns["ultrasound"][0] in "aeiou"
        else f"Give a {nouns['clinical']} and a {nouns['ultrasound']}.",
    )
    needed = [m for m in MODALITIES if m in reads]
    if len(needed) == 1:
        m = needed[0]
        refuse(
            ~present[:, MODALITIES.index(m)],
            f"the {nouns[m]} is missing, and {name} reads only the {nouns[m]}",
            f"Give the {nouns[m]}.",
        )
        return
    if supports_missing:
        return
    for m in MODALITIES:
        what, fix = (refusal or (lambda mod: missing_refusal(mod, name, names)))(m)
        refuse(~present[:, MODALITIES.index(m)], what, fix)


def check_modalities(
    manifest: Any,
    positions: Sequence[int],
    model: Any,
    names: Mapping[str, str] | None = None,
) -> None:
    """Refuse manifest rows with an image missing unless `model.supports_missing`.

    A model that supports missing images (modality dropout, or a single-modality model,
    which ignores the other image) takes every row, as in training.

    Args:
        manifest: a validated `agfnet.data.Manifest`.
        positions: the rows used (positions in `manifest.rows`).
        model: an `agfnet.models` network.
        names: modality -> display name (`data.modality_names`); None for the defaults.

    Raises:
        UserError: "MANIFEST: row 3, row 9: the ultrasound image is missing, but ...".
    """
    if model.supports_missing:
        return
    rows = [manifest.rows[i] for i in positions]
    refuse_missing(
        np.array([r.present for r in rows], dtype=bool).reshape(-1, 2),
        reads=MODALITIES,
        supports_missing=False,
        name=f"model {model.build_spec['name']}",
        where=[
            f"{manifest.path}: row {r.row}" if i == 0 else f"row {r.row}"
            for i, r in enumerate(rows)
        ],
        names=names,
    )


def manifest_columns(
    config: Mapping[str, Any] | None, tasks: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """The task and metadata options of `read_manifest` that a training config names.

    Args:
        config: a training config as a dict (`config_to_dict`, or a checkpoint's `config`).
        tasks: task -> class order to enforce (a checkpoint's `tasks`); None: the config's
            `data.task_classes`.

    Returns:
        Keyword arguments `tasks`, `task_classes`, `metadata`, `metadata_kinds`; empty
        ones for a config without tasks or metadata (the manifest is read as before).
    """
    data = dict((config or {}).get("data") or {})
    return {
        "tasks": list(data.get("tasks") or ()),
        "task_classes": dict(tasks) if tasks else data.get("task_classes"),
        "metadata": list(data.get("metadata") or ()),
        "metadata_kinds": dict(data.get("metadata_kinds") or {}) or None,
    }


def split_positions(manifest: Any, split: str | None) -> list[int]:
    """Positions of the rows of `split` (`train`, `val`, `test`); all rows if None or no column.

    Args:
        manifest: a validated `agfnet.data.Manifest`.
        split: wanted value of the `split` column.

    Returns:
        Positions in `manifest.rows`.
    """
    everything = list(range(len(manifest.rows)))
    if split is None or not manifest.has_split:
        return everything
    chosen = [i for i, r in enumerate(manifest.rows) if r.split == split]
    if not chosen:
        found = sorted({r.split for r in manifest.rows if r.split})
        raise UserError(
            f"the manifest has no row with split '{split}' (its splits: {', '.join(found)}); "
            "pass --split with one of them"
        )
    return chosen


@dataclass(frozen=True)
class EvaluationInputs:
    """A loaded checkpoint and the manifest rows a command runs it on.

    Args:
        model: the network, eval mode.
        info: its `CheckpointInfo`.
        manifest: the manifest, validated against `info.classes`.
        positions: the chosen rows (positions in `manifest.rows`).
        split: the split used, None when the manifest has no split column (or none asked).
    """

    model: Any
    info: Any
    manifest: Any
    positions: list[int]
    split: str | None

    def title(self, what: str, checkpoint: str | Path, data: str | Path) -> str:
        """A report heading, e.g. "Evaluation of best.ckpt (agfnet_tiny) on m.csv, split test"."""
        title = f"{what} of {Path(checkpoint).name} ({self.info.build_spec['name']}) on "
        title += Path(data).name
        return title + (f", split {self.split}" if self.split else "")


def load_for_evaluation(
    checkpoint: str | Path,
    data: str | Path,
    split: str | None = "test",
    *,
    require_labels: bool = True,
    positions: Sequence[int] | None = None,
    limit: int | None = None,
    device: Any = "cpu",
) -> EvaluationInputs:
    """Load a checkpoint, read a manifest against its classes, choose rows, check images.

    Args:
        checkpoint: a best.ckpt / last.ckpt of `agfnet train`.
        data: manifest CSV; labels must be classes of the checkpoint.
        split: rows of this `split` value when the manifest has the column; None, or a
            manifest without the column, takes every row.
        require_labels: refuse rows without a label.
        positions: explicit rows instead of `split`.
        limit: keep only the first `limit` of the chosen rows.
        device: where the model goes.

    Returns:
        `EvaluationInputs`.

    Raises:
        UserError / ManifestError: a bad checkpoint, manifest, split, or a row lacking an
            image the model needs.
    """
    from agfnet.data import read_manifest
    from agfnet.runtime.checkpoint import load_model

    model, info = load_model(checkpoint, map_location=device)
    columns = manifest_columns(info.config, info.tasks)
    if not require_labels:  # the task columns are read (and checked) only to score them
        columns |= {"tasks": [], "task_classes": None}
    manifest = read_manifest(
        data,
        classes=info.classes,
        require_labels=require_labels,
        allow_missing_modality=True,
        **columns,
    )
    chosen = split_positions(manifest, split) if positions is None else list(positions)
    chosen = chosen[:limit] if limit is not None else chosen
    check_modalities(manifest, chosen, model)
    used_split = split if (positions is None and split and manifest.has_split) else None
    return EvaluationInputs(model, info, manifest, chosen, used_split)
