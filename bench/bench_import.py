"""Import speed: CPU seconds per MB of EPUB text (issue 21: a 1 MB EPUB in a few seconds on one core).

Builds a synthetic EPUB 3 of `--mb` MB of XHTML (chapters of paragraphs with emphasis, links, note marks,
a verse block and MathML, as real books carry them) in a temporary folder and times `read_source` on it,
`--repeat` times (the best is reported). `--corpus` also times every book of the shared corpus (see
import_report.py). With `--installed`, the batchtts found on PYTHONPATH is measured instead of this checkout's
(to compare with another branch). Prints a table; `--out` also writes it.

    python bench/bench_import.py [--mb 1] [--repeat 3] [--corpus] [--out bench/results/import-speed.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if "--installed" not in sys.argv:
    sys.path.insert(0, str(ROOT))

from batchtts.importer import read_source  # noqa: E402

PARA = (
    "<p>The keeper climbed <em>one hundred and twelve</em> steps, as she always did, and looked out over the "
    'harbour where the <a href="#n{n}">boats</a> lay<sup><a epub:type="noteref" href="notes.xhtml#n1">1</a></sup> '
    "at anchor; the wind came round to the north-east before dawn, and the glass fell all morning.</p>\n"
)
VERSE = (
    '<div class="linegroup"><div>The sea is calm tonight,</div><div>The tide is full, the moon lies fair</div></div>'
)
MATH = '<p>Let <math alttext="x squared"><msup><mi>x</mi><mn>2</mn></msup></math> be given.</p>'


def make_epub(path: Path, mb: float) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("bench")
    book.set_title("Bench Book")
    book.set_language("en")
    chapter_bytes = 20_000
    n_chapters = max(1, int(mb * 1e6 / chapter_bytes))
    items = []
    for c in range(1, n_chapters + 1):
        body = f"<h1>Chapter {c}</h1>\n"
        while len(body) < chapter_bytes:
            body += PARA.format(n=len(body)) + (VERSE if len(body) % 7 == 0 else "") + (MATH if c % 5 == 0 else "")
        item = epub.EpubHtml(title=f"Chapter {c}", file_name=f"c{c}.xhtml", lang="en")
        item.content = body
        book.add_item(item)
        items.append(item)
    notes = epub.EpubHtml(title="Notes", file_name="notes.xhtml")
    notes.content = '<aside epub:type="footnote" id="n1"><p>A note.</p></aside>'
    book.add_item(notes)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items, notes]
    epub.write_epub(str(path), book)
    return path


def unpacked_mb(path: Path) -> float:
    """An EPUB's size as the documents it holds (MB of XHTML), not as compressed."""
    with zipfile.ZipFile(path) as zf:
        return sum(i.file_size for i in zf.infolist() if i.filename.endswith((".xhtml", ".html", ".htm"))) / 1e6


def timed(path: Path, repeat: int) -> tuple[float, int]:
    best, chapters = float("inf"), 0
    for _ in range(repeat):
        start = time.process_time()
        book = read_source(path)
        best = min(best, time.process_time() - start)
        chapters = len(book.chapters)
    return best, chapters


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--corpus", action="store_true")
    ap.add_argument("--installed", action="store_true", help="measure the batchtts on PYTHONPATH")
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = make_epub(Path(tmp) / "bench.epub", args.mb)
        seconds, chapters = timed(path, args.repeat)
        rows.append((f"synthetic {args.mb:g} MB of XHTML", unpacked_mb(path), chapters, seconds))
    if args.corpus:
        sys.path.insert(0, str(ROOT / "bench"))  # batchtts is imported already: this adds only the report's helpers
        from import_report import books, corpus_dir, size_of

        folder = corpus_dir(None)
        for book in books(folder) if folder else []:
            try:
                seconds, chapters = timed(book, 1)
            except Exception as exc:  # an older batchtts may refuse a book: say so, time the rest
                print(f"{book.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            rows.append(
                (book.name, unpacked_mb(book) if book.suffix == ".epub" else size_of(book) / 1e6, chapters, seconds)
            )
    lines = ["| source | MB (XHTML or text) | chapters | CPU s | CPU s/MB |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {n} | {mb:.2f} | {ch} | {s:.2f} | {s / mb:.2f} |" for n, mb, ch, s in rows]
    lines.append(f"\n(batchtts from {Path(sys.modules['batchtts'].__file__).parent.parent})")
    out = "\n".join(lines)
    print(out)
    if args.out:
        Path(args.out).write_text(out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
