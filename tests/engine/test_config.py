"""The config schema: presets, dotted overrides, shortcut flags, errors, save and reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from agfnet.engine.config import (
    TrainConfig,
    config_hash,
    load_config,
    parse_overrides,
    save_config,
    valid_keys,
)
from agfnet.errors import UserError


def test_paper_preset_is_the_paper_setting() -> None:
    cfg = load_config("paper")
    assert cfg.model.name == "agfnet_paper"
    assert cfg.data.img_size == 224
    assert (cfg.optim.name, cfg.scheduler.name) == ("adamw", "cosine")
    assert cfg.scheduler.warmup_epochs > 0
    assert (cfg.trainer.epochs, cfg.data.batch_size) == (100, 32)


def test_tiny_preset_is_the_cpu_preset() -> None:
    cfg = load_config("tiny")
    assert cfg.model.name == "agfnet_tiny"
    assert cfg.data.img_size == 96
    assert cfg.trainer.epochs <= 30


@pytest.mark.parametrize("preset", ["paper", "tiny"])
def test_presets_set_every_key_explicitly(preset: str) -> None:
    # A preset documents the setting: the file alone must equal the resolved config.
    import yaml

    from agfnet.engine.config import PRESETS_DIR

    tree = yaml.safe_load((PRESETS_DIR / f"{preset}.yaml").read_text())
    assert tree == load_config(preset).model_dump(mode="json")


def test_overrides_are_yaml_parsed() -> None:
    cfg = load_config(
        "tiny",
        [
            "optim.lr=2e-3",
            "loss.class_weights=[1, 2, 3]",
            "monitor.patience=null",
            "trainer.deterministic=true",
            "model.overrides.frl_ratio=0.25",
        ],
    )
    assert cfg.optim.lr == pytest.approx(2e-3)
    assert cfg.loss.class_weights == [1.0, 2.0, 3.0]
    assert cfg.monitor.patience is None
    assert cfg.trainer.deterministic is True
    assert cfg.model.overrides == {"frl_ratio": 0.25}


def test_unknown_key_is_rejected_with_valid_keys_and_a_hint() -> None:
    with pytest.raises(UserError) as err:
        load_config("tiny", ["optim.lrr=0.1"])
    msg = str(err.value)
    assert "optim.lrr" in msg
    assert "Did you mean 'optim.lr'" in msg
    for key in ("optim.lr", "trainer.epochs", "data.batch_size", "model.overrides.<key>"):
        assert key in msg


def test_unknown_key_in_a_yaml_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("trainer:\n  epoch: 3\n")
    with pytest.raises(
        UserError, match=r"trainer\.epoch.*mine\.yaml.*Did you mean 'trainer\.epochs'"
    ):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.lr=-1", "optim.lr"),
        ("loss.class_weights=sometimes", "loss.class_weights"),
        ("monitor.metric=val/acc", "monitor.metric"),
        ("data.val_fraction=1.5", "data.val_fraction"),
        ("trainer.epochs=many", "trainer.epochs"),
    ],
)
def test_invalid_values_name_the_key(override: str, key: str) -> None:
    with pytest.raises(UserError, match=rf"'{key}'"):
        load_config("tiny", [override])


@pytest.mark.parametrize("item", ["optim.lr", "=3", "optim.lr:3"])
def test_malformed_override(item: str) -> None:
    with pytest.raises(UserError, match="key=value"):
        parse_overrides([item])


def test_setting_a_section_to_a_value_is_refused() -> None:
    with pytest.raises(UserError, match=r"'optim'.*section"):
        load_config("tiny", ["optim=adamw"])


def test_shortcut_flags_win_over_yaml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  epochs: 7\ndata:\n  batch_size: 4\n")
    cfg = load_config(
        path,
        ["trainer.epochs=9", "seed=5"],
        epochs=3,
        batch_size=None,
        img_size=40,
        devices=2,
        strategy="ddp",
        accelerator="cpu",
        model="late_concat_tiny",
    )
    assert cfg.trainer.epochs == 3  # flag beats both
    assert cfg.data.batch_size == 4  # flag not given: the file's value stays
    assert cfg.seed == 5
    assert (cfg.data.img_size, cfg.trainer.devices, cfg.trainer.strategy) == (40, 2, "ddp")
    assert (cfg.trainer.accelerator, cfg.model.name) == ("cpu", "late_concat_tiny")


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(UserError, match="paper, tiny"):
        load_config("huge")


def test_saved_config_reloads_identical(tmp_path: Path) -> None:
    cfg = load_config(
        "paper",
        ["optim.lr=3e-4", "loss.class_weights=[1,1,2,1,1]", "model.overrides.frl_ratio=0.3"],
        epochs=5,
    )
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert not list(tmp_path.glob(".*tmp*"))


def test_config_hash_ignores_where_a_run_executes_but_not_what_it_computes() -> None:
    base = load_config("tiny")
    moved = load_config("tiny", ["trainer.devices=4", "trainer.strategy=ddp", "data.num_workers=3"])
    changed = load_config("tiny", ["optim.lr=0.5"])
    assert config_hash(moved) == config_hash(base)
    assert config_hash(changed) != config_hash(base)


def test_valid_keys_cover_every_leaf() -> None:
    keys = valid_keys()
    dumped = TrainConfig().model_dump()
    leaves = [f"{s}.{k}" for s, sub in dumped.items() if isinstance(sub, dict) for k in sub]
    for leaf in leaves:
        assert leaf in keys or f"{leaf}.<key>" in keys


def test_num_workers_auto_is_one_per_usable_core(monkeypatch) -> None:
    import os

    from agfnet.engine.config import MAX_AUTO_WORKERS, load_config, resolve_num_workers

    assert load_config("paper").data.num_workers == "auto"
    assert resolve_num_workers(3) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    assert resolve_num_workers("auto") == 6
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert resolve_num_workers("auto") == MAX_AUTO_WORKERS
    with pytest.raises(UserError, match="num_workers"):
        load_config("paper", ["data.num_workers=many"])
