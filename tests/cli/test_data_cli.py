"""`agfnet validate` and `agfnet import derm7pt`: exit codes, messages, nothing half-written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agfnet.cli.app import app


def _invoke(*args: str):
    return CliRunner().invoke(app, [*args], env={"COLUMNS": "200"})


def _image(path: Path, seed: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(path)
    return path.name


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """Six good rows: classes x, y; patients p0..p2."""
    data = tmp_path / "data"
    rows = [
        {
            "clinical": _image(data / f"c{i}.png", i),
            "ultrasound": _image(data / f"u{i}.png", 50 + i),
            "label": "xy"[i % 2],
            "patient_id": f"p{i // 2}",
        }
        for i in range(6)
    ]
    with open(data / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return data / "manifest.csv"


def _break(path: Path) -> None:
    """Break rows 2 (missing file), 4 (truncated image) and 5 (blank label)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    rows[1]["ultrasound"] = "gone.png"
    rows[4]["label"] = ""
    cut = path.parent / rows[3]["clinical"]
    cut.write_bytes(cut.read_bytes()[:100])
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_validate_good_manifest_prints_the_summary(manifest: Path, tmp_path: Path) -> None:
    result = _invoke("validate", str(manifest), "--json", str(tmp_path / "r" / "report.json"))
    assert result.exit_code == 0, result.output
    for line in ("rows: 6", "classes (2): x, y", "  x: 3", "  y: 3", "patients: 3"):
        assert line in result.output
    assert "missing modalities: clinical 0, ultrasound 0" in result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["ok"] is True and report["class_counts"] == {"x": 3, "y": 3}


def test_validate_broken_manifest_names_every_row_and_writes_nothing(manifest: Path) -> None:
    _break(manifest)
    before = sorted(p.name for p in manifest.parent.iterdir())
    result = _invoke("validate", str(manifest))
    assert result.exit_code == 2
    assert "3 problems found" in result.output
    assert "row 2, column 'ultrasound': file not found" in result.output
    assert "row 4, column 'clinical': unreadable image" in result.output
    assert "row 5, column 'label': blank label" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in manifest.parent.iterdir()) == before


def test_validate_broken_manifest_still_writes_the_json_report(
    manifest: Path, tmp_path: Path
) -> None:
    _break(manifest)
    result = _invoke("validate", str(manifest), "--json", str(tmp_path / "report.json"))
    assert result.exit_code == 2
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is False
    assert [(p["row"], p["column"]) for p in report["problems"]] == [
        (2, "ultrasound"),
        (4, "clinical"),
        (5, "label"),
    ]


def test_validate_options(manifest: Path) -> None:
    result = _invoke("validate", str(manifest), "--classes", "x,z")
    assert result.exit_code == 2
    assert "unknown label 'y'; expected one of: x, z" in result.output
    _break(manifest)
    relaxed = _invoke("validate", str(manifest), "--allow-unlabelled", "--no-check-images")
    assert relaxed.exit_code == 2
    assert "row 2, column 'ultrasound'" in relaxed.output
    assert "row 4" not in relaxed.output and "row 5" not in relaxed.output


def test_validate_missing_manifest(tmp_path: Path) -> None:
    result = _invoke("validate", str(tmp_path / "none.csv"))
    assert result.exit_code == 2 and "manifest not found" in result.output


@pytest.mark.parametrize("command", [["validate"], ["import"], ["import", "derm7pt"]])
def test_help_has_an_example(command: list[str]) -> None:
    result = _invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Example: agfnet" in result.output


def _release(root: Path) -> Path:
    """A one-case Derm7pt release: a lentigo in the training split."""
    base = root / "release_v0"
    _image(base / "images" / "Abc" / "Abc001.JPG", 1)
    _image(base / "images" / "Abc" / "Abc002.jpg", 2)
    (base / "meta").mkdir(parents=True)
    (base / "meta" / "meta.csv").write_text(
        "case_num,diagnosis,clinic,derm,case_id,notes\n1,lentigo,Abc/Abc001.JPG,Abc/Abc002.jpg,,\n"
    )
    (base / "meta" / "train_indexes.csv").write_text("indexes\n0\n")
    (base / "meta" / "valid_indexes.csv").write_text("indexes\n")
    (base / "meta" / "test_indexes.csv").write_text("indexes\n")
    return root


def test_import_derm7pt_writes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    release = _release(tmp_path / "derm")
    out = release / "m.csv"
    result = _invoke("import", "derm7pt", str(release), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "1 cases" in result.output and "MISC 1" in result.output
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["label"] == "MISC" and rows[0]["split"] == "train"
    assert _invoke("validate", str(out)).exit_code == 0
    again = _invoke("import", "derm7pt", str(release), "--out", str(out))
    assert again.exit_code == 2 and "exists" in again.output and "--overwrite" in again.output
    assert _invoke("import", "derm7pt", str(release), "-o", str(out), "--overwrite").exit_code == 0


def test_import_derm7pt_not_a_release(tmp_path: Path) -> None:
    result = _invoke("import", "derm7pt", str(tmp_path), "--out", str(tmp_path / "m.csv"))
    assert result.exit_code == 2
    assert "not a Derm7pt release" in result.output
    assert not (tmp_path / "m.csv").exists()


def _add_columns(path: Path, **columns: list[str]) -> None:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for name, values in columns.items():
        for row, value in zip(rows, values, strict=True):
            row[name] = value
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_validate_checks_tasks_and_metadata(manifest: Path, tmp_path: Path) -> None:
    _add_columns(
        manifest,
        streaks=["absent", "regular", "", "irregular", "absent", "regular"],
        sex=["female", "", "male", "male", "female", ""],
        age=["40", "51", "old", "", "33", "70"],
    )
    result = _invoke(
        "validate", str(manifest), "--tasks", "streaks", "--metadata", "sex,age:numeric"
    )
    assert result.exit_code == 2
    assert "2 problems found" in result.output
    assert "row 3, column 'streaks': blank streaks" in result.output
    assert "row 3, column 'age': 'old' is not a number" in result.output
    relaxed = _invoke(
        "validate", str(manifest), "--tasks", "streaks", "--metadata", "sex,age",
        "--allow-unlabelled", "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert relaxed.exit_code == 0, relaxed.output
    assert "  streaks: absent 2, irregular 1, regular 2" in relaxed.output
    assert "metadata (blank = missing): sex 2 missing, age 1 missing" in relaxed.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["task_counts"] == {"streaks": {"absent": 2, "irregular": 1, "regular": 2}}


def test_validate_names_a_missing_task_column(manifest: Path) -> None:
    result = _invoke("validate", str(manifest), "--tasks", "streaks, dots", "--metadata", "sex")
    assert result.exit_code == 2
    assert "column 'streaks': missing column named in data.tasks (--tasks)" in result.output
    assert "column 'sex': missing column named in data.metadata (--metadata)" in result.output


def test_validate_refuses_a_bad_kind(manifest: Path) -> None:
    _add_columns(manifest, age=["1"] * 6)
    result = _invoke("validate", str(manifest), "--metadata", "age:number")
    assert result.exit_code == 2
    assert "a kind is one of categorical, numeric" in result.output
    assert "Traceback" not in result.output


def test_import_derm7pt_without_criteria_prints_no_config_lines(tmp_path: Path) -> None:
    release = _release(tmp_path / "derm")
    result = _invoke("import", "derm7pt", str(release), "--out", str(release / "m.csv"))
    assert result.exit_code == 0, result.output
    assert "criteria: none in meta.csv" in result.output
    assert "data.tasks=" not in result.output and "--tasks" not in result.output
