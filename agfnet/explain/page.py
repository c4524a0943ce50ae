"""The explain page: blocks of headings, paragraphs, tables and images, rendered alike to
Markdown (index.md) and HTML (index.html)."""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = ["render_html", "render_markdown"]


def render_markdown(blocks: Sequence[tuple]) -> str:
    """The blocks ("h1"/"h2"/"p", text; "table", header, rows; "img", alt, src) as
    Markdown."""
    lines: list[str] = []
    for kind, *content in blocks:
        if kind == "h1":
            lines += [f"# {content[0]}", ""]
        elif kind == "h2":
            lines += [f"## {content[0]}", ""]
        elif kind == "p":
            lines += [content[0], ""]
        elif kind == "table":
            header, rows = content
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + " --- |" * len(header))
            lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
            lines.append("")
        elif kind == "img":
            alt, src = content
            lines += [f"![{alt}]({src})", ""]
    return "\n".join(lines)


def render_html(blocks: Sequence[tuple], title: str) -> str:
    """The same blocks as a standalone HTML page titled `title`."""
    e = html.escape
    body: list[str] = []
    for kind, *content in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{e(content[0])}</{kind}>")
        elif kind == "table":
            header, rows = content
            body.append("<table>")
            body.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            body += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
            body.append("</table>")
        elif kind == "img":
            alt, src = content
            body.append(f'<p><img src="{e(src)}" alt="{e(alt)}"></p>')
    style = "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
