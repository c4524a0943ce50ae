"""`agfnet explain`: Grad-CAM family and attention maps of a checkpoint, with focus scores."""

from __future__ import annotations

from pathlib import Path

import typer

from agfnet.constants import MODALITIES
from agfnet.errors import UserError


def _parse_layers(specs: list[str]) -> dict[str, list[str]] | None:
    """`--layer clinical=encoders.backbones.clinical.layer3` (repeatable) -> dict."""
    if not specs:
        return None
    layers: dict[str, list[str]] = {}
    for spec in specs:
        modality, sep, name = spec.partition("=")
        if not sep or modality.strip() not in MODALITIES or not name.strip():
            raise UserError(
                f"--layer {spec!r}: write MODALITY=DOTTED.NAME with MODALITY clinical or "
                "ultrasound, e.g. --layer clinical=encoders.backbones.clinical.layer4"
            )
        layers.setdefault(modality.strip(), []).append(name.strip())
    return layers


def explain(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="best.ckpt of `agfnet train`."),
    data: Path = typer.Option(..., "--data", help="Manifest CSV (labels optional)."),
    out: Path = typer.Option(..., "--out", help="Folder to write the explanations to."),
    n: int = typer.Option(16, "--n", help="Number of rows to explain (first of the split)."),
    method: str = typer.Option(
        "layercam", "--method", help="layercam (default), gradcam or gradcam++."
    ),
    split: str = typer.Option(
        "test",
        "--split",
        help="Rows of this `split` value when the manifest has the column; `all` for every row.",
    ),
    attention: bool = typer.Option(
        False, "--attention", help="Also draw and score AGFNet's ALL attention maps."
    ),
    layer: list[str] = typer.Option(
        [],
        "--layer",
        help="Target layer MODALITY=DOTTED.NAME (repeatable); default: each encoder's stride-8 "
        "and stride-16 stages.",
    ),
    batch_size: int = typer.Option(8, "--batch-size", help="Rows explained per pass."),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1 (default: GPU if present)."
    ),
) -> None:
    """Explain predictions: overlays, explanations.csv, focus.json and index.md/.html in OUT.

    Each map explains the predicted class, per modality. With lesion masks (manifest
    columns clinical_mask / ultrasound_mask, or the synthetic benchmark's masks/ folder)
    the energy inside the lesion and the pointing game are scored, against chance.
    Default maps: Layer-CAM on each encoder's stride-8 and stride-16 stages.

    Example: agfnet explain --checkpoint runs/t/checkpoints/best.ckpt --data s/manifest.csv --out ex
    """
    from agfnet.explain.run import run_explain

    summary = run_explain(
        checkpoint,
        data,
        out,
        n=n,
        method=method,
        split=None if split == "all" else split,
        attention=attention,
        layers=_parse_layers(layer),
        batch_size=batch_size,
        device=device,
        progress=True,
    )
    typer.echo(f"{summary['n']} rows explained; index: {out / 'index.md'}")
    for kind, by_modality in summary["focus"].items():
        for m, s in by_modality.items():
            energy = "n/a" if s["energy_inside"] is None else f"{s['energy_inside']:.3f}"
            hits = "n/a" if s["pointing_game"] is None else f"{s['pointing_game']:.3f}"
            lift = "n/a" if s["lift"] is None else f"{s['lift']:.2f}x"
            typer.echo(
                f"{kind} {m}: energy inside {energy} (chance {s['mask_fraction']:.3f}, "
                f"lift {lift}, above chance on {s['rows_above_chance']} of {s['n']} rows: "
                f"{s['verdict']}), pointing game {hits}"
            )
