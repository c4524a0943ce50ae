"""The synthetic benchmark's task and metadata columns: values, determinism, exact Bayes figures."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agfnet.data.manifest import read_manifest
from agfnet.data.metadata import fit_metadata
from agfnet.data.synth import (
    ATTRIBUTES,
    CLASSES,
    METADATA_COLUMNS,
    METADATA_KINDS,
    SITE_TABLE,
    SITES,
    TASK_COLUMNS,
    TASK_OVERRIDES,
    bayes_accuracies,
    bayes_accuracies_with_site,
    class_likelihoods,
    draw_metadata,
    generate,
    sample_attributes,
    task_bayes_accuracies,
)
from agfnet.data.synth.patient import AGE_MISSING, AGE_RANGE, SITE_MISSING

REPO = Path(__file__).resolve().parents[2]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_tasks") / "bench"
    generate(out, n_per_class=4, size=32, seed=9, workers=1)
    return out


def test_task_columns_are_the_true_attributes(bench: Path) -> None:
    manifest = _read_csv(bench / "manifest.csv")
    attrs = _read_csv(bench / "attributes.csv")
    assert list(TASK_COLUMNS) == [a.name for a in ATTRIBUTES]
    for m, a in zip(manifest, attrs, strict=True):
        assert {t: m[t] for t in TASK_COLUMNS} == {t: a[t] for t in TASK_COLUMNS}


def test_metadata_cells(bench: Path) -> None:
    rows = _read_csv(bench / "manifest.csv")
    assert all(r["site"] in ("", *SITES) for r in rows)
    ages = {}
    for r in rows:
        if r["age"]:
            assert AGE_RANGE[0] <= int(r["age"]) <= AGE_RANGE[1]
        assert ages.setdefault(r["patient_id"], r["age"]) == r["age"]  # one age per patient


def test_the_manifest_reads_with_its_tasks_and_metadata(bench: Path) -> None:
    data = {}
    for override in TASK_OVERRIDES:  # data.<key>=[a,b,...]
        key, _, value = override.partition("=")
        data[key.removeprefix("data.")] = value.strip("[]").split(",")
    assert data == {"tasks": list(TASK_COLUMNS), "metadata": list(METADATA_COLUMNS)}
    m = read_manifest(
        bench / "manifest.csv",
        tasks=data["tasks"],
        metadata=data["metadata"],
        metadata_kinds=METADATA_KINDS,
        check_images=False,
    )
    assert m.tasks == list(TASK_COLUMNS)
    for a in ATTRIBUTES:
        assert set(m.task_classes[a.name]) <= set(a.levels)
    assert all(-1 not in r.task_targets for r in m.rows)
    spec = fit_metadata(m.rows, m.metadata_fields)  # kinds inferred from the cells
    assert [f.kind for f in spec.fields] == ["categorical", "numeric"]
    assert set(spec.fields[0].vocabulary) <= set(SITES)


def test_metadata_is_deterministic_and_changes_with_the_seed() -> None:
    specs = sample_attributes(10, seed=4)
    assert draw_metadata(specs, 4) == draw_metadata(specs, 4)
    assert draw_metadata(specs, 4) != draw_metadata(specs, 5)


def test_the_metadata_draw_leaves_every_image_as_it_was(
    bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agfnet.data.synth import writer

    monkeypatch.setattr(
        writer, "draw_metadata", lambda specs, seed: [{"site": "", "age": ""}] * len(specs)
    )
    again = tmp_path / "without"
    generate(again, n_per_class=4, size=32, seed=9, workers=1)

    def digests(root: Path) -> dict[str, str]:
        files = sorted(p for p in root.rglob("*.png"))
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    assert digests(again) == digests(bench)
    assert (again / "attributes.csv").read_bytes() == (bench / "attributes.csv").read_bytes()


def test_site_table_and_missing_rates() -> None:
    assert set(SITE_TABLE) == set(CLASSES)
    assert all(sum(t.values()) == 1 and set(t) == set(SITES) for t in SITE_TABLE.values())
    specs = sample_attributes(400, seed=13)
    cells = draw_metadata(specs, 13)
    assert np.mean([c["site"] == "" for c in cells]) == pytest.approx(float(SITE_MISSING), abs=0.02)
    patients = {s.patient_id: c["age"] for s, c in zip(specs, cells, strict=True)}
    gone = np.mean([a == "" for a in patients.values()])
    assert gone == pytest.approx(float(AGE_MISSING), abs=0.02)
    for label in CLASSES:
        sites = Counter(
            c["site"] for s, c in zip(specs, cells, strict=True) if s.label == label and c["site"]
        )
        total = sum(sites.values())
        for site in SITES:
            assert sites[site] / total == pytest.approx(float(SITE_TABLE[label][site]), abs=0.07)


def test_sampled_figures_match_the_exact_task_and_site_bayes_accuracies() -> None:
    specs = sample_attributes(300, seed=21)
    cells = draw_metadata(specs, 21)
    tasks = task_bayes_accuracies()
    for attr in ATTRIBUTES:
        # The oracle from the diagnosis: the prototype (any level for a free attribute).
        hits = [s.flipped.get(attr.name) is False for s in specs]
        if attr.noise is not None:
            assert np.mean(hits) == pytest.approx(tasks[attr.name]["diagnosis"], abs=0.03)
        else:
            assert tasks[attr.name]["diagnosis"] == pytest.approx(1 / len(attr.levels))
    # The diagnosis from both images and the site, by the Bayes rule on the true values.
    site_p = {k: {s: float(p) for s, p in t.items()} for k, t in SITE_TABLE.items()}
    hits = []
    for s, c in zip(specs, cells, strict=True):
        lik = [float(p) for p in class_likelihoods(s.attributes, "both")]
        if c["site"]:
            lik = [p * site_p[k][c["site"]] for p, k in zip(lik, CLASSES, strict=True)]
        hits.append(CLASSES[int(np.argmax(lik))] == s.label)
    exact = bayes_accuracies_with_site()
    assert np.mean(hits) == pytest.approx(exact["both+site"], abs=0.02)
    assert exact["site"] > 0.2 and exact["clinical+site"] > bayes_accuracies()["clinical"]


def test_docs_state_the_task_and_site_figures() -> None:
    text = (REPO / "docs" / "synthetic.md").read_text()
    for name, figures in task_bayes_accuracies().items():
        found = re.search(
            rf"^\| `{name}` \| (\w+) \| [^|]+ \| ([0-9.]+) \| ([0-9.]+) \|", text, re.M
        )
        assert found, f"docs/synthetic.md has no row for task `{name}`"
        assert float(found.group(2)) == pytest.approx(figures["other_image"], abs=5e-5)
        assert float(found.group(3)) == pytest.approx(figures["diagnosis"], abs=5e-5)
    for key, value in bayes_accuracies_with_site().items():
        found = re.search(rf"^\| {re.escape(key)} \| ([0-9.]+) \|", text, re.M)
        assert found, f"docs/synthetic.md has no '| {key} | ... |' row"
        assert float(found.group(1)) == pytest.approx(value, abs=5e-5)


def test_synth_json_and_readme_describe_the_columns(bench: Path) -> None:
    meta = json.loads((bench / "synth.json").read_text())
    assert meta["tasks"] == list(TASK_COLUMNS)
    assert meta["metadata"]["columns"] == list(METADATA_COLUMNS)
    assert meta["metadata"]["kinds"] == METADATA_KINDS
    for name, figures in task_bayes_accuracies().items():
        assert meta["task_bayes_accuracy"][name] == pytest.approx(figures)
    assert meta["bayes_accuracy_with_site"] == pytest.approx(bayes_accuracies_with_site())
    readme = (bench / "README.md").read_text()
    assert " ".join(TASK_OVERRIDES) in readme
