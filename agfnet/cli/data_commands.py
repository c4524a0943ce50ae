"""`agfnet validate` (check a paired manifest) and `agfnet import` (public data sets)."""

from __future__ import annotations

from pathlib import Path

import typer

from agfnet.cli._common import cli_command, write_json


def _split_names(text: str | None) -> list[str]:
    """Comma-separated names -> the non-blank names."""
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def _metadata_flag(text: str | None) -> tuple[list[str], dict[str, str]]:
    """`--metadata a,b:numeric` -> (names, declared kinds)."""
    names, kinds = [], {}
    for item in _split_names(text):
        name, _, kind = item.partition(":")
        names.append(name.strip())
        if kind.strip():
            kinds[name.strip()] = kind.strip()
    return names, kinds


def validate(
    manifest: Path = typer.Argument(..., help="The paired manifest CSV to check."),
    classes: str | None = typer.Option(
        None,
        "--classes",
        help="Comma-separated class names, in order (the config's `classes`); any other "
        "label is an error. Default: any label, sorted by name.",
    ),
    allow_missing_modality: bool = typer.Option(
        False,
        "--allow-missing-modality",
        help="Accept a blank clinical or ultrasound cell (models trained for it).",
    ),
    allow_unlabelled: bool = typer.Option(
        False, "--allow-unlabelled", help="Accept blank labels (a manifest to predict on)."
    ),
    check_images: bool = typer.Option(
        True,
        "--check-images/--no-check-images",
        help="Decode every image in full (catches truncated files); off: check existence only.",
    ),
    frame: int = typer.Option(
        0, "--frame", help="Frame of multi-frame ultrasound files (DICOM cine loops) to decode."
    ),
    json_path: Path | None = typer.Option(
        None, "--json", help="Also write the report (summary and every problem) as JSON here."
    ),
    tasks: str | None = typer.Option(
        None,
        "--tasks",
        help="Comma-separated task columns (the config's `data.tasks`): each must exist, and "
        "a blank value is a problem unless --allow-unlabelled.",
    ),
    metadata: str | None = typer.Option(
        None,
        "--metadata",
        help="Comma-separated metadata columns (the config's `data.metadata`); blank = "
        "missing. NAME:numeric requires a number (or blank) in that column.",
    ),
) -> None:
    """Check a paired manifest and every image it names; list every problem at once.

    Prints rows, classes, rows per class, patients and missing modalities (and the
    values of each task and the blank metadata cells, with --tasks / --metadata) and
    exits 0, or prints every problem (row, column, reason) and exits 2. Writes nothing
    but the optional --json report.

    Example: agfnet validate data/manifest.csv --classes BCC,MEL,NEV,SCC,SK --json report.json
    """
    from rich.console import Console
    from rich.progress import Progress

    from agfnet.data.manifest import validate_manifest
    from agfnet.errors import ManifestError

    names = [c.strip() for c in classes.split(",")] if classes is not None else None
    meta_names, kinds = _metadata_flag(metadata)
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("decoding images", total=None)
        report = validate_manifest(
            manifest,
            classes=names,
            require_labels=not allow_unlabelled,
            allow_missing_modality=allow_missing_modality,
            check_images=check_images,
            frame=frame,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            tasks=_split_names(tasks),
            metadata=meta_names,
            metadata_kinds=kinds,
        )
    if json_path is not None:
        write_json(json_path, report.to_dict())
    if not report.ok:
        raise ManifestError(report.error_message(), report.problems)
    typer.echo("\n".join(report.summary_lines()))
    typer.echo("ok: no problems found")


import_app = typer.Typer(
    help=(
        "Import a public data set as a paired manifest.\n\n"
        "Example: agfnet import derm7pt ~/data/derm7pt"
    ),
    no_args_is_help=True,
)


@import_app.command("derm7pt")
@cli_command
def derm7pt(
    release_dir: Path = typer.Argument(
        ..., help="Unpacked Derm7pt release: the folder holding release_v0, or release_v0."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Manifest CSV to write. Default: RELEASE_DIR/derm7pt.csv, whose image paths are "
        "relative (the folder can move); outside RELEASE_DIR they are absolute.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Write a paired manifest for a local copy of Derm7pt (clinical + dermoscopic images).

    The dermoscopic image fills the `ultrasound` slot; labels are the five groups BCC,
    MEL, MISC, NEV, SK; `split` is the official train/val/test split; cases without a
    clinical image get a blank `clinical` cell and `flag = clinical_missing`. The seven
    checklist criteria become task columns (grouped as derm7pt's GroupInfrequent), with
    `seven_point_score` and the metadata (elevation, location, sex, management,
    level_of_diagnostic_difficulty) copied. Image paths are relative to the manifest's
    folder when it lies above the images (the default --out): the folder then moves as
    a whole.
    Prints the `agfnet train` command whose override (`data.modality_names`) makes the
    web app, predict and the reports call the second image "Dermoscopic image", and
    the two config lines (`data.tasks=[...]`, `data.metadata=[...]`) of the 8-task setting.

    Example: agfnet import derm7pt ~/data/derm7pt   (writes ~/data/derm7pt/derm7pt.csv)
    """
    import shlex

    from agfnet.data.derm7pt import import_derm7pt

    summary = import_derm7pt(release_dir, out, overwrite=overwrite)
    typer.echo("\n".join(summary.lines()))
    words = [str(summary.manifest), "--allow-missing-modality", *summary.validate_flags()]
    typer.echo(f"next: agfnet validate {' '.join(shlex.quote(w) for w in words)}")
    typer.echo(f"then: {summary.train_command()}  (docs/benchmarks/derm7pt.md: presets)")
    if summary.config_lines():
        typer.echo("8 tasks (diagnosis + the seven criteria) with metadata: add to the command")
        typer.echo("\n".join(f"  {line}" for line in summary.config_lines()))
