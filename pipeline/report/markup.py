"""Text and tables for the report's sections (render, letters, cost, svg): escaping for
HTML and Markdown in one place, so every section escapes alike."""

from __future__ import annotations

from html import escape
from typing import Iterable, Sequence


def html_text(text: object) -> str:
    """Text safe inside HTML elements and attribute values."""
    return escape(str(text), quote=True)


def md_text(text: object) -> str:
    """Table-safe Markdown text; a '<' outside code would start raw HTML."""
    out = str(text).replace("|", "\\|").replace("\n", " ")
    return out if out.startswith("`") else out.replace("<", "\\<")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    out = ["| " + " | ".join(md_text(h) for h in headers) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    out += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return out


def html_table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "", row_classes: Sequence[str] = ()) -> str:
    """An HTML table; cells are trusted HTML (already escaped by the caller)."""
    head = "".join(f"<th>{html_text(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        rc = row_classes[i] if i < len(row_classes) else ""
        attr = f' class="{rc}"' if rc else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    cls_attr = f' class="{cls}"' if cls else ""
    return f'<div class="table-wrap"><table{cls_attr}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
