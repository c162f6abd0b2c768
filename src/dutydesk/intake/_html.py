"""HTML mail as readable text: tags dropped, blocks and line breaks kept as lines, table cells
side by side, links followed by their target. The standard library's parser reads it, so
broken markup never fails a mail."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose start and end break the line.
BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
# Paragraph-like elements: a blank line before and after.
PARAGRAPHS = frozenset({"blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "p", "pre", "table"})
# Stand-ins for breaks while parsing: runs of them become one line break, or a blank line when
# a paragraph is among them (so nested blocks do not pile up empty lines).
LINE, PARAGRAPH = "\x1e", "\x1d"
# Elements whose content is not text a person reads.
HIDDEN = frozenset({"head", "script", "style", "template", "title", "noscript"})
CELLS = frozenset({"td", "th"})


class _TextWriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.pre = 0
        self.links: list[tuple[str, int]] = []  # open <a>: its target, where its text starts

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append(f"{LINE}- ")
        elif tag in BLOCKS:
            self.parts.append(PARAGRAPH if tag in PARAGRAPHS else LINE)
            self.pre += tag == "pre"
        elif tag in CELLS:
            self.parts.append("\t")
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.parts)))
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and not self.hidden:
                self.parts.append(f"[{alt}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in HIDDEN:
            self.hidden -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in BLOCKS:
            self.parts.append(PARAGRAPH if tag in PARAGRAPHS else LINE)
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            text = "".join(self.parts[start:]).strip()
            if href and not href.startswith("#") and href not in (text, f"mailto:{text}"):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        text = data.replace(LINE, " ").replace(PARAGRAPH, " ")
        self.parts.append(text if self.pre else re.sub(r"\s+", " ", text))

    def text(self) -> str:
        joined = re.sub(
            rf"[ \t]*[{LINE}{PARAGRAPH}][{LINE}{PARAGRAPH} ]*",
            lambda run: "\n\n" if PARAGRAPH in run.group() else "\n",
            "".join(self.parts),
        )
        lines = []
        for line in joined.split("\n"):
            cells = [" ".join(cell.split()) for cell in line.split("\t")]
            lines.append("  ".join(cell for cell in cells if cell))
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(markup: str) -> str:
    """The readable text of an HTML document or fragment."""
    writer = _TextWriter()
    writer.feed(markup)
    writer.close()
    return writer.text()
