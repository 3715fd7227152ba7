"""What an (X)HTML element is, for reading aloud: front/back matter, note marks, navigation, code, line and page
numbers, verse containers, scene breaks. Works on lxml elements (XML or HTML parser alike).

Sources of the rules: EPUB 3 Structural Semantics Vocabulary (epub:type) and DPUB-ARIA 1.0 (role="doc-…") for
matter, notes, page breaks; the class names publishers use where they do not mark semantics (IDPF samples:
`lnum`, `linegroup`, `related-links`; Project Gutenberg: `pagenum`, `poem`, `stanza`), as found in the corpus.
"""

from __future__ import annotations

import re

from batchtts.jobs.markup import LINE_MARKER, SCENE_MARKER, speakable

# EPUB 3 structural semantics (and their DPUB-ARIA roles) that are not read aloud by default.
MATTER_TYPES = {
    *"toc landmarks page-list loi lot loa lov copyright-page colophon imprint imprimatur errata cover".split(),
    *"titlepage halftitlepage seriespage footnotes endnotes rearnotes footnote endnote rearnote note".split(),
    *"index bibliography glossary backlink dedication".split(),
}
HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
BLOCKS = {
    *HEADINGS,
    *"p div li ul ol dl dt dd blockquote pre table thead tbody tfoot tr caption figure figcaption section".split(),
    *"article header footer aside nav main body hr address details summary center hgroup".split(),
}
SILENT = {"head", "script", "style", "template", "title", "meta", "link"}  # markup, not text
_NAV_CLASSES = {
    *"related-links familylinks nextlink prevlink parentlink previouslink navlinks navlink navigation".split(),
    *"navbar breadcrumb breadcrumbs pager".split(),
}
_LINE_NUMBER_CLASSES = {"lnum", "linenum", "line-number", "linenumber", "lineno", "line-num", "linenr"}
_PAGE_NUMBER_CLASSES = {"pagenum", "page-number", "pagenumber", "pageno", "page-num", "pagebreak"}
_VERSE_CLASSES = {"linegroup", "poem", "verse", "stanza", "poetry", "lg", "lines"}
_VERSE_TYPES = {"z3998:poem", "z3998:verse", "z3998:stanza", "z3998:song", "z3998:hymn", "z3998:lyrics"}
_NOTE_MARK_RE = re.compile(r"[\[(]?(?:\d{1,3}|[*†‡§¶]{1,3}|[a-z])[\])]?")
_ALT_PLACEHOLDER_RE = re.compile(r"(?i)\b(?:not available|no alt(?:ernative)? text|unavailable)\b")
# A line of only decoration ("* * *", "***", "⁂", "#", "~~~", "——", "o o o", "-----", "§"): a scene break.
_SCENE_RE = re.compile(
    r"[⁂❧☙§#*∗✻✱]|(?:[*∗⁂#~=·•×+§—–_\-]\s*){2,20}|(?:[oOx0]\s+){2,8}[oOx0]|(?:[❧☙✻✱◇◆■□○●]\s*){2,10}"
)


def local(tag) -> str:
    """'{http://www.w3.org/1999/xhtml}body' -> 'body'; '' for comments and processing instructions."""
    return tag.rpartition("}")[2].lower() if isinstance(tag, str) else ""


def classes(el) -> set[str]:
    return set((el.get("class") or "").lower().split())


def semantic_types(el) -> set[str]:
    """`epub:type` values (any namespace prefix) plus DPUB-ARIA `role="doc-..."` ones, as plain names."""
    types: set[str] = set()
    for key, value in el.attrib.items():
        if key.endswith(("}type", ":type")):
            types.update(str(value).split())
    role = el.get("role")
    if role:
        types.update(r.removeprefix("doc-") for r in role.split() if r.startswith("doc-"))
    return types


def matter_type(el) -> str | None:
    """The front/back matter kind of `el`, if it is one ('index-headnotes' counts as index)."""
    for t in sorted(semantic_types(el)):
        if t in MATTER_TYPES or t.startswith("index"):
            return t
    return None


def document_matter(root) -> str | None:
    """The matter kind of a whole document: on <html>, <body>, or an only child wrapping all of it."""
    node = root
    for _ in range(5):
        kind = matter_type(node)
        if kind:
            return kind
        children = [c for c in node if isinstance(c.tag, str) and local(c.tag) not in SILENT]
        texts = [t for t in [node.text, *(c.tail for c in node)] if t and t.strip()]
        if len(children) != 1 or texts:
            return None
        node = children[0]
    return None


def text_of(el) -> str:
    return " ".join("".join(el.itertext()).split())


def is_note_mark(el, name: str) -> bool:
    """A footnote reference: `epub:type="noteref"` (or role), a <sup> holding only such links or only a mark
    ("¹", "12", "*"), or a link to an anchor whose text is just a mark written against the word before it."""
    if "noteref" in semantic_types(el):
        return True
    text = text_of(el)
    if not _NOTE_MARK_RE.fullmatch(text):
        return False
    before = _text_before(el)
    if name == "sup":
        links = [a for a in el.iter() if local(a.tag) == "a" and a.get("href")]
        if links:
            return all("#" in a.get("href") for a in links)
        # an unlinked mark after a word or a stop ("did.¹²"), not an exponent ("2<sup>24</sup>", "e<sup>x</sup>")
        return text.strip("[]()*†‡").isdigit() and bool(re.search(r"(?:[^\W\d_]{2}|[.,;:!?”’\"')])$", before))
    if name == "a" and "#" in (el.get("href") or ""):
        return bool(before) and not before[-1].isspace()
    return False


def _text_before(el) -> str:
    """The text right before EL in its parent (its previous sibling's tail, or the parent's text)."""
    prev = el.getprevious()
    if prev is not None:
        return prev.tail or ""
    parent = el.getparent()
    return (parent.text or "") if parent is not None else ""


def is_navigation(el, name: str) -> bool:
    """A block that moves the reader around ("Previous topic / Next topic", a <nav> inside a chapter)."""
    if name == "nav" or (el.get("role") or "") == "navigation":
        return True
    return bool(classes(el) & _NAV_CLASSES)


def number_kind(el, name: str) -> str | None:
    """'line number' or 'page number' for a short marker element (`<span class="lnum">80</span>`)."""
    if "pagebreak" in semantic_types(el):
        return "page number"
    cls = classes(el)
    if not cls & (_LINE_NUMBER_CLASSES | _PAGE_NUMBER_CLASSES):
        return None
    if sum(not c.isspace() for c in text_of(el)) > 12:
        return None
    return "line number" if cls & _LINE_NUMBER_CLASSES else "page number"


def is_verse(el) -> bool:
    return bool(classes(el) & _VERSE_CLASSES) or bool(semantic_types(el) & _VERSE_TYPES)


def is_code_block(el, name: str) -> bool:
    """<pre> of any class; a <code> that is its parent block's whole content and spans lines."""
    if name == "pre":
        return True
    if name != "code":
        return False
    parent = el.getparent()
    if parent is None or local(parent.tag) not in BLOCKS:
        return False
    others = [parent.text, *(c.tail for c in parent)] + [text_of(c) for c in parent if c is not el]
    return not any(t and t.strip() for t in others) and "\n" in "".join(el.itertext()).strip()


_SIMPLE_MATH = {"math", "mrow", "mstyle", "mi", "mn", "mo", "mtext", "mspace", "semantics"}


def math_alt(el) -> str:
    """MathML's own words: `alttext` (not a placeholder), else a plain-text or speech annotation, else the tokens
    of a formula that is only a few identifiers, numbers and operators ('r', 'x = 0'); '' if none."""
    alt = " ".join((el.get("alttext") or "").split())
    if alt and not _ALT_PLACEHOLDER_RE.search(alt):
        return alt
    for ann in el.iter():
        if local(ann.tag) == "annotation" and (ann.get("encoding") or "").lower() in (
            "text/plain",
            "application/x-speech",
            "text/speech",
        ):
            return text_of(ann)
    names = {local(e.tag) for e in el.iter() if isinstance(e.tag, str)}
    tokens = [" ".join("".join(e.itertext()).split()) for e in el.iter() if local(e.tag) in ("mi", "mn", "mo", "mtext")]
    tokens = [t for t in tokens if t]
    if names <= _SIMPLE_MATH and 0 < len(tokens) <= 5:
        return " ".join(tokens)
    return ""


def is_scene_break(line: str) -> bool:
    """A line that is only decoration between scenes (never read; the splitter's `scene` pause)."""
    line = line.strip()
    return bool(line) and len(line) <= 40 and bool(_SCENE_RE.fullmatch(line))


def speakable_words(text: str) -> int:
    """Letters and digits an engine would say, the agreed markers not counted."""
    return speakable(text.replace(SCENE_MARKER, " ").replace(LINE_MARKER, " "))
