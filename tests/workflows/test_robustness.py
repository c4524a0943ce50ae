"""The `agfnet robustness` job and command on a tiny synthetic set with fresh checkpoints."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, log_loss
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.evaluation.robustness import (
    METRIC_KEYS,
    OUTPUTS,
    Condition,
    CorruptedPairs,
    build_conditions,
)
from agfnet.evaluation.robustness.report import CSV_COLUMNS
from agfnet.workflows.robustness import run_robustness

IMG = 32
CLASSES = ["BCC", "MEL", "NEV", "SCC", "SK"]


def write_checkpoint(path: Path, model: str, temperature: float = 1.0, **overrides) -> Path:
    """A checkpoint of a freshly initialised `model`, laid out by the checkpoint contract
    (docs/architecture.md), as tests/explain does: the job must not care whether the
    weights are trained, and this takes a second instead of a training run."""
    import agfnet
    from agfnet.data import TransformConfig
    from agfnet.engine.checkpoint import META_KEY, MODEL_PREFIX, atomic_save
    from agfnet.engine.config import config_to_dict, load_config
    from agfnet.models import create_model

    config = load_config("tiny", [f"data.img_size={IMG}"], model=model)
    net = create_model(model, num_classes=len(CLASSES), seed=0, **overrides)
    meta = {
        "build_spec": net.build_spec,
        "classes": CLASSES,
        "transform": TransformConfig(img_size=IMG).model_dump(),
        "config": config_to_dict(config),
        "temperature": temperature,
        "version": agfnet.__version__,
    }
    state = {MODEL_PREFIX + k: v for k, v in net.state_dict().items()}
    atomic_save({"state_dict": state, "hyper_parameters": {META_KEY: meta}, "epoch": 0}, path)
    return path


@pytest.fixture(scope="module")
def manifest_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 synthetic pairs (2 per class) at 32 px."""
    from agfnet.data.synth import generate

    out = tmp_path_factory.mktemp("robust") / "synth"
    generate(out, n_per_class=2, size=IMG, seed=0, workers=1)
    return out / "manifest.csv"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("robust_ckpt")
    return {
        "fusion": write_checkpoint(folder / "fusion.ckpt", "agfnet_tiny"),
        "dropout": write_checkpoint(
            folder / "dropout.ckpt", "agfnet_tiny", temperature=1.5, modality_dropout=0.2
        ),
        "clinical_only": write_checkpoint(folder / "clinical.ckpt", "clinical_only_tiny"),
    }


def _robustness(*args: str):
    return CliRunner().invoke(app, ["robustness", *args])


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_command_writes_every_condition_with_finite_numbers(manifest_csv, ckpts, tmp_path):
    out = tmp_path / "rob"
    args = ["--checkpoint", str(ckpts["dropout"]), "--data", str(manifest_csv), "--out", str(out)]
    result = _robustness(*args, "--batch-size", "4")
    assert result.exit_code == 0, result.output
    assert "clinical missing: accuracy" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)  # no staging left over

    data = json.loads((out / "robustness.json").read_text())
    expected = [c.name for c in build_conditions([1, 2, 3])]
    assert [r["condition"] for r in data["conditions"]] == expected
    assert data["temperature"] == 1.5 and data["n"] == 10
    for record in data["conditions"]:
        assert record["status"] == "ok", record
        assert record["n"] == 10
        assert all(_finite(record[k]) for k in METRIC_KEYS), record
        if record["condition"] != "clean":
            assert record["accuracy_drop"] == pytest.approx(
                data["clean"]["accuracy"] - record["accuracy"]
            )
            assert 0.0 <= record["agreement_with_clean"] <= 1.0
    summary = data["summary"]
    assert set(summary) == {"clinical", "ultrasound", "both", "all"}
    clinical = [r["accuracy"] for r in data["conditions"] if r["target"] == "clinical"][:-1]
    assert summary["clinical"]["mean_corruption_accuracy"] == pytest.approx(np.mean(clinical))
    assert summary["all"]["n_conditions"] == 36

    with open(out / "robustness.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["condition"] for r in rows] == expected
    assert rows[5]["accuracy"] and float(rows[5]["accuracy"]) == pytest.approx(
        data["conditions"][5]["accuracy"]
    )
    report = (out / "robustness.md").read_text()
    for heading in ("## Summary", "## Corrupted: both", "## Missing modality", "## Corruptions"):
        assert heading in report
    assert "gaussian_noise+speckle" in report
    with Image.open(out / "robustness.png") as image:
        assert image.width > image.height > 300


def test_clean_pass_matches_the_plain_dataset_with_the_temperature(manifest_csv, ckpts, tmp_path):
    """Oracle: the checkpoint run on the unwrapped dataset, scored by scikit-learn."""
    from scipy.special import softmax

    from agfnet.data import PairedLesionDataset, TransformConfig, build_transforms, read_manifest
    from agfnet.engine.checkpoint import load_model
    from agfnet.runtime.batch import predict

    result = run_robustness(ckpts["dropout"], manifest_csv, tmp_path / "r", severities=[3])
    model, info = load_model(ckpts["dropout"])
    manifest = read_manifest(manifest_csv, classes=info.classes)
    transform = build_transforms(TransformConfig(**info.transform), train=False)
    preds = predict(model, PairedLesionDataset(manifest, transform=transform))
    probs = softmax(preds.logits / 1.5, axis=1)
    clean = result["clean"]
    assert clean["nll"] == pytest.approx(log_loss(preds.labels, probs, labels=range(5)), abs=1e-6)
    assert clean["accuracy"] == pytest.approx(accuracy_score(preds.labels, probs.argmax(1)))


def test_corrupted_pairs_touch_only_the_target_modality_and_are_seeded(manifest_csv):
    import torch

    from agfnet.data import PairedLesionDataset, TransformConfig, build_transforms, read_manifest

    manifest = read_manifest(manifest_csv, classes=CLASSES)
    transform = build_transforms(TransformConfig(img_size=IMG), train=False)
    plain = PairedLesionDataset(manifest, [0, 1], transform=transform)

    def pairs(condition: Condition, seed: int = 0) -> CorruptedPairs:
        return CorruptedPairs(manifest, [0, 1], transform, condition, seed)

    clean = pairs(Condition("none", "clean"))[0]
    assert torch.equal(clean["clinical"], plain[0]["clinical"])
    assert torch.equal(clean["ultrasound"], plain[0]["ultrasound"])

    noisy = pairs(Condition("clinical", "noise", 2))
    first = noisy[0]
    assert not torch.equal(first["clinical"], plain[0]["clinical"])
    assert torch.equal(first["ultrasound"], plain[0]["ultrasound"])
    assert torch.equal(first["clinical"], noisy[0]["clinical"])  # deterministic
    assert not torch.equal(
        first["clinical"], pairs(Condition("clinical", "noise", 2), 1)[0]["clinical"]
    )
    # Rows draw their own noise: the change differs between rows.
    delta0 = first["clinical"] - plain[0]["clinical"]
    delta1 = noisy[1]["clinical"] - plain[1]["clinical"]
    assert not torch.allclose(delta0, delta1)

    both = pairs(Condition("both", "noise", 2))[0]
    assert torch.equal(both["clinical"], first["clinical"])  # same stream as clinical alone
    assert not torch.equal(both["ultrasound"], plain[0]["ultrasound"])

    dropped = pairs(Condition("ultrasound", "missing"))[0]
    assert dropped["present"].tolist() == [True, False]
    assert not dropped["ultrasound"].any()
    assert torch.equal(dropped["clinical"], plain[0]["clinical"])
    assert plain[0]["present"].tolist() == [True, True]  # the wrapped sample is not altered


def test_model_without_dropout_reports_missing_modality_as_not_supported(
    manifest_csv, ckpts, tmp_path
):
    result = run_robustness(ckpts["fusion"], manifest_csv, tmp_path / "r", severities=[1])
    by_name = {r["condition"]: r for r in result["conditions"]}
    for modality in ("clinical", "ultrasound"):
        record = by_name[f"{modality}/missing"]
        assert record["status"] == "not supported"
        assert "modality dropout" in record["reason"] and record["accuracy"] is None
    assert all(r["status"] == "ok" for r in result["conditions"] if r["family"] != "missing")
    assert result["supports_missing"] is False
    with open(tmp_path / "r" / "robustness.csv", newline="") as f:
        rows = {r["condition"]: r for r in csv.DictReader(f)}
    assert rows["clinical/missing"]["status"] == "not supported"
    assert rows["clinical/missing"]["accuracy"] == ""
    assert "not supported" in (tmp_path / "r" / "robustness.md").read_text()


def test_single_modality_model_ignores_the_other_image(manifest_csv, ckpts, tmp_path):
    """clinical_only reads the photograph only: corrupting or removing the ultrasound image
    changes nothing, removing the photograph is refused by the model itself."""
    result = run_robustness(ckpts["clinical_only"], manifest_csv, tmp_path / "r", severities=[3])
    by_name = {r["condition"]: r for r in result["conditions"]}
    clean = result["clean"]
    for name in ("ultrasound/noise/3", "ultrasound/intensity/3", "ultrasound/missing"):
        assert by_name[name]["agreement_with_clean"] == 1.0
        assert by_name[name]["nll"] == pytest.approx(clean["nll"], abs=1e-12)
    assert by_name["clinical/noise/3"]["nll"] != pytest.approx(clean["nll"], abs=1e-12)
    assert by_name["clinical/missing"]["status"] == "not supported"
    assert "clinical" in by_name["clinical/missing"]["reason"]


def test_bad_manifest_and_bad_severities_exit_2(manifest_csv, ckpts, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("clinical,ultrasound,label\nnope.png,nope.png,BCC\n")
    common = ["--checkpoint", str(ckpts["fusion"]), "--out", str(tmp_path / "o")]
    result = _robustness(*common, "--data", str(bad))
    assert result.exit_code == 2 and "error:" in result.output
    assert "Traceback" not in result.output
    result = _robustness(*common, "--data", str(manifest_csv), "--severities", "1,5")
    assert result.exit_code == 2 and "--severities" in result.output
    assert not (tmp_path / "o").exists()


def test_help_has_an_example():
    result = _robustness("--help")
    assert result.exit_code == 0
    assert "Example:" in result.output and "--severities" in result.output
