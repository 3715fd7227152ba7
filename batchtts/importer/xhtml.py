"""(X)HTML to speakable paragraphs, counting every character kept or dropped, and why.

Used for EPUB documents and for Markdown (rendered to HTML by markdown-it-py). Paragraphs stay
paragraphs, footnote marks, image alt text, ruby annotations and code blocks are dropped and counted,
and front/back matter inside a document (an EPUB 3 `<section epub:type="footnotes">`) is left out.
A document can be cut into segments at element ids (EPUB navigation anchors) or at headings (Markdown).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, CData, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

from batchtts.importer.document import Block, clean, join_heading, nonspace
from batchtts.jobs.markup import speakable

# EPUB 3 structural semantics (and their DPUB-ARIA roles) that are not read aloud by default.
MATTER_TYPES = {
    "toc",
    "landmarks",
    "page-list",
    "loi",
    "lot",
    "loa",
    "lov",
    "copyright-page",
    "colophon",
    "imprint",
    "imprimatur",
    "errata",
    "cover",
    "titlepage",
    "halftitlepage",
    "seriespage",
    "footnotes",
    "endnotes",
    "rearnotes",
    "footnote",
    "endnote",
    "rearnote",
    "note",
    "index",
    "bibliography",
    "backlink",
}
HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCKS = {
    *HEADINGS,
    *"p div li ul ol dl dt dd blockquote pre table thead tbody tfoot tr caption figure figcaption section".split(),
    *"article header footer aside nav main body hr address details summary center hgroup".split(),
}
_SILENT = {"head", "script", "style", "template", "title", "meta", "link"}  # markup, not text
_DROPPED = {"rt": "ruby annotation", "rp": "ruby annotation", "svg": "svg/mathml", "math": "svg/mathml"}
_CELLS = {"td", "th"}
# Project Gutenberg's EPUBs wrap their header and licence in sections with these ids.
_GUTENBERG_IDS = {"pg-header": "Project Gutenberg header", "pg-footer": "Project Gutenberg licence"}
_NOTE_MARK_RE = re.compile(r"[\[(]?(?:\d{1,3}|[*†‡§¶]{1,3}|[a-z])[\])]?")
_WS_RE = re.compile(r"\s+")


def semantic_types(tag: Tag) -> set[str]:
    """`epub:type` values plus DPUB-ARIA `role="doc-..."` ones, as plain names."""
    types: set[str] = set()
    for key, value in tag.attrs.items():
        if key == "epub:type" or key.endswith(":type"):
            types.update(str(value).split())
    role = tag.get("role")
    if isinstance(role, str):
        types.update(r.removeprefix("doc-") for r in role.split() if r.startswith("doc-"))
    return types


def matter_type(tag: Tag) -> str | None:
    """The front/back matter kind of `tag`, if it is one ('index-headnotes' counts as index)."""
    for t in sorted(semantic_types(tag)):
        if t in MATTER_TYPES or t.startswith("index"):
            return t
    return None


def document_matter(soup: BeautifulSoup) -> str | None:
    """The matter kind of a whole document: on <html>, <body>, or an only child wrapping all of it."""
    node = soup.find("html") or soup
    for _ in range(4):
        if not isinstance(node, Tag):
            return None
        kind = matter_type(node)
        if kind:
            return kind
        children = [c for c in node.children if isinstance(c, Tag) and c.name not in _SILENT]
        texts = [c for c in node.children if type(c) is NavigableString and c.strip()]
        if len(children) != 1 or texts:
            return None
        node = children[0]
    return None


def is_note_mark(tag: Tag) -> bool:
    """A footnote reference: `epub:type="noteref"` (or role), a <sup> holding only such links, or a link to
    an anchor whose text is just a mark ("1", "[2]", "*") written against the word before it ("did.1";
    "see chapter 3" has a space and is kept)."""
    if "noteref" in semantic_types(tag):
        return True
    text = " ".join(tag.get_text().split())
    if not _NOTE_MARK_RE.fullmatch(text):
        return False
    if tag.name == "sup":
        links = tag.find_all("a", href=True)
        return bool(links) and all("#" in a["href"] for a in links)
    if tag.name == "a" and "#" in (tag.get("href") or ""):
        before = tag.previous_sibling
        return isinstance(before, NavigableString) and bool(before) and not before[-1].isspace()
    return False


@dataclass
class Segment:
    """The text between two cut points; `anchor` is the id or heading that opened it (None: the start)."""

    anchor: str | None = None
    heading_title: str | None = None
    blocks: list[Block] = field(default_factory=list)
    source_chars: int = 0
    dropped: Counter = field(default_factory=Counter)
    added_chars: int = 0

    @property
    def empty(self) -> bool:
        return not self.blocks and not self.source_chars

    def first_heading(self) -> str | None:
        return next((b.text for b in self.blocks if b.heading), None)


def parse(data: bytes | str, xml: bool) -> BeautifulSoup:
    """XHTML through the XML parser (so `<a id="x"/>` stays empty), else lxml's forgiving HTML parser."""
    if xml:
        soup = BeautifulSoup(data, "lxml-xml")
        if soup.find("body") is not None:
            return soup
    return BeautifulSoup(data, "lxml")


class Walker:
    """One pass over a document, in document order, filling segments."""

    def __init__(self, cut_ids: set[str] | None = None, cut_level: int = 0, keep_matter: bool = False):
        self.cut_ids = set(cut_ids or ())
        self.cut_level = cut_level
        self.keep_matter = keep_matter
        self.segments = [Segment()]
        self._buf: list[str] = []
        self._heading = 0
        self._pre = 0

    def walk(self, soup: BeautifulSoup) -> list[Segment]:
        root = soup.find("body") or soup
        self._visit(root)
        self._flush()
        return self.segments

    @property
    def _seg(self) -> Segment:
        return self.segments[-1]

    def _cut(self, anchor: str, title: str | None = None) -> None:
        self._flush()
        self.segments.append(Segment(anchor, title))

    def _drop(self, node: Tag, reason: str) -> None:
        n = _count(node)
        self._seg.source_chars += n
        if n:
            self._seg.dropped[reason] += n

    def _visit(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, (Comment, Declaration, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                self._text(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            self._element(child)

    def _element(self, tag: Tag) -> None:
        name = tag.name.lower()
        if name in _SILENT:
            return
        ident = tag.get("id")
        if ident in self.cut_ids:
            self.cut_ids.discard(ident)
            self._cut(ident)
        if name in HEADINGS and self.cut_level and int(name[1]) <= self.cut_level:
            self._cut(name, " ".join(tag.get_text(" ").split()))
        if name == "img" or (name in ("image", "object") and tag.get("alt")):
            alt = nonspace(clean(tag.get("alt") or ""))
            self._seg.source_chars += alt
            if alt:
                self._seg.dropped["image alt text"] += alt
            return
        if name == "br":
            self._buf.append("\n")
            return
        if name in _DROPPED:
            return self._drop(tag, _DROPPED[name])
        kind = None if self.keep_matter else matter_type(tag) or _GUTENBERG_IDS.get(str(ident))
        if kind:
            return self._drop(tag, kind if kind.startswith("Project") else f"{kind} (epub:type)")
        if "pagebreak" in semantic_types(tag) or "pagenum" in (tag.get("class") or []):
            return self._drop(tag, "page number")  # EPUB page-list targets; Gutenberg's <span class="pagenum">
        if name in ("a", "sup", "span") and is_note_mark(tag):
            return self._drop(tag, "footnote mark")
        if name == "pre" and tag.find("code") is not None:
            return self._drop(tag, "code block")
        block = name in _BLOCKS
        if block:
            self._flush()
        self._heading += name in HEADINGS
        self._pre += name == "pre"
        self._visit(tag)
        self._heading -= name in HEADINGS
        self._pre -= name == "pre"
        if name in _CELLS:
            self._buf.append("\n")  # one line per cell: readable, and no punctuation invented
        if block:
            self._flush(heading=name in HEADINGS)

    def _text(self, raw: str) -> None:
        text = clean(raw)
        self._seg.source_chars += nonspace(text)
        self._buf.append(text if self._pre else _WS_RE.sub(" ", text))

    def _flush(self, heading: bool = False) -> None:
        raw = "".join(self._buf)
        self._buf = []
        lines = [" ".join(line.split()) for line in raw.split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            return
        added = 0
        if heading or self._heading:
            text, added = join_heading(lines)
        else:
            text = "\n".join(lines)
        if not speakable(text):
            self._seg.dropped["symbols only (scene break)"] += nonspace(text) - added
            return
        self._seg.added_chars += added
        self._seg.blocks.append(Block(text, heading=bool(heading or self._heading)))


def _count(tag: Tag) -> int:
    """Characters a dropped subtree held: its text and its images' alt text."""
    n = 0
    for node in tag.descendants:
        if isinstance(node, (Comment, Declaration, Doctype, ProcessingInstruction)):
            continue
        if isinstance(node, (NavigableString, CData)):
            if node.parent is not None and node.parent.name in _SILENT:
                continue
            n += nonspace(clean(str(node)))
        elif isinstance(node, Tag) and node.name == "img":
            n += nonspace(clean(node.get("alt") or ""))
    return n
