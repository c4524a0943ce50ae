"""The training configuration: a pydantic schema, YAML presets and dotted `key=value` overrides."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)

from agfnet.data.manifest.display import DEFAULT_MODALITY_NAMES, modality_names
from agfnet.errors import UserError
from agfnet.fileio import atomic_write_text

PRESETS_DIR = Path(__file__).resolve().parents[1] / "configs"

# Metrics the training module logs on the validation split; anything else cannot be monitored.
MONITORABLE = (
    "val/loss",
    "val/accuracy",
    "val/balanced_accuracy",
    "val/macro_f1",
    "val/macro_auc",
    "val/mean_task_accuracy",  # diagnosis and every data.tasks column, averaged
)

# Keys that say where a run executes (or how its outputs name the images), not what it
# computes: a run resumed or a fold rerun on other hardware keeps its identity (see
# `config_hash`).
RUNTIME_KEYS = (
    "data.num_workers",
    "data.modality_names",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.progress_bar",
    "trainer.compile",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(_Section):
    """Which network to train (a name of `agfnet models`) and keyword overrides of its preset."""

    name: str = "agfnet_tiny"
    overrides: dict[str, Any] = Field(default_factory=dict)


class DataSection(_Section):
    """Input pipeline: image size, batching, the validation hold-out and augmentation."""

    img_size: PositiveInt | None = None  # None: the model's `default_img_size`
    batch_size: PositiveInt = 32
    # Loader processes; "auto": one per usable CPU core, at most MAX_AUTO_WORKERS.
    num_workers: NonNegativeInt | Literal["auto"] = 0
    val_fraction: float = Field(0.2, gt=0.0, le=0.5)
    classes: list[str] | None = None  # class order; None: sorted label names
    # Training order: "shuffle" (each pair once per epoch) or "balanced" (pairs drawn with
    # replacement, each class equally often; seeded like the shuffle).
    sampler: Literal["shuffle", "balanced"] = "shuffle"
    # Fields of `agfnet.data.TransformConfig` (augmentation, normalisation) but img_size.
    transform: dict[str, Any] = Field(default_factory=dict)
    # How the page, predict and the reports name each image (modality -> name; a modality
    # left out keeps its default), e.g. Derm7pt: ultrasound: Dermoscopic image.
    modality_names: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MODALITY_NAMES))
    # Task columns predicted beside the diagnosis (e.g. the seven-point criteria), their
    # class orders (None: sorted values), and metadata columns the model reads (blank =
    # missing; kind inferred from the training rows unless given).
    tasks: list[str] = Field(default_factory=list)
    task_classes: dict[str, list[str]] | None = None
    metadata: list[str] = Field(default_factory=list)
    metadata_kinds: dict[str, Literal["categorical", "numeric"]] = Field(default_factory=dict)

    @field_validator("modality_names")
    @classmethod
    def _known_modalities(cls, value: dict[str, str]) -> dict[str, str]:
        return modality_names(value)

    @field_validator("transform")
    @classmethod
    def _known_transform(cls, value: dict[str, Any]) -> dict[str, Any]:
        from agfnet.data.transforms import TransformConfig

        fields = sorted(set(TransformConfig.model_fields) - {"img_size"})
        unknown = sorted(set(value) - set(fields))
        if unknown:
            hint = " (set data.img_size instead)" if "img_size" in unknown else ""
            raise ValueError(
                f"unknown key(s) {', '.join(unknown)}{hint}; valid: {', '.join(fields)}"
            )
        try:
            TransformConfig(**value)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
            )
            raise ValueError(problems) from None
        return value


class OptimSection(_Section):
    """The optimiser."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: PositiveFloat = 1e-4
    weight_decay: NonNegativeFloat = 0.05
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd only
    # Learning rate of the encoders' backbones (pretrained) as a fraction of lr; the new
    # layers (fusion, heads, absent embeddings) keep lr. 1: one rate for all.
    encoder_lr_scale: PositiveFloat = 1.0
    # Backbones frozen (no gradient, batch norm statistics fixed) for the first N epochs.
    freeze_encoder_epochs: NonNegativeInt = 0


class SchedulerSection(_Section):
    """Learning-rate schedule, stepped every optimiser step."""

    name: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: NonNegativeFloat = 5.0  # linear warm-up from 0
    min_lr_ratio: float = Field(0.01, ge=0.0, le=1.0)  # cosine floor as a fraction of optim.lr


class LossSection(_Section):
    """Weights of `agfnet.models.PairedClassifierLoss` and the cross-entropy's class balance."""

    aux_weight: NonNegativeFloat = 0.5
    rec_weight: NonNegativeFloat = 1.0
    masked_weight: NonNegativeFloat = 0.0  # cross-entropy of FRL's masked pass
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    # "balanced": n / (K * n_k) from the training labels; or one positive weight per class.
    class_weights: Literal["none", "balanced"] | list[PositiveFloat] = "none"
    # Cross-entropy weight of each data.tasks head (task_weights overrides per task).
    task_weight: NonNegativeFloat = 1.0
    task_weights: dict[str, NonNegativeFloat] = Field(default_factory=dict)


class MonitorSection(_Section):
    """The validation metric that picks best.ckpt and drives early stopping."""

    metric: str = "val/loss"
    mode: Literal["min", "max"] = "min"
    patience: PositiveInt | None = None  # epochs without improvement; None: no early stopping

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in MONITORABLE:
            raise ValueError(f"must be one of {', '.join(MONITORABLE)}")
        return value


class TrainerSection(_Section):
    """Epochs, hardware, precision and logging (Lightning `Trainer` arguments)."""

    epochs: PositiveInt = 100
    accelerator: str = "auto"  # auto, cpu, gpu, cuda, mps
    devices: PositiveInt | Literal["auto"] = 1
    num_nodes: PositiveInt = 1
    strategy: str = "auto"  # auto, ddp, ddp_find_unused_parameters_true, ...
    precision: str = "auto"  # auto: bf16-mixed (or 16-mixed) on GPU, 32-true on CPU
    channels_last: bool = True  # GPU only
    # torch.compile the network (agfnet.runtime.compile); auto: on for CUDA, off on the CPU.
    compile: Literal["auto"] | bool = "auto"
    gradient_clip_val: PositiveFloat | None = None
    accumulate_grad_batches: PositiveInt = 1
    deterministic: bool = False
    log_every_n_steps: PositiveInt = 10
    progress_bar: bool = True


class TrainConfig(_Section):
    """Everything that defines a training run; `config.yaml` in a run folder is its dump."""

    seed: NonNegativeInt = 42
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    scheduler: SchedulerSection = Field(default_factory=SchedulerSection)
    loss: LossSection = Field(default_factory=LossSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection)
    trainer: TrainerSection = Field(default_factory=TrainerSection)


#: Most loader processes `data.num_workers: auto` starts.
MAX_AUTO_WORKERS = 16


def resolve_num_workers(value: int | str) -> int:
    """`data.num_workers` as a number: "auto" is one worker per usable CPU core (the
    cores this process may run on), at most `MAX_AUTO_WORKERS`."""
    if value != "auto":
        return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_AUTO_WORKERS))


# Command-line shortcut flags and the dotted keys they set.
SHORTCUTS = {
    "model": "model.name",
    "epochs": "trainer.epochs",
    "batch_size": "data.batch_size",
    "img_size": "data.img_size",
    "seed": "seed",
    "devices": "trainer.devices",
    "strategy": "trainer.strategy",
    "accelerator": "trainer.accelerator",
}


def _section_type(annotation: Any) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _is_free_dict(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict


def valid_keys(schema: type[BaseModel] = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted key a config file or a `key=value` override may set.

    Args:
        schema: the (sub)schema to list; the whole `TrainConfig` by default.
        prefix: dotted prefix of `schema` inside the config.

    Returns:
        Sorted keys such as `optim.lr`; free-form mappings appear as `model.overrides.<key>`.
    """
    keys = []
    for name, field in schema.model_fields.items():
        sub = _section_type(field.annotation)
        if sub is not None:
            keys += valid_keys(sub, f"{prefix}{name}.")
        elif _is_free_dict(field.annotation):
            keys.append(f"{prefix}{name}.<key>")
        else:
            keys.append(f"{prefix}{name}")
    return sorted(keys)


def _unknown_key(key: str, where: str) -> UserError:
    keys = valid_keys()
    plain = [k.replace(".<key>", "") for k in keys]
    close = difflib.get_close_matches(key, plain, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UserError(f"unknown config key '{key}' ({where}).{hint} Valid keys: {', '.join(keys)}.")


def _check_keys(
    tree: dict[str, Any], where: str, schema: type[BaseModel] = TrainConfig, prefix: str = ""
) -> None:
    for name, value in tree.items():
        key = f"{prefix}{name}"
        field = schema.model_fields.get(str(name))
        if field is None:
            raise _unknown_key(key, where)
        sub = _section_type(field.annotation)
        if sub is not None:
            if not isinstance(value, dict):
                raise UserError(
                    f"config key '{key}' ({where}) is a section, not a value; set one of its "
                    f"keys instead, e.g. {valid_keys(sub, key + '.')[0]}=..."
                )
            _check_keys(value, where, sub, key + ".")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn `["optim.lr=1e-3", "model.name=agfnet_tiny"]` into a nested dict.

    Values are parsed as YAML, so `1e-3` is a float, `[1, 2]` a list, `null` None and
    `true` a bool; anything else stays a string.

    Args:
        items: `key=value` strings, keys dotted.

    Returns:
        A nested mapping, checked against the schema (unknown keys raise `UserError`).
    """
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(
                f"'{item}' is not a key=value override; write e.g. optim.lr=0.001 "
                "(valid keys: agfnet train --help)"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override '{item}' conflicts with an earlier override of '{part}'")
        node[leaf] = value
        _check_keys(tree, "command line")
    return tree


def _validate(tree: dict[str, Any], where: str) -> TrainConfig:
    _check_keys(tree, where)
    try:
        return TrainConfig.model_validate(tree)
    except ValidationError as err:
        problems: dict[str, list[str]] = {}
        for e in err.errors():
            key = _loc_to_key(e["loc"])
            problems.setdefault(key, [f"got {e.get('input')!r}"]).append(e["msg"])
        text = "; ".join(
            f"'{key}': {', '.join(msgs[1:])} ({msgs[0]})" for key, msgs in problems.items()
        )
        raise UserError(
            f"invalid config ({where}): {text}. Fix the value in the YAML file or on the "
            "command line (key=value)."
        ) from None


def _loc_to_key(loc: tuple[Any, ...]) -> str:
    # pydantic locations also name union branches and list positions; keep the schema path.
    parts: list[str] = []
    schema: type[BaseModel] | None = TrainConfig
    for part in loc:
        if schema is None or part not in schema.model_fields:
            break
        parts.append(str(part))
        schema = _section_type(schema.model_fields[str(part)].annotation)
    return ".".join(parts) or "<root>"


def resolve_preset(source: str | Path) -> Path:
    """Find a config file: a path, or the name of a shipped preset (`tiny`, `lite`, `paper`).

    Args:
        source: a YAML path or a preset name.

    Returns:
        The path of the YAML file.
    """
    path = Path(source)
    if path.is_file():
        return path
    preset = PRESETS_DIR / f"{source}.yaml"
    if path.suffix == "" and preset.is_file():
        return preset
    names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    raise UserError(
        f"config '{source}' is neither a YAML file nor a preset; presets: {', '.join(names)}"
    )


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping (an empty file is an empty mapping)."""
    try:
        tree = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(tree, dict):
        raise UserError(
            f"config file {path} must hold a mapping of keys, not {type(tree).__name__}"
        )
    return tree


def load_config(
    source: str | Path | None = "tiny",
    overrides: list[str] | None = None,
    **shortcuts: Any,
) -> TrainConfig:
    """Build a `TrainConfig`: preset or YAML file, then `key=value` overrides, then shortcuts.

    Args:
        source: a YAML file, a preset name (`tiny`, `lite`, `paper`) or None for the defaults.
        overrides: dotted `key=value` strings (YAML-parsed values).
        **shortcuts: values of the command-line shortcut flags (`epochs`, `batch_size`,
            `img_size`, `seed`, `devices`, `strategy`, `accelerator`, `model`); None means
            "not given". They win over both the file and the overrides.

    Returns:
        The validated config. Unknown keys and invalid values raise `UserError`.
    """
    tree: dict[str, Any] = {}
    where = "defaults"
    if source is not None:
        path = resolve_preset(source)
        where = str(path)
        tree = read_yaml(path)
        _check_keys(tree, where)
    if overrides:
        tree = _merge(tree, parse_overrides(list(overrides)))
        where = f"{where} + command line"
    flags = []
    for name, value in shortcuts.items():
        if name not in SHORTCUTS:
            raise TypeError(f"unknown shortcut {name!r}")
        if value is not None:
            flags.append(f"{SHORTCUTS[name]}={json.dumps(value)}")
    if flags:
        tree = _merge(tree, parse_overrides(flags))
    return _validate(tree, where)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """The config as plain JSON-compatible Python values (what checkpoints store)."""
    return config.model_dump(mode="json")


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML atomically; `load_config(path)` reads it back equal."""
    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def config_hash(config: TrainConfig) -> str:
    """A short digest of everything that changes results (`RUNTIME_KEYS` excluded).

    Args:
        config: the resolved config.

    Returns:
        12 hex digits; equal configs (up to runtime keys) give equal digests.
    """
    tree = config_to_dict(config)
    for key in RUNTIME_KEYS:
        section, name = key.split(".")
        tree[section].pop(name, None)
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:12]
