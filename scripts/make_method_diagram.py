"""Draw the AGFNet data-flow diagram (docs/figures/agfnet_diagram.png) with matplotlib.

Usage: python scripts/make_method_diagram.py [OUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

Box = tuple[float, float, float, float]
Point = tuple[float, float]

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "agfnet_diagram.png"

COLOURS = {
    "input": "#e8eef7",
    "encoder": "#cfe0f3",
    "all": "#fde9c9",
    "agl": "#d9efd5",
    "head": "#f3d6d6",
    "frl": "#ece3f5",
    "absent": "#f2f2f2",
}


def box(
    ax: Axes,
    x: float,
    y: float,
    w: float,
    h: float,
    text: str,
    kind: str,
    *,
    dashed: bool = False,
    size: float = 9,
    weight: str = "normal",
) -> Box:
    """A rounded box with centred text; returns its (x, y, w, h)."""
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=COLOURS[kind],
            edgecolor="#444444",
            linewidth=1.0,
            linestyle="--" if dashed else "-",
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, weight=weight)
    return x, y, w, h


def arrow(
    ax: Axes, start: Point, end: Point, *, dashed: bool = False, text: str | None = None
) -> None:
    """An arrow from point `start` to point `end`, optionally labelled at its middle."""
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=11,
            color="#333333",
            linewidth=1.0,
            linestyle="--" if dashed else "-",
        )
    )
    if text:
        ax.text(
            (start[0] + end[0]) / 2,
            (start[1] + end[1]) / 2 + 0.12,
            text,
            ha="center",
            va="bottom",
            fontsize=7.5,
            color="#333333",
        )


def right(b: Box) -> Point:
    return b[0] + b[2], b[1] + b[3] / 2


def left(b: Box) -> Point:
    return b[0], b[1] + b[3] / 2


def top(b: Box) -> Point:
    return b[0] + b[2] / 2, b[1] + b[3]


def bottom(b: Box) -> Point:
    return b[0] + b[2] / 2, b[1]


def draw(out: Path) -> None:
    """Draw the diagram and save it to `out`."""
    fig, ax = plt.subplots(figsize=(16, 9.4))
    ax.set_xlim(0, 16)
    ax.set_ylim(0, 9.4)
    ax.axis("off")
    ax.text(
        8,
        9.15,
        "AGFNet data flow (paper preset: ResNet-50, 224 px; shapes per pair, batch B)",
        ha="center",
        fontsize=13,
        weight="bold",
    )

    rows = {"clinical": 7.1, "ultrasound": 3.9}
    enc, proj, glob = {}, {}, {}
    for name, y in rows.items():
        short = name[0]
        img = box(ax, 0.2, y, 1.7, 1.0, f"{name}\nimage x{short}\n(B, 3, 224, 224)", "input")
        enc[name] = box(
            ax,
            2.4,
            y,
            2.3,
            1.0,
            f"{name} encoder\ntimm ResNet-50, stages 2-4\nC_s = 512, 1024, 2048",
            "encoder",
            size=8.5,
        )
        arrow(ax, right(img), left(enc[name]))
        proj[name] = box(
            ax, 5.4, y, 2.0, 1.0, "per scale s:\n1x1 conv + BN\n-> T_s (B, N_s, 256)", "encoder"
        )
        arrow(ax, right(enc[name]), left(proj[name]))
        gy = y + 1.25 if name == "clinical" else y - 1.05
        glob[name] = box(
            ax, 5.4, gy, 2.0, 0.7, f"GAP(stage 4)\ng_{short} (B, 2048)", "encoder", size=8.5
        )
        arrow(ax, (enc[name][0] + 1.9, y + (1.0 if name == "clinical" else 0.0)), left(glob[name]))

    absent = box(
        ax,
        2.4,
        5.45,
        2.3,
        1.2,
        "learned 'absent' embedding\nreplaces a missing (or,\n"
        "in training, dropped p)\nmodality's maps",
        "absent",
        dashed=True,
        size=7.5,
    )
    arrow(ax, top(absent), bottom(enc["clinical"]), dashed=True)
    arrow(ax, bottom(absent), top(enc["ultrasound"]), dashed=True)

    all_box = box(ax, 7.95, 3.9, 3.6, 4.2, "", "all")
    ax.text(9.75, 7.75, "ALL (each of the 3 scales)", ha="center", fontsize=10.5, weight="bold")
    ax.text(
        8.1,
        7.4,
        "intra: A_c = Attn(T_c, R(T_c))\n"
        "inter: B_c = Attn(T_c, R(T_u))\n"
        "R: K/V avg-pooled to <= 7x7 = M\n"
        "   -> cost O(N M), linear in area\n"
        "L_c = T_c + g_a A_c + g_b B_c\n"
        "    + g_f FFN  (gates start 0.1)\n"
        "attention-guided pooling:\n"
        "   l_c,s (B, 256), saliency (B, N_s)\n"
        "multi-scale fusion (concat+linear)\n"
        "   -> z_c, z_u (B, 256)\n"
        "(the same for u, with c <-> u)",
        ha="left",
        va="top",
        fontsize=8.3,
        family="monospace",
        linespacing=1.45,
    )
    for name in rows:
        arrow(ax, right(proj[name]), (all_box[0], proj[name][1] + 0.5))

    agl = box(
        ax,
        12.0,
        5.2,
        2.1,
        1.6,
        "AGL\n[cls, g_c, g_u, z_c, z_u]\n-> 1-layer transformer\n"
        "(4 heads, width 256)\n-> f (B, 256)",
        "agl",
        size=8.5,
    )
    arrow(ax, (all_box[0] + all_box[2], 6.0), left(agl))
    head = box(ax, 14.55, 5.45, 1.35, 1.1, "main head\nlogits\n(B, K)", "head", weight="bold")
    arrow(ax, right(agl), left(head))
    branch = 13.75
    for name, aux_y, agl_y in (("clinical", 8.35, agl[1] + agl[3]), ("ultrasound", 2.85, agl[1])):
        short = name[0]
        aux = box(ax, 14.35, aux_y, 1.55, 0.7, f"aux head\nCE(g_{short}) x beta", "head", size=8.5)
        line_y = aux_y + 0.35
        arrow(ax, right(glob[name]), left(aux), text=f"g_{short}")
        ax.plot([branch], [line_y], marker="o", markersize=4, color="#333333")
        arrow(ax, (branch, line_y), (branch, agl_y))
    sal = box(
        ax,
        11.95,
        3.65,
        1.65,
        1.0,
        "saliency maps\n(B, 28, 28) per\nmodality (output)",
        "all",
        size=8.3,
    )
    arrow(ax, (all_box[0] + all_box[2], 4.15), left(sal))

    box(ax, 2.5, 0.15, 11.6, 1.65, "", "frl", dashed=True)
    ax.text(
        2.7,
        1.55,
        "FRL (training only; never run at inference or exported)",
        fontsize=10,
        weight="bold",
        va="center",
    )
    steps = [
        "deepest scale\nT_c, T_u (B, 49, 256)",
        "mask rho = 50%:\nattention (Gumbel-top-k\non saliency) or random",
        "learned mask token;\nre-run ALL (scale 3)\nno backbone re-run",
        "light decoder: sin-cos\npositions + intra/inter\nblock (width 128)",
        "L_rec = MSE on masked\ntokens vs LN(sg(T)),\nboth modalities",
    ]
    prev = None
    for i, text in enumerate(steps):
        b = box(ax, 2.75 + i * 2.27, 0.3, 1.95, 1.0, text, "frl", size=7.8)
        if prev is not None:
            arrow(ax, right(prev), left(b))
        prev = b
    arrow(ax, (8.6, all_box[1]), (8.6, 1.8), dashed=True, text="")
    ax.text(8.7, 2.9, "T_3, saliency", fontsize=7.5)
    ax.text(
        14.25,
        0.95,
        "L = CE(main)\n + beta (CE_c + CE_u)\n + lambda_rec L_rec",
        fontsize=8.5,
        va="center",
        family="monospace",
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130, bbox_inches="tight", facecolor="white")
    plt.close(fig)


if __name__ == "__main__":
    draw(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
