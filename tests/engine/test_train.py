"""A short real training: the run folder, the checkpoints and what they reproduce."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss

from agfnet.engine.checkpoint import load_model, read_checkpoint
from agfnet.engine.config import load_config
from agfnet.errors import UserError


def _split_rows(out: Path) -> dict[str, list[dict[str, str]]]:
    with open(out / "split.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {s: [r for r in rows if r["split"] == s] for s in ("train", "val")}


def test_run_folder_is_self_describing(trained_run, tiny_config) -> None:
    out = trained_run.out
    for name in (
        "config.yaml",
        "classes.json",
        "split.csv",
        "version.json",
        "metrics.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "logs/csv/metrics.csv",
    ):
        assert (out / name).is_file(), name
    assert list((out / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert load_config(out / "config.yaml") == tiny_config()
    assert json.loads((out / "classes.json").read_text()) == ["BCC", "MEL", "NEV", "SCC", "SK"]
    version = json.loads((out / "version.json").read_text())
    assert {"agfnet", "git_commit", "torch", "timm", "lightning", "command"} <= set(version)
    assert version["command"] == "pytest trained_run"
    assert not list(out.rglob(".*tmp*"))


def test_split_is_patient_grouped_and_covers_the_manifest(trained_run, manifest_path) -> None:
    split = _split_rows(trained_run.out)
    train_patients = {r["patient_id"] for r in split["train"]}
    val_patients = {r["patient_id"] for r in split["val"]}
    assert not train_patients & val_patients
    rows = [int(r["row"]) for s in split.values() for r in s]
    with open(manifest_path, newline="") as f:
        n = sum(1 for _ in csv.DictReader(f))
    assert sorted(rows) == list(range(1, n + 1))
    assert len({r["label"] for r in split["val"]}) >= 2


def test_checkpoints_load_with_weights_only(trained_run) -> None:
    for path in (trained_run.best_checkpoint, trained_run.last_checkpoint):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        meta = ckpt["hyper_parameters"]["agfnet"]
        assert {"build_spec", "classes", "transform", "config", "temperature", "version"} <= set(
            meta
        )
        assert meta["build_spec"]["name"] == "agfnet_tiny"
        assert meta["transform"]["img_size"] == 32
        assert all(
            torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
        )
    last = torch.load(trained_run.last_checkpoint, weights_only=True)
    assert last["epoch"] == 1  # two epochs: 0 and 1
    assert trained_run.epochs == 2


def test_temperature_is_fitted_on_val_and_stored(trained_run) -> None:
    metrics = json.loads((trained_run.out / "metrics.json").read_text())
    stored = read_checkpoint(trained_run.best_checkpoint)["hyper_parameters"]["agfnet"]
    assert stored["temperature"] == pytest.approx(metrics["temperature"])
    assert stored["temperature"] != 1.0
    # Temperature scaling minimises the validation NLL, so it can only lower it.
    assert metrics["calibrated"]["nll"] <= metrics["nll"] + 1e-9
    assert metrics["split"] == "val"
    # last.ckpt stays exactly as training left it (resumable), temperature untouched.
    last = read_checkpoint(trained_run.last_checkpoint)["hyper_parameters"]["agfnet"]
    assert last["temperature"] == 1.0


def test_load_model_reproduces_the_validation_metrics(trained_run, manifest_path) -> None:
    """Logits of the rebuilt model on the val rows give metrics.json's numbers (sklearn oracle)."""
    from agfnet.data import PairedLesionDataset, TransformConfig, build_transforms, read_manifest
    from agfnet.runtime.batch import predict

    model, info = load_model(trained_run.best_checkpoint)
    assert not model.training
    manifest = read_manifest(manifest_path, classes=info.classes)
    val_rows = {int(r["row"]) for r in _split_rows(trained_run.out)["val"]}
    positions = [i for i, r in enumerate(manifest.rows) if r.row in val_rows]
    transform = build_transforms(TransformConfig(**info.transform), train=False)
    preds = predict(model, PairedLesionDataset(manifest, indices=positions, transform=transform))
    probs = torch.softmax(torch.from_numpy(preds.logits), dim=1).numpy()
    metrics = json.loads((trained_run.out / "metrics.json").read_text())
    assert metrics["n"] == len(positions)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(preds.labels, probs.argmax(1)))
    assert metrics["nll"] == pytest.approx(
        log_loss(preds.labels, probs, labels=range(len(info.classes))), rel=1e-4
    )
    # Same checkpoint, same inputs: the logits are reproducible bit for bit.
    again = predict(
        load_model(trained_run.best_checkpoint)[0],
        PairedLesionDataset(manifest, indices=positions, transform=transform),
    )
    np.testing.assert_array_equal(again.logits, preds.logits)


def test_csv_log_has_one_validation_row_per_epoch(trained_run) -> None:
    with open(trained_run.out / "logs" / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    val_epochs = [int(r["epoch"]) for r in rows if r.get("val/loss")]
    assert val_epochs == [0, 1]
    assert any(r.get("train/loss_epoch") for r in rows)


def test_a_finished_run_is_not_overwritten(trained_run, manifest_path, tiny_config) -> None:
    from agfnet.engine.train import fit

    before = trained_run.last_checkpoint.read_bytes()
    with pytest.raises(UserError, match="--resume"):
        fit(tiny_config(), manifest_path, trained_run.out)
    with pytest.raises(UserError, match="config differs"):
        fit(tiny_config("optim.lr=0.5"), manifest_path, trained_run.out, resume=True)
    assert trained_run.last_checkpoint.read_bytes() == before


def test_bad_class_weights_fail_before_anything_is_written(
    manifest_path, tiny_config, tmp_path: Path
) -> None:
    from agfnet.engine.train import fit

    with pytest.raises(UserError, match="one weight per class"):
        fit(tiny_config("loss.class_weights=[1, 2]"), manifest_path, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_balanced_class_weights_match_sklearn(manifest_path, tiny_config) -> None:
    from sklearn.utils.class_weight import compute_class_weight

    from agfnet.data import read_manifest
    from agfnet.engine.train import class_weights

    manifest = read_manifest(manifest_path)
    train = [*range(0, len(manifest.rows), 2), 1]  # an unbalanced subset
    labels = [manifest.rows[i].label for i in train]
    expected = compute_class_weight("balanced", classes=np.array(manifest.classes), y=labels)
    got = class_weights(tiny_config("loss.class_weights=balanced"), manifest, train)
    np.testing.assert_allclose(got, expected)


def test_weights_that_do_not_fit_the_model_are_a_user_error(trained_run, tmp_path: Path) -> None:
    from agfnet.engine.checkpoint import atomic_save

    ckpt = read_checkpoint(trained_run.best_checkpoint)
    dropped = next(k for k in ckpt["state_dict"] if k.startswith("model."))
    del ckpt["state_dict"][dropped]
    atomic_save(ckpt, tmp_path / "broken.ckpt")
    with pytest.raises(UserError, match=r"do not fit model agfnet_tiny.*Missing key"):
        load_model(tmp_path / "broken.ckpt")
