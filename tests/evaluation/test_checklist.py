"""The seven-point checklist: scores of a hand-made table, the report, its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agfnet.evaluation.checklist import (
    CHECKLIST,
    CHECKLIST_CLASSES,
    CHECKLIST_TASKS,
    MAX_SCORE,
    checklist_report,
    has_checklist,
    predicted_classes,
    seven_point_score,
)

# (the criteria that are not "absent", expected score): each criterion alone at its
# scoring value and at a non-scoring one, then the threshold of 3 from both sides.
TABLE = [
    ({}, 0),
    ({"pigment_network": "atypical"}, 2),
    ({"pigment_network": "typical"}, 0),
    ({"blue_whitish_veil": "present"}, 2),
    ({"vascular_structures": "irregular"}, 2),
    ({"vascular_structures": "regular"}, 0),
    ({"pigmentation": "irregular"}, 1),
    ({"pigmentation": "regular"}, 0),
    ({"streaks": "irregular"}, 1),
    ({"streaks": "regular"}, 0),
    ({"dots_and_globules": "irregular"}, 1),
    ({"dots_and_globules": "regular"}, 0),
    ({"regression_structures": "present"}, 1),
    ({"pigmentation": "irregular", "streaks": "irregular"}, 2),
    ({"pigmentation": "irregular", "streaks": "irregular", "dots_and_globules": "irregular"}, 3),
    ({"pigment_network": "atypical", "regression_structures": "present"}, 3),
    ({"blue_whitish_veil": "present", "vascular_structures": "regular"}, 2),
    ({c.task: c.value for c in CHECKLIST}, 10),
]


def _columns(rows: list[dict[str, str]]) -> dict[str, list[str]]:
    return {t: [r.get(t, "absent") for r in rows] for t in CHECKLIST_TASKS}


def test_the_table_has_the_checklist_weights() -> None:
    major = {(c.task, c.value) for c in CHECKLIST if c.major}
    minor = {(c.task, c.value) for c in CHECKLIST if not c.major}
    assert major == {
        ("pigment_network", "atypical"),
        ("blue_whitish_veil", "present"),
        ("vascular_structures", "irregular"),
    }
    assert minor == {
        ("pigmentation", "irregular"),
        ("streaks", "irregular"),
        ("dots_and_globules", "irregular"),
        ("regression_structures", "present"),
    }
    assert all(c.points == (2 if c.major else 1) for c in CHECKLIST) and MAX_SCORE == 10


def test_scores_of_a_hand_made_table() -> None:
    score = seven_point_score(_columns([r for r, _ in TABLE]))
    assert score.dtype == np.int64
    assert score.tolist() == [s for _, s in TABLE]
    # Further tasks are ignored.
    extra = {**_columns([r for r, _ in TABLE]), "shape": ["x"] * len(TABLE)}
    assert seven_point_score(extra).tolist() == [s for _, s in TABLE]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"streaks": None}, "missing \\['streaks'\\]"),
        ({"streaks": ["absent"]}, "different numbers of rows"),
        ({"streaks": ["absent", "Irregular"]}, "streaks row 1 holds 'Irregular'"),
    ],
)
def test_score_refuses(change: dict, match: str) -> None:
    columns = {**_columns([{}, {}]), **change}
    columns = {t: v for t, v in columns.items() if v is not None}
    with pytest.raises(ValueError, match=match):
        seven_point_score(columns)


def test_has_checklist_needs_the_seven_criteria_as_the_importer_names_them() -> None:
    assert has_checklist(CHECKLIST_CLASSES)
    assert has_checklist({t: sorted(c) for t, c in CHECKLIST_CLASSES.items()})
    # A value never seen (no "regular" vascular structures) is fine; the scoring one is not.
    assert has_checklist({**CHECKLIST_CLASSES, "vascular_structures": ["absent", "irregular"]})
    assert not has_checklist({**CHECKLIST_CLASSES, "vascular_structures": ["absent", "regular"]})
    assert not has_checklist({**CHECKLIST_CLASSES, "streaks": ["absent", "Irregular"]})
    assert not has_checklist({t: c for t, c in CHECKLIST_CLASSES.items() if t != "streaks"})


def test_predicted_classes_are_the_argmax_names() -> None:
    probs = {"streaks": np.array([[0.2, 0.3, 0.5], [0.4, 0.4, 0.2]])}
    classes = {"streaks": ["absent", "regular", "irregular"]}
    assert predicted_classes(probs, classes) == {"streaks": ["irregular", "absent"]}


# Six rows scoring 0, 2, 3, 3, 10, 1; MEL is class 0.
ROWS = [
    {},
    {"blue_whitish_veil": "present"},
    {"pigment_network": "atypical", "streaks": "irregular"},
    {
        "pigmentation": "irregular",
        "dots_and_globules": "irregular",
        "regression_structures": "present",
    },
    {c.task: c.value for c in CHECKLIST},
    {"streaks": "irregular"},
]
LABELS = [1, 0, 0, 1, 0, -1]
PREDS = [1, 0, 1, 1, 0, 0]
RELEASE = [0, 3, "3", "", None, "1"]


def test_report_by_hand() -> None:
    report = checklist_report(_columns(ROWS), PREDS, LABELS, ["MEL", "NEV"], RELEASE)
    assert report["criteria"][0] == {"task": "pigment_network", "value": "atypical", "points": 2}
    assert report["threshold"] == 3 and report["melanoma"] == "MEL" and report["n"] == 6
    assert report["mean_score"] == pytest.approx(19 / 6)
    assert report["score_counts"] == [1, 1, 1, 2, 0, 0, 0, 0, 0, 0, 1]
    # Release scores on rows 0, 1, 2, 5: ours 0 2 3 1, theirs 0 3 3 1.
    assert report["release_agreement"] == {
        "n": 4,
        "exact_agreement": 0.75,
        "mean_abs_difference": 0.25,
        "decision_agreement": 0.75,
    }
    detection = report["melanoma_detection"]
    # Labeled rows 0-4, melanoma at 1, 2, 4. Checklist flags 2, 3, 4; the head flags 1, 4;
    # the release (rows 0-2) flags 1, 2.
    assert detection["checklist"] == {
        "n": 5,
        "sensitivity": 2 / 3,
        "specificity": 0.5,
        "tp": 2,
        "fn": 1,
        "tn": 1,
        "fp": 1,
    }
    assert detection["diagnosis_head"] == {
        "n": 5,
        "sensitivity": 2 / 3,
        "specificity": 1.0,
        "tp": 2,
        "fn": 1,
        "tn": 2,
        "fp": 0,
    }
    assert detection["release_checklist"] == {
        "n": 3,
        "sensitivity": 1.0,
        "specificity": 1.0,
        "tp": 2,
        "fn": 0,
        "tn": 1,
        "fp": 0,
    }
    assert "note" not in report
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_report_threshold_and_without_release() -> None:
    report = checklist_report(_columns(ROWS), PREDS, LABELS, ["MEL", "NEV"], threshold=2)
    assert report["release_agreement"] is None
    assert set(report["melanoma_detection"]) == {"checklist", "diagnosis_head"}
    # At 2, row 1 is flagged too: every melanoma is found.
    assert report["melanoma_detection"]["checklist"]["sensitivity"] == 1.0


@pytest.mark.parametrize(
    ("classes", "labels", "note"),
    [
        (["BCC", "NEV"], LABELS, "'MEL' is not a diagnosis class"),
        (["MEL", "NEV"], [-1] * 6, "no row has a diagnosis label"),
    ],
)
def test_report_without_melanoma_detection_says_why(
    classes: list[str], labels: list[int], note: str
) -> None:
    report = checklist_report(_columns(ROWS), PREDS, labels, classes)
    assert report["melanoma_detection"] is None and note in report["note"]
    assert report["score_counts"][3] == 2


def test_report_refuses_bad_lengths_and_release_scores() -> None:
    with pytest.raises(ValueError, match=r"must both be \(6,\)"):
        checklist_report(_columns(ROWS), PREDS[:5], LABELS, ["MEL", "NEV"])
    with pytest.raises(ValueError, match="release_score has 2 entries"):
        checklist_report(_columns(ROWS), PREDS, LABELS, ["MEL", "NEV"], [1, 2])
    with pytest.raises(ValueError, match="release_score row 1 holds 'high'"):
        checklist_report(_columns(ROWS), PREDS, LABELS, ["MEL", "NEV"], [1, "high", 0, 0, 0, 0])
