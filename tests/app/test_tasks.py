"""The app with a model that has task heads and metadata (issue 14): the form's metadata
fields, the answer's criteria, score and missing metadata, /api/model, and the page."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agfnet.evaluation.checklist import CHECKLIST_CLASSES

IMG = 64


def _inference_tasks() -> ModuleType:
    """tests/inference/test_tasks.py as a module (test folders are not packages)."""
    path = Path(__file__).parents[1] / "inference" / "test_tasks.py"
    spec = importlib.util.spec_from_file_location("_agfnet_inference_tasks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def task_predictor(ckpt_dir: Path) -> Any:
    """agfnet_tiny at 64 px with the seven criteria as task heads and site/age metadata."""
    from agfnet.data.metadata import MetadataField, MetadataSpec
    from agfnet.inference import Predictor

    spec = MetadataSpec(
        [
            MetadataField("site", "categorical", vocabulary=["head_neck", "lower_limb", "trunk"]),
            MetadataField("age", "numeric", mean=50.0, std=15.0),
        ]
    )
    path = _inference_tasks().write_task_checkpoint(
        ckpt_dir / "checklist_meta.ckpt",
        task_classes=CHECKLIST_CLASSES,
        metadata=spec.to_dict(),
        img=IMG,
    )
    return Predictor.from_checkpoint(path, device="cpu")


@pytest.fixture(scope="module")
def task_client(task_predictor: Any) -> Any:
    from fastapi.testclient import TestClient

    from agfnet.app import AppSettings, create_app

    return TestClient(create_app(task_predictor, AppSettings(cam=False)))


def test_model_lists_tasks_and_metadata_fields(task_client: Any) -> None:
    info = task_client.get("/api/model").json()
    assert info["tasks"] == {k: list(v) for k, v in CHECKLIST_CLASSES.items()}
    assert info["seven_point_checklist"] is True
    assert info["metadata"] == [
        {"name": "site", "kind": "categorical", "vocabulary": ["head_neck", "lower_limb", "trunk"]},
        {"name": "age", "kind": "numeric", "vocabulary": None},
    ]


def test_predict_takes_metadata_fields_and_answers_criteria_and_score(
    task_client: Any, task_predictor: Any, pairs: list, pair_bytes: list, form: Any
) -> None:
    response = task_client.post(
        "/api/predict", files=form(*pair_bytes[0]), data={"site": "trunk", "age": "61"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = task_predictor.predict(*pairs[0], metadata={"site": "trunk", "age": "61"})
    assert body["prediction"] == expected.prediction
    assert body["probabilities"] == pytest.approx(expected.probabilities)
    assert set(body["tasks"]) == set(CHECKLIST_CLASSES)
    for name, task in body["tasks"].items():
        assert task["prediction"] == expected.tasks[name]["prediction"]
        assert task["probabilities"] == pytest.approx(expected.tasks[name]["probabilities"])
    assert body["seven_point_score"] == expected.seven_point_score
    assert body["checklist_melanoma"] == (expected.seven_point_score >= 3)
    assert body["metadata_missing"] == [] and body["metadata_unknown"] == []


def test_missing_and_unknown_metadata_are_reported(
    task_client: Any, pair_bytes: list, form: Any
) -> None:
    body = task_client.post(
        "/api/predict", files=form(*pair_bytes[0]), data={"site": "elbow"}
    ).json()
    assert body["metadata_missing"] == ["age"]
    assert body["metadata_unknown"] == ["site"]
    none = task_client.post("/api/predict", files=form(*pair_bytes[0])).json()
    assert none["metadata_missing"] == ["site", "age"]


def test_bad_metadata_is_refused_with_its_field(
    task_client: Any, pair_bytes: list, form: Any
) -> None:
    bad = task_client.post("/api/predict", files=form(*pair_bytes[0]), data={"age": "old"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "age" and "not a number" in bad.json()["detail"]
    stray = task_client.post("/api/predict", files=form(*pair_bytes[0]), data={"hat": "red"})
    assert stray.status_code == 422
    assert "'hat'" in stray.json()["detail"] and "'site'" in stray.json()["detail"]


def test_a_plain_model_answers_as_before(client: Any, pair_bytes: list, form: Any) -> None:
    body = client.post("/api/predict", files=form(*pair_bytes[0])).json()
    assert set(body) == {
        "probabilities",
        "prediction",
        "uncertainty",
        "modalities",
        "model",
        "request_id",
        "cams",
        "disclaimer",
    }
    refused = client.post("/api/predict", files=form(*pair_bytes[0]), data={"site": "trunk"})
    assert refused.status_code == 422
    info = client.get("/api/model").json()
    assert "tasks" not in info and "metadata" not in info
    assert 'id="metadata"' not in client.get("/").text


def test_the_page_has_a_field_per_metadata_field(task_client: Any) -> None:
    page = task_client.get("/").text
    assert '<select id="meta-site" name="site" data-metadata="site">' in page
    assert '<option value="trunk">trunk</option>' in page
    assert "unknown / blank" in page
    assert '<input type="number" step="any" id="meta-age" name="age"' in page
    assert 'id="tasks-box"' in page
    schema = task_client.get("/openapi.json").json()
    form_schema = schema["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    properties = form_schema["multipart/form-data"]["schema"]["properties"]
    assert {"clinical", "ultrasound", "site", "age"} <= set(properties)


@pytest.fixture(scope="module")
def task_page(task_predictor: Any) -> Iterator[Any]:
    """The page of the task model in headless Chromium (skipped as tests/app/test_browser.py)."""
    from agfnet.app import AppSettings, create_app

    chromium = Path("/usr/bin/chromium")
    if os.environ.get("AGFNET_SKIP_BROWSER") == "1" or not chromium.is_file():
        pytest.skip("no /usr/bin/chromium (or AGFNET_SKIP_BROWSER=1)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed")
    live_server = _app_conftest().live_server
    with (
        live_server(create_app(task_predictor, AppSettings(cam=False))) as url,
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=str(chromium),
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            headless=True,
        )
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#model-line code")
        yield page
        browser.close()


def _app_conftest() -> ModuleType:
    path = Path(__file__).with_name("conftest.py")
    spec = importlib.util.spec_from_file_location("_agfnet_app_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.browser
def test_the_page_sends_metadata_and_shows_criteria_score_and_missing(
    task_page: Any, task_predictor: Any, pairs: list
) -> None:
    task_page.set_input_files("#clinical", str(pairs[0][0]))
    task_page.set_input_files("#ultrasound", str(pairs[0][1]))
    task_page.select_option("#meta-site", "trunk")
    task_page.click("#diagnose")
    task_page.wait_for_selector("#result", state="visible", timeout=60_000)
    expected = task_predictor.predict(*pairs[0], metadata={"site": "trunk"})
    rows = task_page.locator("#tasks tbody tr")
    assert rows.count() == len(CHECKLIST_CLASSES)
    first = rows.nth(0)
    name = first.get_attribute("data-task")
    assert expected.tasks[name]["prediction"] in first.inner_text()
    score = task_page.inner_text("#checklist")
    assert f"Seven-point score: {expected.seven_point_score} of 10" in score
    assert "Metadata missing" in task_page.inner_text("#metadata-note")
    assert "age" in task_page.inner_text("#metadata-note")
