"""`batchtts import` on the classes of real-book faults of issue 21, each on a small book built here: the
outcome (titles, chapter count, characters kept and dropped by reason) is the expectation."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image

from batchtts.importer import import_source, read_source
from batchtts.importer.report import totals
from batchtts.jobs.markup import LINE_MARKER, SCENE_MARKER
from batchtts.jobs.parse import load_jobs

LICENCE = "Licenceword: redistribution is subject to the trademark licence."


def reasons(book) -> dict[str, int]:
    """Characters dropped by reason, chapters and left-out parts together."""
    out: dict[str, int] = {}
    for ch in book.chapters:
        for k, v in ch.dropped.items():
            out[k] = out.get(k, 0) + v
    for lo in book.left_out:
        out[lo.reason] = out.get(lo.reason, 0) + lo.chars
    return out


def all_text(book) -> str:
    return "\n".join(ch.text for ch in book.chapters)


def adds_up(book) -> None:
    t = totals(book)
    assert t["unaccounted_chars"] == 0 and t["source_chars"] == t["kept_chars"] + t["dropped_chars"]
    assert all(ch.unaccounted == 0 for ch in book.chapters)


def txt(tmp_path: Path, text: str, name: str = "book.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    book = read_source(path)
    adds_up(book)
    return book


BODY = "The lamp burned all night in the keeper's window above the harbour wall."


# 1. Project Gutenberg boundaries -----------------------------------------------------------------------------


def test_gutenberg_end_marker_indented_and_every_old_form(tmp_path):
    indented = (
        "Title: Lamps\nAuthor: K. Keeper\n\n*** START OF THE PROJECT GUTENBERG EBOOK LAMPS ***\n\n"
        f"Chapter 1\n\n{BODY}\n\nChapter 2\n\n{BODY}\n\n"
        "            *** END OF THE PROJECT GUTENBERG EBOOK LAMPS ***\n\n" + f"{LICENCE}\n" * 20
    )
    book = txt(tmp_path, indented)
    assert [c.title for c in book.chapters] == ["Chapter 1", "Chapter 2"]
    assert "Licenceword" not in all_text(book)
    marker = "***ENDOFTHEPROJECTGUTENBERGEBOOKLAMPS***"
    assert reasons(book)["Project Gutenberg licence"] == 20 * len(LICENCE.replace(" ", "")) + len(marker)
    assert (book.title, book.author) == ("Lamps", "K. Keeper")

    old = (
        "The Project Gutenberg Etext of Lamps\n\n**The Small Print!**\n\nSmallprintword terms of use.\n\n"
        "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n"
        f"Chapter 1\n\n{BODY}\n\nChapter 2\n\n{BODY}\n\nEnd of the Project Gutenberg EBook of Lamps\n\n{LICENCE}\n"
    )
    book = txt(tmp_path, old, "old.txt")
    assert [c.title for c in book.chapters] == ["Chapter 1", "Chapter 2"]
    text = all_text(book)
    assert "Smallprintword" not in text and "Licenceword" not in text and "End of the" not in text
    assert {"Project Gutenberg header", "Project Gutenberg licence"} <= set(reasons(book))


# 2. Text before the first chapter heading --------------------------------------------------------------------


def test_letters_and_preface_before_the_first_chapter_are_read_matter_is_not(tmp_path):
    text = (
        "*** START OF THE PROJECT GUTENBERG EBOOK NORTH ***\n\n\n"
        "North;\n\nor, the Cold Voyage\n\nby A. Writer\n\n\n CONTENTS\n\n Letter 1\n Letter 2\n Chapter 1\n\n\n"
        f"PREFACE.\n\nA preface of the author, who explains the book at length. {BODY}\n\n"
        f"Letter 1\n\n_To Mrs. Saville, England._\n\n{BODY}\n\n"
        f"Letter 2\n\n{BODY}\n\nChapter 1\n\n{BODY}\n\n*** END OF THE PROJECT GUTENBERG EBOOK NORTH ***\n"
    )
    book = txt(tmp_path, text)
    assert [c.title for c in book.chapters] == ["PREFACE", "Letter 1", "Letter 2", "Chapter 1"]
    r = reasons(book)
    assert r["title page"] == len("North;or,theColdVoyagebyA.Writer")
    assert r["contents"] == len("CONTENTS") and r["contents list"] == len("Letter1Letter2Chapter1")
    assert "To Mrs. Saville, England." in book.chapters[1].text


def test_chinese_wedge_and_unmarked_opening_become_their_own_jobs(tmp_path):
    opening = "这是开篇之前的一段文字，它不是目录也不是书名页，而是正文的一部分，应当读出来。" * 3
    text = f"{opening}\n\n楔子\n\n很久以前，山下有一座庙。\n\n第一章 山门\n\n庙里有一个和尚。\n"
    book = txt(tmp_path, text)
    assert [c.title for c in book.chapters][1:] == ["楔子", "第一章 山门"]
    assert opening in book.chapters[0].text and not book.left_out


# 3. Heading lines ----------------------------------------------------------------------------------------------


def test_decorated_headings_and_an_indented_body_line_that_starts_like_one(tmp_path):
    text = (
        "《红灯记》某人\n\n"
        "《》目录 第一回　风起青萍\n\n    第一回正文第一句．\n\n"
        "第二回  雨落长街\n\n    第一回中既将诸事略已表明，此回则暂不能写矣．\n\n    第二回正文．\n\n"
        "卷二 第三章 新篇\n\n    第三章正文．\n"
    )
    book = txt(tmp_path, text)
    assert [c.title for c in book.chapters] == ["第一回 风起青萍", "第二回 雨落长街", "卷二 第三章 新篇"]
    assert "此回则暂不能写矣" in book.chapters[1].text
    assert (book.title, book.author) == ("红灯记", "某人")
    assert reasons(book)["heading decoration"] == len("《》目录")


def test_english_headings_repeated_captioned_or_named_on_the_next_line(tmp_path):
    text = (
        f"BOOK I. CHAPTER 3\n\n{BODY}\n\n"
        f"[Illustration: ·LAMPS·\n\nChapter IV.]\n\n{BODY}\n\n"
        f"Chapter 5\n\nChapter 5\n\n{BODY}\n\n"
        f"CHAPTER VI.\n\nThe Storm.\n\n{BODY}\n\nLetter 4\n\n{BODY}\n"
    )
    book = txt(tmp_path, text)
    titles = [c.title for c in book.chapters]
    assert titles == ["BOOK I. CHAPTER 3", "Chapter IV", "Chapter 5", "CHAPTER VI. The Storm.", "Letter 4"]
    r = reasons(book)
    assert r["illustration"] == len("[Illustration:·LAMPS·") and r["repeated heading"] == len("Chapter5")
    assert r["heading decoration"] == len(".]") + len(".")  # "Chapter IV.]", "CHAPTER VI."


def test_a_long_text_without_headings_says_so(tmp_path):
    book = txt(tmp_path, (BODY + "\n\n") * 400)
    assert len(book.chapters) == 1 and any("no chapter heading found" in n for n in book.notes)


# 6. Plain-text markup ------------------------------------------------------------------------------------------


def test_plain_text_markup_is_dropped_and_counted(tmp_path):
    text = (
        "Chapter 1\n\n[Illustration: A lamp on a wall]\n\n"
        "She said _never_ and *always* -- then stopped.[12] It was late[*] and cold¹.\n\n"
        "[Illustration]\n\n[Footnote 12: A note about lateness.]\n\n[1] Another note.\n\n"
        f"{BODY}\n\nChapter 2\n\n{BODY}\n\nINDEX\n\nLamp, 12, 14\n\nWall, 3\n"
    )
    book = txt(tmp_path, text)
    assert [c.title for c in book.chapters] == ["Chapter 1", "Chapter 2"]
    assert "She said never and always — then stopped. It was late and cold." in book.chapters[0].text.replace(
        "  ", " "
    ).replace(" .", ".")
    r = reasons(book)
    assert r["illustration"] == len("[Illustration:Alamponawall]") + len("[Illustration]")
    assert r["markup"] == 4 + 1  # two pairs of delimiters, one "--" become "—"
    assert r["note mark"] == len("[12][*]¹")
    assert r["note"] == len("[Footnote12:Anoteaboutlateness.]") + len("[1]Anothernote.")
    assert r["index"] == len("INDEX") + len("Lamp,12,14") + len("Wall,3")
    assert "Lamp, 12" not in all_text(book)


# 7. Scene breaks -----------------------------------------------------------------------------------------------


def test_scene_break_lines_become_the_marker_never_read(tmp_path):
    breaks = ["* * *", "***", "⁂", "#", "~~~", "——", "o o o"]
    text = "Chapter 1\n\n" + "".join(f"{BODY}\n\n{b}\n\n" for b in breaks) + f"{BODY}\n\n* * *\n\nChapter 2\n\n{BODY}\n"
    book = txt(tmp_path, text)
    ch = book.chapters[0]
    paras = ch.text.strip().split("\n\n")
    assert paras.count(SCENE_MARKER) == len(breaks) and paras[-1] == BODY  # none at the chapter's end
    assert ch.dropped["scene break"] == sum(len(b.replace(" ", "")) for b in breaks) + 3
    assert "*" not in ch.text and "⁂" not in ch.text


# EPUBs built by hand (so comments, PIs and attributes are exactly as a publisher may write them) --------------


def _xhtml(body: str, body_attrs: str = "", html_attrs: str = "", title: str = "t") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
        f'xmlns:epub="http://www.idpf.org/2007/ops" {html_attrs}><head><title>{title}</title></head>'
        f"<body {body_attrs}>{body}</body></html>"
    )


def make_epub(
    path: Path, docs: list[tuple[str, str, str | None]], cover: bytes | None = None, cover_type: str = "image/png"
) -> Path:
    """docs: (file name, XHTML, nav title or None). Comments and a PI sit in the OPF, the spine and the nav."""
    nav_items = "".join(
        f'<!-- {name} --><li><a href="{name}">{title}</a></li>' for name, _x, title in docs if title is not None
    )
    nav = _xhtml(f'<nav epub:type="toc"><!-- toc --><ol>{nav_items}</ol></nav>')
    manifest = "".join(
        f'<item id="d{i}" href="{name}" media-type="application/xhtml+xml"/>' for i, (name, _x, _t) in enumerate(docs)
    )
    if cover is not None:
        manifest += f'<item id="cov" href="cover.png" media-type="{cover_type}" properties="cover-image"/>'
    spine = "".join(f'<!-- chapter --><itemref idref="d{i}"/>' for i in range(len(docs)))
    opf = f"""<?xml version="1.0" encoding="utf-8"?>
<?oxygen RNGSchema="package.rnc"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
<!-- metadata -->
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="uid">x</dc:identifier>
<dc:title>Built Book</dc:title><dc:creator>B. Builder</dc:creator><dc:language>en</dc:language>
<meta property="dcterms:modified">2024-01-01T00:00:00Z</meta></metadata>
<manifest><!-- documents -->{manifest}
<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/></manifest>
<spine><!-- chapters -->{spine}</spine></package>"""
    container = (
        '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
        '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("META-INF/container.xml", container)
        zf.writestr("OEBPS/content.opf", opf)
        zf.writestr("OEBPS/nav.xhtml", nav)
        if cover is not None:
            zf.writestr("OEBPS/cover.png", cover)
        for name, xhtml, _t in docs:
            zf.writestr(f"OEBPS/{name}", xhtml)
    return path


def epub_book(path: Path):
    book = read_source(path)
    adds_up(book)
    return book


# 4. Unusual but valid packaging ---------------------------------------------------------------------------------


def test_comments_in_the_package_semantics_on_body_and_an_undecodable_cover(tmp_path):
    broken_png = b"\x89PNG\r\n\x1a\n" + b"not really a picture" * 10
    path = make_epub(
        tmp_path / "packaged.epub",
        [
            (
                "rights.xhtml",
                _xhtml("<h1>Copyright</h1><p>Rightsword reserved.</p>", 'epub:type="frontmatter copyright-page"'),
                "Copyright",
            ),
            (
                "colophon.xhtml",
                _xhtml("<p>Colophonword set in type.</p>", html_attrs='role="doc-colophon"'),
                "Colophon",
            ),
            ("c1.xhtml", _xhtml(f"<h1>Chapter One</h1><p>{BODY}</p>"), "Chapter One"),
            ("c2.xhtml", _xhtml(f"<h1>Chapter Two</h1><p>{BODY}</p>"), "Chapter Two"),
        ],
        cover=broken_png,
    )
    book = epub_book(path)
    assert [c.title for c in book.chapters] == ["Chapter One", "Chapter Two"]
    r = reasons(book)
    assert r["copyright-page (epub:type)"] == len("CopyrightRightswordreserved.")
    assert r["colophon (epub:type)"] == len("Colophonwordsetintype.")
    report = import_source(path, tmp_path / "jobs" / "packaged.jsonl")
    jobs = load_jobs(report.job_file, tmp_path / "out")  # what `batchtts run` checks
    assert len(jobs) == 2 and all(j.cover is None for j in jobs) and jobs[0].author == "B. Builder"
    assert any("cover cannot be used" in n for n in report.book.notes)


def test_a_good_cover_title_and_author_reach_the_job_file(tmp_path):
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(out, format="PNG")
    path = make_epub(
        tmp_path / "cover.epub", [("c1.xhtml", _xhtml(f"<h1>One</h1><p>{BODY}</p>"), "One")], out.getvalue()
    )
    report = import_source(path, tmp_path / "cover.jsonl")
    job = load_jobs(report.job_file, tmp_path / "out")[0]
    assert (job.book, job.author) == ("Built Book", "B. Builder") and job.cover is not None and job.cover.is_file()


# 5. Matter inside documents --------------------------------------------------------------------------------------


def test_contents_code_line_numbers_navigation_and_mathml(tmp_path):
    links = "".join(f'<p><a href="c{i}.xhtml">Chapter {i}</a></p>' for i in (1, 2))
    chapter1 = (
        f"<h1>Chapter 1</h1><p>{BODY}</p>"
        '<pre class="screen">&lt;html&gt; codeword listing\n  second line</pre>'
        "<p><code>codeblockword one\ncodeblockword two</code></p>"
        "<p>Keep the <code>inline</code> word.</p>"
        '<div class="related-links"><strong>Next topic:</strong> <a href="c2.xhtml">Chapter 2</a></div>'
        '<nav><a href="c2.xhtml">Onwardword</a></nav>'
    )
    chapter2 = (
        "<h1>Chapter 2</h1>"
        '<div class="linegroup"><div>April is the cruellest month<span class="lnum">10</span></div>'
        '<div>Lilacs out of the dead land<span class="pagenum">[p. 7]</span></div></div>'
        '<p>Let <math alttext="x squared"><msup><mi>x</mi><mn>2</mn></msup></math> be given, for '
        '<math alttext="Alternative text not available"><mi>y</mi></math> and '
        '<math alttext="Alternative text not available"><mfrac><mi>a</mi><mi>b</mi></mfrac></math> , all.</p>'
    )
    path = make_epub(
        tmp_path / "matter.epub",
        [
            ("toc.xhtml", _xhtml(f"<h1>Table</h1>{links}"), "Table"),
            ("c1.xhtml", _xhtml(chapter1), "Chapter 1"),
            ("c2.xhtml", _xhtml(chapter2), "Chapter 2"),
        ],
    )
    book = epub_book(path)
    assert [c.title for c in book.chapters] == ["Chapter 1", "Chapter 2"]
    r = reasons(book)
    assert r["contents page (mostly links)"] == len("TableChapter1Chapter2")
    assert r["code block"] == len("<html>codewordlistingsecondline") + len("codeblockwordonecodeblockwordtwo")
    assert r["navigation"] == len("Nexttopic:Chapter2") + len("Onwardword")
    assert r["line number"] == 2 and r["page number"] == len("[p.7]")
    assert r["mathml"] == len("x2") and r["mathml without alt text"] == len("ab")  # "y" is read as itself
    assert "Let x squared be given, for y and, all." in all_text(book)  # alt text, a simple formula's tokens
    text = all_text(book)
    assert "Keep the inline word." in text and "x squared" in text and "codeword" not in text
    assert "10" not in text and "Onwardword" not in text


# 7 and 8 in EPUB: scene breaks and verse -----------------------------------------------------------------------------


def test_epub_scene_breaks_and_verse_lines(tmp_path):
    poem = (
        "<h1>Poems</h1>"
        '<div class="poem"><div class="stanza"><div>The sea is calm tonight,</div><div>The tide is full</div></div>'
        '<div class="stanza"><div>Come to the window</div><div>sweet is the night air</div></div></div>'
        '<div class="verse"><p>Only a line<br/>and another line</p></div>'
        f"<p>{BODY}</p><hr/><p>* * *</p><p>{BODY}</p><hr/>"
    )
    book = epub_book(make_epub(tmp_path / "verse.epub", [("p.xhtml", _xhtml(poem), "Poems")]))
    paras = book.chapters[0].text.strip().split("\n\n")
    assert paras[1:4] == [
        f"The sea is calm tonight, {LINE_MARKER}\nThe tide is full",
        f"Come to the window {LINE_MARKER}\nsweet is the night air",
        f"Only a line {LINE_MARKER}\nand another line",
    ]
    assert paras[4:] == [BODY, SCENE_MARKER, BODY]  # one marker for <hr/> + "* * *", none at the end
    assert book.chapters[0].dropped["scene break"] == 3


def test_epigraph_in_a_title_page_is_read_dedication_and_running_licence_footer_are_not(tmp_path):
    footer = "<p>From Built Book. © 2004. Licensed under the GNU Free Documentation License.</p>"
    title_page = (
        '<section epub:type="titlepage"><h1>Built Book</h1>'
        '<div epub:type="epigraph"><p>Mottoword: the sea remembers.</p></div></section>'
        '<p epub:type="dedication">For Dedicateeword.</p>'
    )
    docs = [("front.xhtml", _xhtml(title_page), "Front")]
    docs += [(f"c{i}.xhtml", _xhtml(f"<h1>Chapter {i}</h1><p>{BODY}</p>{footer}"), f"Chapter {i}") for i in (1, 2, 3)]
    book = epub_book(make_epub(tmp_path / "front.epub", docs))
    assert [c.title for c in book.chapters] == ["Front", "Chapter 1", "Chapter 2", "Chapter 3"]
    assert "Mottoword: the sea remembers." in book.chapters[0].text
    r = reasons(book)
    assert r["titlepage (epub:type)"] == len("BuiltBook") and r["dedication (epub:type)"] == len("ForDedicateeword.")
    assert r["licence notice (repeated)"] == 3 * len("FromBuiltBook.©2004.LicensedundertheGNUFreeDocumentationLicense.")


def test_epub_note_marks_are_dropped_but_exponents_are_not(tmp_path):
    body = (
        "<h1>One</h1><p>As he did.<sup>12</sup> The word<sup>3</sup> stays, as does 2<sup>24</sup> and "
        'e<sup>x</sup>; a noteref<a epub:type="noteref" href="#n1">*</a> goes.</p>'
        '<aside epub:type="footnote" id="n1"><p>Noteword text.</p></aside>'
    )
    book = epub_book(make_epub(tmp_path / "notes.epub", [("c.xhtml", _xhtml(body), "One")]))
    text = book.chapters[0].text
    assert "as does 224 and ex;" in text and "Noteword" not in text  # exponents kept (spoken form: text stage)
    r = reasons(book)
    assert r["footnote mark"] == len("123*") and r["footnote (epub:type)"] == len("Notewordtext.")


def test_wrapped_capital_headings_join_and_a_wrapped_sentence_is_not_a_heading(tmp_path):
    text = (
        "CHAPTER I. IN WHICH PHILEAS FOGG AND PASSEPARTOUT ACCEPT EACH OTHER, THE\nONE AS MASTER, THE OTHER AS MAN\n\n"
        f"{BODY}\n\nChapter 3 of the report says that the lamp was lit every\nnight without fail, in any weather.\n\n"
        f"CHAPTER II.\n\n{BODY}\n"
    )
    book = txt(tmp_path, text)
    assert [c.title for c in book.chapters] == [
        "CHAPTER I. IN WHICH PHILEAS FOGG AND PASSEPARTOUT ACCEPT EACH OTHER, THE ONE AS MASTER, THE OTHER AS MAN",
        "CHAPTER II",
    ]
    assert "Chapter 3 of the report says" in book.chapters[0].text


def test_an_svg_cover_is_left_out_with_a_line_in_the_report(tmp_path):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>'
    docs = [("c1.xhtml", _xhtml(f"<h1>One</h1><p>{BODY}</p>"), "One")]
    path = make_epub(tmp_path / "svg.epub", docs, svg, "image/svg+xml")
    report = import_source(path, tmp_path / "svg.jsonl")
    assert load_jobs(report.job_file, tmp_path / "out")[0].cover is None
    assert any("neither JPEG nor PNG" in n for n in report.book.notes) and "note: the cover" in report.table()


def test_indented_short_lines_in_a_text_are_verse_and_keep_their_line_breaks(tmp_path):
    text = (
        f"Chapter 1\n\n{BODY}\nIt went on past the end of the line, as prose does here.\n\n"
        "  We rest; a dream has power to poison sleep.\n     We rise; one wand'ring thought pollutes the day.\n\n"
        "    A quoted letter, indented, whose lines are long enough to be wrapped prose and\n"
        "    not verse at all, so that no line pause may be made inside it anywhere.\n"
    )
    book = txt(tmp_path, text)
    paras = book.chapters[0].text.strip().split("\n\n")
    first, second = "We rest; a dream has power to poison sleep.", "We rise; one wand'ring thought pollutes the day."
    assert paras[2] == f"{first} {LINE_MARKER}\n{second}"  # no stop invented, the line pause kept
    assert LINE_MARKER not in paras[1] and LINE_MARKER not in paras[3]
