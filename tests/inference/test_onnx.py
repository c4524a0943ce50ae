"""ONNX export and `OnnxPredictor`: self-describing file, no FRL decoder, same output as PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from agfnet.errors import UserError
from agfnet.inference import OnnxPredictor, Predictor
from agfnet.inference.export import EXPORT_TOLERANCE, frl_parameter_names


@pytest.fixture(scope="module")
def torch_predictor(dropout_ckpt: Path) -> Predictor:
    return Predictor.from_checkpoint(dropout_ckpt, device="cpu")


@pytest.fixture(scope="module")
def onnx_predictor(onnx_export) -> OnnxPredictor:
    return OnnxPredictor.from_file(onnx_export[0])


def test_export_prints_and_records_the_check(onnx_export, dropout_ckpt: Path) -> None:
    path, facts, stdout = onnx_export
    assert facts["inputs"] == ["clinical", "ultrasound"]
    assert facts["outputs"] == ["logits", "probabilities"]
    assert facts["checkpoint"] == str(dropout_ckpt) and facts["onnx"] == str(path)
    assert set(facts["max_abs_diff"]) == {"1", "3"}
    worst = max(d for batch in facts["max_abs_diff"].values() for d in batch.values())
    assert 0 <= worst <= EXPORT_TOLERANCE == facts["tolerance"]
    assert "max |ONNX - PyTorch|" in stdout and "batch 3" in stdout


def test_the_onnx_file_describes_itself(onnx_export) -> None:
    model = onnx.load(str(onnx_export[0]))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["classes"]) == ["BCC", "SCC", "MEL", "SK", "NEV"]
    assert meta["model_name"] == "agfnet_tiny"
    assert int(meta["img_size"]) == 32
    assert float(meta["temperature"]) == 1.5
    norm = json.loads(meta["normalization"])
    assert norm["clinical"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(meta["modality_dropout"]) is True
    assert json.loads(meta["supports_missing"]) is False  # not exported, see export.py
    for graph_input in model.graph.input:  # the batch axis is dynamic, the size fixed
        dims = graph_input.type.tensor_type.shape.dim
        assert not dims[0].dim_value and [d.dim_value for d in dims[1:]] == [3, 32, 32]


def test_the_frl_decoder_is_not_exported(onnx_export, torch_predictor: Predictor) -> None:
    model = onnx.load(str(onnx_export[0]))
    frl = frl_parameter_names(torch_predictor.model)
    assert frl, "agfnet_tiny has an FRL decoder; the checks below would be empty otherwise"
    names = [i.name for i in model.graph.initializer] + [n.name for n in model.graph.node]
    assert not [n for n in names if "frl" in n]
    facts = onnx_export[1]
    assert facts["frl_parameters"] == sum(
        p.numel() for n, p in torch_predictor.model.named_parameters() if n in frl
    )
    stored = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    assert stored == facts["onnx_parameters"] <= facts["parameters"] - facts["frl_parameters"]


def test_onnx_equals_pytorch_on_the_same_preprocessed_inputs(
    onnx_predictor: OnnxPredictor, torch_predictor: Predictor, synth_dir: Path
) -> None:
    clinical = sorted((synth_dir / "images" / "clinical").glob("*.png"))[:4]
    ultrasound = sorted((synth_dir / "images" / "ultrasound").glob("*.png"))[:4]
    tensors = [torch_predictor.preprocess(c, u) for c, u in zip(clinical, ultrasound, strict=True)]
    c, u, _ = (torch.stack(t) for t in zip(*tensors, strict=True))
    with torch.no_grad():
        logits = torch_predictor.model(c, u)
    probs = torch.softmax(logits / 1.5, dim=1)
    got = onnx_predictor.run_raw({"clinical": c.numpy(), "ultrasound": u.numpy()})
    assert got["logits"].shape == (4, 5)  # a batch size the export never saw
    np.testing.assert_allclose(got["logits"], logits.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got["probabilities"], probs.numpy(), atol=1e-4, rtol=0)


def test_onnx_predictor_output_matches_predictor(
    onnx_predictor: OnnxPredictor, torch_predictor: Predictor, pair
) -> None:
    assert onnx_predictor.classes == torch_predictor.classes
    assert onnx_predictor.temperature == torch_predictor.temperature == 1.5
    a, b = onnx_predictor.predict(*pair), torch_predictor.predict(*pair)
    assert set(a.to_dict()) == set(b.to_dict())
    assert a.prediction == b.prediction and a.modalities == b.modalities
    assert a.uncertainty.certainty == b.uncertainty.certainty
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-4)
    np.testing.assert_allclose(
        list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4
    )


def test_onnx_of_a_dropout_model_still_needs_both_images(
    onnx_predictor: OnnxPredictor, torch_predictor: Predictor, pair
) -> None:
    torch_predictor.predict(pair[0], None)  # the checkpoint accepts it
    with pytest.raises(UserError, match=r"ONNX export .* takes both images") as err:
        onnx_predictor.predict(pair[0], None)
    assert "--checkpoint" in str(err.value)


def test_a_file_without_agfnet_metadata_is_refused(onnx_export, tmp_path: Path) -> None:
    model = onnx.load(str(onnx_export[0]))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(UserError, match=r"bare\.onnx lacks the agfnet metadata"):
        OnnxPredictor.from_file(tmp_path / "bare.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(UserError, match=r"junk\.onnx is not a readable ONNX model"):
        OnnxPredictor.from_file(tmp_path / "junk.onnx")
