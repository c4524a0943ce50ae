"""The app under uvicorn on 127.0.0.1, hit concurrently: no errors, no mixed-up answers.

Each request sends one of several distinct pairs; its answer must equal the Predictor's
own answer for that pair, so a response crossing over to another request, or a CAM
computed while another request's forward pass ran through the hooked network, shows up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest


def _hammer(
    url: str, path: str, pair_bytes: list, form: Callable[..., dict], n: int, concurrency: int
) -> list[tuple[int, httpx.Response]]:
    """POST `n` requests to `path`, `concurrency` at a time, cycling through the pairs."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, timeout=60, limits=limits, trust_env=False) as client:

        def send(i: int) -> tuple[int, httpx.Response]:
            k = i % len(pair_bytes)
            return k, client.post(path, files=form(*pair_bytes[k]))

        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(send, range(n)))


def test_200_concurrent_requests_each_get_their_own_answer(
    live_url: str, predictor: Any, pairs: list, pair_bytes: list, form: Callable[..., dict]
) -> None:
    expected = [predictor.predict(*p).probabilities for p in pairs]
    started = time.perf_counter()
    results = _hammer(live_url, "/api/predict?cam=false", pair_bytes, form, 200, 8)
    elapsed = time.perf_counter() - started
    statuses = [r.status_code for _, r in results]
    assert statuses == [200] * 200, {s: statuses.count(s) for s in set(statuses)}
    ids = set()
    for k, response in results:
        body = response.json()
        got = np.array(list(body["probabilities"].values()))
        assert np.abs(got - np.array(list(expected[k].values()))).max() < 1e-5, k
        ids.add(body["request_id"])
    assert len(ids) == 200
    assert elapsed < 60, f"{elapsed:.1f} s for 200 requests"


@pytest.fixture(scope="module")
def expected_cams(predictor: Any, client: Any, pair_bytes: list, form: Callable) -> list[dict]:
    """The answer (probabilities and CAM data URLs) to each of 4 pairs, one at a time."""
    return [client.post("/api/predict", files=form(*p)).json() for p in pair_bytes[:4]]


def test_concurrent_requests_with_cams_do_not_mix(
    live_url: str, expected_cams: list[dict], pair_bytes: list, form: Callable[..., dict]
) -> None:
    results = _hammer(live_url, "/api/predict", pair_bytes[:4], form, 12, 4)
    for k, response in results:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["probabilities"] == pytest.approx(expected_cams[k]["probabilities"], abs=1e-9)
        assert body["cams"] == expected_cams[k]["cams"], f"pair {k}: heatmaps differ"
