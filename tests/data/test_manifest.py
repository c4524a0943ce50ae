"""Manifest reading and validation: every bad-input kind, all reported at once."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from agfnet.data.manifest import ManifestProblem, read_manifest, validate_manifest
from agfnet.errors import ManifestError, UserError


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _rewrite(root: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    header = header or list(rows[0])
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return root / "manifest.csv"


def test_clean_manifest_reads_every_row(paired_dir: Path) -> None:
    m = read_manifest(paired_dir / "manifest.csv")
    assert len(m) == 12
    assert [r.row for r in m.rows] == list(range(1, 13))
    assert m.classes == ["bcc", "mel", "nev"]
    assert m.targets == [i % 3 for i in range(12)]
    assert m.root == paired_dir.resolve()
    first = m.rows[0]
    assert first.clinical == paired_dir.resolve() / "img" / "c0.png"
    assert first.clinical.is_file() and first.ultrasound.is_file()
    assert (first.patient_id, first.lesion_id, first.split) == ("p0", "L0", None)
    assert first.present == (True, True)
    assert not m.has_split
    assert m.class_counts() == {"bcc": 4, "mel": 4, "nev": 4}


def test_config_class_order_is_kept(paired_dir: Path) -> None:
    m = read_manifest(paired_dir / "manifest.csv", classes=["nev", "bcc", "mel", "scc"])
    assert m.classes == ["nev", "bcc", "mel", "scc"]
    assert [m.classes[t] for t in m.targets] == [r.label for r in m.rows]
    assert m.class_counts()["scc"] == 0


def _missing_file(root: Path, rows: list) -> None:
    rows[2]["clinical"] = "img/nothing.png"


def _unreadable(root: Path, rows: list) -> None:
    (root / "img" / "text.png").write_text("hello")
    rows[3]["ultrasound"] = "img/text.png"


def _truncated(root: Path, rows: list) -> None:
    path = root / "img" / "u5.jpg"
    path.write_bytes(path.read_bytes()[:300])


def _escaping(root: Path, rows: list) -> None:
    rows[1]["ultrasound"] = "img/../../outside.jpg"


def _unknown_label(root: Path, rows: list) -> None:
    rows[6]["label"] = "scc"


def _blank_label(root: Path, rows: list) -> None:
    rows[7]["label"] = " "


def _duplicate(root: Path, rows: list) -> None:
    rows[9]["clinical"], rows[9]["ultrasound"] = rows[4]["clinical"], rows[4]["ultrasound"]


def _blank_modality(root: Path, rows: list) -> None:
    rows[10]["clinical"] = ""


def _bad_split(root: Path, rows: list) -> None:
    for r in rows:
        r["split"] = "train"
    rows[8]["split"] = "valid"


def _patient_two_splits(root: Path, rows: list) -> None:
    for r in rows:
        r["split"] = "train"
    rows[11]["split"] = "test"  # patient p5 is rows 11 and 12


BAD_ROWS = [
    (_missing_file, 3, "clinical", r"file not found: .*nothing\.png"),
    (_unreadable, 4, "ultrasound", r"unreadable image: .*text\.png: not an image"),
    (_truncated, 6, "ultrasound", r"unreadable image: .*u5\.jpg: cannot decode.*truncated"),
    (_escaping, 2, "ultrasound", r"path 'img/\.\./\.\./outside\.jpg' escapes the data root"),
    (_unknown_label, 7, "label", r"unknown label 'scc'; expected one of: bcc, mel, nev"),
    (_blank_label, 8, "label", r"blank label"),
    (_duplicate, 10, None, r"duplicate of row 5"),
    (_blank_modality, 11, "clinical", r"blank: the clinical image is missing"),
    (_bad_split, 9, "split", r"bad split value 'valid' \(did you mean 'val'\?\)"),
    (_patient_two_splits, 12, "split", r"patient 'p5' is in split 'test' here but in 'train'"),
]


@pytest.mark.parametrize(("mutate", "row", "column", "reason"), BAD_ROWS)
def test_each_bad_row_kind_is_named_with_row_column_and_reason(
    paired_dir: Path, mutate: Callable, row: int, column: str | None, reason: str
) -> None:
    rows = _rows(paired_dir)
    mutate(paired_dir, rows)
    path = _rewrite(paired_dir, rows, header=list(rows[0]))
    classes = ["bcc", "mel", "nev"]
    with pytest.raises(ManifestError) as info:
        read_manifest(path, classes=classes)
    err = info.value
    assert len(err.problems) == 1, err.problems
    problem = err.problems[0]
    assert (problem.row, problem.column) == (row, column)
    assert re.search(reason, problem.reason), problem.reason
    where = f"row {row}, column '{column}'" if column else f"row {row}"
    assert re.search(re.escape(where) + ": " + reason, str(err)), str(err)
    assert str(err).rstrip().splitlines()[-1].startswith("Fix:")


def test_several_broken_rows_are_all_named_in_one_error(paired_dir: Path) -> None:
    rows = _rows(paired_dir)
    for mutate, *_ in BAD_ROWS[:8]:
        mutate(paired_dir, rows)
    path = _rewrite(paired_dir, rows)
    with pytest.raises(ManifestError) as info:
        read_manifest(path, classes=["bcc", "mel", "nev"])
    expected = {(row, column) for _, row, column, _ in BAD_ROWS[:8]}
    assert {(p.row, p.column) for p in info.value.problems} == expected
    lines = str(info.value).splitlines()
    assert lines[0].endswith("8 problems found:")
    for row, column in expected:
        assert any(line.strip().startswith(f"row {row}") for line in lines), (row, column)
    assert [p.row for p in info.value.problems] == sorted(p.row for p in info.value.problems)


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("clinical,label\na.png,x\n", "ultrasound", r"missing required column"),
        ("clinical,ultrasound,lable\na.png,b.png,x\n", "lable", r"did you mean 'label'\?"),
        ("clinical,ultrasound,label\n", None, r"empty manifest: no data rows"),
        ("", None, r"empty manifest: no header"),
        ("\n\n", None, r"empty manifest: no header"),
        ("clinical,ultrasound,label,label\na,b,c,d\n", "label", r"column appears 2 times"),
        ("clinical,ultrasound,label,patientid\na,b,c,p\n", "patientid", r"'patient_id'"),
    ],
)
def test_file_level_problems(tmp_path: Path, text: str, column: str | None, reason: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    match = [p for p in info.value.problems if p.column == column and p.row is None]
    assert match and re.search(reason, match[0].reason), info.value.problems
    assert re.search(reason, str(info.value))


def test_missing_manifest_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest not found: .*nope\.csv"):
        read_manifest(tmp_path / "nope.csv")


def test_bom_crlf_whitespace_case_and_blank_lines_are_tolerated(paired_dir: Path) -> None:
    rows = _rows(paired_dir)
    lines = [" Clinical , ULTRASOUND ,Label , patient_id"]
    for r in rows[:4]:
        lines.append(f" {r['clinical']} ,{r['ultrasound']},  {r['label']} ,{r['patient_id']}")
    lines.insert(3, ",,,")  # a blank record: skipped, but it keeps its number
    (paired_dir / "manifest.csv").write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    m = read_manifest(paired_dir / "manifest.csv")
    assert [r.row for r in m.rows] == [1, 2, 4, 5]
    assert [r.label for r in m.rows] == [r["label"] for r in rows[:4]]
    assert m.rows[0].clinical == paired_dir.resolve() / rows[0]["clinical"]


def test_absolute_paths_and_extra_columns_are_allowed(paired_dir: Path) -> None:
    rows = _rows(paired_dir)
    for r in rows:
        r["clinical"] = str(paired_dir / r["clinical"])
        r["site"] = "arm"
    m = read_manifest(_rewrite(paired_dir, rows))
    assert m.rows[0].clinical == paired_dir / "img" / "c0.png"
    assert m.rows[0].extra == {"site": "arm"}


def test_case_or_extension_mismatch_in_a_file_name_is_hinted(paired_dir: Path) -> None:
    rows = _rows(paired_dir)
    rows[0]["clinical"] = "img/C0.PNG"
    rows[1]["clinical"] = "img/c1.jpeg"
    rows[2]["clinical"] = "img/c99.png"
    with pytest.raises(ManifestError) as info:
        read_manifest(_rewrite(paired_dir, rows))
    reasons = [p.reason for p in info.value.problems]
    assert reasons[0].endswith("the folder has 'c0.png' (file names are case-sensitive).")
    assert reasons[1].endswith("the folder has 'c1.png' (another extension).")
    assert reasons[2].endswith("c99.png; check the path.")


def test_missing_modality_allowed_only_on_request(paired_dir: Path) -> None:
    rows = _rows(paired_dir)
    rows[0]["clinical"] = ""
    rows[1]["clinical"] = rows[1]["ultrasound"] = ""
    path = _rewrite(paired_dir, rows)
    with pytest.raises(ManifestError) as info:
        read_manifest(path, allow_missing_modality=True)
    assert [(p.row, p.reason) for p in info.value.problems] == [
        (2, "both images are missing; a row needs at least one.")
    ]
    rows[1]["clinical"] = rows[0]["ultrasound"]
    m = read_manifest(_rewrite(paired_dir, rows), allow_missing_modality=True)
    assert m.rows[0].present == (False, True) and m.rows[0].clinical is None


def test_no_check_images_skips_decoding_but_not_existence(paired_dir: Path) -> None:
    (paired_dir / "img" / "u0.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(ManifestError):
        read_manifest(paired_dir / "manifest.csv")
    assert len(read_manifest(paired_dir / "manifest.csv", check_images=False)) == 12
    (paired_dir / "img" / "u1.jpg").unlink()
    with pytest.raises(ManifestError, match=r"row 2, column 'ultrasound': file not found"):
        read_manifest(paired_dir / "manifest.csv", check_images=False)


def test_unlabelled_rows_when_labels_not_required(paired_dir: Path) -> None:
    rows = _rows(paired_dir)
    rows[0]["label"] = ""
    m = read_manifest(_rewrite(paired_dir, rows), require_labels=False)
    assert m.rows[0].label is None and m.rows[0].target == -1
    header = ["clinical", "ultrasound"]
    m = read_manifest(_rewrite(paired_dir, rows, header), require_labels=False)
    assert m.classes == [] and set(m.targets) == {-1}


def test_skip_bad_rows_drops_them_and_writes_what_it_skipped(paired_dir: Path) -> None:
    rows = _rows(paired_dir)
    _missing_file(paired_dir, rows)  # row 3
    _unknown_label(paired_dir, rows)  # row 7 (scc)
    path = _rewrite(paired_dir, rows)
    skipped = paired_dir / "out" / "skipped.csv"
    m = read_manifest(path, classes=["bcc", "mel", "nev"], skip_bad_rows=skipped)
    assert [r.row for r in m.rows] == [1, 2, 4, 5, 6, 8, 9, 10, 11, 12]
    assert m.classes == ["bcc", "mel", "nev"]
    with open(skipped, newline="") as f:
        listed = list(csv.DictReader(f))
    assert [(int(r["row"]), r["column"]) for r in listed] == [(3, "clinical"), (7, "label")]
    assert listed[0]["clinical"] == "img/nothing.png" and "file not found" in listed[0]["reason"]
    assert listed[1]["label"] == "scc"
    # without a class list 'scc' is a class of its own: only row 3 goes
    m = read_manifest(path, skip_bad_rows=skipped)
    assert len(m) == 11 and m.classes == ["bcc", "mel", "nev", "scc"]
    # nothing to skip: the list is still written, header only
    _rewrite(paired_dir, _rows(paired_dir)[:2])
    assert len(read_manifest(paired_dir / "manifest.csv", skip_bad_rows=skipped)) == 2
    assert skipped.read_text().splitlines() == ["row,column,reason,clinical,ultrasound,label"]


def test_skip_bad_rows_never_skips_file_level_problems(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("clinical,label\n")
    with pytest.raises(ManifestError, match="missing required column"):
        read_manifest(tmp_path / "m.csv", skip_bad_rows=tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


def test_validation_report_summary(paired_dir: Path) -> None:
    rows = _rows(paired_dir)
    for i, r in enumerate(rows):
        r["split"] = "test" if i >= 10 else "train"
    rows[0]["ultrasound"] = ""
    rows[2]["patient_id"] = ""
    report = validate_manifest(_rewrite(paired_dir, rows), allow_missing_modality=True)
    assert report.ok and report.problems == []
    assert report.rows == 12
    assert report.classes == ["bcc", "mel", "nev"]
    assert report.class_counts == {"bcc": 4, "mel": 4, "nev": 4}
    assert report.patients == 7  # p0..p5, and row 3 alone
    assert report.missing == {"clinical": 0, "ultrasound": 1}
    assert report.splits == {"train": 10, "val": 0, "test": 2}
    summary = "\n".join(report.summary_lines())
    assert "rows: 12" in summary and "patients: 7" in summary and "ultrasound 1" in summary
    data = report.to_dict()
    assert data["ok"] is True and data["class_counts"]["mel"] == 4


def test_validate_reports_instead_of_raising(paired_dir: Path) -> None:
    rows = _rows(paired_dir)
    _blank_label(paired_dir, rows)
    report = validate_manifest(_rewrite(paired_dir, rows))
    assert not report.ok
    assert report.problems == [ManifestProblem(8, "label", report.problems[0].reason)]
    assert report.to_dict()["problems"][0]["row"] == 8


def test_bad_classes_argument(paired_dir: Path) -> None:
    with pytest.raises(UserError, match="repeated"):
        read_manifest(paired_dir / "manifest.csv", classes=["a", "a"])


def test_quoted_cells_and_unnamed_trailing_columns(paired_dir: Path) -> None:
    rows = _rows(paired_dir)[:2]
    text = "clinical,ultrasound,label,lesion_id,,\n" + "".join(
        f'{r["clinical"]},{r["ultrasound"]},{r["label"]},"L,{i}\nsecond line",,\n'
        for i, r in enumerate(rows)
    )
    (paired_dir / "manifest.csv").write_text(text)
    m = read_manifest(paired_dir / "manifest.csv")
    assert [r.lesion_id for r in m.rows] == ["L,0\nsecond line", "L,1\nsecond line"]
    assert [r.row for r in m.rows] == [1, 2]
