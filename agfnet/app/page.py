"""The app's one HTML page, assembled once from agfnet/app/static/ with its security headers."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

from agfnet.constants import MODALITIES
from agfnet.data.manifest.display import DEFAULT_MODALITY_NAMES, in_sentence, modality_names

__all__ = ["PAGE_HEADERS", "STATIC", "TITLES", "metadata_fieldset", "render_page"]

STATIC = Path(__file__).with_name("static")

#: How the page names each modality's image by default; a model's own names (its config's
#: `data.modality_names`) go to `render_page`, and app.js reads them from the page.
TITLES = dict(DEFAULT_MODALITY_NAMES)

#: Headers of the page. It loads only its own files: nothing external, so it works
#: offline too.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
}

# The lines of index.html that stand for the drop zones (one per modality) and for the
# tagline naming the two images.
_DROPS = "<!-- drop zones: drop-zone.html once per modality (agfnet/app/page.py) -->\n"
_TAGLINE = "<!-- tagline: the two images' names (agfnet/app/page.py) -->"
_METADATA = "<!-- metadata: a field per metadata field of the model (agfnet/app/page.py) -->\n"
_CAM_NOTICE = (
    "<!-- cam notice: why there are no heatmaps, when the server makes none "
    "(agfnet/app/page.py) -->\n"
)


def metadata_fieldset(fields: Sequence[Mapping[str, Any]]) -> str:
    """The form's metadata inputs: a select per categorical field (its training values,
    blank = missing), a number input per numeric field; "" for a model without metadata.

    Args:
        fields: the model's metadata fields ({"name", "kind", "vocabulary"}, as
            `PredictorBase.describe()["metadata"]`).

    Returns:
        The HTML (each input's name is its field, so the form sends it as one).
    """
    if not fields:
        return ""
    rows = []
    for f in fields:
        name = html.escape(f["name"])
        ident = f"meta-{name}"
        if f["kind"] == "numeric":
            control = (
                f'<input type="number" step="any" id="{ident}" name="{name}" '
                f'data-metadata="{name}" inputmode="decimal" placeholder="blank = missing">'
            )
        else:
            options = ['<option value="">unknown / blank (missing)</option>']
            options += [
                f'<option value="{html.escape(v)}">{html.escape(v)}</option>'
                for v in f["vocabulary"]
            ]
            control = (
                f'<select id="{ident}" name="{name}" data-metadata="{name}">'
                + "".join(options)
                + "</select>"
            )
        label = f'<label for="{ident}">{name}</label>'
        rows.append(f'        <div class="metadata-field">{label}{control}</div>')
    return (
        '      <fieldset class="metadata" id="metadata">\n'
        "        <legend>Patient metadata (optional: a field left blank is missing)</legend>\n"
        + "\n".join(rows)
        + "\n      </fieldset>\n"
    )


def render_page(
    names: Mapping[str, str] | None = None,
    metadata: Sequence[Mapping[str, Any]] = (),
    cam_unavailable: str | None = None,
) -> str:
    """The page: index.html with one drop zone (static/drop-zone.html) per modality, the
    model's metadata fields (`metadata_fieldset`), and why there are no heatmaps.

    Args:
        names: modality -> how the page names its image (the model's
            `modality_names`); None for the defaults (`TITLES`).
        metadata: the model's metadata fields; none by default.
        cam_unavailable: why the server makes no heatmaps (e.g. an ONNX model), shown
            where they would be; None when it makes them.

    Returns:
        The HTML text.
    """
    titles = modality_names(names)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    zone = Template((STATIC / "drop-zone.html").read_text(encoding="utf-8"))
    drops = "\n".join(zone.substitute(field=m, title=html.escape(titles[m])) for m in MODALITIES)
    first, *others = (titles[m] for m in MODALITIES)
    tagline = " + ".join([first, *map(in_sentence, others)])
    page = page.replace(_DROPS, drops).replace(_TAGLINE, html.escape(tagline))
    notice = (
        ""
        if cam_unavailable is None
        else f'      <p class="cam-unavailable" id="cam-unavailable" role="note">'
        f"{html.escape(cam_unavailable)}</p>\n"
    )
    return page.replace(_METADATA, metadata_fieldset(metadata)).replace(_CAM_NOTICE, notice)
