"""The corpus report (issue 21): import every real book in the shared corpus and print, per book, the chapters
found, characters kept, characters dropped by reason, unaccounted characters, seconds and seconds per MB.

The corpus is read where it exists (`../shared/corpus` from the project's root, or
`--corpus`); without it the script says so and exits 0. Nothing is written unless `--out` names a file for a
Markdown copy of the table (e.g. bench/results/import-corpus.md). Characters are counted without whitespace,
as the import report counts them; "dropped" joins what chapters dropped and the parts left out.

    python bench/import_report.py [--corpus DIR] [--out FILE] [--only NAME] [--reasons N]
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchtts.importer import read_source  # noqa: E402

CANDIDATES = (ROOT.parent / "shared" / "corpus", ROOT.parent.parent / "shared" / "corpus")  # main or a worktree
KINDS = (".epub", ".txt", ".md")


def corpus_dir(given: str | None) -> Path | None:
    for path in [Path(given)] if given else list(CANDIDATES):
        if path.is_dir():
            return path
    return None


def books(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if ((p.is_file() and p.suffix.lower() in KINDS) or p.is_dir()) and not p.name.upper().startswith("README")
    )


def size_of(path: Path) -> int:
    """Bytes of text: a folder's files, an EPUB's (X)HTML documents unpacked, else the file."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    if path.suffix.lower() == ".epub":
        import zipfile

        with zipfile.ZipFile(path) as zf:
            return sum(i.file_size for i in zf.infolist() if i.filename.endswith((".xhtml", ".html", ".htm")))
    return path.stat().st_size


def _reason(text: str) -> str:
    """A left-out part's reason without its per-document detail ('toc (epub:type)' stays whole)."""
    return text.removeprefix("nothing left to speak: ")


def measure(path: Path) -> dict:
    start = time.process_time()
    try:
        book = read_source(path)
    except Exception as exc:  # a traceback is exactly what the report must show
        return {"name": path.name, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    seconds = time.process_time() - start
    dropped: Counter = Counter()
    for ch in book.chapters:
        dropped.update(ch.dropped)
    for lo in book.left_out:
        dropped[f"left out: {_reason(lo.reason)}"] += lo.chars
    source = sum(c.source_chars for c in book.chapters) + sum(lo.chars for lo in book.left_out)
    kept = sum(c.kept_chars for c in book.chapters)
    return {
        "name": path.name,
        "chapters": len(book.chapters),
        "titles": [c.title for c in book.chapters],
        "source": source,
        "kept": kept,
        "dropped": dropped,
        "unaccounted": source - kept - sum(dropped.values()),
        "seconds": seconds,
        "mb": size_of(path) / 1e6,
        "notes": list(book.notes),
    }


def table(rows: list[dict], reasons: int) -> str:
    lines = [
        "| book | chapters | source | kept | dropped by reason | unaccounted | CPU s | s/MB of text |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | ERROR | | | {r['error'][:100]} | | | |")
            continue
        top = sorted(r["dropped"].items(), key=lambda kv: -kv[1])
        why = "; ".join(f"{k} {v}" for k, v in top[:reasons] if v)
        if len(top) > reasons:
            why += f"; +{len(top) - reasons} more {sum(v for _, v in top[reasons:])}"
        lines.append(
            f"| {r['name']} | {r['chapters']} | {r['source']} | {r['kept']} | {why.replace('|', '/')} | "
            f"{r['unaccounted']} | {r['seconds']:.1f} | {r['seconds'] / max(r['mb'], 1e-9):.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus")
    ap.add_argument("--out", help="also write the table (Markdown) here")
    ap.add_argument("--only", action="append", help="only books whose name contains this (repeatable)")
    ap.add_argument("--reasons", type=int, default=6, help="reasons shown per book (the rest summed)")
    ap.add_argument("--titles", action="store_true", help="print every book's chapter titles")
    args = ap.parse_args()
    folder = corpus_dir(args.corpus)
    if folder is None:
        print("no corpus (../shared/corpus); nothing to report")
        return 0
    rows = []
    for path in books(folder):
        if args.only and not any(o in path.name for o in args.only):
            continue
        row = measure(path)
        rows.append(row)
        if "error" in row:
            print(row["trace"], file=sys.stderr)
        elif args.titles:
            print(f"{path.name}: " + " | ".join(row["titles"]), file=sys.stderr)
    out = table(rows, args.reasons)
    print(out)
    if args.out:
        Path(args.out).write_text(out + "\n\n(characters without whitespace; CPU seconds of `read_source`)\n")
    return 1 if any("error" in r or r.get("unaccounted") for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
