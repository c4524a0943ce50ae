"""The one checkpoint loader: atomic writes, `weights_only` reads, the metadata check and
rebuilding the trained network (used by every command, the `Predictor` and the web app)."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from agfnet.errors import UserError
from agfnet.fileio import atomic_file

__all__ = [
    "LEGACY_DEFAULTS",
    "META_KEY",
    "MODEL_PREFIX",
    "REQUIRED_METADATA",
    "CheckpointInfo",
    "atomic_save",
    "build_model",
    "check_metadata",
    "load_model",
    "model_state_dict",
    "read_checkpoint",
]

#: Architecture defaults that changed, as the options a checkpoint written before the
#: change was built with but did not record (its spec holds only the options given).
#: `build_model` tries them, in order, when the weights do not fit today's defaults.
#: Issue 15: AGFNet fused the last three stages (and, at the paper size, at width 256).
LEGACY_DEFAULTS: tuple[dict[str, Any], ...] = (
    {"out_indices": (-3, -2, -1)},
    {"out_indices": (-3, -2, -1), "scale_dim": 256},
)

# Where the agfnet metadata lives inside a Lightning checkpoint.
META_KEY = "agfnet"
MODEL_PREFIX = "model."


def atomic_save(obj: Any, path: str | Path) -> None:
    """`torch.save` to a temporary file in the same folder, fsync, then `os.replace`.

    A reader, or a process killed mid-write, sees either the old file or the new one,
    never a truncated one. (Lightning's own writer stages the file in the system temp
    folder, which is a copy, not a rename, when that lies on another file system.)

    Args:
        obj: anything `torch.save` accepts.
        path: destination file.
    """
    with atomic_file(path, "wb", fsync=True) as f:
        torch.save(obj, f)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an agfnet checkpoint with `torch.load(weights_only=True)` (no pickled code runs).

    Args:
        path: a `best.ckpt` / `last.ckpt` written by `agfnet train`.
        map_location: where tensors go.

    Returns:
        The checkpoint dict; `checkpoint["hyper_parameters"]["agfnet"]` holds the metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist; point --checkpoint at a .ckpt file "
            "written by `agfnet train` (RUN/checkpoints/best.ckpt)"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" not in str(err).lower():  # not a pickled object: garbage
            raise UserError(
                f"checkpoint {path} cannot be read (it does not unpickle as plain tensors "
                "and values); it is truncated or not an agfnet checkpoint"
            ) from None
        raise UserError(
            f"{path} is not a safe agfnet checkpoint: it holds pickled Python objects "
            "(which could run code when loaded), and agfnet only loads plain tensors and "
            "values (torch.load weights_only=True). Use a checkpoint written by "
            "`agfnet train`; do not load files from untrusted sources."
        ) from None
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        raise UserError(
            f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); "
            "it is truncated or not an agfnet checkpoint"
        ) from None
    hyper = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hyper, dict) or META_KEY not in hyper:
        raise UserError(
            f"checkpoint {path} has no agfnet metadata (hyper_parameters/agfnet); "
            "it was not written by `agfnet train`"
        )
    return ckpt


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about its model; fields also readable as `info["classes"]`."""

    build_spec: dict[str, Any]
    classes: list[str]
    transform: dict[str, Any]
    config: dict[str, Any]
    temperature: float = 1.0
    version: str = ""
    epoch: int = -1
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    @property
    def tasks(self) -> dict[str, list[str]]:
        """Task -> class names of the model's task heads (`data.tasks`); {} without."""
        return {k: list(v) for k, v in (self.extra.get("tasks") or {}).items()}

    def metadata_spec(self) -> Any:
        """The `agfnet.data.MetadataSpec` the model was trained with, or None."""
        spec = self.build_spec.get("metadata")
        if not spec:
            return None
        from agfnet.data.metadata import MetadataSpec

        return MetadataSpec.from_dict(spec)

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], path: str | Path = "") -> CheckpointInfo:
        """Pick the metadata out of a checkpoint dict read by `read_checkpoint`."""
        meta = dict(ckpt["hyper_parameters"][META_KEY])
        known = {k: meta.pop(k) for k in ("build_spec", "classes", "transform", "config")}
        return cls(
            **known,
            temperature=float(meta.pop("temperature", 1.0)),
            version=str(meta.pop("version", "")),
            epoch=int(ckpt.get("epoch", -1)),
            path=str(path),
            extra=meta,
        )


def model_state_dict(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The network's own weights: the LightningModule's `model.*` entries, prefix removed."""
    return {
        k[len(MODEL_PREFIX) :]: v
        for k, v in ckpt["state_dict"].items()
        if k.startswith(MODEL_PREFIX)
    }


# Metadata a checkpoint must hold under hyper_parameters/agfnet, and what each is for.
REQUIRED_METADATA = {
    "build_spec": "the model name and options",
    "classes": "the class names",
    "transform": "the preprocessing",
    "config": "the training config",
}


def check_metadata(ckpt: dict[str, Any], path: str | Path) -> None:
    """Name what a checkpoint lacks before anything is built from it.

    Raises:
        UserError: a required metadata key, the weights or the input size is missing, or
            the class names do not match the model's outputs.
    """
    meta = ckpt["hyper_parameters"][META_KEY]
    missing = [f"{k} ({why})" for k, why in REQUIRED_METADATA.items() if k not in meta]
    spec = meta.get("build_spec", {})
    if "build_spec" in meta:
        missing += [f"build_spec.{k}" for k in ("name", "num_classes") if k not in spec]
    if "transform" in meta and "img_size" not in meta["transform"]:
        missing.append("transform.img_size (the input size)")
    if not isinstance(ckpt.get("state_dict"), dict):
        missing.append("state_dict (the weights)")
    if missing:
        raise UserError(
            f"checkpoint {path} lacks {', '.join(missing)} under hyper_parameters/{META_KEY}; "
            "use a best.ckpt or last.ckpt written by `agfnet train` of this agfnet version"
        )
    if len(meta["classes"]) != spec["num_classes"]:
        raise UserError(
            f"checkpoint {path} names {len(meta['classes'])} classes but its model has "
            f"{spec['num_classes']} outputs; the file was altered: use the one `agfnet train` "
            "wrote"
        )


def build_model(
    ckpt: dict[str, Any], path: str | Path = "", map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, CheckpointInfo]:
    """Rebuild the trained network from a checkpoint dict read by `read_checkpoint`.

    Args:
        ckpt: the checkpoint.
        path: where it was read from (kept in `info.path`, named in messages).
        map_location: device for the network.

    Returns:
        `(model, info)` in eval mode, as `load_model`.

    Raises:
        UserError: incomplete metadata, or weights that do not fit the named model.
    """
    where = path or "(in memory)"
    check_metadata(ckpt, where)
    info = CheckpointInfo.from_checkpoint(ckpt, path)
    spec = info.build_spec
    state = model_state_dict(ckpt)
    overrides = dict(spec.get("overrides", {}))
    try:
        model = _rebuild(spec, overrides, state)
    except RuntimeError as err:
        model = _rebuild_legacy(spec, overrides, state)
        if model is None:
            # torch lists every missing, unexpected and mis-shaped key; a few suffice.
            detail = " ".join(line.strip() for line in str(err).splitlines()[1:])
            detail = detail[:300] + ("..." if len(detail) > 300 else "")
            raise UserError(
                f"checkpoint {where}: its weights do not fit model {spec['name']} of this "
                f"agfnet version ({detail}); the file was altered, or written by another "
                f"version ({info.version or 'unknown'}): retrain it, or use the version "
                "that wrote it"
            ) from None
        # Record what it was built with, so that re-saving or exporting keeps it.
        info = replace(info, build_spec={**spec, "overrides": model.build_spec["overrides"]})
    return model.to(map_location).eval(), info


def _rebuild(spec: dict[str, Any], overrides: dict[str, Any], state: dict) -> torch.nn.Module:
    """The network of `spec` with `overrides`, its weights loaded strictly."""
    from agfnet.models import create_model

    model = create_model(
        spec["name"],
        num_classes=spec["num_classes"],
        tasks=spec.get("tasks"),
        metadata=spec.get("metadata"),
        **overrides,
    )
    model.load_state_dict(state)
    return model


def _rebuild_legacy(
    spec: dict[str, Any], overrides: dict[str, Any], state: dict
) -> torch.nn.Module | None:
    """The network under the first of `LEGACY_DEFAULTS` its weights fit, or None."""
    for legacy in LEGACY_DEFAULTS:
        options = {k: v for k, v in legacy.items() if k not in overrides}
        if not options:
            continue
        try:
            return _rebuild(spec, {**overrides, **options}, state)
        except (RuntimeError, UserError):  # another shape, or not an option of the model
            continue
    return None


def load_model(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, CheckpointInfo]:
    """Rebuild the trained network from a checkpoint file, in eval mode.

    The file is read with `torch.load(weights_only=True)` (`read_checkpoint`), so a
    crafted checkpoint cannot run code; its metadata is checked before anything is built.

    Args:
        path: a best.ckpt / last.ckpt of `agfnet train`.
        map_location: device for the weights.

    Returns:
        `(model, info)`: the `agfnet.models` network (calling it with clinical and
        ultrasound batches (B, 3, H, W) gives logits (B, K)) and its `CheckpointInfo`
        (classes, transform, temperature, config, build_spec).

    Raises:
        UserError: missing, unsafe, corrupt or incomplete checkpoint (the message names
            what is wrong).
    """
    path = Path(path)
    return build_model(read_checkpoint(path, map_location), path, map_location)
