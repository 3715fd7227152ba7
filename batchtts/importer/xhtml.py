"""(X)HTML to speakable paragraphs, counting every character kept or dropped, and why.

Used for EPUB documents and for Markdown (rendered to HTML by markdown-it-py). One pass over lxml's own tree
(BeautifulSoup cost ~10x more on a 1 MB book). Paragraphs stay paragraphs; footnote marks, image alt text, ruby
annotations, code blocks, line and page numbers, navigation blocks and MathML without words are dropped and
counted; front/back matter inside a document (an EPUB 3 `<section epub:type="footnotes">`) is left out; a scene
break (`<hr/>`, a `* * *` paragraph) becomes the `[scene]` marker and verse lines end with `[line]`
(batchtts.jobs.markup). A document can be cut into segments at element ids (EPUB navigation) or headings
(Markdown). The rules for what an element is live in `semantics`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from lxml import etree, html

from batchtts.importer.document import Block, clean, join_heading, nonspace
from batchtts.importer.semantics import (
    BLOCKS,
    HEADINGS,
    SILENT,
    document_matter,
    is_code_block,
    is_navigation,
    is_note_mark,
    is_scene_break,
    is_verse,
    local,
    math_alt,
    matter_type,
    number_kind,
    semantic_types,
    speakable_words,
    text_of,
)
from batchtts.jobs.markup import LINE_MARKER, SCENE_MARKER

__all__ = ["HEADINGS", "Segment", "Walker", "document_matter", "parse", "text_of"]

_DROPPED = {"rt": "ruby annotation", "rp": "ruby annotation", "svg": "svg"}
_CELLS = {"td", "th"}
# Project Gutenberg's EPUBs wrap their header and licence in sections with these ids.
_GUTENBERG_IDS = {"pg-header": "Project Gutenberg header", "pg-footer": "Project Gutenberg licence"}
_WS_RE = re.compile(r"\s+")
_SPACE_BEFORE_STOP_RE = re.compile(r"\s+([,.;:!?])")
_XML_PARSER = etree.XMLParser(recover=True, no_network=True, huge_tree=True, resolve_entities=False)


@dataclass
class Segment:
    """The text between two cut points; `anchor` is the id or heading that opened it (None: the start)."""

    anchor: str | None = None
    heading_title: str | None = None
    blocks: list[Block] = field(default_factory=list)
    source_chars: int = 0
    dropped: Counter = field(default_factory=Counter)
    added_chars: int = 0
    link_chars: int = 0  # characters inside links to other places (a contents page is mostly these)

    @property
    def empty(self) -> bool:
        return not self.blocks and not self.source_chars

    def first_heading(self) -> str | None:
        return next((b.text for b in self.blocks if b.heading), None)

    def links_share(self) -> float:
        return self.link_chars / self.source_chars if self.source_chars else 0.0


def parse(data: bytes | str, xml: bool):
    """The document's root element: XHTML through the XML parser (so `<a id="x"/>` stays empty; recovering from
    small faults), else lxml's forgiving HTML parser (also the fallback when XML finds no <body>)."""
    if xml:
        try:
            root = etree.fromstring(data.encode("utf-8") if isinstance(data, str) else data, _XML_PARSER)
        except etree.XMLSyntaxError:
            root = None
        if root is not None and next(root.iter("{*}body", "body"), None) is not None:
            return root
    try:
        return html.document_fromstring(data)
    except (etree.ParserError, ValueError):
        return html.document_fromstring(b"<html><body></body></html>")


def body_of(root):
    return next(root.iter("{*}body", "body"), root)


def doc_title(root) -> str | None:
    tag = next(root.iter("{*}title", "title"), None)
    text = text_of(tag) if tag is not None else ""
    return text or None


class Walker:
    """One pass over a document, in document order, filling segments."""

    def __init__(self, cut_ids: set[str] | None = None, cut_level: int = 0, keep_matter: bool = False):
        self.cut_ids = set(cut_ids or ())
        self.cut_level = cut_level
        self.keep_matter = keep_matter
        self.segments = [Segment()]
        self._buf: list[str] = []
        self._heading = 0
        self._verse = 0
        self._link = 0
        self._dangling = False
        self.dropped_ids: set[str] = set()  # cut points inside something dropped (a PG licence's heading)

    def walk(self, root) -> list[Segment]:
        body = body_of(root)
        self._visit(body)
        self._flush()
        for seg in self.segments:  # a scene break at a chapter's end is nothing to pause for
            while seg.blocks and seg.blocks[-1].text == SCENE_MARKER:
                seg.blocks.pop()
                seg.added_chars -= nonspace(SCENE_MARKER)
        return self.segments

    @property
    def _seg(self) -> Segment:
        return self.segments[-1]

    def _cut(self, anchor: str, title: str | None = None) -> None:
        self._flush()
        self.segments.append(Segment(anchor, title))

    def _drop(self, el, reason: str) -> None:
        self._note_dropped_ids(el)
        n = _count(el)
        self._seg.source_chars += n
        if n:
            self._seg.dropped[reason] += n

    def _drop_matter(self, el, reason: str) -> None:
        """Matter is dropped, but an epigraph inside it (a title page's motto) is book text and is read."""
        epigraphs = [e for e in el.iter() if e is not el and isinstance(e.tag, str) and has_type(e, "epigraph")]
        epigraphs = [e for e in epigraphs if not any(o is not e and e in o.iterancestors() for o in epigraphs)]
        self._note_dropped_ids(el)
        n = _count(el) - sum(_count(e) for e in epigraphs)
        self._seg.source_chars += n
        if n:
            self._seg.dropped[reason] += n
        for e in epigraphs:
            self._flush()
            self._element(e)
            self._flush()

    def _note_dropped_ids(self, el) -> None:
        if self.cut_ids:
            self.dropped_ids.update(e.get("id") for e in el.iter() if e.get("id") in self.cut_ids)

    def _scene(self) -> None:
        """A scene break: the agreed marker as a paragraph, once, and never at a chapter's start."""
        seg = self._seg
        if seg.blocks and not seg.blocks[-1].heading and seg.blocks[-1].text != SCENE_MARKER:
            seg.blocks.append(Block(SCENE_MARKER))
            seg.added_chars += nonspace(SCENE_MARKER)

    def _visit(self, el) -> None:
        if el.text:
            self._text(el.text)
        for child in el:
            if isinstance(child.tag, str):
                self._element(child)
            if child.tail:
                self._text(child.tail)

    def _element(self, el) -> None:  # noqa: C901 - one rule per line, in the order they apply
        name = local(el.tag)
        if name in SILENT:
            return
        ident = el.get("id")
        if ident in self.cut_ids:
            self.cut_ids.discard(ident)
            self._cut(ident)
        if name in HEADINGS and self.cut_level and int(name[1]) <= self.cut_level:
            self._cut(name, text_of(el))
        if name == "img" or (name in ("image", "object") and el.get("alt")):
            alt = nonspace(clean(el.get("alt") or ""))
            self._seg.source_chars += alt
            if alt:
                self._seg.dropped["image alt text"] += alt
            return
        if name == "br":
            self._buf.append("\n")
            return
        if name == "hr":
            self._flush()
            self._scene()
            return
        if name in _DROPPED:
            return self._drop(el, _DROPPED[name])
        if name == "math":
            return self._math(el)
        kind = None if self.keep_matter else matter_type(el) or _GUTENBERG_IDS.get(str(ident))
        if kind:
            return self._drop_matter(el, kind if kind.startswith("Project") else f"{kind} (epub:type)")
        if kind := number_kind(el, name):
            return self._drop(el, kind)
        if name in ("a", "sup", "span") and is_note_mark(el, name):
            return self._drop(el, "footnote mark")
        if is_code_block(el, name):
            return self._drop(el, "code block")
        if is_navigation(el, name):
            return self._drop(el, "navigation")
        block = name in BLOCKS
        heading = name in HEADINGS
        # In a poem a block is a line, unless it is a stanza (a verse container, or a block of <br/> lines).
        verse = is_verse(el) or bool(self._verse and block and any(local(c.tag) == "br" for c in el))
        line = bool(self._verse) and block and not verse and not heading
        if block and not line:
            self._flush()
        link = name == "a" and bool(el.get("href"))
        self._heading += heading
        self._verse += verse
        self._link += link
        self._visit(el)
        self._heading -= heading
        self._verse -= verse
        self._link -= link
        if name in _CELLS:
            self._buf.append("\n")  # one line per cell: readable, and no punctuation invented
        if line:
            self._buf.append("\n")  # a line of a poem: ends a verse line, not the stanza
        elif block:
            self._flush(heading=heading, verse=verse)

    def _math(self, el) -> None:
        """MathML: its alt text or a plain annotation is read; otherwise the formula is dropped and counted."""
        n = _count(el)
        alt = clean(math_alt(el))
        if alt and nonspace(alt) == n and "".join(alt.split()) == "".join("".join(el.itertext()).split()):
            self._seg.source_chars += n  # a simple formula read as its own tokens: nothing dropped
        else:
            self._seg.source_chars += n + nonspace(alt)  # the alt text is read in place of the markup
            if n:
                self._seg.dropped["mathml" if alt else "mathml without alt text"] += n
        if alt:
            self._text_kept(f" {alt} ")
        else:
            self._dangling = True

    def _text(self, raw: str) -> None:
        text = clean(raw)
        n = nonspace(text)
        self._seg.source_chars += n
        if self._link:
            self._seg.link_chars += n
        self._buf.append(_WS_RE.sub(" ", text))

    def _text_kept(self, text: str) -> None:
        self._buf.append(text)

    def _flush(self, heading: bool = False, verse: bool = False) -> None:
        raw = "".join(self._buf)
        self._buf = []
        lines = [" ".join(line.split()) for line in raw.split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            return
        added = 0
        if heading or self._heading:
            text, added = join_heading(lines)
        elif (verse or self._verse) and len(lines) > 1:
            text = f" {LINE_MARKER}\n".join(lines)
            added = nonspace(LINE_MARKER) * (len(lines) - 1)
        else:
            text = "\n".join(lines)
        if self._dangling:  # a formula dropped before a comma or stop leaves no space before it ("for , for ,")
            text = _SPACE_BEFORE_STOP_RE.sub(r"\1", text)
            self._dangling = False
        if not speakable_words(text):
            n = nonspace(text) - added
            if is_scene_break(text):
                self._seg.dropped["scene break"] += n
                self._scene()
            else:
                self._seg.dropped["symbols only"] += n
            return
        self._seg.added_chars += added
        self._seg.blocks.append(Block(text, heading=bool(heading or self._heading)))


def _count(el) -> int:
    """Characters a dropped subtree held: its text and its images' alt text (not its own tail)."""
    n = 0
    for node in el.iter():
        if node is not el and node.tail:
            n += nonspace(clean(node.tail))
        if not isinstance(node.tag, str):
            continue
        name = local(node.tag)
        if name in SILENT:
            continue
        if node.text:
            n += nonspace(clean(node.text))
        if name == "img":
            n += nonspace(clean(node.get("alt") or ""))
    return n


def has_type(el, kind: str) -> bool:
    return kind in semantic_types(el)
