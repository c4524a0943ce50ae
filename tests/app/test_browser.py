"""The page in headless Chromium (Playwright): upload a pair, diagnose, read the result.

Uses the system's Chromium (/usr/bin/chromium, Debian's `chromium` package), never a
browser downloaded by `playwright install`. Without it or without Playwright the tests
are skipped, saying what to install; AGFNET_SKIP_BROWSER=1 skips them too. A screenshot
of the result goes to the test's tmp_path, or to `$AGFNET_TEST_ARTIFACTS/webapp.png` when
that variable names a folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CERTAINTY_WORDS = {"high": "High", "moderate": "Moderate", "low": "Low"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if os.environ.get("AGFNET_SKIP_BROWSER") == "1":
        pytest.skip("AGFNET_SKIP_BROWSER=1")
    if not CHROMIUM.is_file():
        pytest.skip(
            f"{CHROMIUM} not found: install Debian's Chromium (sudo apt-get install chromium) "
            "to run the browser tests"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright not installed (pip install playwright)"
    )

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
            ],
            headless=True,
        )
        yield browser
        browser.close()


@pytest.fixture()
def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: $AGFNET_TEST_ARTIFACTS if set, else the test's tmp_path."""
    folder = os.environ.get("AGFNET_TEST_ARTIFACTS")
    if not folder:
        return tmp_path
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)


@pytest.fixture()
def page(browser: Any, live_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(live_url + "/")
    page.wait_for_selector("#model-line code")  # the model description has arrived
    yield page
    external = [u for u in requests if not u.startswith((live_url, "data:", "blob:"))]
    context.close()
    assert external == [], "the page loaded something from outside the server"


def test_a_pair_is_diagnosed_and_shown_with_bars_certainty_and_heatmaps(
    page: Any, predictor: Any, pairs: list, artifacts: Path
) -> None:
    notice = page.locator("#notice")
    assert notice.is_visible()
    assert "not a medical device" in notice.inner_text()
    page.set_input_files("#clinical", str(pairs[0][0]))
    page.set_input_files("#ultrasound", str(pairs[0][1]))
    assert page.locator("#drop-clinical .preview img").is_visible()
    page.click("#diagnose")
    page.wait_for_selector("#result", state="visible", timeout=60_000)
    expected = predictor.predict(*pairs[0])

    rows = page.locator("#bars li")
    assert [rows.nth(i).get_attribute("data-class") for i in range(rows.count())] == (
        predictor.classes
    )
    top = page.locator("#bars li.top")
    assert top.get_attribute("data-class") == expected.prediction
    assert page.inner_text("#prediction") == expected.prediction
    certainty = expected.uncertainty.certainty
    assert page.inner_text("#certainty-word") == CERTAINTY_WORDS[certainty]
    shown = f"{100 * expected.uncertainty.max_probability:.1f}%"
    assert shown in page.inner_text("#certainty-text")

    heatmaps = page.locator("#cams img.cam-image")
    heatmaps.nth(1).wait_for()
    assert heatmaps.count() == 2
    # (wait_for_function would need eval, which the page's CSP rightly forbids.)
    deadline = time.monotonic() + 10
    while not all(
        heatmaps.nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(2)
    ):
        assert time.monotonic() < deadline, "the heatmaps did not load"
        time.sleep(0.05)
    for i in range(2):
        assert heatmaps.nth(i).is_visible()
        assert "heatmap" in heatmaps.nth(i).get_attribute("alt").lower()
    assert notice.is_visible()
    page.screenshot(path=str(artifacts / "webapp.png"), full_page=True)


def test_wrong_files_show_a_clear_message(page: Any, pairs: list) -> None:
    # Refused in the browser: not an image by name or type.
    page.set_input_files(
        "#clinical", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hi"}]
    )
    error = page.locator("#error")
    assert error.is_visible()
    assert "notes.txt" in error.inner_text() and "not an image" in error.inner_text()
    # Refused by the server: a text file named like an image.
    page.set_input_files(
        "#clinical",
        files=[{"name": "photo.png", "mimeType": "image/png", "buffer": b"not a png at all"}],
    )
    assert not error.is_visible()
    page.set_input_files("#ultrasound", str(pairs[0][1]))
    page.click("#diagnose")
    page.wait_for_selector("#error", state="visible", timeout=60_000)
    text = error.inner_text()
    assert "Clinical photograph" in text and "not an image PIL can identify" in text
    assert page.locator("#drop-clinical.invalid").count() == 1
    assert not page.locator("#result").is_visible()


def test_the_page_is_keyboard_usable(page: Any, pairs: list) -> None:
    # Diagnose without images: the message says both are needed, focus stays usable.
    page.focus("#diagnose")
    page.keyboard.press("Enter")
    assert "needs a clinical photograph and an ultrasound image" in page.inner_text("#error")
    page.focus("#clinical")
    assert page.evaluate("document.activeElement.id") == "clinical"
    for field in ("clinical", "ultrasound"):
        label = page.locator(f"label[for='{field}']")
        assert label.count() == 1 and label.inner_text().strip()


def test_an_onnx_model_shows_no_heatmaps_and_says_why(
    browser: Any, onnx_live_url: str, onnx_file: Path, pairs: list, artifacts: Path
) -> None:
    from agfnet.inference import OnnxPredictor

    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(onnx_live_url + "/")
    page.wait_for_selector("#model-line code")
    assert "ONNX Runtime fp32" in page.inner_text("#model-line")
    page.set_input_files("#clinical", str(pairs[0][0]))
    page.set_input_files("#ultrasound", str(pairs[0][1]))
    page.click("#diagnose")
    page.wait_for_selector("#result", state="visible", timeout=60_000)
    expected = OnnxPredictor.from_file(onnx_file).predict(*pairs[0])
    assert page.inner_text("#prediction") == expected.prediction
    notice = page.locator("#cam-unavailable")
    assert notice.is_visible()
    assert "Heatmaps are unavailable for an ONNX model" in notice.inner_text()
    assert not page.locator("#cam-note").is_visible()
    assert not page.locator("#cam-legend").is_visible()
    assert page.locator("#cams img.cam-image").count() == 0
    assert page.locator("#cams img.input-image").count() == 2  # the uploads still shown
    page.click("#about summary")
    about = page.inner_text("#about-list")
    assert "ONNX Runtime, fp32, CPU" in about and "unavailable for an ONNX model" in about
    page.screenshot(path=str(artifacts / "webapp-onnx.png"), full_page=True)
    context.close()
