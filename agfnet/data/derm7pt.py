"""Import the Derm7pt release (clinical + dermoscopic pairs, Kawahara et al., IEEE JBHI 2019).

The release cannot be downloaded by agfnet (it needs registration); the user points the
importer at a copy. The result is an ordinary paired manifest: the clinical photograph in
`clinical`, the dermoscopic image in the second slot, `ultrasound` (Derm7pt has no
ultrasound; the second modality is dermoscopy), the usual five-class grouping in `label`,
the official split in `split` and the case number in `lesion_id`. The manifest goes into
the release folder by default, so its image paths are relative to its folder and the
data moves with it. Outputs should call the second image dermoscopic: train with
`MODALITY_OVERRIDE` (the config key `data.modality_names`), which the importer prints.

Cases whose clinical image is missing in the release (`clinic == derm`: the dermoscopic
image was put in both columns) get a blank `clinical` cell and `flag =
clinical_missing`, so they are treated as a missing modality, never as a pair.

The seven criteria of the seven-point checklist become task columns, grouped as the
derm7pt package's `Derm7PtDatasetGroupInfrequent` groups them (TFormer uses the same
groups): `CRITERIA`. The release's `seven_point_score` and the metadata columns
(`METADATA_COLUMNS`) are copied as they are; `TRAIN_METADATA` are those to train on.
"""

from __future__ import annotations

import csv
import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agfnet.errors import UserError
from agfnet.fileio import write_rows_csv

CLASSES = ("BCC", "MEL", "MISC", "NEV", "SK")

#: Every `diagnosis` value of the release and its group (Kawahara's `GroupInfrequent`).
DIAGNOSIS_GROUPS: dict[str, str] = {
    "basal cell carcinoma": "BCC",
    **dict.fromkeys(
        [
            "nevus",
            "blue nevus",
            "clark nevus",
            "combined nevus",
            "congenital nevus",
            "dermal nevus",
            "recurrent nevus",
            "reed or spitz nevus",
        ],
        "NEV",
    ),
    **dict.fromkeys(
        [
            "melanoma",
            "melanoma (in situ)",
            "melanoma (less than 0.76 mm)",
            "melanoma (0.76 to 1.5 mm)",
            "melanoma (more than 1.5 mm)",
            "melanoma metastasis",
        ],
        "MEL",
    ),
    **dict.fromkeys(
        ["dermatofibroma", "lentigo", "melanosis", "miscellaneous", "vascular lesion"], "MISC"
    ),
    "seborrheic keratosis": "SK",
}


def _groups(**groups: tuple[str, ...]) -> dict[str, str]:
    """Release value -> group, from group=(release values, ...); each group is a value too."""
    return {v: group for group, values in groups.items() for v in (group, *values)}


#: Every value of each criterion in the release -> its group (`Derm7PtDatasetGroupInfrequent`),
#: in the checklist order of the release's columns.
CRITERIA: dict[str, dict[str, str]] = {
    "pigment_network": _groups(absent=(), typical=(), atypical=()),
    "streaks": _groups(absent=(), regular=(), irregular=()),
    "pigmentation": _groups(
        absent=(),
        regular=("diffuse regular", "localized regular"),
        irregular=("diffuse irregular", "localized irregular"),
    ),
    "regression_structures": _groups(
        absent=(), present=("blue areas", "white areas", "combinations")
    ),
    "dots_and_globules": _groups(absent=(), regular=(), irregular=()),
    "blue_whitish_veil": _groups(absent=(), present=()),
    "vascular_structures": _groups(
        absent=(),
        regular=("arborizing", "comma", "hairpin", "within regression", "wreath"),
        irregular=("dotted", "linear irregular"),
    ),
}
#: Each criterion's groups, in the package's order (a fixed `data.task_classes`).
TASK_CLASSES: dict[str, list[str]] = {
    name: list(dict.fromkeys(groups.values())) for name, groups in CRITERIA.items()
}
SCORE_COLUMN = "seven_point_score"
#: The release's metadata columns, copied as they are (blank = missing).
METADATA_COLUMNS = ("elevation", "location", "sex", "management", "level_of_diagnostic_difficulty")
#: The metadata to train on by default (`management` is decided with the diagnosis, and
#: the difficulty is an annotation of the case, not of the patient).
TRAIN_METADATA = ("elevation", "location", "sex")

META_COLUMNS = ("case_num", "diagnosis", "clinic", "derm", "notes")
INDEX_FILES = {"train": "train_indexes.csv", "val": "valid_indexes.csv", "test": "test_indexes.csv"}
MANIFEST_COLUMNS = (
    "clinical",
    "ultrasound",
    "label",
    "lesion_id",
    "split",
    "diagnosis",
    "flag",
    *CRITERIA,
    SCORE_COLUMN,
    *METADATA_COLUMNS,
)
FLAG_CLINICAL_MISSING = "clinical_missing"
#: The manifest's name inside the release folder when no other is given.
DEFAULT_MANIFEST = "derm7pt.csv"

#: How outputs should name Derm7pt's images: the second slot holds the dermoscopic image.
MODALITY_NAMES = {"clinical": "Clinical photograph", "ultrasound": "Dermoscopic image"}
#: The `agfnet train` override that stores `MODALITY_NAMES` in the checkpoint.
MODALITY_OVERRIDE = f"data.modality_names.ultrasound={MODALITY_NAMES['ultrasound']}"
#: The config key that lets a fusion model train on the cases without a clinical image.
DROPOUT_KEY = "model.overrides.modality_dropout"


@dataclass
class ImportSummary:
    """What `import_derm7pt` wrote.

    Attributes:
        manifest: the manifest written.
        release: the `release_v0` folder read.
        rows: cases written.
        class_counts: cases per class.
        split_counts: cases per split.
        flagged: cases with no clinical image (`flag = clinical_missing`).
        flagged_cases: their case numbers.
        relative: whether every image path is relative to the manifest's folder (it lies
            above the images), so that the folder can move; else they are absolute.
        modality_names: how outputs should name the two images (`MODALITY_NAMES`).
        tasks: the criteria written as task columns (those of `CRITERIA` the release's
            meta.csv has: all seven in the release).
        metadata: the metadata columns to train on (`TRAIN_METADATA` the release has).
        copied: every column copied as it is (`seven_point_score`, `METADATA_COLUMNS`).
    """

    manifest: Path
    release: Path
    rows: int
    class_counts: dict[str, int]
    split_counts: dict[str, int]
    flagged: int
    flagged_cases: list[str] = field(default_factory=list)
    relative: bool = True
    modality_names: dict[str, str] = field(default_factory=lambda: dict(MODALITY_NAMES))
    tasks: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)

    def config_lines(self) -> list[str]:
        """Returns: the config overrides that train on the criteria and the metadata
        (`data.tasks=[...]`, `data.metadata=[...]`); none for what the release lacks."""
        lines = [f"data.tasks=[{','.join(self.tasks)}]"] if self.tasks else []
        return lines + ([f"data.metadata=[{','.join(self.metadata)}]"] if self.metadata else [])

    def validate_flags(self) -> list[str]:
        """Returns: the `agfnet validate` flags that check the criteria and the metadata."""
        flags = ["--tasks", ",".join(self.tasks)] if self.tasks else []
        return flags + (["--metadata", ",".join(self.metadata)] if self.metadata else [])

    def lines(self) -> list[str]:
        """Returns: the human-readable summary."""
        paths = (
            "image paths relative to its folder: move the folder as a whole"
            if self.relative
            else f"image paths absolute, as the manifest is not in {self.release.parent} or "
            "below; write it there (e.g. the default --out) so that the data can move with it"
        )
        return [
            f"wrote {self.manifest} ({self.rows} cases from {self.release}; {paths})",
            "classes: " + ", ".join(f"{c} {n}" for c, n in self.class_counts.items()),
            "splits: " + ", ".join(f"{s} {n}" for s, n in self.split_counts.items()),
            f"flagged (clinical image missing, clinical cell left blank): {self.flagged}",
            "images: "
            + ", ".join(f"{m} = {n}" for m, n in self.modality_names.items())
            + " (stored in the checkpoint by the train override below)",
            (
                f"criteria (task columns, grouped as derm7pt's GroupInfrequent): "
                f"{', '.join(self.tasks)}"
                if self.tasks
                else "criteria: none in meta.csv, so the manifest has the diagnosis only"
            ),
            f"copied: {', '.join(self.copied) or '-'}",
        ]

    def train_command(self, config: str = "lite", out: str = "runs/derm7pt-lite") -> str:
        """The `agfnet train` command for this manifest on its official split, with the
        override naming the second image dermoscopic (and modality dropout, which the
        cases without a clinical image need).

        Args:
            config: the preset or YAML file.
            out: the run folder.

        Returns:
            A shell command line.
        """
        overrides = [MODALITY_OVERRIDE]
        if self.flagged:
            overrides.append(f"{DROPOUT_KEY}=0.1")
        words = ["agfnet", "train", "--data", str(self.manifest), "--config", config]
        return " ".join(shlex.quote(w) for w in [*words, "--out", out, *overrides])


def _release_dir(path: Path) -> Path:
    for base in (path, path / "release_v0"):
        if (base / "meta" / "meta.csv").is_file():
            return base
    raise UserError(
        f"{path}: not a Derm7pt release: expected meta/meta.csv in it or in "
        f"{path / 'release_v0'}. Point to the unpacked release (the folder holding "
        "release_v0, or release_v0 itself)."
    )


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise UserError(f"{path} is missing: the Derm7pt release is incomplete; unpack it again.")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    return header, rows


def _normal(value: str) -> str:
    """A release value compared as the package compares it: lower-case, single spaces."""
    return " ".join(value.lower().split())


def _criteria_problems(meta: list[dict[str, str]], tasks: list[str]) -> list[str]:
    """One problem per criterion with values outside its groups (blank cells stay blank)."""
    problems = []
    for name in tasks:
        unknown = Counter(
            r[name] for r in meta if r[name] and _normal(r[name]) not in CRITERIA[name]
        )
        if unknown:
            problems.append(
                f"unknown {name} value(s): "
                + ", ".join(f"'{v}' ({n} cases)" for v, n in sorted(unknown.items()))
                + f"; known: {', '.join(CRITERIA[name])}"
            )
    return problems


def _find_image(images: Path, rel: str, cache: dict[Path, dict[str, str]]) -> Path | None:
    """The file `images/rel`, matching the name case-insensitively (extensions vary in case)."""
    path = images / rel
    if path.is_file():
        return path
    folder = path.parent
    if folder not in cache:
        try:
            cache[folder] = {name.lower(): name for name in os.listdir(folder)}
        except OSError:
            cache[folder] = {}
    name = cache[folder].get(path.name.lower())
    return folder / name if name else None


def _manifest_path(image: Path, out_dir: Path) -> str:
    """Path relative to the manifest's folder when it stays inside it, else absolute
    (a manifest may not point above its folder: `agfnet.data.manifest.paths`)."""
    try:
        rel = os.path.relpath(image, out_dir)
    except ValueError:  # another drive on Windows
        return str(image)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return str(image)
    return Path(rel).as_posix()


def import_derm7pt(
    release_dir: str | os.PathLike,
    out_csv: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
) -> ImportSummary:
    """Write a paired manifest for a local copy of the Derm7pt release.

    Args:
        release_dir: the unpacked release: the folder holding `release_v0`, or
            `release_v0` itself (with `images/` and `meta/`).
        out_csv: the manifest to write; None: `release_dir/derm7pt.csv`. Image paths
            in it are relative to its folder when the images lie under that folder (the
            folder and the manifest can then move together), else absolute.
        overwrite: replace an existing `out_csv`.

    Returns:
        An `ImportSummary`.

    Raises:
        UserError: not a release, a file of it missing, an unknown diagnosis, bad split
            indexes, image files missing, or `out_csv` exists (every problem is listed).
    """
    out_csv = Path(release_dir) / DEFAULT_MANIFEST if out_csv is None else Path(out_csv)
    if out_csv.exists() and not overwrite:
        raise UserError(f"{out_csv} exists; choose another --out or pass --overwrite.")
    release = _release_dir(Path(release_dir)).resolve()
    meta_path = release / "meta" / "meta.csv"
    header, meta = _read_csv(meta_path)
    absent = [c for c in META_COLUMNS if c not in header]
    if absent:
        raise UserError(
            f"{meta_path}: missing column(s) {absent}; this is not the Derm7pt meta.csv "
            "(expected case_num, diagnosis, ..., clinic, derm, case_id, notes)."
        )

    problems: list[str] = []
    split_of: dict[int, str] = {}
    for split, name in INDEX_FILES.items():
        index_path = release / "meta" / name
        idx_header, idx_rows = _read_csv(index_path)
        if "indexes" not in idx_header:
            problems.append(f"{index_path}: no 'indexes' column (header: {idx_header})")
            continue
        for rec in idx_rows:
            value = rec["indexes"]
            if not value.isdigit() or int(value) >= len(meta):
                problems.append(
                    f"{index_path}: index '{value}' is not a row position 0..{len(meta) - 1}"
                )
            elif int(value) in split_of:
                problems.append(f"{index_path}: index {value} is already in {split_of[int(value)]}")
            else:
                split_of[int(value)] = split
    unsplit = [meta[i]["case_num"] for i in range(len(meta)) if i not in split_of]
    if unsplit:
        problems.append(f"cases {unsplit[:10]} are in none of the index files")

    tasks = [c for c in CRITERIA if c in header]
    problems += _criteria_problems(meta, tasks)
    unknown = Counter(
        r["diagnosis"] for r in meta if _normal(r["diagnosis"]) not in DIAGNOSIS_GROUPS
    )
    if unknown:
        problems.append(
            "unknown diagnosis name(s): "
            + ", ".join(f"'{d}' ({n} cases)" for d, n in sorted(unknown.items()))
            + f"; known: {', '.join(sorted(DIAGNOSIS_GROUPS))}"
        )

    copied = [c for c in (SCORE_COLUMN, *METADATA_COLUMNS) if c in header]
    images = release / "images"
    out_dir = out_csv.resolve().parent
    cache: dict[Path, dict[str, str]] = {}
    rows: list[dict[str, str]] = []
    flagged: list[str] = []
    missing_files: list[str] = []
    for i, rec in enumerate(meta):
        found: dict[str, Path | None] = {}
        for column in ("clinic", "derm"):
            found[column] = _find_image(images, rec[column], cache) if rec[column] else None
            if found[column] is None:
                missing_files.append(f"case {rec['case_num']}: {column} '{rec[column]}'")
        clinical_missing = rec["clinic"] == rec["derm"]
        if clinical_missing:
            flagged.append(rec["case_num"])
        rows.append(
            {
                "clinical": ""
                if clinical_missing or found["clinic"] is None
                else _manifest_path(found["clinic"], out_dir),
                "ultrasound": _manifest_path(found["derm"], out_dir) if found["derm"] else "",
                "label": DIAGNOSIS_GROUPS.get(_normal(rec["diagnosis"]), ""),
                "lesion_id": rec["case_num"],
                "split": split_of.get(i, ""),
                "diagnosis": rec["diagnosis"],
                "flag": FLAG_CLINICAL_MISSING if clinical_missing else "",
                **{c: CRITERIA[c].get(_normal(rec[c]), "") for c in tasks},
                **{c: rec[c] for c in copied},
            }
        )
    if missing_files:
        problems.append(
            f"{len(missing_files)} image file(s) not found under {images}: "
            + "; ".join(missing_files[:10])
            + (" ..." if len(missing_files) > 10 else "")
        )
    if problems:
        raise UserError(
            f"cannot import {release}:\n  "
            + "\n  ".join(problems)
            + "\nFix: use an unmodified copy of the Derm7pt release (unpack it again)."
        )

    columns = [c for c in MANIFEST_COLUMNS if c in rows[0]] if rows else list(MANIFEST_COLUMNS)
    write_rows_csv(out_csv, columns, rows)
    labels = Counter(r["label"] for r in rows)
    splits = Counter(r["split"] for r in rows)
    return ImportSummary(
        manifest=out_csv,
        release=release,
        rows=len(rows),
        class_counts={c: labels.get(c, 0) for c in CLASSES},
        split_counts={s: splits.get(s, 0) for s in INDEX_FILES},
        flagged=len(flagged),
        flagged_cases=flagged,
        relative=not any(
            Path(r[m]).is_absolute() for r in rows for m in ("clinical", "ultrasound") if r[m]
        ),
        tasks=tasks,
        metadata=[c for c in TRAIN_METADATA if c in copied],
        copied=copied,
    )
