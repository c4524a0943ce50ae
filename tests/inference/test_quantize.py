"""`agfnet export --quantize int8`: on the synthetic benchmark the int8 model keeps the
accuracy of fp32 and agrees with it, keeps the export's metadata, and `agfnet predict --onnx`
runs it; bad options are refused before anything is exported, and a failure writes nothing."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.inference import OnnxPredictor
from agfnet.inference.export import sha256_file
from agfnet.inference.quantize import DYNAMIC_OP_TYPES, STATIC_OP_TYPES, quantize_onnx

#: The accuracy claim of issue 15: int8 within 0.01 of fp32, predictions agreeing on 98 %.
MAX_ACCURACY_DROP = 0.01
MIN_AGREEMENT = 0.98


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifest of a 40-pair synthetic benchmark at 32 px (no split column)."""
    from agfnet.data.synth import generate

    out = tmp_path_factory.mktemp("quant") / "synth"
    generate(out, n_per_class=8, size=32, seed=3, workers=1)
    return out / "manifest.csv"


def _train(
    tiny_config: Callable[..., Any], manifest: Path, out: Path, *overrides: str, **kwargs: Any
) -> Path:
    from agfnet.engine.train import fit

    config = tiny_config(*overrides, **kwargs)
    return fit(config, manifest, out, command="pytest quantize").best_checkpoint


def _export(checkpoint: Path, out: Path, *flags: str) -> tuple[Path, dict[str, Any], str]:
    """`agfnet export --quantize int8 ...` in-process: (OUT, OUT.json as a dict, stdout)."""
    args = ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--quantize", "int8"]
    result = CliRunner().invoke(app, [*args, *flags])
    assert result.exit_code == 0, result.output
    return out, json.loads(out.with_name(out.name + ".json").read_text()), result.stdout


@pytest.fixture(scope="module")
def int8_export(
    tiny_config: Callable[..., Any], bench: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], str]:
    """A 2-epoch agfnet_tiny exported with `--quantize int8 --data` its benchmark."""
    folder = tmp_path_factory.mktemp("int8")
    checkpoint = _train(tiny_config, bench, folder / "run")
    return _export(checkpoint, folder / "int8.onnx", "--data", str(bench))


def _check_the_claim(test: dict[str, Any], manifest: Path) -> None:
    with open(manifest, newline="") as f:
        labeled = sum(1 for row in csv.DictReader(f) if row["label"])
    assert test["n"] == labeled and test["split"] is None  # no split column: every row
    assert test["accuracy_drop"] == pytest.approx(test["accuracy_fp32"] - test["accuracy_int8"])
    assert test["accuracy_drop"] <= MAX_ACCURACY_DROP, test
    assert test["agreement"] >= MIN_AGREEMENT, test
    assert 0 <= test["max_abs_prob_diff"] < 1


def test_int8_keeps_the_accuracy_of_fp32_on_the_benchmark(int8_export, bench: Path) -> None:
    _, facts, stdout = int8_export
    block = facts["quantization"]
    assert block["method"] == "static" and block["format"] == "QDQ"
    assert block["op_types"] == list(STATIC_OP_TYPES)
    assert block["fp32_convolutions"] > 0  # the 16-channel layers of the tiny backbone
    calibration = block["calibration"]
    assert calibration["rows"] == block["calibration_pairs"] == 40  # min(64, all 40 rows)
    assert "no split column" in calibration["note"]
    _check_the_claim(block["test"], bench)
    assert "agreement" in stdout and "no split column" in stdout
    # The fp32 export's facts stay: its check against PyTorch.
    assert max(d for b in facts["max_abs_diff"].values() for d in b.values()) <= 1e-4


def test_the_int8_file_is_quantised_and_describes_itself(int8_export) -> None:
    path, facts, _ = int8_export
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["model_name"] == "agfnet_tiny" and int(meta["img_size"]) == 32
    assert json.loads(meta["quantization"])["method"] == "static"
    assert facts["sha256"] == sha256_file(path) != facts["quantization"]["fp32_sha256"]
    assert facts["onnx"] == str(path)
    assert not list(path.parent.glob(".*tmp*")), "a temporary file was left behind"


def test_predict_onnx_runs_the_int8_file(int8_export, bench: Path) -> None:
    path = int8_export[0]
    with open(bench, newline="") as f:
        first = next(csv.DictReader(f))
    pair = [str(bench.parent / first[m]) for m in ("clinical", "ultrasound")]
    args = ["predict", "--onnx", str(path), "--clinical", pair[0], "--ultrasound", pair[1]]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    predictor = OnnxPredictor.from_file(path)
    assert predictor.predict(*pair).prediction == out["prediction"]


def test_without_data_the_matrix_products_are_quantised_dynamically(
    onnx_export, tmp_path: Path
) -> None:
    source = onnx_export[0]
    facts = quantize_onnx(source, tmp_path / "dynamic.onnx")
    assert facts["method"] == "dynamic" and facts["op_types"] == list(DYNAMIC_OP_TYPES)
    model = onnx.load(str(tmp_path / "dynamic.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert "MatMulInteger" in ops and "Conv" in ops  # convolutions stay fp32
    assert not {"QLinearConv", "ConvInteger"} & ops
    predictor = OnnxPredictor.from_file(tmp_path / "dynamic.onnx")
    feeds = {m: np.zeros((2, 3, 32, 32), np.float32) for m in ("clinical", "ultrasound")}
    assert predictor.run_raw(feeds)["probabilities"].shape == (2, 5)


def _refused(args: list[str], match: str, out: Path) -> None:
    result = CliRunner().invoke(app, ["export", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert match in result.output
    assert not out.exists() and not out.with_name(out.name + ".json").exists()


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--quantize", "int4"], "--quantize int4: the choice is int8"),
        (["--data", "{manifest}"], "--data is an option of --quantize int8"),
        (["--quantize", "int8", "--split", "test"], "--split needs --data MANIFEST"),
        (
            ["--quantize", "int8", "--data", "{manifest}", "--calibration-rows", "0"],
            "--calibration-rows 0: use at least 1",
        ),
    ],
)
def test_bad_options_are_refused_before_exporting(
    flags: list[str], match: str, fusion_ckpt: Path, synth_dir: Path, tmp_path: Path
) -> None:
    manifest = str(synth_dir / "manifest.csv")
    args = ["--checkpoint", str(fusion_ckpt), *(f.format(manifest=manifest) for f in flags)]
    _refused(args, match, tmp_path / "m.onnx")


def test_a_calibration_split_without_rows_is_refused(
    fusion_ckpt: Path, synth_dir: Path, tmp_path: Path
) -> None:
    with open(synth_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    manifest = tmp_path / "split.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, ["clinical", "ultrasound", "label", "split"])
        writer.writeheader()
        for i, row in enumerate(rows):
            path = {m: str(synth_dir / row[m]) for m in ("clinical", "ultrasound")}
            writer.writerow({**path, "label": row["label"], "split": "test" if i % 3 else "train"})
    args = ["--checkpoint", str(fusion_ckpt), "--quantize", "int8", "--data", str(manifest)]
    _refused(args, "has no row with split 'val' (its splits: test, train)", tmp_path / "m.onnx")
    args += ["--calibration-split", "train", "--split", "val"]
    _refused(args, "has no row with split 'val'", tmp_path / "m.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["agfnet_tiny", "late_concat_tiny"])
def test_a_better_trained_model_keeps_its_accuracy_in_int8(
    model: str, tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    """A 64-px model trained for 20 epochs on 150 pairs (about 2 minutes): confident
    enough for int8 noise to matter, unlike the 2-epoch model above, and enough rows that
    one flipped pair (1/150) stays inside the 0.01 accuracy bound."""
    from agfnet.data.synth import generate

    generate(tmp_path / "synth", n_per_class=30, size=64, seed=3, workers=1)
    manifest = tmp_path / "synth" / "manifest.csv"
    checkpoint = _train(
        tiny_config, manifest, tmp_path / "run", "data.img_size=64", epochs=20, model=model
    )
    _, facts, _ = _export(checkpoint, tmp_path / "int8.onnx", "--data", str(manifest))
    _check_the_claim(facts["quantization"]["test"], manifest)
