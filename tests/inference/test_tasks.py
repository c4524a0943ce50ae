"""Prediction with task heads and metadata (issue 14): the `Prediction` fields, the
checklist score, metadata given / missing / unknown, batch CSVs, the CLI and ONNX."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from agfnet.evaluation.checklist import CHECKLIST_CLASSES

CLASSES = ["BCC", "SCC", "MEL", "SK", "NEV"]
IMG = 32
TASKS = ["colour", "depth"]
METADATA = ["site", "age"]


def write_task_checkpoint(
    path: Path,
    *,
    task_classes: Mapping[str, Sequence[str]],
    metadata: dict | None,
    img: int = IMG,
    seed: int = 0,
) -> Path:
    """A checkpoint of a freshly initialised agfnet_tiny with task heads and metadata,
    written as `agfnet train` writes one (see tests/inference/conftest.py)."""
    import torch

    from agfnet.engine.config import load_config
    from agfnet.engine.module import PairedClassifierModule, build_network
    from agfnet.engine.train import transform_config
    from agfnet.runtime.checkpoint import atomic_save

    names = list(task_classes)
    fields = [f["name"] for f in metadata["fields"]] if metadata else []
    config = load_config(
        "tiny",
        [
            f"data.img_size={img}",
            f"data.tasks=[{','.join(names)}]",
            f"data.metadata=[{','.join(fields)}]",
        ],
        model="agfnet_tiny",
    )
    torch.manual_seed(seed)
    tasks = {t: len(c) for t, c in task_classes.items()}
    network = build_network(config, len(CLASSES), tasks or None, metadata)
    transform = transform_config(config, network).model_dump(mode="json")
    module = PairedClassifierModule(
        network,
        config,
        CLASSES,
        transform,
        task_classes={t: list(c) for t, c in task_classes.items()},
    )
    meta = {**module.checkpoint_metadata(), "temperature": 1.0}
    atomic_save(
        {"state_dict": module.state_dict(), "hyper_parameters": {"agfnet": meta}, "epoch": 0},
        path,
    )
    return path


def synth_spec(manifest: Path) -> tuple[dict[str, list[str]], dict]:
    """(task classes of `TASKS`, the `MetadataSpec.to_dict()` of `METADATA`) of a synthetic set."""
    from agfnet.data import read_manifest
    from agfnet.data.metadata import fit_metadata

    table = read_manifest(manifest, tasks=TASKS, metadata=METADATA)
    spec = fit_metadata(table.rows, METADATA)
    return {t: list(table.task_classes[t]) for t in TASKS}, spec.to_dict()


@pytest.fixture(scope="module")
def task_ckpt(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """agfnet_tiny with heads for colour and depth and the site/age metadata."""
    task_classes, metadata = synth_spec(synth_dir / "manifest.csv")
    path = tmp_path_factory.mktemp("tasks") / "tasks.ckpt"
    return write_task_checkpoint(path, task_classes=task_classes, metadata=metadata)


@pytest.fixture(scope="module")
def checklist_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """agfnet_tiny with the seven criteria as task heads, no metadata."""
    path = tmp_path_factory.mktemp("checklist") / "checklist.ckpt"
    return write_task_checkpoint(path, task_classes=CHECKLIST_CLASSES, metadata=None)


@pytest.fixture(scope="module")
def predictor(task_ckpt: Path):
    from agfnet.inference import Predictor

    return Predictor.from_checkpoint(task_ckpt, device="cpu")


def test_prediction_carries_the_tasks_and_the_missing_metadata(predictor, pair) -> None:
    result = predictor.predict(*pair, metadata={"site": "trunk"})
    assert list(result.tasks) == TASKS
    for name, task in result.tasks.items():
        assert list(task["probabilities"]) == predictor.tasks[name]
        assert sum(task["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert task["prediction"] == max(task["probabilities"], key=task["probabilities"].get)
    assert result.metadata_missing == ["age"]
    assert result.metadata_unknown == []
    assert result.seven_point_score is None  # two of the seven criteria: no checklist
    body = result.to_dict()
    assert body["tasks"] == result.tasks
    assert body["metadata_missing"] == ["age"]
    assert "seven_point_score" not in body
    json.dumps(body)


def test_metadata_changes_the_prediction_and_unseen_values_are_unknown(predictor, pair) -> None:
    none = predictor.predict(*pair)
    assert none.metadata_missing == METADATA
    given = predictor.predict(*pair, metadata={"site": "trunk", "age": "80"})
    assert given.metadata_missing == []
    assert given.logits != none.logits
    odd = predictor.predict(*pair, metadata={"site": "elbow", "age": " "})
    assert odd.metadata_unknown == ["site"] and odd.metadata_missing == ["age"]
    # Blank and left out are the same input: missing.
    blank = predictor.predict(*pair, metadata={"site": "", "age": ""})
    assert blank.logits == none.logits


def test_bad_metadata_is_refused_by_name(predictor, pair) -> None:
    from agfnet.errors import UserError

    with pytest.raises(UserError, match=r"colour_of_hat.*uses the metadata site, age"):
        predictor.predict(*pair, metadata={"colour_of_hat": "red"})
    with pytest.raises(UserError, match=r"age.*not a number"):
        predictor.predict(*pair, metadata={"age": "old"})


def test_a_model_without_metadata_refuses_metadata(fusion_ckpt: Path, pair) -> None:
    from agfnet.errors import UserError
    from agfnet.inference import Predictor

    plain = Predictor.from_checkpoint(fusion_ckpt, device="cpu")
    with pytest.raises(UserError, match="uses no metadata"):
        plain.predict(*pair, metadata={"site": "trunk"})
    body = plain.predict(*pair).to_dict()
    assert set(body) == {"probabilities", "prediction", "uncertainty", "modalities"}
    assert "tasks" not in plain.describe() and "metadata" not in plain.describe()


def test_the_checklist_score_follows_the_predicted_criteria(checklist_ckpt: Path, pair) -> None:
    from agfnet.evaluation.checklist import seven_point_score
    from agfnet.inference import Predictor

    checklist = Predictor.from_checkpoint(checklist_ckpt, device="cpu")
    assert checklist.describe()["seven_point_checklist"] is True
    result = checklist.predict(*pair)
    predicted = {name: [t["prediction"]] for name, t in result.tasks.items()}
    assert result.seven_point_score == int(seven_point_score(predicted)[0])
    assert result.checklist_melanoma == (result.seven_point_score >= 3)
    body = result.to_dict()
    assert body["seven_point_score"] == result.seven_point_score
    assert "metadata_missing" not in body


def test_describe_lists_tasks_and_metadata_fields(predictor) -> None:
    info = predictor.describe()
    assert info["tasks"] == predictor.tasks
    assert info["seven_point_checklist"] is False
    fields = {f["name"]: f for f in info["metadata"]}
    assert fields["site"]["kind"] == "categorical" and "trunk" in fields["site"]["vocabulary"]
    assert fields["age"] == {"name": "age", "kind": "numeric", "vocabulary": None}


def test_manifest_prediction_reads_the_metadata_and_writes_task_columns(
    predictor, synth_dir: Path, tmp_path: Path
) -> None:
    from agfnet.inference.predictor import write_predictions_csv

    manifest, predictions = predictor.predict_manifest(synth_dir / "manifest.csv", batch_size=4)
    with open(synth_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row, pred in zip(rows, predictions, strict=True):
        assert pred.metadata_missing == [m for m in METADATA if not row[m].strip()]
    single = predictor.predict(
        synth_dir / rows[0]["clinical"],
        synth_dir / rows[0]["ultrasound"],
        metadata={m: rows[0][m] for m in METADATA},
    )
    assert single.logits == pytest.approx(predictions[0].logits, abs=1e-5)
    out = tmp_path / "predictions.csv"
    write_predictions_csv(out, manifest, predictions, predictor.classes)
    with open(out, newline="") as f:
        written = list(csv.DictReader(f))
    header = list(written[0])
    for task in TASKS:
        assert f"pred_{task}" in header
        assert [f"prob_{task}_{c}" for c in predictor.tasks[task]] == [
            h for h in header if h.startswith(f"prob_{task}_")
        ]
    assert written[0]["pred_colour"] == predictions[0].tasks["colour"]["prediction"]
    assert "metadata_missing" in header and "seven_point_score" not in header


def test_a_manifest_without_the_metadata_columns_predicts_them_missing(
    predictor, synth_dir: Path, tmp_path: Path
) -> None:
    with open(synth_dir / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        keep = [c for c in reader.fieldnames if c not in METADATA]
        rows = [{c: r[c] for c in keep} for r in reader]
    bare = synth_dir / "bare_manifest.csv"
    with open(bare, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keep)
        writer.writeheader()
        writer.writerows(rows)
    _, predictions = predictor.predict_manifest(bare)
    assert all(p.metadata_missing == METADATA for p in predictions)


def test_sampling_keeps_the_task_heads_deterministic(predictor, pair) -> None:
    from agfnet.runtime.stochastic import parse_sampling

    plain = predictor.predict(*pair, metadata={"site": "trunk", "age": "50"})
    predictor.sampling = parse_sampling(0, 3, 0)
    try:
        sampled = predictor.predict(*pair, metadata={"site": "trunk", "age": "50"})
    finally:
        predictor.sampling = None
    assert sampled.spread is not None
    assert sampled.tasks == plain.tasks


def test_the_cli_prints_criteria_and_takes_metadata(task_ckpt: Path, pair) -> None:
    from typer.testing import CliRunner

    from agfnet.cli.app import app

    args = ["predict", "--checkpoint", str(task_ckpt), "--clinical", str(pair[0])]
    args += ["--ultrasound", str(pair[1]), "--device", "cpu"]
    runner = CliRunner()
    table = runner.invoke(app, [*args, "--metadata", "site=trunk"])
    assert table.exit_code == 0, table.output
    assert "colour" in table.stdout and "depth" in table.stdout
    assert "metadata missing: age" in table.stdout
    result = runner.invoke(
        app, [*args, "--metadata", "site=trunk", "--metadata", "age=40", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body["tasks"]) == set(TASKS) and body["metadata_missing"] == []
    bad = runner.invoke(app, [*args, "--metadata", "site"])
    assert bad.exit_code != 0 and "key=value" in bad.output


def test_the_cli_prints_the_checklist_score(checklist_ckpt: Path, pair) -> None:
    from typer.testing import CliRunner

    from agfnet.cli.app import app

    args = ["predict", "--checkpoint", str(checklist_ckpt), "--clinical", str(pair[0])]
    result = CliRunner().invoke(app, [*args, "--ultrasound", str(pair[1]), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "seven-point score:" in result.stdout
    assert "pigment_network" in result.stdout


def test_onnx_export_has_task_outputs_and_metadata_inputs(
    task_ckpt: Path, predictor, pair, synth_dir: Path, tmp_path: Path
) -> None:
    import numpy as np

    from agfnet.inference.export import export_onnx
    from agfnet.inference.onnx_runtime import OnnxPredictor

    report = export_onnx(task_ckpt, tmp_path / "tasks.onnx")
    assert report.inputs == ["clinical", "ultrasound", "meta_cat", "meta_num", "meta_num_present"]
    assert report.outputs == ["logits", "probabilities", *(f"task_{t}" for t in TASKS)]
    assert report.worst_diff <= report.tolerance
    onnx = OnnxPredictor.from_file(tmp_path / "tasks.onnx")
    assert onnx.tasks == predictor.tasks
    assert onnx.describe()["metadata"] == predictor.describe()["metadata"]
    for values in ({"site": "trunk", "age": "71"}, {"site": "elbow"}, None):
        want = predictor.predict(*pair, metadata=values)
        got = onnx.predict(*pair, metadata=values)
        assert got.metadata_missing == want.metadata_missing
        assert got.metadata_unknown == want.metadata_unknown
        assert np.allclose(got.logits, want.logits, atol=1e-4)
        for name in TASKS:
            a = list(got.tasks[name]["probabilities"].values())
            b = list(want.tasks[name]["probabilities"].values())
            assert np.allclose(a, b, atol=1e-5), name
    _, rows = onnx.predict_manifest(synth_dir / "manifest.csv")
    _, expected = predictor.predict_manifest(synth_dir / "manifest.csv")
    assert [r.tasks["depth"]["prediction"] for r in rows] == [
        r.tasks["depth"]["prediction"] for r in expected
    ]
