"""The web app names each image as the model's training config does: a checkpoint trained
on dermoscopic images (Derm7pt) says "Dermoscopic image" in /api/model, the page, the API
schema, its messages and, in a browser, every label and caption; never "Ultrasound image".
The form fields and JSON fields keep their slot names."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agfnet.app import AppSettings, create_app

DERM = {"clinical": "Clinical photograph", "ultrasound": "Dermoscopic image"}


@pytest.fixture(scope="module")
def derm_predictor(write_checkpoint: Callable[..., Path], ckpt_dir: Path) -> Any:
    from agfnet.inference import Predictor

    path = write_checkpoint(
        ckpt_dir / "derm.ckpt",
        overrides=("data.img_size=64", "data.modality_names.ultrasound=Dermoscopic image"),
    )
    return Predictor.from_checkpoint(path, device="cpu")


@pytest.fixture(scope="module")
def derm_client(derm_predictor: Any) -> TestClient:
    return TestClient(create_app(derm_predictor, AppSettings()))


def test_the_model_endpoint_gives_the_names(derm_client: TestClient, client: TestClient) -> None:
    assert derm_client.get("/api/model").json()["modality_names"] == DERM
    assert client.get("/api/model").json()["modality_names"] == {
        "clinical": "Clinical photograph",
        "ultrasound": "Ultrasound image",
    }


def test_the_page_and_the_schema_name_the_dermoscopic_image(derm_client: TestClient) -> None:
    page = derm_client.get("/").text
    titles = re.findall(r'<span class="drop-title">([^<]*)</span>', page)
    assert titles == ["Clinical photograph", "Dermoscopic image"]
    assert "Clinical photograph + dermoscopic image &rarr;" in page
    assert "Ultrasound image" not in page and "skin ultrasound" not in page
    assert 'name="ultrasound"' in page  # the form field keeps its slot name
    schema = derm_client.get("/openapi.json").json()
    assert "Ultrasound image" not in str(schema) and "skin ultrasound" not in str(schema)
    post = schema["paths"]["/api/predict"]["post"]
    fields = post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(fields) == {"clinical", "ultrasound"}
    assert fields["ultrasound"]["description"].startswith("Dermoscopic image:")
    assert "Dermoscopic image" in post["summary"]


def test_the_default_page_keeps_the_default_names(client: TestClient) -> None:
    page = client.get("/").text
    assert re.findall(r'<span class="drop-title">([^<]*)</span>', page) == [
        "Clinical photograph",
        "Ultrasound image",
    ]


def test_names_are_escaped_in_the_page() -> None:
    from agfnet.app.page import render_page

    page = render_page({"ultrasound": "<b>Dermoscopy</b> & co"})
    assert "<b>Dermoscopy</b>" not in page
    assert "&lt;b&gt;Dermoscopy&lt;/b&gt; &amp; co" in page


def test_an_unreadable_upload_is_named_by_its_image(
    derm_client: TestClient, pair_bytes: list, form: Callable[..., dict]
) -> None:
    response = derm_client.post("/api/predict", files=form(pair_bytes[0][0], b"not an image"))
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "ultrasound"
    assert "dermoscopic image 'ultrasound.png'" in body["detail"]
    answer = derm_client.post("/api/predict", files=form(*pair_bytes[0])).json()
    assert answer["modalities"] == {"clinical": True, "ultrasound": True}  # API fields stay


def _live_server() -> Any:
    """The conftest's `live_server` context manager (test folders are not packages)."""
    import importlib.util

    path = Path(__file__).with_name("conftest.py")
    spec = importlib.util.spec_from_file_location("_agfnet_app_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.live_server


@pytest.mark.browser
def test_in_a_browser_every_label_names_the_dermoscopic_image(
    derm_predictor: Any, pairs: list, tmp_path: Path
) -> None:
    if os.environ.get("AGFNET_SKIP_BROWSER") == "1":
        pytest.skip("AGFNET_SKIP_BROWSER=1")
    chromium = Path("/usr/bin/chromium")
    if not chromium.is_file():
        pytest.skip(f"{chromium} not found: install Debian's Chromium to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed")

    app = create_app(derm_predictor, AppSettings())
    with _live_server()(app) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium),
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            headless=True,
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url + "/")
            page.wait_for_selector("#model-line code")
            page.focus("#diagnose")
            page.keyboard.press("Enter")
            assert "needs a clinical photograph and a dermoscopic image" in page.inner_text(
                "#error"
            )
            page.set_input_files("#clinical", str(pairs[0][0]))
            page.set_input_files("#ultrasound", str(pairs[0][1]))
            assert "dermoscopic image" in page.get_attribute("#drop-ultrasound .preview img", "alt")
            page.click("#diagnose")
            page.wait_for_selector("#result", state="visible", timeout=60_000)
            page.locator("#cams img.cam-image").nth(1).wait_for()
            headings = page.locator("#cams h4").all_inner_texts()
            assert headings == ["Clinical photograph", "Dermoscopic image"]
            alts = [i.get_attribute("alt") for i in page.locator("#cams img").all()]
            assert sum("dermoscopic image" in a for a in alts) == 2  # upload and heatmap
            assert "clinical photograph and dermoscopic image" in page.inner_text("#meta")
            text = page.inner_text("body")
            assert "Dermoscopic image" in text
            assert "ultrasound" not in text.lower()
            page.screenshot(path=str(tmp_path / "derm.png"), full_page=True)
        finally:
            browser.close()
