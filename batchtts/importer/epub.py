"""EPUB 2 and 3 to chapters: the navigation (EPUB 3 nav, else EPUB 2 NCX) names the chapters, the spine
orders the documents, and a document the navigation does not name joins the chapter before it.

Front and back matter (the nav document, `epub:type` or OPF guide kinds such as toc, copyright-page,
footnotes, index; non-linear spine items) is left out by default and listed in the report.
"""

from __future__ import annotations

import io
import posixpath
import re
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

from batchtts.errors import InputError
from batchtts.importer.document import Book, Chapter, LeftOut, nonspace
from batchtts.importer.xhtml import Segment, Walker, doc_title, document_matter, parse

# OPF 2 guide reference types that mark front/back matter.
_GUIDE_MATTER = {"toc", "copyright-page", "index", "cover", "title-page", "colophon", "loi", "lot", "notes"}
_GUIDE_MATTER |= {"bibliography", "glossary"}
# XML comments and processing instructions are valid anywhere in the package, NCX and nav (EPUB 3.3 §3.1);
# ebooklib takes a comment in <spine> for an itemref, so they are taken out before it reads them.
_COMMENT_RE = re.compile(rb"<!--.*?-->|<\?(?!xml[\s?])[^>]*\?>", re.DOTALL)
_PACKAGE_SUFFIXES = (".opf", ".ncx")


def _without_comments(path: Path):
    """PATH itself, or an in-memory copy whose package, NCX and nav documents hold no comments or PIs."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        changed: dict[str, bytes] = {}
        for info in infos:
            name = info.filename.lower()
            if not name.endswith((*_PACKAGE_SUFFIXES, ".xhtml", ".html", ".htm")):
                continue
            data = zf.read(info)
            if not name.endswith(_PACKAGE_SUFFIXES) and b"<nav" not in data:
                continue
            if _COMMENT_RE.search(data):
                changed[info.filename] = _COMMENT_RE.sub(b"", data)
        if not changed:
            return path
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
            for info in infos:
                dst.writestr(info.filename, changed.get(info.filename) or zf.read(info))
    return out


def _open(path: Path):
    """Read with ebooklib, turning every way a malformed file fails into one InputError line."""
    from ebooklib import epub

    if not zipfile.is_zipfile(path):
        raise InputError(path, None, None, "not an EPUB: not a zip file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(path, None, None, f"not an EPUB: {exc}") from None
    if "META-INF/container.xml" not in names:
        raise InputError(path, None, None, "not an EPUB: the zip has no META-INF/container.xml")
    if "META-INF/encryption.xml" in names and _encrypted_text(path):
        raise InputError(path, None, None, "the EPUB's text is encrypted (DRM); only DRM-free books can be read")
    error: Exception | None = None
    source = _without_comments(path)
    for ignore_ncx in (True, False):  # the EPUB 3 nav first; a nav ebooklib cannot parse falls back to the NCX
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if isinstance(source, io.BytesIO):
                    source.seek(0)
                    return epub.read_epub(source, {"ignore_ncx": ignore_ncx})
                return epub.read_epub(str(path), {"ignore_ncx": ignore_ncx})
        except KeyError as exc:  # a file the package document names is not in the zip
            raise InputError(path, None, None, f"malformed EPUB: {exc.args[0]!s} is missing from the zip") from None
        except Exception as exc:  # ebooklib raises whatever its XML walk hits; any of it means a broken file
            error = error or exc
    raise InputError(path, None, None, f"malformed EPUB: {type(error).__name__}: {error}")


def _encrypted_text(path: Path) -> bool:
    """True when META-INF/encryption.xml covers documents, not only fonts (font obfuscation is harmless)."""
    from lxml import etree

    with zipfile.ZipFile(path) as zf:
        root = etree.fromstring(zf.read("META-INF/encryption.xml"), etree.XMLParser(recover=True, no_network=True))
    uris = [ref.get("URI", "") for ref in root.iter("{*}CipherReference")] if root is not None else []
    return any(uri.lower().endswith((".xhtml", ".html", ".htm", ".xml")) for uri in uris)


def _nav_entries(book, path: Path) -> list[tuple[str, str, str]]:
    """(title, document, fragment) for every navigation entry with a target, in navigation order."""
    from ebooklib import epub

    nav = next((i for i in book.get_items() if isinstance(i, epub.EpubNav)), None)
    base = ""
    if nav is None:  # EPUB 2: NCX hrefs are relative to the NCX file, which ebooklib leaves as written
        ncx = next((i for i in book.get_items() if isinstance(i, epub.EpubNcx)), None)
        base = posixpath.dirname(ncx.file_name) if ncx else ""
    out: list[tuple[str, str, str]] = []

    def visit(entries) -> None:
        for entry in entries:
            children = []
            if isinstance(entry, tuple):
                entry, children = entry
            href = getattr(entry, "href", "") or ""
            if href:
                doc, _, frag = unquote(href).partition("#")
                doc = posixpath.normpath(posixpath.join(base, doc)) if doc else ""
                out.append((" ".join((entry.title or "").split()), doc, frag))
            visit(children)

    visit(book.toc or [])
    return out


def _cover(book) -> tuple[bytes, str] | None:
    from ebooklib import epub

    item = next((i for i in book.get_items() if isinstance(i, epub.EpubCover)), None)
    if item is None:  # EPUB 2: <meta name="cover" content="item-id"/>
        metas = book.get_metadata("OPF", "cover") + book.get_metadata("OPF", "meta")  # ebooklib files it either way
        ids = [attrs.get("content", "") for _value, attrs in metas if attrs.get("name", "cover") == "cover"]
        item = next((book.get_item_with_id(i) for i in ids if book.get_item_with_id(i) is not None), None)
    if item is None:
        return None
    suffix = {"image/jpeg": ".jpg", "image/png": ".png"}.get(item.media_type)
    return (item.get_content(), suffix) if suffix else None


def _meta(book, name: str, join: bool = False) -> str | None:
    """A Dublin Core field: the first value (a book may carry several titles), or all of them joined."""
    values = [" ".join((v or "").split()) for v, _ in book.get_metadata("DC", name)]
    values = [v for v in values if v]
    return (" & ".join(values) if join else values[0]) if values else None


def read_epub(path: Path, include_matter: bool = False) -> Book:
    """Chapters of an EPUB, in reading order, with what was left out and why."""
    from ebooklib import epub

    ebook = _open(path)
    version = "EPUB 3" if str(getattr(ebook, "version", "") or "").startswith("3") else "EPUB 2"
    result = Book(
        path, version, _meta(ebook, "title") or path.stem, _meta(ebook, "creator", join=True), _meta(ebook, "language")
    )
    result.cover = _cover(ebook)
    if result.cover is None and any(isinstance(i, epub.EpubCover) for i in ebook.get_items()):
        result.notes.append("the cover image is neither JPEG nor PNG; no cover is set")

    docs = {i.file_name: i for i in ebook.get_items()}
    entries = _nav_entries(ebook, path)
    if not entries:
        result.notes.append("the book has no navigation (nav or NCX); each document is a chapter")
    titles: dict[tuple[str, str], str] = {}
    for title, doc, frag in entries:
        if not doc:
            continue  # a link inside the nav document itself
        if doc not in docs:
            raise InputError(path, None, None, f"malformed EPUB: its navigation names {doc}, which is not in the book")
        titles.setdefault((doc, frag), title)
    guide = {
        posixpath.normpath(unquote(g.get("href") or "").partition("#")[0]): g.get("type", "")
        for g in getattr(ebook, "guide", []) or []
        if (g.get("type") or "").lower() in _GUIDE_MATTER
    }
    spine_docs = set()
    current: Chapter | None = None
    for idref, linear in ebook.spine:
        item = ebook.get_item_with_id(idref)
        if item is None:
            raise InputError(
                path, None, None, f"malformed EPUB: its spine names '{idref}', which is not in the manifest"
            )
        if not isinstance(item, epub.EpubHtml):  # an image or SVG in the spine has no text to read
            continue
        name = item.file_name
        spine_docs.add(name)
        root = parse(item.content or item.get_content(), xml=True)  # raw: get_content() rewrites <body>
        reason = None
        if isinstance(item, epub.EpubNav):
            reason = "toc (navigation document)"
        elif name in guide:
            reason = f"{guide[name]} (OPF guide)"
        elif (kind := document_matter(root)) is not None:
            reason = f"{kind} (epub:type)"
        elif linear == "no":
            reason = "non-linear (outside the reading order)"
        if reason and not include_matter:
            seg = Walker(keep_matter=True).walk(root)[0]
            result.left_out.append(LeftOut(name, reason, seg.source_chars))
            continue
        frags = {frag for (doc, frag) in titles if doc == name and frag}
        walker = Walker(cut_ids=frags, keep_matter=include_matter)
        segments = walker.walk(root)
        found = {s.anchor for s in segments} | walker.dropped_ids  # a dropped anchor's text is counted there
        for frag in sorted(frags - found):
            result.notes.append(
                f"{name}#{frag}: anchor not found; '{titles[(name, frag)]}' stays in the chapter before"
            )
        for seg in segments:
            title = titles.get((name, seg.anchor or ""))
            if title is None and not entries and seg.anchor is None:
                title = ""  # no navigation at all: every document is a chapter, titled by its heading
            if title is None and seg.empty:
                continue  # e.g. nothing before the first anchor of a document
            part = _chapter(seg, title or "", name)
            if title is not None or current is None:
                if title is None:  # text before the first named document
                    part.title = seg.first_heading() or doc_title(root) or "Opening"
                current = part
                result.chapters.append(current)
            else:
                current.absorb(part)
    if not include_matter:
        _drop_notices(result.chapters)
        front = True
        for ch in list(result.chapters):
            front = front and ch.source_chars <= _COPYRIGHT_PAGE_CHARS
            if kind := _matter_chapter(ch, result, front):
                result.left_out.append(LeftOut(", ".join(ch.sources), kind, ch.source_chars))
                result.chapters.remove(ch)
    for _title, doc, _frag in entries:
        if doc not in spine_docs:
            result.notes.append(f"the navigation names {doc}, which is not in the spine; left out")
            spine_docs.add(doc)
    return result


def _chapter(seg: Segment, title: str, source: str) -> Chapter:
    where = f"{source}#{seg.anchor}" if seg.anchor else source
    return Chapter(
        title, list(seg.blocks), [where], seg.source_chars, seg.dropped.copy(), seg.added_chars, seg.link_chars
    )


_CONTENTS_RE = re.compile(r"(?i)\s*(?:table\s+of\s+)?contents\.?\s*|\s*目\s*[录錄]\s*")
_LINKS_SHARE = 0.6  # a chapter whose text is mostly links to elsewhere is a contents page
_TITLE_PAGE_CHARS = 300
# A short unmarked page holding a copyright notice is the copyright page (publishers rarely mark it).
_COPYRIGHT_RE = re.compile(r"(?i)copyright\s*©|©\s*\d{4}|all rights reserved|\bISBN(?:-1[03])?[\s:]*[\dX-]{10}")
_COPYRIGHT_PAGE_CHARS = 4000


def _drop_notices(chapters: list[Chapter]) -> None:
    """A copyright or licence notice repeated as a running header or footer on three or more chapters is not read:
    a run of lines that each recur in three chapters, one of them a copyright notice."""
    seen: Counter = Counter()
    for ch in chapters:
        seen.update({ln for b in ch.blocks if not b.heading for ln in b.text.split("\n") if len(ln) <= 200})
    repeated = {ln for ln, n in seen.items() if n >= 3}
    if not any(_COPYRIGHT_RE.search(ln) for ln in repeated):
        return
    for ch in chapters:
        for block in [b for b in ch.blocks if not b.heading]:
            kept: list[str] = []
            run: list[str] = []
            for line in [*block.text.split("\n"), None]:
                if line is not None and line in repeated:
                    run.append(line)
                    continue
                if any(_COPYRIGHT_RE.search(r) for r in run):
                    ch.dropped["licence notice (repeated)"] += sum(nonspace(r) for r in run)
                else:
                    kept += run
                run = []
                if line is not None:
                    kept.append(line)
            block.text = "\n".join(kept)
        ch.blocks = [b for b in ch.blocks if b.text]


def _matter_chapter(ch: Chapter, book: Book, front: bool) -> str | None:
    """Matter the markup does not mark: a contents page (titled so, or mostly links), a title page (a short
    chapter that only names the book and its author), a copyright page (a short page at the front holding a
    copyright notice)."""
    if _CONTENTS_RE.fullmatch(ch.title) or (ch.blocks and _CONTENTS_RE.fullmatch(ch.blocks[0].text)):
        return "contents page"
    if ch.source_chars and ch.link_chars / ch.source_chars >= _LINKS_SHARE:
        return "contents page (mostly links)"
    if front and ch.source_chars <= _COPYRIGHT_PAGE_CHARS and _COPYRIGHT_RE.search(ch.text):
        return "copyright page (a copyright notice)"
    if ch.source_chars <= _TITLE_PAGE_CHARS:
        words = " ".join(b.text for b in ch.blocks).casefold()
        names = [n.casefold() for n in (book.title, book.author) if n]
        rest = words
        for n in names:
            rest = rest.replace(n, " ")
        if names and any(n in words for n in names) and len(rest.replace("by", " ").split()) <= 3:
            return "title page"
    return None
