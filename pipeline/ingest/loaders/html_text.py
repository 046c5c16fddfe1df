"""HTML to visible text in time linear in the page, whatever the page holds.

Python's ``html.parser`` (as in this project's Python 3.11.7) is quadratic on
malformed markup (CVE-2025-6069): an unclosed ``<!--``, ``</``, ``<?`` or
``<a`` makes it search the rest of the page for an end, give up, step one
character on and search again, so a crafted page of a few hundred kilobytes
stalls ingestion for minutes (200 KB of ``<a`` took it 32 s here). This tokenizer follows the HTML standard's rule instead: a
construct without its end runs to the end of the page. Every search for an
end either finds it, and the tokenizer moves past it, or reaches the end of
the page, and tokenizing stops, so no character is searched twice and the
time is linear in the page's length, malformed or not.

It is not a full HTML5 parser (no tree, no implied end tags, attributes are
skipped, not read): it tells the ``VisibleText`` collector where tags start
and end and what text lies between them, which is all that extracting the
visible text needs. Text is unescaped with ``html.unescape`` (character
references are bounded in length, so that is linear too).

What it tokenizes:

- ``<name ...>`` and ``</name ...>``: start and end tags (``/>`` also ends the
  element); quoted attribute values may hold ``>``; a tag without ``>`` is
  dropped with the rest of the page;
- ``<!-- ... -->`` comments (``<!-->`` and ``<!--->`` are empty ones),
  ``<!...>``, ``<?...>`` and ``</`` not followed by a letter: skipped up to the
  next ``>`` (the standard's bogus comments);
- raw text elements (``script``, ``style``, ``noscript``, ``iframe``, ``xmp``,
  ``noembed``, ``noframes``): their content is not markup and ends only at
  their own end tag; ``title`` and ``textarea`` likewise, with character
  references unescaped; after ``plaintext`` everything is text;
- anything else, a ``<`` not starting one of these included, is text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

START, END, TEXT = "start", "end", "text"

RAW_TEXT = frozenset({"script", "style", "noscript", "iframe", "xmp", "noembed", "noframes"})
ESCAPABLE_RAW_TEXT = frozenset({"title", "textarea"})
_TAG_NAME = re.compile(r"[A-Za-z][^\t\n\f\r />]*")
_IN_TAG = re.compile(r"[>\"']")  # what can end a tag or open a quoted value
_END_TAG_OF: dict[str, re.Pattern[str]] = {}


def _end_tag_of(name: str) -> re.Pattern[str]:
    if name not in _END_TAG_OF:
        _END_TAG_OF[name] = re.compile(rf"</{re.escape(name)}[\t\n\f\r />]", re.IGNORECASE)
    return _END_TAG_OF[name]


def _tag_end(html_text: str, start: int) -> tuple[int, bool]:
    """Where the tag whose attributes start at ``start`` ends (the index after its
    ``>``, or -1 at the end of the page) and whether it closes itself (``/>``).
    A quote right after ``=`` (blanks between allowed) opens a value that runs to
    the same quote; elsewhere a quote is an ordinary character."""
    position = start
    while True:
        found = _IN_TAG.search(html_text, position)
        if found is None:
            return -1, False
        at = found.start()
        if html_text[at] == ">":
            return at + 1, at > start and html_text[at - 1] == "/"
        before = at - 1
        while before >= start and html_text[before] in " \t\n\f\r":
            before -= 1
        if before >= start and html_text[before] == "=":
            close = html_text.find(html_text[at], at + 1)
            if close < 0:
                return -1, False
            position = close + 1
        else:
            position = at + 1


def tokens(html_text: str) -> Iterator[tuple[str, str]]:
    """``(kind, value)`` pairs: ``(START, name)``, ``(END, name)`` with lower-case
    names, and ``(TEXT, text)`` with character references unescaped. A
    self-closing tag is a start then an end."""
    n = len(html_text)
    i = 0
    text_from = 0  # text since the last token, emitted when the next one starts
    while i < n:
        lt = html_text.find("<", i)
        if lt < 0 or lt + 1 >= n:
            break
        after = html_text[lt + 1]
        end = -1
        token: tuple[str, str] | None = None
        closes = False
        if after.isascii() and after.isalpha():
            name = _TAG_NAME.match(html_text, lt + 1)
            assert name is not None
            end, closes = _tag_end(html_text, name.end())
            token = (START, name.group().lower())
        elif after == "/":
            name = _TAG_NAME.match(html_text, lt + 2)
            if name is not None:
                end, _ = _tag_end(html_text, name.end())
                token = (END, name.group().lower())
            elif lt + 2 < n and html_text[lt + 2] == ">":  # "</>": nothing
                end = lt + 3
            elif lt + 2 >= n:  # "</" at the very end: text
                break
            else:  # a bogus comment
                close = html_text.find(">", lt + 2)
                end = close + 1 if close >= 0 else -1
        elif after == "!":
            if html_text.startswith("<!--", lt):
                if html_text.startswith("<!-->", lt):
                    end = lt + 5
                elif html_text.startswith("<!--->", lt):
                    end = lt + 6
                else:
                    close = html_text.find("-->", lt + 4)
                    end = close + 3 if close >= 0 else -1
            else:  # doctype, CDATA and other declarations: up to ">"
                close = html_text.find(">", lt + 2)
                end = close + 1 if close >= 0 else -1
        elif after == "?":
            close = html_text.find(">", lt + 2)
            end = close + 1 if close >= 0 else -1
        else:  # a "<" that starts nothing: text
            i = lt + 1
            continue
        if lt > text_from:
            yield TEXT, html.unescape(html_text[text_from:lt])
        if end < 0:  # the construct runs to the end of the page: nothing more to read
            return
        i = text_from = end
        if token is None:
            continue
        yield token
        if token[0] == START and closes:
            yield END, token[1]
        elif token[0] == START and not closes:
            tag = token[1]
            if tag == "plaintext":
                text_from = i
                break
            if tag in RAW_TEXT or tag in ESCAPABLE_RAW_TEXT:
                closing = _end_tag_of(tag).search(html_text, i)
                content = html_text[i : closing.start() if closing else n]
                if content:
                    yield TEXT, html.unescape(content) if tag in ESCAPABLE_RAW_TEXT else content
                if closing is None:
                    return
                tail, _ = _tag_end(html_text, closing.end() - 1)
                yield END, tag
                if tail < 0:
                    return
                i = text_from = tail
    if text_from < n:
        yield TEXT, html.unescape(html_text[text_from:])


_BLOCK_TAGS = frozenset(
    ["address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure", "footer", "form",
     "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "section", "table",
     "tbody", "thead", "tfoot", "tr", "ul"]
)
_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template"})
_CELL_TAGS = frozenset({"td", "th"})


class VisibleText:
    """Collects visible paragraphs and the <title>; block tags end a paragraph."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.title_parts: list[str] = []
        self._buffer: list[str] = []
        self._hidden = 0
        self._in_head = False
        self._in_title = False
        self._pre = 0

    def feed(self, html_text: str) -> None:
        for kind, value in tokens(html_text):
            if kind == TEXT:
                self.handle_data(value)
            elif kind == START:
                self.handle_starttag(value)
            else:
                self.handle_endtag(value)

    def _flush(self) -> None:
        raw = "".join(self._buffer)
        self._buffer = []
        text = raw.strip("\n").rstrip() if self._pre else " ".join(raw.split())
        if text.strip():
            self.paragraphs.append(text)

    def handle_starttag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif tag == "head":
            self._in_head = True
        elif tag == "body":
            self._in_head = False
        elif tag == "title":
            self._in_title = True
        elif tag == "pre":
            self._flush()
            self._pre += 1
        elif tag in _BLOCK_TAGS:
            self._flush()
        elif tag in _CELL_TAGS:
            self._buffer.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "head":
            self._in_head = False
        elif tag == "title":
            self._in_title = False
        elif tag == "pre":
            self._flush()
            self._pre = max(0, self._pre - 1)
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._hidden and not self._in_head:
            self._buffer.append(data)

    def close(self) -> None:
        self._flush()


def parse_html(html_text: str) -> tuple[str, str]:
    """(title, visible text) of an HTML page; paragraphs joined by blank lines.
    Linear in the page's length (see the module's notes)."""
    collector = VisibleText()
    collector.feed(html_text)
    collector.close()
    return " ".join("".join(collector.title_parts).split()), "\n\n".join(collector.paragraphs)
