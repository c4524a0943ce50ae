"""Draw the example figures of the synthetic benchmark into docs/figures/.

synth_grid.png: one row per class, three pairs each (photograph | ultrasound, lesion masks
outlined); only samples with no flipped attribute, so each row shows its class prototype.
synth_sizes.png: one pair rendered at 32, 64 and 128 px.

Usage: python scripts/make_synth_figures.py [--out docs/figures]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

from agfnet.data.synth import CLASS_NAMES, CLASSES, SampleSpec, render_pair, sample_attributes

EXAMPLES_PER_CLASS = 3


def _show(ax: plt.Axes, image, mask, colour: str, cmap: str | None = None) -> None:
    ax.imshow(image, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    ax.contour(mask, levels=[0.5], colors=colour, linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: plt.Figure, path: Path) -> None:
    """Save as a 256-colour PNG: the figures stay small enough for the docs."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as im:
        im.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def _prototypes(seed: int) -> dict[str, list[SampleSpec]]:
    chosen: dict[str, list[SampleSpec]] = {c: [] for c in CLASSES}
    for spec in sample_attributes(40, seed):
        if not any(spec.flipped.values()) and len(chosen[spec.label]) < EXAMPLES_PER_CLASS:
            chosen[spec.label].append(spec)
    return chosen


def grid(path: Path, size: int = 128, seed: int = 0) -> None:
    """One row per class: photograph and ultrasound side by side, masks outlined."""
    chosen = _prototypes(seed)
    fig, axes = plt.subplots(
        len(CLASSES),
        2 * EXAMPLES_PER_CLASS,
        figsize=(2 * EXAMPLES_PER_CLASS * 1.45, len(CLASSES) * 1.5),
    )
    for r, label in enumerate(CLASSES):
        for j, spec in enumerate(chosen[label]):
            pair = render_pair(spec, size)
            _show(axes[r, 2 * j], pair.clinical, pair.clinical_mask, "yellow")
            _show(axes[r, 2 * j + 1], pair.ultrasound, pair.ultrasound_mask, "yellow", cmap="gray")
            if r == 0:
                axes[r, 2 * j].set_title("clinical", fontsize=8)
                axes[r, 2 * j + 1].set_title("ultrasound", fontsize=8)
        axes[r, 0].set_ylabel(f"{label}\n{CLASS_NAMES[label]}", fontsize=8)
    fig.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.2)
    _save(fig, path)


def sizes(path: Path, seed: int = 0) -> None:
    """The same pair at 32, 64 and 128 px (same seed: same scene, finer detail)."""
    spec = _prototypes(seed)["MEL"][0]
    fig, axes = plt.subplots(2, 3, figsize=(6, 4.2))
    for j, size in enumerate((32, 64, 128)):
        pair = render_pair(spec, size)
        _show(axes[0, j], pair.clinical, pair.clinical_mask, "yellow")
        _show(axes[1, j], pair.ultrasound, pair.ultrasound_mask, "yellow", cmap="gray")
        axes[0, j].set_title(f"{size} px", fontsize=9)
    axes[0, 0].set_ylabel("clinical", fontsize=9)
    axes[1, 0].set_ylabel("ultrasound", fontsize=9)
    fig.tight_layout(pad=0.3)
    _save(fig, path)


def main() -> None:
    """Parse the output folder and draw both figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    grid(args.out / "synth_grid.png")
    sizes(args.out / "synth_sizes.png")


if __name__ == "__main__":
    main()
