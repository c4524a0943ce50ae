"""The app on an ONNX export (`create_app(OnnxPredictor)`, `agfnet serve --onnx`): the
OnnxPredictor's answers, the backend in /api/health and /api/model, and heatmaps said to be
unavailable (in the JSON and on the page) instead of missing without a word."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agfnet.app import AppSettings, create_app
from agfnet.app.diagnoser import NO_CAM, ONNX_NO_CAM
from agfnet.inference import OnnxPredictor
from agfnet.inference.export import sha256_file

#: `agfnet export` checks ONNX against PyTorch to this (agfnet.inference.export).
EXPORT_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def onnx_predictor(onnx_file: Path) -> OnnxPredictor:
    return OnnxPredictor.from_file(onnx_file)


@pytest.fixture(scope="module")
def onnx_client(onnx_predictor: OnnxPredictor) -> TestClient:
    return TestClient(create_app(onnx_predictor, AppSettings()))


def test_a_pair_gets_the_onnx_predictors_answer_and_says_why_there_are_no_cams(
    onnx_client: TestClient,
    onnx_predictor: OnnxPredictor,
    predictor: Any,
    onnx_file: Path,
    pairs: list,
    pair_bytes: list,
    form: Callable[..., dict],
) -> None:
    response = onnx_client.post("/api/predict", files=form(*pair_bytes[0]))
    assert response.status_code == 200, response.text
    body = response.json()
    expected = onnx_predictor.predict(*pairs[0]).to_dict()
    assert list(body["probabilities"]) == onnx_predictor.classes
    for name, p in expected["probabilities"].items():
        assert body["probabilities"][name] == pytest.approx(p, abs=1e-9)
    assert body["prediction"] == expected["prediction"]
    assert body["uncertainty"] == pytest.approx(expected["uncertainty"])
    # The export is the checkpoint's network: the PyTorch answer, to the export's tolerance.
    torch_answer = predictor.predict(*pairs[0]).probabilities
    for name, p in torch_answer.items():
        assert body["probabilities"][name] == pytest.approx(p, abs=EXPORT_TOLERANCE)
    assert body["cams"] is None
    assert body["cam_unavailable"] == ONNX_NO_CAM
    assert "ONNX" in ONNX_NO_CAM and "--checkpoint" in ONNX_NO_CAM
    sha = sha256_file(onnx_file)
    assert body["model"] == {
        "id": f"agfnet_tiny@{sha[:12]}",
        "name": "agfnet_tiny",
        "checkpoint_sha256": sha,
    }
    # A client that did not ask for heatmaps is not told why there are none.
    opted_out = onnx_client.post("/api/predict?cam=false", files=form(*pair_bytes[0])).json()
    assert opted_out["cams"] is None and "cam_unavailable" not in opted_out
    assert opted_out["probabilities"] == body["probabilities"]


def test_health_and_model_report_onnxruntime_and_no_heatmaps(
    onnx_client: TestClient, client: TestClient, onnx_predictor: OnnxPredictor
) -> None:
    health = onnx_client.get("/api/health").json()
    assert health["backend"] == "onnxruntime" and health["precision"] == "fp32"
    assert client.get("/api/health").json() | {"model": None} == {
        "status": "ok",
        "model_loaded": True,
        "model": None,
        "backend": "torch",
        "precision": "fp32",
    }
    info = onnx_client.get("/api/model").json()
    assert info["id"] == health["model"]
    assert info["source"] == "model.onnx"  # the file name only
    assert info["classes"] == onnx_predictor.classes and info["img_size"] == 64
    assert info["temperature"] == pytest.approx(1.3)  # from the file's metadata
    assert info["backend"] == {
        "runtime": "onnxruntime",
        "precision": "fp32",
        "providers": ["CPUExecutionProvider"],
        "quantization": None,
    }
    assert info["cam"] is False and info["cam_method"] is None
    assert info["cam_unavailable"] == ONNX_NO_CAM
    assert info["evaluation"] is None
    torch_info = client.get("/api/model").json()
    assert torch_info["backend"] == {"runtime": "torch", "precision": "fp32", "device": "cpu"}
    assert torch_info["cam_method"] == "layercam" and torch_info["cam_unavailable"] is None


def test_the_page_says_heatmaps_are_unavailable_for_an_onnx_model(
    onnx_client: TestClient, client: TestClient
) -> None:
    page = onnx_client.get("/").text
    assert 'id="cam-unavailable"' in page
    assert "Heatmaps are unavailable for an ONNX model" in page
    assert "agfnet serve --checkpoint best.ckpt" in page
    assert "<!-- cam notice" not in page  # the placeholder is replaced
    assert 'id="cam-unavailable"' not in client.get("/").text


def test_a_server_without_cams_says_so_too(
    predictor: Any, pair_bytes: list, form: Callable[..., dict]
) -> None:
    off = TestClient(create_app(predictor, AppSettings(cam=False)))
    body = off.post("/api/predict", files=form(*pair_bytes[0])).json()
    assert body["cams"] is None and body["cam_unavailable"] == NO_CAM
    assert off.get("/api/model").json()["cam_unavailable"] == NO_CAM
    assert "--no-cam" in off.get("/").text


def test_an_int8_export_is_served_and_reported_as_int8(
    int8_file: Path,
    onnx_predictor: OnnxPredictor,
    pairs: list,
    pair_bytes: list,
    form: Callable[..., dict],
) -> None:
    client = TestClient(create_app(str(int8_file)))  # a .onnx path: ONNX Runtime
    health = client.get("/api/health").json()
    assert health["backend"] == "onnxruntime" and health["precision"] == "int8"
    backend = client.get("/api/model").json()["backend"]
    assert backend["quantization"]["method"] == "static"
    assert backend["quantization"]["format"] == "QDQ"
    body = client.post("/api/predict", files=form(*pair_bytes[2])).json()
    int8 = OnnxPredictor.from_file(int8_file).predict(*pairs[2]).probabilities
    fp32 = onnx_predictor.predict(*pairs[2]).probabilities
    for name, p in int8.items():
        assert body["probabilities"][name] == pytest.approx(p, abs=1e-9)
        assert p == pytest.approx(fp32[name], abs=0.02)
    assert body["probabilities"] != fp32  # int8 really ran, not the fp32 file
    assert body["cam_unavailable"] == ONNX_NO_CAM


def test_a_file_that_is_not_an_agfnet_export_is_refused(tmp_path: Path) -> None:
    from agfnet.errors import UserError

    bad = tmp_path / "model.onnx"
    bad.write_text(json.dumps({"not": "onnx"}))
    with pytest.raises(UserError, match="not a readable ONNX model"):
        create_app(bad)
