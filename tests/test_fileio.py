"""`agfnet.fileio`: atomic text and JSON writes, folder replacement and staged folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agfnet.fileio import (
    atomic_write_text,
    replace_path,
    staged_folder,
    write_json,
    write_rows_csv,
)


def test_atomic_write_text_creates_the_folder_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "sub" / "a.txt", "one\r\ntwo\n")
    assert path.read_bytes() == b"one\r\ntwo\n"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_write_json_is_indented_and_stringifies_what_json_cannot_hold(tmp_path: Path) -> None:
    path = write_json(tmp_path / "a.json", {"path": tmp_path, "n": 1})
    assert path.read_text().endswith("}\n")
    assert json.loads(path.read_text()) == {"path": str(tmp_path), "n": 1}


def test_replace_path_swaps_a_folder_for_another(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "stale.txt").write_text("x")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "fresh.txt").write_text("y")
    assert replace_path(tmp_path / "new", tmp_path / "old") == tmp_path / "old"
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["fresh.txt"]


def test_replace_path_moves_a_file_onto_a_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("new")
    (tmp_path / "b").write_text("old")
    replace_path(tmp_path / "a", tmp_path / "b")
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
    assert (tmp_path / "b").read_text() == "new"


def test_staged_folder_appears_only_when_the_block_succeeds(tmp_path: Path) -> None:
    dest = tmp_path / "parent" / "out"
    with staged_folder(dest) as stage:
        assert stage.parent == dest.parent and stage.name.startswith(".out.partial")
        (stage / "a.txt").write_text("a")
        assert not dest.exists()
    assert [p.name for p in dest.iterdir()] == ["a.txt"]
    assert [p.name for p in dest.parent.iterdir()] == ["out"]


def test_staged_folder_replaces_an_earlier_folder(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale.txt").write_text("x")
    with staged_folder(dest) as stage:
        (stage / "fresh.txt").write_text("y")
    assert [p.name for p in dest.iterdir()] == ["fresh.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_an_interrupted_stage_leaves_the_destination_alone(
    tmp_path: Path, error: type[BaseException]
) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("keep")
    with pytest.raises(error), staged_folder(dest) as stage:
        (stage / "half.txt").write_text("half")
        raise error
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (dest / "keep.txt").read_text() == "keep"


def test_write_rows_csv_writes_header_blanks_and_ignores_extra_keys(tmp_path: Path) -> None:
    rows = [{"a": 1, "b": "x,y"}, {"a": 2, "zzz": "ignored"}]
    path = write_rows_csv(tmp_path / "sub" / "t.csv", ["a", "b"], rows)
    assert path.read_bytes() == b'a,b\r\n1,"x,y"\r\n2,\r\n'
    assert [p.name for p in path.parent.iterdir()] == ["t.csv"]
