"""Task and metadata columns of a manifest: parsing, row-by-row errors with their fix, defaults."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from agfnet.data.manifest import read_manifest, validate_manifest
from agfnet.errors import ManifestError, UserError

# Values by row (1-based row = index + 1) for the 12 rows of `paired_dir`.
STREAKS = ["absent", "regular", "irregular"] * 4
NETWORK = ["typical", "atypical"] * 6
ELEVATION = ["flat", "palpable", ""] * 4
AGE = [str(30 + i) for i in range(12)]
KW = {"tasks": ["streaks", "pigment_network"], "metadata": ["elevation", "age"]}


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _write(root: Path, rows: list[dict[str, str]]) -> Path:
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "manifest.csv"


@pytest.fixture
def tasks_dir(paired_dir: Path) -> Path:
    """`paired_dir` with task columns streaks, pigment_network and metadata elevation, age."""
    rows = _rows(paired_dir)
    for i, r in enumerate(rows):
        r.update(streaks=STREAKS[i], pigment_network=NETWORK[i])
        r.update(elevation=ELEVATION[i], age=AGE[i])
    _write(paired_dir, rows)
    return paired_dir


def _edit(root: Path, index: int, **cells: str) -> Path:
    rows = _rows(root)
    rows[index].update(cells)
    return _write(root, rows)


def test_tasks_and_metadata_are_read(tasks_dir: Path) -> None:
    m = read_manifest(tasks_dir / "manifest.csv", **KW)
    assert m.tasks == ["streaks", "pigment_network"]
    assert m.task_classes == {
        "streaks": ["absent", "irregular", "regular"],  # sorted values without a vocabulary
        "pigment_network": ["atypical", "typical"],
    }
    assert m.metadata_fields == ["elevation", "age"]
    row = m.rows[1]
    assert row.tasks == {"streaks": "regular", "pigment_network": "atypical"}
    assert row.task_targets == (2, 0)
    assert row.metadata == {"elevation": "palpable", "age": "31"}
    assert m.rows[2].metadata["elevation"] == ""  # blank = missing, not a problem
    assert row.extra["streaks"] == "regular"  # extra still holds every other column


def test_fixed_vocabulary_keeps_its_order(tasks_dir: Path) -> None:
    vocab = {"streaks": ["absent", "regular", "irregular"], "other": ["x"]}  # other: not a task
    m = read_manifest(tasks_dir / "manifest.csv", task_classes=vocab, **KW)
    assert m.task_classes["streaks"] == ["absent", "regular", "irregular"]
    assert m.task_classes["pigment_network"] == ["atypical", "typical"]
    assert [r.task_targets[0] for r in m.rows[:3]] == [0, 1, 2]


def test_without_tasks_rows_and_manifests_are_as_before(tasks_dir: Path) -> None:
    m = read_manifest(tasks_dir / "manifest.csv")
    assert (m.tasks, m.task_classes, m.metadata_fields) == ([], {}, [])
    row = m.rows[0]
    assert (row.tasks, row.task_targets, row.metadata) == ({}, (), {})
    assert row.extra["streaks"] == "absent"
    report = validate_manifest(tasks_dir / "manifest.csv", check_images=False)
    assert "task_counts" not in report.to_dict() and "metadata_missing" not in report.to_dict()
    assert not any(line.startswith(("tasks", "metadata")) for line in report.summary_lines())


def test_unknown_task_value_with_a_fixed_vocabulary(tasks_dir: Path) -> None:
    _edit(tasks_dir, 4, streaks="Regular")
    _edit(tasks_dir, 7, streaks="dotted")
    vocab = {"streaks": ["absent", "regular", "irregular"]}
    with pytest.raises(ManifestError) as info:
        read_manifest(tasks_dir / "manifest.csv", task_classes=vocab, **KW)
    message = str(info.value)
    assert (
        "row 5, column 'streaks': unknown streaks value 'Regular' (did you mean 'regular'? "
        "names are case-sensitive); expected one of: absent, regular, irregular "
        "(data.task_classes.streaks)." in message
    )
    assert "row 8, column 'streaks': unknown streaks value 'dotted'" in message
    assert [(p.row, p.column) for p in info.value.problems] == [(5, "streaks"), (8, "streaks")]
    # Without a vocabulary any value goes.
    assert read_manifest(tasks_dir / "manifest.csv", **KW).rows[7].tasks["streaks"] == "dotted"


def test_blank_task_value_where_labels_are_required(tasks_dir: Path) -> None:
    _edit(tasks_dir, 2, pigment_network=" ")
    with pytest.raises(ManifestError, match=r"row 3, column 'pigment_network': blank") as info:
        read_manifest(tasks_dir / "manifest.csv", **KW)
    assert "fill it in, or leave 'pigment_network' out of data.tasks" in str(info.value)
    m = read_manifest(tasks_dir / "manifest.csv", require_labels=False, **KW)
    assert m.rows[2].tasks["pigment_network"] is None
    assert m.rows[2].task_targets == (m.task_classes["streaks"].index("irregular"), -1)


def test_numeric_metadata_must_be_a_number(tasks_dir: Path) -> None:
    _edit(tasks_dir, 3, age="forty")
    _edit(tasks_dir, 9, age="nan")
    _edit(tasks_dir, 10, age="")  # blank: missing
    kinds = {"age": "numeric"}
    report = validate_manifest(
        tasks_dir / "manifest.csv", metadata_kinds=kinds, check_images=False, **KW
    )
    assert [(p.row, p.column) for p in report.problems] == [(4, "age"), (10, "age")]
    assert str(report.problems[0]) == (
        "row 4, column 'age': 'forty' is not a number, but 'age' is numeric metadata "
        "(data.metadata_kinds): write a number such as 42 or 0.5, or leave the cell blank "
        "for missing."
    )
    # Undeclared, the column is categorical: any text goes.
    assert validate_manifest(tasks_dir / "manifest.csv", check_images=False, **KW).ok


def test_a_named_column_absent_is_a_file_error(tasks_dir: Path) -> None:
    with pytest.raises(ManifestError) as info:
        read_manifest(tasks_dir / "manifest.csv", tasks=["streaks", "dots"], metadata=["sex"])
    problems = info.value.problems
    assert [(p.row, p.column) for p in problems] == [(None, "dots"), (None, "sex")]
    assert "missing column named in data.tasks (--tasks)" in problems[0].reason
    assert "Add the column, or leave 'dots' out of data.tasks." in problems[0].reason
    assert "missing column named in data.metadata (--metadata)" in problems[1].reason
    with pytest.raises(ManifestError):  # never skipped
        read_manifest(tasks_dir / "manifest.csv", tasks=["dots"], skip_bad_rows=tasks_dir / "s")


def test_bad_rows_can_be_skipped(tasks_dir: Path) -> None:
    _edit(tasks_dir, 0, streaks="")
    m = read_manifest(tasks_dir / "manifest.csv", skip_bad_rows=tasks_dir / "skipped.csv", **KW)
    assert [r.row for r in m.rows] == list(range(2, 13))
    with open(tasks_dir / "skipped.csv", newline="") as f:
        assert [(r["row"], r["column"]) for r in csv.DictReader(f)] == [("1", "streaks")]


def test_summary_counts_task_values_and_blank_metadata(tasks_dir: Path) -> None:
    vocab = {"streaks": ["absent", "regular", "irregular", "dotted"]}
    report = validate_manifest(
        tasks_dir / "manifest.csv", task_classes=vocab, check_images=False, **KW
    )
    assert report.task_counts == {
        "streaks": {"absent": 4, "regular": 4, "irregular": 4, "dotted": 0},
        "pigment_network": {"atypical": 6, "typical": 6},
    }
    assert report.metadata_missing == {"elevation": 4, "age": 0}
    lines = report.summary_lines()
    assert "tasks (2):" in lines
    assert "  streaks: absent 4, regular 4, irregular 4, dotted 0" in lines
    assert "metadata (blank = missing): elevation 4 missing, age 0 missing" in lines
    assert report.to_dict()["task_counts"] == report.task_counts


def test_names_match_the_header_case_insensitively(tasks_dir: Path) -> None:
    m = read_manifest(tasks_dir / "manifest.csv", tasks=[" Streaks"], metadata=["AGE"])
    assert m.tasks == ["streaks"] and m.metadata_fields == ["age"]


def test_declared_columns_are_not_taken_for_misspellings(tasks_dir: Path) -> None:
    rows = _rows(tasks_dir)
    for r in rows:
        r["patient"] = r.pop("patient_id")
    _write(tasks_dir, rows)
    report = validate_manifest(tasks_dir / "manifest.csv", check_images=False)
    assert "did you mean 'patient_id'" in report.problems[0].reason
    assert validate_manifest(tasks_dir / "manifest.csv", metadata=["patient"]).ok


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tasks": ["streaks"], "metadata": ["Streaks"]}, r"in both data\.tasks and data\.meta"),
        ({"tasks": ["label"]}, r"reserved: \['label'\]"),
        ({"tasks": ["a", "a"]}, r"repeated: \['a'\]"),
        ({"metadata": [""]}, r"\(blank\)"),
        ({"tasks": "streaks"}, r"data\.tasks must be a list"),
        ({"tasks": ["streaks"], "task_classes": {"streaks": []}}, r"data\.task_classes\.streaks"),
        ({"metadata": ["age"], "metadata_kinds": {"age": "number"}}, r"age: 'number'"),
    ],
)
def test_bad_arguments_are_user_errors(tasks_dir: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        validate_manifest(tasks_dir / "manifest.csv", **kwargs)
