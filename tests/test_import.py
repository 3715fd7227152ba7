"""`batchtts import`: real EPUB 2/3 files, a Markdown course folder and plain-text novels, built here."""

from __future__ import annotations

import io
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from ebooklib import epub
from PIL import Image

from batchtts.errors import InputError
from batchtts.importer import import_source, read_source
from batchtts.jobs.parse import load_jobs
from tests.conftest import run_cli

# Body text of the test books: every word of it must reach the text files.
PROLOGUE = "Before the story, a lamp was lit in a window that faced the harbour."
CH1 = [
    "Morning came grey over Gannet Point, and the keeper climbed the stair.",
    "She counted one hundred and twelve steps, as she always did.",
]
CH1_MORE = "The unnamed interlude followed her down again, past the cold store."
CH2 = ["The barometer fell all afternoon.", "By evening the boats were home and tied."]
CH3 = ["A letter arrived in spring.", "It spoke of a painter who wanted to see the light."]
CH4 = ["山路尽头有一家小茶馆，门前挂着一盏旧灯笼。", "老板每天清晨五点烧水。"]
NOTE = "Footnoteword explains the barometer in detail."
RIGHTS = "Copyrightword all rights reserved by nobody."
ALT = "Altword a drawing of a lighthouse"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 24), (200, 120, 40)).save(out, format="PNG")
    return out.getvalue()


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def written_text(report) -> str:
    return "\n".join((report.job_file.parent / r["text_file"]).read_text(encoding="utf-8") for r in report.records)


def paras(lines: list[str]) -> str:
    return "".join(f"<p>{p}</p>" for p in lines)


def make_epub3(path: Path, nav_extra: list | None = None) -> Path:
    """Cover, nav, copyright page, a footnotes document, an image, nested parts, a document the nav does
    not name, and two chapters in one document cut at an anchor."""
    book = epub.EpubBook()
    book.set_identifier("test-epub3")
    book.set_title("The Keeper")
    book.set_language("en")
    book.add_author("A. Writer")
    book.set_cover("cover.png", png())

    def doc(name: str, title: str, body: str, lang: str = "en") -> epub.EpubHtml:
        item = epub.EpubHtml(title=title, file_name=name, lang=lang)
        item.content = body
        book.add_item(item)
        return item

    rights = doc("rights.xhtml", "Copyright", f'<section epub:type="copyright-page"><p>{RIGHTS}</p></section>')
    prologue = doc("prologue.xhtml", "Prologue", f"<h1>Prologue</h1><p>{PROLOGUE}</p>")
    part1 = doc("part1.xhtml", "Part One", "<h1>Part One</h1>")
    ch1 = doc(
        "ch1.xhtml",
        "Chapter 1",
        f'<section epub:type="chapter"><h2>Chapter 1<br/>The Stair</h2><p>{CH1[0]}'
        '<sup><a epub:type="noteref" href="notes.xhtml#n1">1</a></sup></p>'
        f'<figure><img src="cover.png" alt="{ALT}"/></figure><p>{CH1[1]}</p><p>* * *</p></section>',
    )
    interlude = doc("interlude.xhtml", "Interlude", f"<p>{CH1_MORE}</p>")
    ch2and3 = doc(
        "ch2.xhtml",
        "Chapter 2",
        f"<h2>Chapter 2</h2>{paras(CH2)}<h2 id='c3'>Chapter 3</h2>{paras(CH3)}"
        f'<section epub:type="footnotes"><p>{NOTE}</p></section>',
    )
    part2 = doc("part2.xhtml", "Part Two", "<h1>Part Two</h1>")
    ch4 = doc("ch4.xhtml", "第四章", f"<h2>第四章 茶馆</h2><p><ruby>茶<rt>chá</rt></ruby>馆</p>{paras(CH4)}", "zh")
    notes = doc("notes.xhtml", "Notes", f'<aside epub:type="footnotes"><p id="n1">1. {NOTE}</p></aside>')
    book.toc = [
        epub.Link("rights.xhtml", "Copyright", "rights"),
        epub.Link("prologue.xhtml", "Prologue", "prologue"),
        (
            epub.Section("Part One", "part1.xhtml"),
            [epub.Link("ch1.xhtml", "Chapter 1", "ch1"), epub.Link("ch2.xhtml", "Chapter 2", "ch2")],
        ),
        (epub.Section("Part Two", "part2.xhtml"), [epub.Link("ch2.xhtml#c3", "Chapter 3", "ch3"), ch4]),
        epub.Link("notes.xhtml", "Notes", "notes"),
        *(nav_extra or []),
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["cover", "nav", rights, prologue, part1, ch1, interlude, ch2and3, part2, ch4, notes]
    epub.write_epub(str(path), book, {"raise_exceptions": True})
    return path


def make_epub2(path: Path) -> Path:
    """A hand-made EPUB 2: OPF 2.0 with a guide, an NCX in OEBPS/ naming documents in OEBPS/Text/."""
    xhtml = (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{t}</title>'
        "</head><body>{b}</body></html>"
    )
    files = {
        "Text/title.html": xhtml.format(t="Contents", b="<h1>Contents</h1><p>Chapter I ... 1</p>"),
        "Text/rights.html": xhtml.format(t="Rights", b=f"<p>{RIGHTS}</p>"),
        "Text/ch1.html": xhtml.format(
            t="I", b=f'<h2>CHAPTER I</h2>{paras(CH1)}<p>Note<sup><a href="notes.html#n1">[1]</a></sup>.</p>'
        ),
        "Text/ch2.html": xhtml.format(t="II", b=f"<h2>CHAPTER II</h2>{paras(CH2)}"),
        "Text/notes.html": xhtml.format(t="Notes", b=f'<p id="n1">{NOTE}</p>'),
    }
    manifest = "".join(
        f'<item id="d{i}" href="{name}" media-type="application/xhtml+xml"/>' for i, name in enumerate(files)
    )
    opf = f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="uid">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">
<dc:title>Old Lights</dc:title><dc:creator>B. Author</dc:creator><dc:language>en</dc:language>
<dc:identifier id="uid">test-epub2</dc:identifier><meta name="cover" content="cover"/></metadata>
<manifest>{manifest}<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
<item id="cover" href="Images/cover.png" media-type="image/png"/></manifest>
<spine toc="ncx">{"".join(f'<itemref idref="d{i}"/>' for i in range(len(files)))}</spine>
<guide><reference type="toc" title="Contents" href="Text/title.html"/>
<reference type="copyright-page" title="Rights" href="Text/rights.html"/>
<reference type="notes" title="Notes" href="Text/notes.html"/></guide></package>"""
    points = [("Chapter I", "Text/ch1.html"), ("Chapter II", "Text/ch2.html")]
    ncx = (
        '<?xml version="1.0" encoding="utf-8"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
        "<head/><docTitle><text>Old Lights</text></docTitle><navMap>"
        + "".join(
            f'<navPoint id="p{i}" playOrder="{i}"><navLabel><text>{t}</text></navLabel><content src="{s}"/></navPoint>'
            for i, (t, s) in enumerate(points, 1)
        )
        + "</navMap></ncx>"
    )
    container = (
        '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
        '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("META-INF/container.xml", container)
        zf.writestr("OEBPS/content.opf", opf)
        zf.writestr("OEBPS/toc.ncx", ncx)
        zf.writestr("OEBPS/Images/cover.png", png())
        for name, body in files.items():
            zf.writestr(f"OEBPS/{name}", body)
    return path


def test_epub3_chapters_follow_the_nav_and_spine_and_lose_no_text(tmp_path):
    report = import_source(make_epub3(tmp_path / "keeper.epub"), tmp_path / "jobs" / "keeper.jsonl")
    book = report.book
    assert [c.title for c in book.chapters] == [
        "Prologue", "Part One", "Chapter 1", "Chapter 2", "Chapter 3", "Part Two", "第四章",
    ]  # fmt: skip
    assert (book.title, book.author, report.records[0]["book"]) == ("The Keeper", "A. Writer", "The Keeper")
    text = written_text(report)
    for word in words(" ".join([PROLOGUE, *CH1, CH1_MORE, *CH2, *CH3, *CH4])):
        assert word in text, word
    # The interlude (not in the nav) joins chapter 1; chapter 3 is cut from ch2.xhtml at its anchor.
    ch1, ch2, ch3 = (book.chapters[i].text for i in (2, 3, 4))
    assert CH1_MORE in ch1 and CH3[0] not in ch2 and CH3[0] in ch3
    # Headings come first, then a paragraph break; two heading lines become one sentence.
    assert ch1.startswith("Chapter 1. The Stair\n\n") and ch3.startswith("Chapter 3\n\n")
    # Footnote marks, notes, alt text, ruby readings, the copyright page and the nav are not spoken.
    for gone in ("Footnoteword", "Copyrightword", "Altword", "chá", "* * *"):
        assert gone not in text
    assert "tied.\n" in ch2 and "did.1" not in ch1 and "did." in ch1
    left = {lo.what: lo.reason for lo in book.left_out}
    assert left["rights.xhtml"].startswith("copyright-page") and left["notes.xhtml"].startswith("footnotes")
    assert left["nav.xhtml"].startswith("toc")
    c1 = book.chapters[2]
    assert c1.dropped["footnote mark"] == 1 and c1.dropped["image alt text"] == len("".join(ALT.split()))
    assert book.chapters[4].dropped["footnotes (epub:type)"] == len("".join(NOTE.split()))
    assert all(c.unaccounted == 0 for c in book.chapters)
    # Cover, tags and outputs in the job file, which the run's own parser accepts.
    jobs = load_jobs(report.job_file)
    assert [j.track for j in jobs] == list(range(1, 8)) and jobs[0].cover.read_bytes() == png()
    assert jobs[2].output.name == "03-chapter-1.m4a" and jobs[2].output.parent.name == "The-Keeper"
    summary = json.loads(report.report_json.read_text())
    assert summary["totals"]["unaccounted_chars"] == 0 and summary["chapters"][2]["dropped_chars"]["footnote mark"]
    assert "| Chapter 1 |" in report.report_md.read_text()


def test_epub2_ncx_guide_and_cover(tmp_path):
    report = import_source(make_epub2(tmp_path / "old.epub"), tmp_path / "old.jsonl", fmt="mp3")
    book = report.book
    assert book.kind == "EPUB 2" and (book.title, book.author) == ("Old Lights", "B. Author")
    assert [c.title for c in book.chapters] == ["Chapter I", "Chapter II"]
    assert book.chapters[0].text.startswith("CHAPTER I\n\n")
    text = written_text(report)
    for word in words(" ".join([*CH1, *CH2])):
        assert word in text
    assert "Footnoteword" not in text and "Copyrightword" not in text and "[1]" not in text
    assert {lo.what for lo in book.left_out} == {"Text/title.html", "Text/rights.html", "Text/notes.html"}
    assert report.records[0]["output"] == "Old-Lights/01-chapter-i.mp3" and report.records[0]["cover"].endswith(".png")


def test_include_matter_keeps_front_and_back_matter(tmp_path):
    book = read_source(make_epub2(tmp_path / "old.epub"), include_matter=True)
    assert "Copyrightword" in "".join(c.text for c in book.chapters)


def test_markdown_course_folder_in_natural_order(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    (course / "10-advanced.md").write_text("# Advanced joins\n\nJoins across ten tables.\n", encoding="utf-8")
    (course / "2-basics.md").write_text(
        "# Basics\n\nA *table* holds [rows](https://example.org).\n\n![Altword](x.png)\n\n"
        "```sql\nSELECT 1;\n```\n\n## Practice\n\nTry it yourself.\n",
        encoding="utf-8",
    )
    (course / "1-intro.md").write_text("Welcome to the course.\n\nWe start slowly.\n", encoding="utf-8")
    (course / "notes.png").write_bytes(png())
    report = import_source(course, tmp_path / "course.jsonl", fmt="mp3")
    book = report.book
    assert [c.title for c in book.chapters] == ["intro", "Basics", "Advanced joins"]
    assert book.title == "course" and [r["track"] for r in report.records] == [1, 2, 3]
    basics = book.chapters[1]
    assert basics.text == "Basics\n\nA table holds rows.\n\nPractice\n\nTry it yourself.\n"
    assert basics.dropped == {"code block": len("SELECT1;"), "image alt text": len("Altword")}
    assert book.chapters[0].text.startswith("intro\n\nWelcome")  # the title is spoken first, and counted
    assert book.chapters[0].added_chars == len("intro") and book.chapters[0].unaccounted == 0


def test_markdown_file_cut_at_headings(tmp_path):
    md = tmp_path / "guide.md"
    md.write_text(
        "# The Guide\n\n## One\n\nFirst part.\n\n### Detail\n\nMore.\n\n## Two\n\nSecond part.\n", encoding="utf-8"
    )
    book = read_source(md)
    assert book.title == "The Guide" and [c.title for c in book.chapters] == ["One", "Two"]
    assert book.chapters[0].text == "One\n\nFirst part.\n\nDetail\n\nMore.\n"
    assert [c.title for c in read_source(md, heading_level=3).chapters] == ["One", "Detail", "Two"]


NOVEL = """The Project Gutenberg eBook of Harbour Lights

Title: Harbour Lights

Author: C. Novelist

*** START OF THE PROJECT GUTENBERG EBOOK HARBOUR LIGHTS ***

HARBOUR LIGHTS

Contents

Chapter 12
CHAPTER XII

Chapter 12

The first lamp was lit at dusk.
The second waited for the tide.

CHAPTER XII.
The Return

Nobody expected the ship so early.

第十二章 灯塔

灯塔的光扫过黑色的海面。

第12回 归来

船在清晨靠岸了。

*** END OF THE PROJECT GUTENBERG EBOOK HARBOUR LIGHTS ***

Licence text that is not read.
"""


def test_plain_text_novel_headings_in_english_and_chinese(tmp_path):
    path = tmp_path / "harbour.txt"
    path.write_text(NOVEL, encoding="utf-8")
    report = import_source(path, tmp_path / "harbour.jsonl")
    book = report.book
    assert (book.title, book.author) == ("Harbour Lights", "C. Novelist")
    assert [c.title for c in book.chapters] == ["Chapter 12", "CHAPTER XII. The Return", "第十二章 灯塔", "第12回 归来"]
    assert book.chapters[1].text == "CHAPTER XII. The Return\n\nNobody expected the ship so early.\n"
    text = written_text(report)
    body = "The first lamp was lit at dusk. The second waited for the tide. 灯塔的光扫过黑色的海面。船在清晨靠岸了。"
    for word in words(body):
        assert word in text
    assert "Licence" not in text and "Gutenberg" not in text
    reasons = {lo.reason for lo in book.left_out}
    assert {"Project Gutenberg header", "Project Gutenberg licence", "contents list"} <= reasons
    assert {"title page", "contents"} <= reasons  # the rest of what precedes the first heading would be read


def test_chinese_novel_without_blank_lines(tmp_path):
    path = tmp_path / "novel.txt"
    path.write_text("第一章 开始\n天亮了。\n他出门了。\n第二章 结束\n天黑了。\n", encoding="utf-8")
    book = read_source(path)
    assert [c.title for c in book.chapters] == ["第一章 开始", "第二章 结束"]
    assert book.chapters[0].text == "第一章 开始\n\n天亮了。\n\n他出门了。\n"


def test_text_without_headings_is_one_job_titled_by_its_name(tmp_path):
    path = tmp_path / "a-short-story.txt"
    path.write_text("It rained.\n\nThen it stopped.\n", encoding="utf-8")
    book = read_source(path)
    assert [c.title for c in book.chapters] == ["a short story"] and "Then it stopped." in book.chapters[0].text


def test_dry_run_writes_nothing_and_an_existing_job_file_needs_force(tmp_path):
    src = tmp_path / "story.txt"
    src.write_text("Chapter 1\n\nIt rained.\n", encoding="utf-8")
    out = tmp_path / "jobs" / "story.jsonl"
    report = import_source(src, out, dry_run=True)
    assert report.records and not (tmp_path / "jobs").exists()
    import_source(src, out)
    with pytest.raises(InputError, match="--force"):
        import_source(src, out)
    import_source(src, out, force=True, fmt="wav", engine="embedded", text_dir=tmp_path / "texts")
    record = json.loads(out.read_text().splitlines()[0])
    assert record["output"].endswith(".wav") and record["engine"] == "embedded"
    assert record["text_file"] == "../texts/01-chapter-1.txt" and (tmp_path / "texts" / "01-chapter-1.txt").is_file()


def _malformed(tmp: Path) -> dict[str, Path]:
    not_zip = tmp / "not-zip.epub"
    not_zip.write_text("just text", encoding="utf-8")
    no_container = tmp / "no-container.epub"
    with zipfile.ZipFile(no_container, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip")
    missing = make_epub3(tmp / "missing.epub", nav_extra=[epub.Link("gone.xhtml", "Gone", "gone")])
    empty = tmp / "empty.md"
    empty.write_text("\n  \n", encoding="utf-8")
    latin = tmp / "latin.txt"
    latin.write_bytes("Chapter 1\n\nCaf\xe9 cr\xe8me.\n".encode("latin-1"))
    return {"not a zip": not_zip, "container.xml": no_container, "gone.xhtml": missing, "empty": empty,
            "not UTF-8 (bad byte 0xe9": latin}  # fmt: skip


@pytest.mark.slow
def test_malformed_sources_give_one_line_and_exit_2(tmp_path):
    for expected, path in _malformed(tmp_path).items():
        proc = run_cli("import", str(path), "-o", str(tmp_path / "out" / "x.jsonl"))
        assert proc.returncode == 2, (path, proc.stderr)
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("batchtts: error: "), proc.stderr
        assert expected in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_imported_epub_runs_into_chapters_and_one_m4b(tmp_path, voice_wav):
    src = make_epub2(tmp_path / "old.epub")
    jobs = tmp_path / "jobs" / "old.jsonl"
    proc = run_cli("import", str(src), "-o", str(jobs), "--voice", str(voice_wav), "--voice-text", "A voice.")
    assert proc.returncode == 0, proc.stderr
    assert "Chapter II" in proc.stdout and "left out: copyright-page" in proc.stdout
    proc = run_cli("run", str(jobs), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    m4b = tmp_path / "out" / "Old-Lights.m4b"
    chapters = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters", str(m4b)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert [c["tags"]["title"] for c in json.loads(chapters)["chapters"]] == ["Chapter I", "Chapter II"]
    assert (tmp_path / "out" / "Old-Lights" / "02-chapter-ii.m4a").is_file()
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(m4b)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    info = json.loads(probe)
    tags = {k.lower(): v for k, v in info["format"]["tags"].items()}
    assert (tags["album"], tags["artist"]) == ("Old Lights", "B. Author")  # the book's title and author
    assert any(s.get("disposition", {}).get("attached_pic") for s in info["streams"])  # its cover


def test_the_example_epub_imports_as_the_example_book(tmp_path):
    root = Path(__file__).resolve().parent.parent
    report = import_source(root / "examples" / "lanterns.epub", tmp_path / "book.jsonl", dry_run=True)
    assert [c.title for c in report.book.chapters] == ["The Lighthouse", "山间茶馆", "Two Languages"]
    for ch, name in zip(report.book.chapters, sorted((root / "examples" / "book").glob("*.txt")), strict=True):
        assert ch.text == name.read_text(encoding="utf-8").strip() + "\n"


# A public-domain book (Lewis Carroll, 1865), laid out as Project Gutenberg's EPUB 3 files are: a header
# and a licence section, a title page, a contents page, an illustration, and a transcriber's footnote.
ALICE = [
    (
        "CHAPTER I.",
        "Down the Rabbit-Hole",
        [
            "Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to "
            "do: once or twice she had peeped into the book her sister was reading, but it had no pictures or "
            "conversations in it, “and what is the use of a book,” thought Alice “without pictures or "
            "conversations?”",
            "So she was considering in her own mind (as well as she could, for the hot day made her feel very "
            "sleepy and stupid), whether the pleasure of making a daisy-chain would be worth the trouble of "
            "getting up and picking the daisies, when suddenly a White Rabbit with pink eyes ran close by her.",
        ],
    ),
    (
        "CHAPTER II.",
        "The Pool of Tears",
        [
            "“Curiouser and curiouser!” cried Alice (she was so much surprised, that for the moment she quite "
            "forgot how to speak good English); “now I’m opening out like the largest telescope that ever was! "
            "Good-bye, feet!”",
        ],
    ),
    (
        "CHAPTER III.",
        "A Caucus-Race and a Long Tale",
        [
            "They were indeed a queer-looking party that assembled on the bank—the birds with draggled feathers, "
            "the animals with their fur clinging close to them, and all dripping wet, cross, and uncomfortable.",
        ],
    ),
]


def make_alice(path: Path) -> Path:
    book = epub.EpubBook()
    book.set_identifier("test-alice")
    book.set_title("Alice’s Adventures in Wonderland")
    book.set_language("en")
    book.add_author("Lewis Carroll")
    book.set_cover("cover.png", png())
    docs = []

    def doc(name: str, title: str, body: str) -> epub.EpubHtml:
        item = epub.EpubHtml(title=title, file_name=name, lang="en")
        item.content = body
        book.add_item(item)
        docs.append(item)
        return item

    doc(
        "title.xhtml",
        "Title",
        '<section id="pg-header"><p>The Project Gutenberg eBook of Alice’s Adventures in Wonderland. This ebook '
        "is for the use of anyone anywhere at no cost.</p></section>"
        '<section epub:type="titlepage"><h1>Alice’s Adventures in Wonderland</h1><p>by Lewis Carroll</p></section>',
    )
    doc(
        "contents.xhtml",
        "Contents",
        '<nav epub:type="toc"><h2>Contents</h2><ol>'
        + "".join(f'<li><a href="ch{n}.xhtml">{a} {b}</a></li>' for n, (a, b, _) in enumerate(ALICE, 1))
        + "</ol></nav>",
    )
    for n, (label, name, body) in enumerate(ALICE, 1):
        extra = ""
        if n == 1:
            extra = (
                '<figure><img src="cover.png" alt="Alice follows the White Rabbit"/></figure>'
                '<p>It was the White Rabbit.<a epub:type="noteref" href="#tn1" id="r1">*</a></p>'
                '<aside epub:type="footnote" id="tn1"><p>* Transcriber’s note: the illustration is by '
                "John Tenniel.</p></aside>"
            )
        paragraphs = "".join(f"<p>{p}</p>" for p in body)
        doc(f"ch{n}.xhtml", f"{label} {name}", f"<h2>{label}<br/>{name}</h2>{paragraphs}{extra}")
    doc(
        "licence.xhtml",
        "Licence",
        '<section id="pg-footer"><h2>THE FULL PROJECT GUTENBERG LICENSE</h2><p>To protect the Project Gutenberg '
        "mission of promoting the free distribution of electronic works, by using or distributing this work you "
        "agree to comply with all the terms of the Full Project Gutenberg License.</p></section>",
    )
    book.toc = [
        epub.Link("title.xhtml", "Title Page", "t"),
        *[epub.Link(f"ch{n}.xhtml", f"{a} {b}", f"c{n}") for n, (a, b, _) in enumerate(ALICE, 1)],
        epub.Link("licence.xhtml", "THE FULL PROJECT GUTENBERG LICENSE", "l"),
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["cover", "nav", *docs]
    epub.write_epub(str(path), book, {"raise_exceptions": True})
    return path


def test_a_public_domain_book_as_gutenberg_lays_it_out(tmp_path):
    report = import_source(make_alice(tmp_path / "alice.epub"), tmp_path / "alice.jsonl")
    book = report.book
    titles = [f"{a} {b}" for a, b, _ in ALICE]
    assert [c.title for c in book.chapters] == titles
    assert book.chapters[0].text.startswith("CHAPTER I. Down the Rabbit-Hole\n\nAlice was beginning")
    text = written_text(report)
    for _, _, body in ALICE:
        for word in words(" ".join(body)):
            assert word in text, word
    for gone in ("Gutenberg", "Transcriber", "Tenniel", "Contents", "follows"):
        assert gone not in text, gone
    reasons = {lo.what: lo.reason for lo in book.left_out}
    assert reasons["contents.xhtml"].startswith("toc") and reasons["nav.xhtml"].startswith("toc")
    assert book.chapters[0].dropped["footnote (epub:type)"] and book.chapters[0].dropped["footnote mark"] == 1
    assert json.loads(report.report_json.read_text())["totals"]["unaccounted_chars"] == 0
    print(report.table())


def test_make_audiobook_epub_imports_then_runs():
    root = Path(__file__).resolve().parent.parent
    args = ["EPUB=examples/lanterns.epub", "NAME=zz-import-check", "VOICE=examples/voice/narrator.wav"]
    args.append("VOICE_TEXT=Hi.")
    proc = subprocess.run(["make", "-n", "audiobook", *args], cwd=root, capture_output=True, text=True, check=True)
    lines = [line.strip() for line in proc.stdout.splitlines()]
    imp = next(i for i, line in enumerate(lines) if "batchtts import" in line)
    assert '"examples/lanterns.epub" -o jobs/zz-import-check.jsonl' in lines[imp] and "--force" not in lines[imp]
    assert '--voice "examples/voice/narrator.wav"' in " ".join(lines[imp : imp + 3])
    assert any("batchtts run jobs/zz-import-check.jsonl --out out/zz-import-check" in line for line in lines[imp:])


def test_drm_encrypted_text_is_refused_but_obfuscated_fonts_are_not(tmp_path):
    def with_encryption(uri: str) -> Path:
        path = make_epub2(tmp_path / f"{uri.replace('/', '-')}.epub")
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr(
                "META-INF/encryption.xml",
                '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData>'
                f'<enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData></encryption>',
            )
        return path

    with pytest.raises(InputError, match="DRM"):
        read_source(with_encryption("OEBPS/Text/ch1.html"))
    assert len(read_source(with_encryption("OEBPS/Fonts/serif.otf")).chapters) == 2


def test_report_names_verse_line_markers_among_the_added_characters(tmp_path):
    path = tmp_path / "poem.txt"
    prose = "It was a long walk up the hill that morning, and the wind was cold against their faces.\n"
    verse = "    April is the month,\n    May the next,\n    June the last.\n"
    path.write_text(f"{prose}\n{verse}\n{prose}", encoding="utf-8")
    import_source(path, tmp_path / "poem.jsonl")
    text = next((tmp_path / "poem").glob("*.txt")).read_text(encoding="utf-8")
    report = (tmp_path / "poem.import.md").read_text(encoding="utf-8")
    assert "[line]" in text and "markers" in report, report
