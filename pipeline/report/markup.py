"""The report's text machinery in one place, so every section (render, letters, cost,
svg) escapes alike: the one HTML escape, the one Markdown cell escape, and the Jinja
environment that renders the templates in ``templates/`` (HTML ones autoescaped)."""

from __future__ import annotations

import html
from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_eval_context, select_autoescape
from markupsafe import Markup


def escape(text: object) -> Markup:
    """The report's one HTML escape, for element text and attribute values alike. It
    writes the standard library's entities (``&quot;``, ``&#x27;``), which earlier reports
    and the tests pin and markupsafe spells differently (``&#34;``, ``&#39;``); markup
    (``__html__``) passes as is, so nothing is escaped twice."""
    if hasattr(text, "__html__"):
        return Markup(text.__html__())
    return Markup(html.escape(str(text), quote=True))


def md_cell(text: object, code: bool = False) -> str:
    """Markdown text that stays in its table cell (``code``: set in backticks): a '|' would
    end the cell and a newline the row; a '<' outside code would start raw HTML."""
    out = (f"`{text}`" if code else str(text)).replace("|", "\\|").replace("\n", " ")
    return out if out.startswith("`") else out.replace("<", "\\<")


def md_lines(text: str) -> list[str]:
    """A rendered Markdown fragment as its lines (every line of it ends with a newline)."""
    return text.removesuffix("\n").split("\n")


@pass_eval_context
def _finalize(eval_ctx, value: object) -> object:
    """Every ``{{ value }}`` of an autoescaped template goes through ``escape`` (so the
    entities are the report's own); Markdown templates print values as they are."""
    return escape(value) if eval_ctx.autoescape else value


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The templates' environment, built on first use rather than at import. Autoescape
    follows the template's name: ``*.html.j2`` escapes, ``*.md.j2`` does not (Markdown
    escapes its cells with the ``md_cell`` filter), anything else escapes to be safe.
    Undefined names fail loudly: a typo must not render as an empty cell."""
    env = Environment(
        loader=PackageLoader("lcrag.pipeline.report", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), disabled_extensions=("md.j2",), default=True),
        finalize=_finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_cell"] = md_cell
    return env


def render(template: str, **context: object) -> str:
    """One template of ``templates/`` rendered with ``context``."""
    return environment().get_template(template).render(**context)
