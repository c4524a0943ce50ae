"""`agfnet demo --quick`: benchmark, comparison of the four demo models, and the report."""

from __future__ import annotations

import csv
from pathlib import Path

from agfnet.workflows.demo import DEMO_MODELS, run_demo


def test_quick_demo_writes_the_report(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", quick=True)
    index = result.index.read_text()
    assert result.index == tmp_path / "demo" / "index.md"
    for model in DEMO_MODELS:
        assert model in index
    # The Bayes-optimal bounds come from the generated benchmark, not from the code.
    for modality in ("clinical", "ultrasound", "both"):
        assert f"{result.bayes[modality]:.3f}" in index
    assert result.bayes["both"] > max(result.bayes["clinical"], result.bayes["ultrasound"])
    with open(tmp_path / "demo" / "compare" / "table.csv", newline="") as f:
        assert [r["model"] for r in csv.DictReader(f)] == list(DEMO_MODELS)
    assert (tmp_path / "demo" / "compare" / "table.png").is_file()
    assert (tmp_path / "demo" / "data" / "manifest.csv").is_file()
    assert "compare/table.png" in index
    # The test pairs are scored (all 8 of the quick test fold), 4 of them drawn: their
    # overlays exist and the report shows them.
    overlays = result.explained["overlays"]
    assert len(overlays) == 4 and result.explained["n"] == 8
    for path in overlays:
        assert (tmp_path / "demo" / path).is_file() and f"]({path})" in index
    assert set(result.explained["focus"]) == {"layercam", "attention"}
    # Each map is scored against chance, in words the reader cannot miss.
    for by_modality in result.explained["focus"].values():
        for s in by_modality.values():
            assert s["verdict"] in index
    if any(
        s["verdict"] != "beats chance"
        for by_modality in result.explained["focus"].values()
        for s in by_modality.values()
    ):
        assert "Not every map beats chance here" in index
    assert "## Where AGFNet looks" in index
