"""The app's one HTML page, assembled once from agfnet/app/static/ with its security headers."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from string import Template

from agfnet.constants import MODALITIES
from agfnet.data.manifest.display import DEFAULT_MODALITY_NAMES, in_sentence, modality_names

__all__ = ["PAGE_HEADERS", "STATIC", "TITLES", "render_page"]

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


def render_page(names: Mapping[str, str] | None = None) -> str:
    """The page: index.html with one drop zone (static/drop-zone.html) per modality.

    Args:
        names: modality -> how the page names its image (the model's
            `modality_names`); None for the defaults (`TITLES`).

    Returns:
        The HTML text.
    """
    titles = modality_names(names)
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    zone = Template((STATIC / "drop-zone.html").read_text(encoding="utf-8"))
    drops = "\n".join(zone.substitute(field=m, title=html.escape(titles[m])) for m in MODALITIES)
    first, *others = (titles[m] for m in MODALITIES)
    tagline = " + ".join([first, *map(in_sentence, others)])
    return page.replace(_DROPS, drops).replace(_TAGLINE, html.escape(tagline))
