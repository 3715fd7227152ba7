"""Build examples/lanterns.epub: the example book (examples/book/*.txt) as a small EPUB 3 with a generated
cover image, a nav, and a copyright page, so `batchtts import examples/lanterns.epub` can be shown and tested.

    python examples/make_epub.py            # writes examples/lanterns.epub (byte-identical on every run)
"""

from __future__ import annotations

import datetime
import html
import io
import zipfile
from pathlib import Path

from ebooklib import epub
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
CHAPTERS = [  # file, title in the navigation, language
    ("01-the-lighthouse.txt", "The Lighthouse", "en"),
    ("02-tea-house.txt", "山间茶馆", "zh"),
    ("03-two-languages.txt", "Two Languages", "en"),
]
FIXED_TIME = (2026, 1, 1, 0, 0, 0)


def cover_png() -> bytes:
    """A lantern on a night-blue ground: drawn here, so the repository needs no image assets."""
    img = Image.new("RGB", (600, 900), (18, 32, 64))
    draw = ImageDraw.Draw(img)
    draw.rectangle((270, 250, 330, 280), fill=(60, 50, 40))
    draw.ellipse((220, 280, 380, 520), fill=(250, 190, 70), outline=(120, 80, 30), width=8)
    draw.rectangle((260, 520, 340, 550), fill=(60, 50, 40))
    draw.text((255, 700), "LANTERNS", fill=(240, 230, 210))
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def chapter_xhtml(text: str) -> str:
    heading, *paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    body = [f"<h1>{html.escape(heading)}</h1>"] + [f"<p>{html.escape(p)}</p>" for p in paragraphs]
    return '<section epub:type="chapter">' + "".join(body) + "</section>"


def build(dest: Path) -> None:
    book = epub.EpubBook()
    book.set_identifier("batchtts-example-lanterns")
    book.set_title("Lanterns")
    book.set_language("en")
    book.add_author("batchtts examples")
    book.set_cover("cover.png", cover_png())

    rights = epub.EpubHtml(title="Copyright", file_name="copyright.xhtml", lang="en")
    rights.content = (
        '<section epub:type="copyright-page"><p>Lanterns. Copyright 2026 the batchtts authors.</p>'
        "<p>Licensed under the Apache License, Version 2.0. Made with examples/make_epub.py.</p></section>"
    )
    book.add_item(rights)
    chapters = []
    for n, (name, title, lang) in enumerate(CHAPTERS, 1):
        ch = epub.EpubHtml(title=title, file_name=f"chapter{n}.xhtml", lang=lang)
        ch.content = chapter_xhtml((HERE / "book" / name).read_text(encoding="utf-8"))
        book.add_item(ch)
        chapters.append(ch)
    book.toc = [epub.Link("copyright.xhtml", "Copyright", "copyright"), *chapters]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["cover", "nav", rights, *chapters]

    raw = io.BytesIO()
    epub.write_epub(raw, book, {"mtime": datetime.datetime(*FIXED_TIME), "raise_exceptions": True})
    dest.write_bytes(_fixed_timestamps(raw.getvalue()))


def _fixed_timestamps(data: bytes) -> bytes:
    """Rewrite the zip with fixed member dates so that the committed file only changes with its content."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, FIXED_TIME)
            fixed.compress_type = info.compress_type
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


if __name__ == "__main__":
    build(HERE / "lanterns.epub")
    print(HERE / "lanterns.epub")
