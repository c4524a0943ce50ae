"""The `agfnet explain` job: explain a checkpoint's predictions on manifest rows and write
overlays, explanations.csv, focus.json and an index page (Markdown and HTML)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agfnet.errors import UserError
from agfnet.explain.cam import (
    DEFAULT_METHOD,
    METHODS,
    MIN_MAP_SIDE,
    attention_maps,
    explain_pair,
    layer_names,
    map_sizes,
)
from agfnet.explain.focus import (
    CHANCE_ALPHA,
    focus_scores,
    load_mask,
    mean_scores,
    resize_mask,
)
from agfnet.explain.overlay import denormalise, write_overlay
from agfnet.explain.page import render_html, render_markdown
from agfnet.models.output import MODALITIES
from agfnet.progress import StepBar

__all__ = ["KIND_LABELS", "find_masks", "run_explain"]

#: Display name of each kind of map.
KIND_LABELS: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "layercam": "Layer-CAM",
    "attention": "ALL attention",
}
OUTPUT_FILES: tuple[str, ...] = (
    "overlays",
    "explanations.csv",
    "focus.json",
    "index.md",
    "index.html",
)


def _conventional_mask(image: Path | None) -> Path | None:
    """The synthetic benchmark's layout: ROOT/images/<modality>/X.png has its mask at
    ROOT/masks/<modality>/X.png. Returns that path when the file exists."""
    if image is None or image.parent.parent.name != "images":
        return None
    path = image.parent.parent.parent / "masks" / image.parent.name / f"{image.stem}.png"
    return path if path.is_file() else None


def find_masks(manifest: Any, row: Any) -> dict[str, Path | None]:
    """The lesion mask file of each modality of a manifest row.

    A manifest column `clinical_mask` / `ultrasound_mask` (path relative to the
    manifest's folder, or absolute; a blank cell means no mask) wins; without the
    column, the mask is looked up by the synthetic benchmark's convention
    (images/<modality>/X.png -> masks/<modality>/X.png).

    Args:
        manifest: a validated `agfnet.data.Manifest`.
        row: one of its `ManifestRow`s.

    Returns:
        modality -> mask path, or None when the row has none.

    Raises:
        UserError: a mask cell names a file that does not exist.
    """
    masks: dict[str, Path | None] = {}
    for m in MODALITIES:
        column = f"{m}_mask"
        if column not in manifest.columns:
            masks[m] = _conventional_mask(getattr(row, m))
            continue
        cell = row.extra.get(column, "").strip()
        path = Path(cell) if Path(cell).is_absolute() else manifest.root / cell
        if cell and not path.is_file():
            raise UserError(
                f"{manifest.path}, row {row.row}, column '{column}': mask {path} does not "
                "exist; correct the path or leave the cell blank"
            )
        masks[m] = path if cell else None
    return masks


GIVEN = "given rows"


def _rows_words(split: str | None) -> str:
    return GIVEN if split == GIVEN else f"split {split or 'all'}"


def _fmt(value: Any) -> str:
    """A score for tables: 3 decimals, yes/no, or n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.3f}"


def _page(summary: dict[str, Any], records: list[dict[str, Any]]) -> tuple[list[tuple], str]:
    """The index page as blocks (rendered to Markdown and HTML alike), and its title."""
    kinds = summary["kinds"]
    sizes = summary.get("map_size", {})
    title = (
        f"Explanations: {', '.join(KIND_LABELS[k] for k in kinds)} of "
        f"{Path(summary['checkpoint']).name} ({summary['model']}) on {Path(summary['data']).name}"
    )
    blocks: list[tuple] = [
        ("h1", title),
        (
            "p",
            f"{summary['n']} rows ({_rows_words(summary['split'])}); each map explains the "
            "predicted class and is scaled to [0, 1] per image. It shows what the model "
            "used, not where the lesion is. Target layers: "
            + "; ".join(
                f"{m}: {', '.join(v)}"
                + (f" ({'x'.join(map(str, summary['map_size'][m]))} map)" if m in sizes else "")
                for m, v in summary["layers"].items()
            )
            + ". Machine-readable: explanations.csv, focus.json.",
        ),
    ]
    coarse = {m: hw for m, hw in sizes.items() if min(hw) < MIN_MAP_SIDE}
    if coarse:
        blocks.append(
            (
                "p",
                "Warning: "
                + ", ".join(
                    f"the {m} map is only {hw[0]}x{hw[1]} cells" for m, hw in coarse.items()
                )
                + f" (fewer than {MIN_MAP_SIDE} a side): it cannot point at a small lesion. "
                "Use larger images or a finer layer (--layer).",
            )
        )
    if summary["focus"]:
        blocks.append(("h2", "Focus on the lesion"))
        blocks.append(
            (
                "p",
                "energy inside: share of the map's mass on the lesion mask; a uniform map "
                "scores the mask's area share (the chance column), and lift is energy over "
                "chance. Pointing game: share of images whose map maximum lies on the lesion "
                "(a random point hits with the same chance). Verdict: a map beats chance when "
                "its energy inside exceeds the lesion's share on more rows than a coin "
                f"would give (one-sided sign test, p < {CHANCE_ALPHA}); a flat map counts "
                "against it.",
            )
        )
        blocks.append(
            (
                "table",
                [
                    "map",
                    "modality",
                    "energy inside",
                    "chance",
                    "lift",
                    "rows above chance",
                    "pointing game",
                    "verdict",
                    "n/a",
                ],
                [
                    [
                        KIND_LABELS[k],
                        m,
                        _fmt(s["energy_inside"]),
                        _fmt(s["mask_fraction"]),
                        "n/a" if s["lift"] is None else f"{s['lift']:.2f}x",
                        f"{s['rows_above_chance']} of {s['n']}",
                        _fmt(s["pointing_game"]),
                        s["verdict"],
                        s["n_undefined"],
                    ]
                    for k, by_modality in summary["focus"].items()
                    for m, s in by_modality.items()
                ],
            )
        )
    score_cols = [(k, m) for k in kinds for m in MODALITIES]
    blocks.append(("h2", "Rows"))
    blocks.append(
        (
            "table",
            ["row", "lesion", "label", "prediction", "probability"]
            + [f"{m} {KIND_LABELS[k]} energy / pointing" for k, m in score_cols],
            [
                [r["row"], r["lesion_id"], r["label"], r["prediction"], f"{r['probability']:.3f}"]
                + [
                    " / ".join(
                        _fmt((r["focus"][k][m] or {}).get(s))
                        for s in ("energy_inside", "pointing_game")
                    )
                    for k, m in score_cols
                ]
                for r in records
            ],
        )
    )
    for r in records:
        blocks.append(("h2", f"Row {r['row']} {r['lesion_id']}".strip()))
        blocks.append(("img", f"row {r['row']}: {r['title']}", r["overlay"]))
    return blocks, title


def _csv_rows(kinds: Sequence[str], records: list[dict[str, Any]]) -> tuple[list[str], list]:
    """explanations.csv: header and one dict per row (blank scores where undefined)."""
    scores = ("energy_inside", "pointing_game", "mask_fraction")
    prefix = {kind: "" if kind != "attention" else "attention_" for kind in kinds}
    header = ["row", "lesion_id", "label", "prediction", "probability"]
    header += [f"{m}_{prefix[k]}{s}" for k in kinds for m in MODALITIES for s in scores]
    header.append("overlay")
    rows = []
    for r in records:
        line = {k: r[k] for k in ("row", "lesion_id", "label", "prediction", "overlay")}
        line["probability"] = f"{r['probability']:.6f}"
        for k in kinds:
            for m in MODALITIES:
                focus = r["focus"][k][m] or {}
                for s in scores:
                    value = focus.get(s)
                    cell = "" if value is None else value
                    line[f"{m}_{prefix[k]}{s}"] = int(cell) if isinstance(cell, bool) else cell
        rows.append(line)
    return header, rows


def _explain_row(
    folder: Path,
    row: Any,
    images: Mapping[str, np.ndarray],
    maps: Mapping[str, Mapping[str, np.ndarray]],
    probs: np.ndarray,
    classes: Sequence[str],
    masks: Mapping[str, Path | None],
    stats: Mapping[str, tuple[Sequence[float], Sequence[float]]],
) -> dict[str, Any]:
    """Score one row's maps against its masks and write its overlay.

    Returns:
        The row's record (focus.json's per-row entry, plus `has_mask`).
    """
    prediction = int(np.argmax(probs))
    label = row.label or ""
    title = f"predicted {classes[prediction]} ({probs[prediction]:.2f})"
    title += f", true {label}" if label else ""
    shown = {m: denormalise(images[m], *stats[m]) for m in MODALITIES}
    lesion = {
        m: None if path is None else resize_mask(load_mask(path), shown[m].shape[:2])
        for m, path in masks.items()
    }
    overlay = f"overlays/row{row.row:05d}.png"
    write_overlay(
        folder / overlay,
        shown,
        {KIND_LABELS[k]: by_modality for k, by_modality in maps.items()},
        " ".join(filter(None, [f"row {row.row}", row.lesion_id])) + f": {title}",
        lesion,
    )
    return {
        "row": row.row,
        "lesion_id": row.lesion_id,
        "label": label,
        "prediction": classes[prediction],
        "probability": float(probs[prediction]),
        "title": title,
        "overlay": overlay,
        "focus": {
            k: {
                m: None if lesion[m] is None else focus_scores(by_modality[m], lesion[m])
                for m in MODALITIES
            }
            for k, by_modality in maps.items()
        },
        "has_mask": {m: lesion[m] is not None for m in MODALITIES},
    }


def _parse_method(method: str, attention: bool) -> list[str]:
    if method not in METHODS:
        raise UserError(f"--method {method!r} is unknown: use one of {', '.join(METHODS)}")
    return [method, "attention"] if attention else [method]


def run_explain(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    n: int = 16,
    method: str = DEFAULT_METHOD,
    split: str | None = "test",
    attention: bool = False,
    layers: Mapping[str, Sequence[str]] | None = None,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = False,
    positions: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Explain a checkpoint's predictions on the first `n` rows of a manifest split.

    Each row gets a map per modality explaining its predicted class (Grad-CAM family
    through `explain_pair`, and with `attention` also AGFNet's ALL saliency through
    `attention_maps`); where lesion masks exist (`find_masks`), the focus scores of each
    map. Writes into `out` (everything is staged in a hidden folder and moved into
    place at the end):

    - overlays/rowNNNNN.png: photograph and ultrasound side by side, each with its map
      (one line of panels per kind of map), lesion outline, prediction in the title;
    - explanations.csv: row, lesion_id, label, prediction, probability, per-modality
      energy_inside / pointing_game / mask_fraction per kind of map, overlay path;
    - focus.json: settings, mean focus scores per kind and modality, every row's scores;
    - index.md and index.html: the summary table, the row table and the overlays.

    Args:
        checkpoint: a best.ckpt / last.ckpt of `agfnet train`.
        data: manifest CSV; labels optional (shown when present).
        out: output folder (created; earlier explain outputs in it are replaced).
        n: number of rows to explain (the first n of the split, in manifest order).
        method: "layercam" (the default), "gradcam" or "gradcam++".
        split: rows of this `split` value when the manifest has the column; None = all.
        attention: also draw and score the ALL attention maps (AGFNet models with ALL).
        layers: modality -> dotted target layer names; None = `default_layers` (each
            encoder's stride-8 and stride-16 stages).
        batch_size: rows explained per pass.
        device: "cpu", "cuda", ...; None picks a GPU when present.
        progress: show a progress bar.
        positions: explain these rows (positions in the manifest's rows, e.g. a
            cross-validation fold's test rows) instead of those of `split`; still the
            first `n`.

    Returns:
        The focus.json content without its per-row list: settings, `focus` (kind ->
        modality -> mean scores; empty without masks) and `n`.

    Raises:
        UserError: bad option, unreadable checkpoint or manifest, missing mask file,
            a model without attention maps when `attention` is set.
    """
    from torch.utils.data import DataLoader

    from agfnet.data import PairedLesionDataset, TransformConfig, build_transforms
    from agfnet.evaluation.calibration import apply_temperature
    from agfnet.fileio import install_files, write_json, write_rows_csv
    from agfnet.runtime.batch import forward_batch
    from agfnet.runtime.device import resolve_device
    from agfnet.runtime.selection import load_for_evaluation

    kinds = _parse_method(method, attention)
    if n < 1 or batch_size < 1:
        raise UserError(f"--n ({n}) and --batch-size ({batch_size}) must be at least 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    device = resolve_device(device)
    given = positions is not None
    inputs = load_for_evaluation(
        checkpoint,
        data,
        split,
        require_labels=False,
        positions=positions,
        limit=n,
        device=device,
    )
    model, info, manifest, positions = inputs.model, inputs.info, inputs.manifest, inputs.positions
    names = layer_names(model, layers)
    transform = TransformConfig(**info.transform)
    sizes = map_sizes(model, names, transform.img_size)
    dataset = PairedLesionDataset(
        manifest, indices=positions, transform=build_transforms(transform, train=False)
    )
    stats = {
        "clinical": (transform.clinical_mean, transform.clinical_std),
        "ultrasound": (transform.ultrasound_mean, transform.ultrasound_std),
    }
    rows_by_number = {r.row: r for r in manifest.rows}

    records: list[dict[str, Any]] = []
    bar = StepBar("explaining", len(dataset), enabled=progress).start()
    try:
        with install_files(out, OUTPUT_FILES) as tmp:
            (tmp / "overlays").mkdir()
            for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
                images = (batch["clinical"], batch["ultrasound"])
                present = batch["present"]
                maps = {
                    method: explain_pair(
                        model, *images, method=method, layers=names, present=present
                    )
                }
                if attention:
                    maps["attention"] = attention_maps(model, *images, present=present)
                logits, _ = forward_batch(model, *images, present, device)
                probs = apply_temperature(logits, info.temperature)
                for j, number in enumerate(batch["row"].tolist()):
                    row = rows_by_number[number]
                    records.append(
                        _explain_row(
                            tmp,
                            row,
                            {m: batch[m][j].numpy() for m in MODALITIES},
                            {k: {m: v[m][j] for m in MODALITIES} for k, v in maps.items()},
                            probs[j],
                            info.classes,
                            find_masks(manifest, row),
                            stats,
                        )
                    )
                    bar.advance()
            has_mask = {m: sum(r["has_mask"][m] for r in records) for m in MODALITIES}
            focus = {
                k: {
                    m: mean_scores(r["focus"][k][m] for r in records if r["has_mask"][m])
                    for m in MODALITIES
                    if has_mask[m]
                }
                for k in kinds
                if any(has_mask.values())
            }
            summary = {
                "checkpoint": str(checkpoint),
                "model": info.build_spec["name"],
                "data": str(data),
                # None: every row; "given rows": the `positions` of the caller (e.g. a fold).
                "split": GIVEN if given else inputs.split,
                "method": method,
                "kinds": kinds,
                "target": "predicted class",
                "layers": names,
                # The CAM's own resolution before it is resized to the image.
                "map_size": sizes,
                "temperature": info.temperature,
                "n": len(records),
                "rows_with_mask": has_mask,
                "focus": focus,
            }
            for r in records:
                del r["has_mask"]
            write_json(tmp / "focus.json", {**summary, "rows": records})
            header, csv_rows = _csv_rows(kinds, records)
            write_rows_csv(tmp / "explanations.csv", header, csv_rows)
            blocks, title = _page(summary, records)
            (tmp / "index.md").write_text(render_markdown(blocks), encoding="utf-8")
            (tmp / "index.html").write_text(render_html(blocks, title), encoding="utf-8")
    finally:
        bar.stop()
    return summary
