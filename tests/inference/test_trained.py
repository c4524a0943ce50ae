"""A checkpoint from a real (one-epoch) training run goes through `Predictor` and ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax

from agfnet.inference import Predictor


@pytest.mark.slow
def test_a_trained_checkpoint_predicts_with_its_calibrated_temperature(
    synth_dir: Path, tmp_path: Path
) -> None:
    from agfnet.engine.config import load_config
    from agfnet.engine.train import fit
    from agfnet.inference.export import export_onnx
    from agfnet.inference.onnx_runtime import OnnxPredictor

    config = load_config(
        "tiny",
        [
            "data.img_size=32",
            "data.batch_size=4",
            "trainer.progress_bar=false",
            "trainer.accelerator=cpu",
        ],
        epochs=1,
    )
    run = fit(config, synth_dir / "manifest.csv", tmp_path / "run", command="pytest")
    predictor = Predictor.from_checkpoint(run.best_checkpoint, device="cpu")
    assert predictor.temperature == pytest.approx(run.temperature)
    assert predictor.classes == sorted(["BCC", "SCC", "MEL", "SK", "NEV"])

    table, predictions = predictor.predict_manifest(synth_dir / "manifest.csv", batch_size=8)
    assert [r.row for r in table.rows] == list(range(1, 16)) and len(predictions) == 15
    for p in predictions:
        expected = softmax(np.array(p.logits) / run.temperature)
        np.testing.assert_allclose(list(p.probabilities.values()), expected, atol=1e-12)

    report = export_onnx(run.best_checkpoint, tmp_path / "model.onnx")
    assert report.worst_diff <= 1e-4
    onnx = OnnxPredictor.from_file(tmp_path / "model.onnx")
    row = table.rows[0]
    np.testing.assert_allclose(
        onnx.predict(row.clinical, row.ultrasound).logits,
        predictor.predict(row.clinical, row.ultrasound).logits,
        atol=1e-4,
    )
