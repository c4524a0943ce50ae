"""The local-evidence benchmark (`agfnet synth --kind local`): files, seeds, patches, Bayes."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agfnet.cli.app import app
from agfnet.data.synth import (
    CLASSES,
    DECOY_CODES,
    LOCAL_CODES,
    LOCAL_NOISE,
    LOCAL_TABLE,
    PATCH_AREA,
    generate,
    local_bayes_accuracies,
    render_local_pair,
    sample_local,
)
from agfnet.data.synth.tables import PAIR_COLUMNS
from agfnet.errors import UserError

N_PER_CLASS = 4
SIZE = 64


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_local") / "bench"
    generate(out, n_per_class=N_PER_CLASS, size=SIZE, seed=5, workers=1, kind="local")
    return out


def test_manifest_has_the_pair_layout_and_the_evidence_columns(bench: Path) -> None:
    with (bench / "manifest.csv").open(newline="") as f:
        header = next(csv.reader(f))
    assert header == [*PAIR_COLUMNS, "clinical_evidence", "ultrasound_evidence", "site", "age"]
    rows = _read_csv(bench / "manifest.csv")
    assert Counter(r["label"] for r in rows) == {c: N_PER_CLASS for c in CLASSES}
    for r in rows:
        assert r["clinical_evidence"] in LOCAL_CODES["clinical"]
        assert r["ultrasound_evidence"] in LOCAL_CODES["ultrasound"]
        for column, mode in (("clinical", "RGB"), ("ultrasound", "L"), ("clinical_mask", "L")):
            with Image.open(bench / r[column]) as im:
                assert im.mode == mode and im.size == (SIZE, SIZE)


def test_the_mask_is_the_evidence_patch_of_a_few_percent_of_the_image(bench: Path) -> None:
    rows = _read_csv(bench / "attributes.csv")
    lo, hi = PATCH_AREA
    for r in rows:
        for modality in ("clinical", "ultrasound"):
            mask = np.asarray(Image.open(bench / f"masks/{modality}/{r['lesion_id']}.png")) > 0
            # One filled square, of 4-6 % of the image up to rounding of its side.
            ys, xs = np.nonzero(mask)
            assert mask.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
            assert lo * 0.8 <= mask.mean() <= hi * 1.2
            centre = ((xs.mean() + 0.5) / SIZE, (ys.mean() + 0.5) / SIZE)
            assert centre == pytest.approx(
                (float(r[f"{modality}_x"]), float(r[f"{modality}_y"])), abs=1e-3
            )
            assert {r[f"{modality}_decoy_1"], r[f"{modality}_decoy_2"]} <= set(
                DECOY_CODES[modality]
            )


def test_patches_differ_from_the_background_and_the_decoys_as_salient_as_the_evidence() -> None:
    spec = sample_local(1, seed=2)[0]
    pair = render_local_pair(spec, 96)
    # Inside the evidence patch the photograph's chroma is far from the skin's mean; the
    # ultrasound patch has more horizontal or vertical contrast than the background.
    clinical = pair.clinical.astype(float)
    chroma = clinical - clinical.mean(axis=2, keepdims=True)
    inside = np.linalg.norm(
        chroma[pair.clinical_mask].mean(0) - chroma[~pair.clinical_mask].mean(0)
    )
    assert inside > 15
    us = pair.ultrasound.astype(float)
    grad = np.abs(np.diff(us, axis=0))[:, :-1] + np.abs(np.diff(us, axis=1))[:-1]
    assert (
        grad[pair.ultrasound_mask[:-1, :-1]].mean()
        > 1.2 * grad[~pair.ultrasound_mask[:-1, :-1]].mean()
    )


def test_same_seed_same_bytes_other_seed_other_files(bench: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, n_per_class=N_PER_CLASS, size=SIZE, seed=5, workers=2, kind="local")
    assert _hashes(again) == _hashes(bench)
    other = tmp_path / "other"
    generate(other, n_per_class=N_PER_CLASS, size=SIZE, seed=6, workers=1, kind="local")
    a, b = _hashes(bench), _hashes(other)
    assert sum(a[k] != b[k] for k in a if k.startswith("images/")) == len(
        [k for k in a if k.startswith("images/")]
    )


def test_local_and_lesion_benchmarks_of_one_seed_differ(bench: Path, tmp_path: Path) -> None:
    lesion = tmp_path / "lesion"
    generate(lesion, n_per_class=N_PER_CLASS, size=SIZE, seed=5, workers=1)
    assert (
        _hashes(lesion)["images/clinical/L00001.png"]
        != _hashes(bench)["images/clinical/L00001.png"]
    )
    assert json.loads((lesion / "synth.json").read_text())["kind"] == "lesion"


def test_synth_json_and_readme_state_the_design(bench: Path) -> None:
    meta = json.loads((bench / "synth.json").read_text())
    assert meta["kind"] == "local" and meta["seed"] == 5 and meta["size"] == SIZE
    assert meta["bayes_accuracy"] == pytest.approx(local_bayes_accuracies())
    assert meta["table"] == LOCAL_TABLE
    text = (bench / "README.md").read_text()
    assert "local evidence" in text and f"{local_bayes_accuracies()['both']:.4f}" in text


def test_bayes_figures_are_exact_and_need_both_images() -> None:
    bayes = local_bayes_accuracies()
    # One image: two pairs of classes confused at 1 - noise = 0.9 of the time each way.
    assert bayes["clinical"] == pytest.approx(0.54) and bayes["ultrasound"] == pytest.approx(0.54)
    assert 0.8 < bayes["both"] < 1.0
    pairs = {(t["clinical"], t["ultrasound"]) for t in LOCAL_TABLE.values()}
    assert len(pairs) == len(CLASSES)


def test_codes_deviate_from_the_prototype_at_the_documented_rate() -> None:
    specs = sample_local(300, seed=1)
    flips = [f for s in specs for f in s.flipped.values()]
    assert np.mean(flips) == pytest.approx(float(LOCAL_NOISE), abs=0.02)
    for s in specs[:50]:
        for column, modality in (
            ("clinical_evidence", "clinical"),
            ("ultrasound_evidence", "ultrasound"),
        ):
            same = s.attributes[column] == LOCAL_TABLE[s.label][modality]
            assert same != s.flipped[column]


def test_an_unknown_kind_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--kind must be one of lesion, local"):
        generate(tmp_path / "x", n_per_class=1, size=SIZE, kind="global")


def test_the_command_writes_a_local_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["synth", str(out), "--kind", "local", "--n-per-class", "1", "--size", "48"]
    result = CliRunner().invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "both 0.846" in result.output
    assert json.loads((out / "synth.json").read_text())["kind"] == "local"
