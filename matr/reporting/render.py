"""The report's content as blocks of rich text, rendered to Markdown and to a static HTML page.

Text is a tuple of :class:`Span` (plain, code, bold or a link), built explicitly by the report, so
no Markdown is parsed on the way to HTML. Text that comes from artifacts (captions, the reasons of
choices) goes through :func:`prose`, which turns its inline marks (Sphinx roles such as
``:func:`x```, backticks, ``**bold**``) into spans and drops stray ones: no raw markup reaches a page.
The HTML page is self-contained (inline CSS, no script); figures are ``<img>`` tags with paths
relative to the report folder, and wide tables scroll sideways inside their own box.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A run of text of one ``kind`` (plain, code, bold or link); ``href`` for links (relative to the report)."""

    text: str
    kind: str = "plain"
    href: str = ""


Text = tuple[Span, ...]


def text(*parts: str | Span) -> Text:
    """Rich text from plain strings and spans."""
    return tuple(Span(part) if isinstance(part, str) else part for part in parts)


def code(value: object) -> Span:
    return Span(str(value), "code")


def bold(value: str) -> Span:
    return Span(value, "bold")


def link(label: str, href: str) -> Span:
    return Span(label, "link", href)


_MARKS = re.compile(r":[\w:.-]+:`(?P<role>[^`]+)`|``(?P<double>[^`]+)``|`(?P<single>[^`]+)`|\*\*(?P<bold>[^*]+)\*\*")


def prose(value: str) -> Text:
    """Rich text of a string written by someone else: inline marks become spans, stray ``*``/backticks go."""
    spans: list[Span] = []
    last = 0
    for match in _MARKS.finditer(value):
        spans.append(Span(_unmarked(value[last : match.start()])))
        if match["bold"] is not None:
            spans.append(bold(_unmarked(match["bold"])))
        else:
            spans.append(code(match["role"] or match["double"] or match["single"]))
        last = match.end()
    spans.append(Span(_unmarked(value[last:])))
    return tuple(span for span in spans if span.text)


def plain_text(value: Text) -> str:
    """The characters of ``value`` without any marks."""
    return "".join(span.text for span in value)


def _unmarked(value: str) -> str:
    return value.replace("**", "").replace("`", "")


@dataclass(frozen=True)
class Heading:
    level: int
    text: Text


@dataclass(frozen=True)
class Paragraph:
    text: Text


@dataclass(frozen=True)
class Bullets:
    items: tuple[Text, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[Text, ...]
    rows: tuple[tuple[Text, ...], ...]


@dataclass(frozen=True)
class Figure:
    """An image (``src`` relative to the report folder) with a title and a caption.

    ``width``: the image's width in pixels, shown at that size (100% zoom) where the page is wide enough.
    """

    src: str
    title: Text
    caption: Text
    width: int | None = None


@dataclass(frozen=True)
class FigureGrid:
    """Figures side by side (as many per row as the page holds at their natural width)."""

    figures: tuple[Figure, ...]


Block = Heading | Paragraph | Bullets | Table | Figure | FigureGrid


# --- Markdown -----------------------------------------------------------------------------------


def to_markdown(blocks: Sequence[Block]) -> str:
    """GitHub-flavoured Markdown of ``blocks``."""
    return "\n\n".join(_markdown(block) for block in blocks) + "\n"


def _markdown(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + _md(block.text)
    if isinstance(block, Paragraph):
        return _md(block.text)
    if isinstance(block, Bullets):
        return "\n".join(f"- {_md(item)}" for item in block.items)
    if isinstance(block, Table):
        lines = [_md_row(block.header), "|" + "|".join("---" for _ in block.header) + "|"]
        return "\n".join(lines + [_md_row(row) for row in block.rows])
    if isinstance(block, FigureGrid):
        return "\n\n".join(_markdown(figure) for figure in block.figures)
    return f"**{_md(block.title)}**\n\n![{_escape_md(plain_text(block.title))}]({block.src})\n\n{_md(block.caption)}"


def _md(value: Text) -> str:
    return "".join(_md_span(span) for span in value)


def _md_span(span: Span) -> str:
    return _MARKDOWN_SPANS[span.kind](span)


def _escape_md(value: str) -> str:
    return re.sub(r"([\\`*])", r"\\\1", value)


def _md_row(cells: Sequence[Text]) -> str:
    return "| " + " | ".join(_md(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


# --- HTML ---------------------------------------------------------------------------------------

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:78rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
    ".scroll{overflow-x:auto;max-width:100%;margin:1rem 0}"
    "table{border-collapse:collapse;font-size:.9rem}th,td{border:1px solid #bbb;padding:.25rem .5rem;"
    "white-space:nowrap}td{text-align:right}td:first-child,th:first-child{text-align:left;white-space:normal;"
    "min-width:12rem}th{background:#f0f0f0;vertical-align:bottom}th.paper,td.paper{background:#f7f7fb;color:#333}"
    "img{max-width:100%;height:auto}figure{margin:1rem 0}figcaption{color:#444;max-width:60rem}"
    ".grid{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}"
    ".grid figure{flex:0 1 36rem;min-width:0;max-width:100%;margin:0}.grid img{width:100%}"
    "code{background:#f4f4f4;padding:0 .2em}"
)


def to_html(blocks: Sequence[Block], *, title: str) -> str:
    """A standalone, static HTML page of ``blocks`` (inline CSS, no script, relative image paths)."""
    body = "\n".join(_html(block) for block in blocks)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _html(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{_inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>\n" + "\n".join(f"<li>{_inline(item)}</li>" for item in block.items) + "\n</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, FigureGrid):
        return '<div class="grid">\n' + "\n".join(_html(figure) for figure in block.figures) + "\n</div>"
    return (
        f'<figure{_basis(block.width)}>\n<img src="{html.escape(block.src)}" alt="{html.escape(plain_text(block.title))}">\n'
        f"<figcaption><strong>{_inline(block.title)}</strong> {_inline(block.caption)}</figcaption>\n</figure>"
    )


def _basis(width: int | None) -> str:
    return "" if width is None else f' style="flex-basis:{width}px"'


def _html_table(table: Table) -> str:
    paper = [plain_text(cell).startswith("paper") for cell in table.header]

    def cell(tag: str, value: Text, index: int) -> str:
        css = ' class="paper"' if paper[index] else ""
        return f"<{tag}{css}>{_inline(value)}</{tag}>"

    head = "".join(cell("th", value, index) for index, value in enumerate(table.header))
    rows = "\n".join(
        "<tr>" + "".join(cell("td", value, index) for index, value in enumerate(row)) + "</tr>" for row in table.rows
    )
    return f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table></div>'


def _inline(value: Text) -> str:
    return "".join(_html_span(span) for span in value)


def _html_span(span: Span) -> str:
    return _HTML_SPANS[span.kind](span, html.escape(span.text, quote=False))


_MARKDOWN_SPANS = {
    "plain": lambda span: _escape_md(span.text),
    "code": lambda span: f"`{span.text.replace('`', '')}`",
    "bold": lambda span: f"**{_escape_md(span.text)}**",
    "link": lambda span: f"[{_escape_md(span.text)}]({span.href})",
}
_HTML_SPANS = {
    "plain": lambda _, text: text,
    "code": lambda _, text: f"<code>{text}</code>",
    "bold": lambda _, text: f"<strong>{text}</strong>",
    "link": lambda span, text: f'<a href="{html.escape(span.href)}">{text}</a>',
}
