"""Notes rendered from Markdown safely: raw HTML is shown as text, unsafe links are refused."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup

# commonmark with `html` off: a <script> in a note is escaped, not run. markdown-it also
# refuses javascript:, vbscript:, file: and data: links (validateLink).
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})


def render_note(text: str) -> Markup:
    """A note's Markdown as HTML that is safe to put in a page."""
    return Markup(_markdown.render(text))  # noqa: S704 - markdown-it escaped the raw HTML
