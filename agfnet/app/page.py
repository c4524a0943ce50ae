"""The app's one HTML page, assembled once from agfnet/app/static/ with its security headers."""

from __future__ import annotations

from pathlib import Path
from string import Template

from agfnet.constants import MODALITIES

__all__ = ["PAGE_HEADERS", "STATIC", "TITLES", "render_page"]

STATIC = Path(__file__).with_name("static")

#: How the page names each modality's image (app.js names them the same way).
TITLES = {"clinical": "Clinical photograph", "ultrasound": "Ultrasound image"}

#: Headers of the page. It loads only its own files: nothing external, so it works
#: offline too.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
}

# The line of index.html that stands for the drop zones, one per modality.
_DROPS = "<!-- drop zones: drop-zone.html once per modality (agfnet/app/page.py) -->\n"


def render_page() -> str:
    """The page: index.html with one drop zone (static/drop-zone.html) per modality.

    Returns:
        The HTML text.
    """
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    zone = Template((STATIC / "drop-zone.html").read_text(encoding="utf-8"))
    drops = "\n".join(zone.substitute(field=m, title=TITLES[m]) for m in MODALITIES)
    return page.replace(_DROPS, drops)
