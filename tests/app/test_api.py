"""The JSON API and the page, through FastAPI's TestClient: answers, model info, schema."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from agfnet.app import AppSettings, create_app

STATIC = Path(__file__).parents[2] / "agfnet" / "app" / "static"


def _decode_data_url(url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))


def test_a_pair_gets_the_predictors_answer_with_model_id_request_id_and_cams(
    client: TestClient, predictor: Any, pairs: list, pair_bytes: list, form: Callable[..., dict]
) -> None:
    clinical, ultrasound = pair_bytes[0]
    response = client.post("/api/predict", files=form(clinical, ultrasound))
    assert response.status_code == 200, response.text
    body = response.json()
    expected = predictor.predict(*pairs[0]).to_dict()
    assert set(body) == {*expected, "model", "request_id", "cams", "disclaimer"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    assert list(body["probabilities"]) == predictor.classes
    for name, p in expected["probabilities"].items():
        assert body["probabilities"][name] == pytest.approx(p, abs=1e-12)
    assert body["prediction"] == expected["prediction"]
    assert body["uncertainty"] == pytest.approx(expected["uncertainty"])
    assert body["modalities"] == {"clinical": True, "ultrasound": True}
    sha = body["model"]["checkpoint_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", sha)
    assert body["model"]["id"] == f"agfnet_tiny@{sha[:12]}"
    assert response.headers["x-request-id"] == body["request_id"]
    assert "not a medical device" in body["disclaimer"]
    # One heatmap per image, at the image's size, not flat (64 px inputs).
    assert set(body["cams"]) == {"clinical", "ultrasound"}
    for modality, url in body["cams"].items():
        overlay = _decode_data_url(url)
        source = Image.open(pairs[0][0 if modality == "clinical" else 1])
        assert overlay.size == source.size
        assert np.asarray(overlay, dtype=float).std() > 1.0


def test_cams_can_be_turned_off_per_request_and_per_server(
    client: TestClient, predictor: Any, pair_bytes: list, form: Callable[..., dict]
) -> None:
    body = client.post("/api/predict?cam=false", files=form(*pair_bytes[1])).json()
    assert body["cams"] is None
    off = TestClient(create_app(predictor, AppSettings(cam=False)))
    body_off = off.post("/api/predict", files=form(*pair_bytes[1])).json()
    assert body_off["cams"] is None
    assert body_off["probabilities"] == body["probabilities"]
    assert off.get("/api/model").json()["cam"] is False


def test_distinct_pairs_get_distinct_answers(
    client: TestClient, pair_bytes: list, form: Callable[..., dict]
) -> None:
    # Guards the concurrency tests: a mixed-up answer must be detectable.
    probs = [
        list(client.post("/api/predict?cam=false", files=form(*p)).json()["probabilities"].values())
        for p in pair_bytes[:4]
    ]
    for i in range(4):
        for j in range(i):
            assert np.abs(np.subtract(probs[i], probs[j])).max() > 1e-4


def test_missing_image_is_refused_for_a_model_without_modality_dropout(
    client: TestClient, fusion_ckpt: Path, pair_bytes: list, form: Callable[..., dict]
) -> None:
    response = client.post("/api/predict", files=form(pair_bytes[0][0], None))
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "ultrasound"
    assert "ultrasound image is missing" in body["detail"]
    assert "modality dropout" in body["detail"]
    # The server's folders are not revealed.
    assert str(fusion_ckpt.parent) not in body["detail"] and "fusion.ckpt" in body["detail"]


def test_missing_image_is_diagnosed_by_a_model_with_modality_dropout(
    dropout_ckpt: Path, pairs: list, pair_bytes: list, form: Callable[..., dict]
) -> None:
    from agfnet.inference import Predictor

    dropout = Predictor.from_checkpoint(dropout_ckpt, device="cpu")
    client = TestClient(create_app(dropout))
    response = client.post("/api/predict", files=form(None, pair_bytes[2][1]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["modalities"] == {"clinical": False, "ultrasound": True}
    assert set(body["cams"]) == {"ultrasound"}
    expected = dropout.predict(None, pairs[2][1])
    assert body["probabilities"] == pytest.approx(expected.probabilities, abs=1e-12)
    assert client.get("/api/model").json()["supports_missing"] is True
    # What a browser form sends for an empty file input: a part with no name and no bytes.
    empty_input = {"clinical": ("", b"", "application/octet-stream")}
    both_missing = client.post("/api/predict", files=empty_input)
    assert both_missing.status_code == 422
    assert "no image given" in both_missing.json()["detail"]


def test_health_and_model_endpoints(client: TestClient, predictor: Any) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["model_loaded"] is True
    info = client.get("/api/model").json()
    assert info["classes"] == predictor.classes
    assert info["model"] == "agfnet_tiny"
    assert info["img_size"] == 64
    assert info["temperature"] == pytest.approx(1.3)
    assert info["supports_missing"] is False
    assert info["source"] == "fusion.ckpt"  # the file name only
    assert info["id"] == health["model"]
    assert info["max_upload_bytes"] == 20 * 1024 * 1024
    assert info["evaluation"] is None  # nothing stored for this checkpoint


def _metrics(temperature: float, checkpoint: str) -> dict:
    return {
        "accuracy": 0.8,
        "balanced_accuracy": 0.75,
        "macro_auc": 0.9,
        "n": 40,
        "split": "val",
        "temperature": temperature,
        "checkpoint": checkpoint,
        "calibrated": {"ece": 0.04},
    }


@pytest.mark.parametrize(
    ("temperature", "name", "shown"),
    [(1.3, "best.ckpt", True), (1.0, "best.ckpt", False), (1.3, "last.ckpt", False)],
)
def test_model_endpoint_shows_the_run_folders_metrics_only_for_that_checkpoint(
    fusion_ckpt: Path, tmp_path: Path, temperature: float, name: str, shown: bool
) -> None:
    from agfnet.inference import Predictor

    run = tmp_path / "run"
    best = run / "checkpoints" / "best.ckpt"
    best.parent.mkdir(parents=True)
    shutil.copy(fusion_ckpt, best)
    (run / "metrics.json").write_text(json.dumps(_metrics(temperature, f"/elsewhere/{name}")))
    info = TestClient(create_app(Predictor.from_checkpoint(best, device="cpu"))).get("/api/model")
    evaluation = info.json()["evaluation"]
    if shown:
        assert evaluation["balanced_accuracy"] == 0.75 and evaluation["n"] == 40
        assert evaluation["source"] == "metrics.json"
        assert "checkpoint" not in evaluation  # no server path
    else:
        assert evaluation is None


def test_openapi_schema_documents_the_upload_form(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/api/predict"]["post"]
    form_schema = predict["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(form_schema["properties"]) == {"clinical", "ultrasound"}
    assert {"200", "413", "422"} <= set(predict["responses"])
    assert {"/api/health", "/api/model"} <= set(schema["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_page_and_its_files_are_served_and_load_nothing_external(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "not a medical device" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "app.css"):
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC.iterdir():
        text = path.read_text()
        # Only the SVG namespace may name another host; no CDN, no font service.
        external = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text)
        assert [u for u in external if "www.w3.org" not in u] == [], path.name


def test_a_request_id_from_a_proxy_is_kept(
    client: TestClient, pair_bytes: list, form: Callable[..., dict]
) -> None:
    rid = "proxy-0123456789abcdef"
    response = client.post(
        "/api/predict?cam=false", files=form(*pair_bytes[0]), headers={"X-Request-ID": rid}
    )
    assert response.json()["request_id"] == rid == response.headers["x-request-id"]
    junk = client.get("/api/health", headers={"X-Request-ID": "<script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", junk.headers["x-request-id"])


def test_a_failing_model_gives_500_with_the_request_id(
    predictor: Any, pair_bytes: list, monkeypatch: pytest.MonkeyPatch, form: Callable[..., dict]
) -> None:
    app = create_app(predictor, AppSettings(cam=False))

    def broken(*args: Any) -> None:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(predictor, "predict", broken)
    response = TestClient(app).post("/api/predict", files=form(*pair_bytes[0]))
    assert response.status_code == 500
    body = response.json()
    assert body["request_id"] in body["detail"]
    assert "out of memory" not in body["detail"]  # internals stay in the log


def test_a_model_that_cannot_make_cams_still_answers(
    predictor: Any, pair_bytes: list, monkeypatch: pytest.MonkeyPatch, form: Callable[..., dict]
) -> None:
    from agfnet.errors import UserError

    def flat(*args: Any, **kwargs: Any) -> None:
        raise UserError("target layer outputs a 1x1 map, so its CAM would be flat")

    monkeypatch.setattr(predictor, "explain", flat)
    response = TestClient(create_app(predictor)).post("/api/predict", files=form(*pair_bytes[0]))
    assert response.status_code == 200
    assert response.json()["cams"] is None
    assert response.json()["probabilities"] == predictor.predict(*pair_bytes[0]).probabilities
