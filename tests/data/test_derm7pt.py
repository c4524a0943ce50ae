"""Derm7pt importer on a miniature release tree with the real layout and column names."""

from __future__ import annotations

import csv
import shlex
import shutil
from pathlib import Path

import pytest

from agfnet.data.derm7pt import MODALITY_NAMES, MODALITY_OVERRIDE, import_derm7pt
from agfnet.data.manifest import read_manifest, validate_manifest
from agfnet.errors import ManifestError, UserError

META_HEADER = [
    "case_num",
    "diagnosis",
    "seven_point_score",
    "pigment_network",
    "streaks",
    "pigmentation",
    "regression_structures",
    "dots_and_globules",
    "blue_whitish_veil",
    "vascular_structures",
    "level_of_diagnostic_difficulty",
    "elevation",
    "location",
    "sex",
    "management",
    "clinic",
    "derm",
    "case_id",
    "notes",
]

# (diagnosis, clinic, derm, expected label); the files on disk are named as written here.
CASES = [
    ("basal cell carcinoma", "Aal/Aal001.jpg", "Aal/Aal002.JPG", "BCC"),
    ("blue nevus", "NEL/NEL025.JPG", "NEL/Nel026.JPG", "NEV"),
    ("clark nevus", "Fgl/Fgl010.jpg", "Fgl/Fgl011.jpg", "NEV"),
    ("reed or spitz nevus", "Fgl/Fgl020.jpg", "Fgl/Fgl021.jpg", "NEV"),
    ("melanoma (in situ)", "Ggl/Ggl001.jpg", "Ggl/Ggl002.jpg", "MEL"),
    ("melanoma metastasis", "Ggl/Ggl003.jpg", "Ggl/Ggl004.jpg", "MEL"),
    ("melanoma (more than 1.5 mm)", "Ggl/Ggl005.jpg", "Ggl/Ggl005.jpg", "MEL"),  # clinic == derm
    ("dermatofibroma", "Hcl/Hcl001.jpg", "Hcl/Hcl002.jpg", "MISC"),
    ("lentigo", "Hcl/Hcl003.JPG", "Hcl/Hcl004.jpg", "MISC"),
    ("vascular lesion", "Hcl/Hcl005.jpg", "Hcl/Hcl006.jpg", "MISC"),
    ("seborrheic keratosis", "Icl/Icl001.jpg", "Icl/Icl002.jpg", "SK"),
    ("Melanosis", "Icl/Icl003.jpg", "Icl/Icl004.jpg", "MISC"),
]
SPLITS = {
    "train_indexes.csv": [0, 2, 4, 6, 8, 10],
    "valid_indexes.csv": [1, 3, 5],
    "test_indexes.csv": [7, 9, 11],
}
EXPECTED_SPLIT = {0: "train", 2: "train", 4: "train", 6: "train", 8: "train", 10: "train"}
EXPECTED_SPLIT.update({1: "val", 3: "val", 5: "val", 7: "test", 9: "test", 11: "test"})


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def release(tmp_path: Path, make_image) -> Path:
    """tmp_path/derm7pt/release_v0/{images,meta} with the CASES."""
    base = tmp_path / "derm7pt" / "release_v0"
    meta = []
    for i, (diagnosis, clinic, derm, _) in enumerate(CASES):
        for j, rel in enumerate({clinic, derm}):
            name = rel.replace("Nel026.JPG", "Nel026.jpg")  # meta says .JPG, disk has .jpg
            make_image(base / "images" / name, size=(24, 16), seed=10 * i + j)
        note = "clinical image not available" if clinic == derm else ""
        meta.append([i + 1, diagnosis, 1, "absent", "absent", "absent", "absent", "absent",
                     "absent", "absent", "low", "flat", "back", "female", "excision",
                     clinic, derm, "", note])  # fmt: skip
    _write_csv(base / "meta" / "meta.csv", META_HEADER, meta)
    for name, indexes in SPLITS.items():
        _write_csv(base / "meta" / name, ["indexes"], [[i] for i in indexes])
    return tmp_path / "derm7pt"


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_import_writes_the_paired_manifest(release: Path) -> None:
    out = release / "derm7pt.csv"
    summary = import_derm7pt(release, out)
    rows = _read(out)
    assert len(rows) == summary.rows == 12
    assert [r["label"] for r in rows] == [c[3] for c in CASES]
    assert [r["split"] for r in rows] == [EXPECTED_SPLIT[i] for i in range(12)]
    assert [r["lesion_id"] for r in rows] == [str(i + 1) for i in range(12)]
    assert [r["diagnosis"] for r in rows] == [c[0] for c in CASES]
    assert [r["flag"] for r in rows] == [""] * 6 + ["clinical_missing"] + [""] * 5
    assert rows[6]["clinical"] == "" and rows[6]["ultrasound"].endswith("Ggl/Ggl005.jpg")
    assert rows[0]["clinical"] == "release_v0/images/Aal/Aal001.jpg"  # relative to out
    assert rows[0]["ultrasound"] == "release_v0/images/Aal/Aal002.JPG"  # mixed case kept
    assert rows[1]["ultrasound"] == "release_v0/images/NEL/Nel026.jpg"  # found on disk
    for r in rows:
        for col in ("clinical", "ultrasound"):
            assert not r[col] or (out.parent / r[col]).is_file()
    assert summary.flagged == 1 and summary.flagged_cases == ["7"]
    assert summary.class_counts == {"BCC": 1, "MEL": 3, "MISC": 4, "NEV": 3, "SK": 1}
    assert summary.split_counts == {"train": 6, "val": 3, "test": 3}
    assert any("flagged" in line and "1" in line for line in summary.lines())


def test_the_manifest_passes_validation_as_missing_modality(release: Path) -> None:
    out = release / "derm7pt.csv"
    import_derm7pt(release / "release_v0", out)  # release_v0 itself is accepted too
    manifest = read_manifest(out, allow_missing_modality=True)
    assert manifest.classes == ["BCC", "MEL", "MISC", "NEV", "SK"]
    assert manifest.rows[6].present == (False, True)
    assert manifest.rows[6].extra["flag"] == "clinical_missing"
    assert manifest.has_split
    with pytest.raises(ManifestError, match=r"row 7, column 'clinical': blank"):
        read_manifest(out)


def test_manifest_outside_the_release_gets_absolute_paths(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "m.csv"
    summary = import_derm7pt(release, out)
    rows = _read(out)
    assert Path(rows[0]["clinical"]).is_absolute() and Path(rows[0]["clinical"]).is_file()
    assert len(read_manifest(out, allow_missing_modality=True)) == 12
    assert not summary.relative and "image paths absolute" in summary.lines()[0]


@pytest.mark.parametrize("out", [None, "derm7pt.csv", "release_v0/m.csv", "sub/m.csv"])
def test_the_release_moved_with_its_manifest_still_validates(
    release: Path, tmp_path: Path, out: str | None
) -> None:
    # None: the default --out (RELEASE_DIR/derm7pt.csv); "sub/m.csv" lies beside the
    # images, not above them, so its paths are absolute and only it breaks when moved.
    summary = import_derm7pt(release, None if out is None else release / out)
    written = summary.manifest
    assert written == release / (out or "derm7pt.csv")
    cells = [r[c] for r in _read(written) for c in ("clinical", "ultrasound") if r[c]]
    assert summary.relative == all(not Path(c).is_absolute() for c in cells)
    assert summary.relative == (out != "sub/m.csv")
    moved = tmp_path / "moved" / "renamed"
    shutil.move(release, moved)
    assert not release.exists()
    report = validate_manifest(moved / written.relative_to(release), allow_missing_modality=True)
    assert report.ok == summary.relative, report.summary_lines()
    if summary.relative:
        assert report.rows == 12 and "relative to its folder" in summary.lines()[0]


def test_the_summary_names_the_dermoscopic_image_and_the_train_override(release: Path) -> None:
    from agfnet.engine.config import load_config, parse_overrides

    summary = import_derm7pt(release, release / "m.csv")
    assert summary.modality_names == MODALITY_NAMES
    assert MODALITY_NAMES["ultrasound"] == "Dermoscopic image"
    assert any("ultrasound = Dermoscopic image" in line for line in summary.lines())
    command = shlex.split(summary.train_command())
    assert command[:4] == ["agfnet", "train", "--data", str(release / "m.csv")]
    assert MODALITY_OVERRIDE in command
    assert "model.overrides.modality_dropout=0.1" in command  # one case lacks its photograph
    overrides = [w for w in command if "=" in w and not w.startswith("-")]
    assert parse_overrides(overrides)["data"]["modality_names"] == {
        "ultrasound": "Dermoscopic image"
    }
    names = load_config("tiny", [MODALITY_OVERRIDE]).data.modality_names
    assert names == MODALITY_NAMES


def test_existing_output_is_not_overwritten(release: Path) -> None:
    out = release / "m.csv"
    out.write_text("keep")
    with pytest.raises(UserError, match=r"m\.csv exists.*--overwrite"):
        import_derm7pt(release, out)
    assert out.read_text() == "keep"
    import_derm7pt(release, out, overwrite=True)
    assert len(_read(out)) == 12


def _edit_meta(release: Path, column: str, index: int, value: str) -> None:
    path = release / "release_v0" / "meta" / "meta.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    rows[index][column] = value
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=META_HEADER)
        writer.writeheader()
        writer.writerows(rows)


def test_unknown_diagnoses_are_listed(release: Path) -> None:
    _edit_meta(release, "diagnosis", 0, "actinic keratosis")
    _edit_meta(release, "diagnosis", 2, "naevus")
    with pytest.raises(UserError, match=r"'actinic keratosis' \(1 cases\), 'naevus' \(1 cases\)"):
        import_derm7pt(release, release / "m.csv")
    assert not (release / "m.csv").exists()


def test_missing_images_are_listed(release: Path) -> None:
    (release / "release_v0" / "images" / "Icl" / "Icl002.jpg").unlink()
    with pytest.raises(
        UserError, match=r"1 image file\(s\) not found.*case 11: derm 'Icl/Icl002\.jpg'"
    ):
        import_derm7pt(release, release / "m.csv")


def test_bad_index_files(release: Path) -> None:
    meta = release / "release_v0" / "meta"
    _write_csv(meta / "test_indexes.csv", ["indexes"], [[7], [9], [0], [40]])
    with pytest.raises(UserError) as info:
        import_derm7pt(release, release / "m.csv")
    message = str(info.value)
    assert "index 0 is already in train" in message
    assert "index '40' is not a row position 0..11" in message
    assert "cases ['12'] are in none of the index files" in message


def test_not_a_release(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"not a Derm7pt release: expected meta/meta\.csv"):
        import_derm7pt(tmp_path, tmp_path / "m.csv")
    _write_csv(tmp_path / "meta" / "meta.csv", ["case_num", "diagnosis"], [[1, "lentigo"]])
    with pytest.raises(UserError, match=r"missing column\(s\) \['clinic', 'derm', 'notes'\]"):
        import_derm7pt(tmp_path, tmp_path / "m.csv")


def test_the_command_writes_into_the_release_and_prints_the_train_override(
    release: Path,
) -> None:
    from typer.testing import CliRunner

    from agfnet.cli.app import app

    result = CliRunner().invoke(app, ["import", "derm7pt", str(release)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert (release / "derm7pt.csv").is_file()
    assert "relative to its folder" in result.output
    assert f"next: agfnet validate {release / 'derm7pt.csv'}" in result.output
    train = next(line for line in result.output.splitlines() if line.startswith("then: "))
    assert shlex.quote(MODALITY_OVERRIDE) in train and "--config lite" in train


# --- the seven criteria, the score and the metadata ------------------------------------

#: Release value -> expected group of each criterion (Derm7PtDatasetGroupInfrequent).
GROUPINGS = {
    "pigment_network": {"absent": "absent", "typical": "typical", "atypical": "atypical"},
    "streaks": {"absent": "absent", "regular": "regular", "irregular": "irregular"},
    "pigmentation": {
        "absent": "absent",
        "diffuse regular": "regular",
        "localized regular": "regular",
        "diffuse irregular": "irregular",
        "localized irregular": "irregular",
    },
    "regression_structures": {
        "absent": "absent",
        "blue areas": "present",
        "white areas": "present",
        "combinations": "present",
    },
    "dots_and_globules": {"absent": "absent", "regular": "regular", "irregular": "irregular"},
    "blue_whitish_veil": {"absent": "absent", "present": "present"},
    "vascular_structures": {
        "absent": "absent",
        "arborizing": "regular",
        "comma": "regular",
        "hairpin": "regular",
        "within regression": "regular",
        "wreath": "regular",
        "dotted": "irregular",
        "linear irregular": "irregular",
    },
}


def _edit_many(release: Path, edits: dict[str, list[str]]) -> None:
    """Set column -> values of the first len(values) cases in one rewrite of meta.csv."""
    path = release / "release_v0" / "meta" / "meta.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for column, values in edits.items():
        for row, value in zip(rows, values, strict=False):
            row[column] = value
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=META_HEADER)
        writer.writeheader()
        writer.writerows(rows)


def test_the_criteria_are_grouped_as_the_derm7pt_package_does(release: Path) -> None:
    from agfnet.data.derm7pt import CRITERIA, TASK_CLASSES

    assert list(CRITERIA) == list(GROUPINGS)
    _edit_many(release, {name: list(values) for name, values in GROUPINGS.items()})
    _edit_many(release, {"pigmentation": ["absent", "Diffuse  Regular"]})  # case, spaces
    summary = import_derm7pt(release, release / "m.csv")
    rows = _read(release / "m.csv")
    for name, groups in GROUPINGS.items():
        expected = list(groups.values()) + ["absent"] * (12 - len(groups))
        assert [r[name] for r in rows] == expected, name
        assert TASK_CLASSES[name] == list(dict.fromkeys(groups.values()))
    assert summary.tasks == list(GROUPINGS)


def test_score_and_metadata_are_copied(release: Path) -> None:
    from agfnet.data.derm7pt import METADATA_COLUMNS, TRAIN_METADATA

    _edit_many(release, {"seven_point_score": ["3", "0"], "sex": ["male", ""]})
    summary = import_derm7pt(release, release / "m.csv")
    rows = _read(release / "m.csv")
    assert [r["seven_point_score"] for r in rows[:3]] == ["3", "0", "1"]
    assert [r["sex"] for r in rows[:3]] == ["male", "", "female"]
    assert {c: rows[2][c] for c in METADATA_COLUMNS} == {
        "elevation": "flat",
        "location": "back",
        "sex": "female",
        "management": "excision",
        "level_of_diagnostic_difficulty": "low",
    }
    assert summary.metadata == list(TRAIN_METADATA) == ["elevation", "location", "sex"]
    assert summary.copied == ["seven_point_score", *METADATA_COLUMNS]


def test_the_config_lines_read_the_manifest(release: Path) -> None:
    from agfnet.data.derm7pt import TASK_CLASSES

    summary = import_derm7pt(release, release / "m.csv")
    assert summary.config_lines() == [
        "data.tasks=[pigment_network,streaks,pigmentation,regression_structures,"
        "dots_and_globules,blue_whitish_veil,vascular_structures]",
        "data.metadata=[elevation,location,sex]",
    ]
    assert any("criteria (task columns" in line for line in summary.lines())
    manifest = read_manifest(
        release / "m.csv",
        allow_missing_modality=True,
        tasks=summary.tasks,
        task_classes=TASK_CLASSES,
        metadata=summary.metadata,
    )
    assert manifest.task_classes["pigment_network"] == ["absent", "typical", "atypical"]
    assert manifest.rows[0].task_targets == (0,) * 7
    assert manifest.rows[0].metadata == {"elevation": "flat", "location": "back", "sex": "female"}
    assert manifest.rows[0].extra["seven_point_score"] == "1"


def test_unknown_criterion_values_are_listed(release: Path) -> None:
    _edit_meta(release, "streaks", 3, "wavy")
    _edit_meta(release, "blue_whitish_veil", 5, "maybe")
    with pytest.raises(UserError) as info:
        import_derm7pt(release, release / "m.csv")
    message = str(info.value)
    assert "unknown streaks value(s): 'wavy' (1 cases); known: absent, regular, irregular" in (
        message
    )
    assert "unknown blue_whitish_veil value(s): 'maybe' (1 cases)" in message
    assert not (release / "m.csv").exists()


def test_a_release_without_criteria_gives_the_diagnosis_only(release: Path) -> None:
    path = release / "release_v0" / "meta" / "meta.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    header = ["case_num", "diagnosis", "clinic", "derm", "case_id", "notes"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    summary = import_derm7pt(release, release / "m.csv")
    with open(release / "m.csv", newline="") as f:
        assert next(csv.reader(f)) == [
            "clinical", "ultrasound", "label", "lesion_id", "split", "diagnosis", "flag"
        ]  # fmt: skip
    assert (summary.tasks, summary.metadata, summary.config_lines()) == ([], [], [])
    assert any("criteria: none in meta.csv" in line for line in summary.lines())


def test_the_command_prints_the_two_config_lines(release: Path) -> None:
    from typer.testing import CliRunner

    from agfnet.cli.app import app

    result = CliRunner().invoke(app, ["import", "derm7pt", str(release)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "data.metadata=[elevation,location,sex]" in lines
    assert any(line.startswith("data.tasks=[pigment_network,streaks,") for line in lines)
    validate = next(line for line in lines if line.startswith("next: agfnet validate"))
    assert "--tasks pigment_network,streaks," in validate
    assert validate.endswith("--metadata elevation,location,sex")
    words = shlex.split(validate.removeprefix("next: "))
    again = CliRunner().invoke(app, words[1:], env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    assert "tasks (7):" in again.output
