"""What the book-text normaliser rewrites in each corpus book, and whether GLM-TTS's chunks are digit-free.

For every book in the corpus (../shared/corpus from the project root, or --corpus; skipped when absent): import it
(`batchtts import`), then for every chunk the GLM-TTS engine would make, count the rewrites by class (number, year,
date, numeral, abbreviation, unit, url, code) and list the ten most frequent; then run `batchtts chunks --engine
glmtts --json` on the imported job file and count chunks whose text still holds an ASCII digit and Chinese chunks
over the official 60 units; and count the default engine's chunks of 290 characters or more (a sentence end
missed). Prints a Markdown table. CPU only, no weights.

    python bench/normalize_report.py [--corpus DIR] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("number", "year", "date", "numeral", "abbreviation", "unit", "url", "code")


def book_report(book: Path, work: Path) -> dict:
    from batchtts.api import import_book
    from batchtts.engines.glmtts.text_frontend import CHUNK_RULE, length_units
    from batchtts.jobs.parse import load_jobs
    from batchtts.text.chunkrule import split_by_rule
    from batchtts.text.chunks import apply_pronunciations, source_of
    from batchtts.text.normalize import normalize
    from batchtts.text.split import detect_language, split_text

    jobs_file = work / book.stem / "jobs.jsonl"
    import_book(book, jobs_file, engine="glmtts", force=True)
    counts: Counter = Counter()
    rewrites: Counter = Counter()
    long_embedded = 0
    for job in load_jobs(jobs_file, work / book.stem / "out"):
        long_embedded += sum(len(s.text) >= 290 for s in split_text(job.text, 300))
        for seg in split_by_rule(job.text, CHUNK_RULE):
            language = detect_language(source_of(seg.text)) if job.language == "auto" else job.language
            log: list = []
            normalize(apply_pronunciations(seg.text, job.pronunciations, protect=True), language, log)
            for cls, src, said in log:
                counts[cls] += 1
                rewrites[f"{src.strip()} → {said.strip()}"] += 1
    out = subprocess.run(
        [sys.executable, "-m", "batchtts", "chunks", str(jobs_file), "--engine", "glmtts", "--json"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    digits = sum(bool(re.search(r"[0-9]", r["text"])) for r in rows)
    over = sum(detect_language(r["text"]) == "zh" and length_units(r["text"]) > 60 for r in rows)
    return {"book": book.name, "chunks": len(rows), "digits": digits, "over60": over, "long": long_embedded, **counts,
            "top": rewrites.most_common(10)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = ROOT.parent / "shared" / "corpus"
    if not default.is_dir():  # a worktree one level further down
        default = ROOT.parent.parent / "shared" / "corpus"
    parser.add_argument("--corpus", type=Path, default=default)
    parser.add_argument("--only", nargs="*", default=None, help="book file names to include")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"no corpus at {args.corpus}; skipped")
        return
    books = sorted(p for p in args.corpus.iterdir() if p.suffix in (".epub", ".txt") or p.is_dir())
    books = [b for b in books if args.only is None or b.name in args.only]
    reports = []
    with tempfile.TemporaryDirectory(prefix="batchtts-normreport-") as tmp:
        for book in books:
            try:
                reports.append(book_report(book, Path(tmp)))
            except Exception as exc:  # one book that does not import is a line in the table, not the end
                reports.append({"book": book.name, "error": f"{type(exc).__name__}: {exc}"[:100]})
            print(f"done {book.name}", file=sys.stderr, flush=True)
    head = ["book", "glmtts chunks", "digits left", "zh >60 units", "embedded chunks ≥290 chars", *CLASSES]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in reports:
        if "error" in r:
            print(f"| {r['book']} | {r['error']} |")
            continue
        cells = [r["book"], r["chunks"], r["digits"], r["over60"], r["long"], *(r.get(c, 0) for c in CLASSES)]
        print("| " + " | ".join(map(str, cells)) + " |")
    for r in reports:
        if r.get("top"):
            print(f"\n{r['book']}: " + "; ".join(f"`{k}` ×{v}" for k, v in r["top"]))


if __name__ == "__main__":
    main()
