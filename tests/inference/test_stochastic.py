"""Monte-Carlo dropout and test-time augmentation: `--mc N` / `--tta N` of predict and evaluate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.errors import UserError
from agfnet.runtime.stochastic import (
    Sampling,
    dropout_layers,
    mc_dropout,
    parse_sampling,
    sample_logits,
    tta_view,
)


@pytest.fixture(scope="module")
def mc_ckpt(make_checkpoint) -> Path:
    """agfnet_tiny with dropout 0.5 before its classifier."""
    return make_checkpoint("mc", overrides=("model.overrides.drop_rate=0.5",))


def test_sampling_refuses_bad_values() -> None:
    for args in (("tta", 1), ("mcc", 3), ("mc", 3, -1)):
        with pytest.raises(ValueError, match="Sampling"):
            Sampling(*args)


def test_mc_dropout_restores_the_mode_after_an_error(mc_ckpt: Path) -> None:
    from agfnet.inference import load_checkpoint

    model, _ = load_checkpoint(mc_ckpt, device="cpu")
    with pytest.raises(RuntimeError, match="boom"), mc_dropout(model):
        assert all(m.training for m in dropout_layers(model))
        raise RuntimeError("boom")
    assert not any(m.training for m in model.modules())


def test_parse_sampling() -> None:
    assert parse_sampling(0, 0) is None
    assert parse_sampling(5, 0, seed=3) == Sampling("mc", 5, 3)
    assert parse_sampling(None, 4) == Sampling("tta", 4, 0)
    with pytest.raises(UserError, match="not both"):
        parse_sampling(3, 3)
    with pytest.raises(UserError, match="at least 2 passes"):
        parse_sampling(0, 1)


def test_tta_views_are_seeded_batch_independent_and_keep_shape() -> None:
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(4, 3, 32, 32, generator=g), torch.randn(4, 3, 32, 32, generator=g)
    assert tta_view(c, u, 0)[0] is c  # pass 0 is the plain image
    views = [tta_view(c, u, k, seed=1) for k in range(1, 6)]
    for vc, vu in views:
        assert vc.shape == c.shape and vu.shape == u.shape
    # Same (seed, pass): same view; the first pair alone gets what it got in the batch.
    again = tta_view(c[:1], u[:1], 3, seed=1)
    torch.testing.assert_close(again[0], views[2][0][:1])
    torch.testing.assert_close(again[1], views[2][1][:1])
    # Views differ from the image and from each other (a flip or a crop each time).
    assert all(not torch.equal(vc, c) for vc, _ in views)
    assert not torch.equal(views[0][0], views[1][0])
    assert not torch.equal(tta_view(c, u, 1, seed=2)[0], views[0][0])


def test_tta_never_flips_vertically() -> None:
    """The ultrasound's skin surface stays on top: a top-bright image stays top-bright."""
    image = torch.zeros(1, 3, 32, 32)
    image[..., :8, :] = 1.0
    for k in range(1, 20):
        _, u = tta_view(image, image, k, seed=0)
        assert u[..., :6, :].mean() > 0.9 and u[..., -16:, :].mean() < 0.05


def test_mc_dropout_samples_only_dropout(mc_ckpt: Path) -> None:
    from agfnet.inference import load_checkpoint

    model, _ = load_checkpoint(mc_ckpt, device="cpu")
    assert dropout_layers(model)
    x = torch.randn(3, 3, 32, 32)
    running = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}

    def forward(c: torch.Tensor, u: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return model(c, u).double().numpy()

    stack = sample_logits(forward, x, x, Sampling("mc", 4, seed=0), model)
    assert stack.shape == (4, 3, 5)
    assert not np.allclose(stack[0], stack[1])  # dropout masks differ between passes
    np.testing.assert_array_equal(stack, sample_logits(forward, x, x, Sampling("mc", 4, 0), model))
    # Everything is back in eval mode; batch norm statistics were not touched.
    assert not model.training and not any(m.training for m in model.modules())
    for key, value in running.items():
        torch.testing.assert_close(model.state_dict()[key], value)
    # The global RNG is not advanced by the passes.
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    sample_logits(forward, x, x, Sampling("mc", 2, 0), model)
    assert torch.equal(torch.rand(1), expected)


def test_mc_dropout_refuses_a_model_without_dropout(fusion_ckpt: Path) -> None:
    from agfnet.inference import load_checkpoint

    model, _ = load_checkpoint(fusion_ckpt, device="cpu")
    with (
        pytest.raises(UserError, match=r"no dropout.*--tta.*model\.overrides\.drop_rate"),
        mc_dropout(model),
    ):
        pass


@pytest.mark.parametrize("method", ["mc", "tta"])
def test_predictor_reports_mean_and_spread(mc_ckpt: Path, pair, method: str) -> None:
    from agfnet.evaluation.calibration import apply_temperature
    from agfnet.inference import Predictor

    predictor = Predictor.from_checkpoint(mc_ckpt, device="cpu")
    plain = predictor.predict(*pair)
    assert plain.spread is None and "spread" not in plain.to_dict()
    predictor.sampling = Sampling(method, 6, seed=2)
    result = predictor.predict(*pair)
    spread = result.to_dict()["spread"]
    assert spread["method"] == method and spread["passes"] == 6
    assert set(spread["std"]) == set(predictor.classes)
    assert max(spread["std"].values()) > 0 and spread["mutual_information"] >= 0
    # The probabilities are the mean over the passes of the calibrated softmax.
    c, u, present = predictor.preprocess(*pair)
    stack = sample_logits(
        lambda a, b: predictor.forward(a, b, present[None])[0],
        c[None],
        u[None],
        predictor.sampling,
        predictor.model,
    )
    mean = apply_temperature(stack, predictor.temperature).mean(axis=0)[0]
    np.testing.assert_allclose(list(result.probabilities.values()), mean, atol=1e-9)
    assert result.prediction == predictor.classes[int(mean.argmax())]
    assert predictor.predict(*pair).probabilities == result.probabilities  # seeded


def test_onnx_predictor_takes_tta_but_not_mc(onnx_export, pair) -> None:
    from agfnet.inference import OnnxPredictor

    predictor = OnnxPredictor.from_file(onnx_export[0])
    predictor.sampling = Sampling("tta", 3)
    assert predictor.predict(*pair).spread["passes"] == 3
    predictor.sampling = Sampling("mc", 3)
    with pytest.raises(UserError, match=r"ONNX.*--checkpoint"):
        predictor.predict(*pair)


def test_predict_command_flags(mc_ckpt: Path, fusion_ckpt: Path, pair, synth_dir, tmp_path) -> None:
    runner = CliRunner()
    images = ["--clinical", str(pair[0]), "--ultrasound", str(pair[1])]
    both = runner.invoke(
        app, ["predict", "--checkpoint", str(mc_ckpt), *images, "--mc", "2", "--tta", "2"]
    )
    assert both.exit_code == 2 and "not both" in both.output
    no_dropout = runner.invoke(
        app, ["predict", "--checkpoint", str(fusion_ckpt), *images, "--mc", "3"]
    )
    assert no_dropout.exit_code == 2 and "drop_rate" in no_dropout.output
    shown = runner.invoke(app, ["predict", "--checkpoint", str(mc_ckpt), *images, "--mc", "4"])
    assert shown.exit_code == 0, shown.output
    assert "spread over 4 passes (MC dropout)" in shown.output
    as_json = runner.invoke(
        app, ["predict", "--checkpoint", str(mc_ckpt), *images, "--tta", "3", "--json"]
    )
    assert json.loads(as_json.stdout)["spread"]["passes"] == 3
    out = tmp_path / "p.csv"
    batch = runner.invoke(
        app,
        [
            "predict",
            "--checkpoint",
            str(mc_ckpt),
            "--data",
            str(synth_dir / "manifest.csv"),
            "--out",
            str(out),
            "--tta",
            "2",
        ],
    )
    assert batch.exit_code == 0, batch.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 15 and all(float(r["mutual_information"]) >= 0 for r in rows)
    assert any(float(r["std_prediction"]) > 0 for r in rows)


def test_evaluate_with_passes(mc_ckpt: Path, synth_dir, tmp_path) -> None:
    from agfnet.evaluation.metrics import compute_metrics
    from agfnet.workflows.evaluate import evaluate_checkpoint

    data = synth_dir / "manifest.csv"
    plain = evaluate_checkpoint(mc_ckpt, data, tmp_path / "plain", split=None)
    assert "sampling" not in plain
    metrics = evaluate_checkpoint(
        mc_ckpt, data, tmp_path / "mc", split=None, sampling=Sampling("mc", 5, 1)
    )
    block = metrics["sampling"]
    assert block["method"] == "mc" and block["passes"] == 5
    assert block["mean_mutual_information"] > 0 and block["mean_std_prediction"] > 0
    rows = list(csv.DictReader((tmp_path / "mc" / "predictions.csv").open()))
    mi = np.array([float(r["mutual_information"]) for r in rows])
    assert mi.mean() == pytest.approx(block["mean_mutual_information"], abs=1e-5)
    # The metrics are those of the averaged probabilities written to predictions.csv.
    classes = metrics["classes"]
    probs = np.array([[float(r[f"prob_{c}"]) for c in classes] for r in rows])
    labels = np.array([classes.index(r["label"]) for r in rows])
    again = compute_metrics(labels, probs / probs.sum(axis=1, keepdims=True), classes)
    assert again["accuracy"] == pytest.approx(metrics["accuracy"])
    assert again["nll"] == pytest.approx(metrics["nll"], abs=1e-4)
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--checkpoint",
            str(mc_ckpt),
            "--data",
            str(data),
            "--split",
            "all",
            "--out",
            str(tmp_path / "cli"),
            "--tta",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 passes (TTA)" in result.output and "before:" in result.output
    assert (
        json.loads((tmp_path / "cli" / "metrics.json").read_text())["sampling"]["method"] == "tta"
    )
