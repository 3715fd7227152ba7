"""The import's accounting as a terminal table, a Markdown file and JSON: per chapter, characters in the
source, kept, dropped and why, and every part left out. Characters are counted without whitespace."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from batchtts.importer.document import Book, Chapter

_TITLE_WIDTH = 34


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fit(text: str, width: int) -> str:
    out = ""
    for c in text:
        if _width(out + c) > width - (1 if _width(text) > width else 0):
            return out + "…" + " " * (width - _width(out) - 1)
        out += c
    return out + " " * (width - _width(out))


def _why(ch: Chapter) -> str:
    parts = [f"{reason} {n}" for reason, n in sorted(ch.dropped.items(), key=lambda kv: -kv[1])]
    if ch.added_chars:
        parts.append(f"added {ch.added_chars} (heading punctuation, a title, [line]/[scene] markers)")
    if ch.unaccounted:
        parts.append(f"UNACCOUNTED {ch.unaccounted}")
    return "; ".join(parts)


def totals(book: Book) -> dict:
    source = sum(c.source_chars for c in book.chapters) + sum(lo.chars for lo in book.left_out)
    kept = sum(c.kept_chars for c in book.chapters)
    dropped = sum(c.dropped_chars for c in book.chapters) + sum(lo.chars for lo in book.left_out)
    return {
        "chapters": len(book.chapters),
        "left_out": len(book.left_out),
        "source_chars": source,
        "kept_chars": kept,
        "dropped_chars": dropped,
        "unaccounted_chars": source - kept - dropped,
    }


def table(book: Book, records: list[dict]) -> str:
    by = f" by {book.author}" if book.author else ""
    lines = [
        f"{book.title}{by} ({book.kind}: {book.source})",
        f"{'#':>3}  {_fit('chapter', _TITLE_WIDTH)} {'source':>7} {'kept':>7} {'dropped':>7}  why",
    ]
    for n, ch in enumerate(book.chapters, 1):
        lines.append(
            f"{n:>3}  {_fit(ch.title, _TITLE_WIDTH)} {ch.source_chars:>7} {ch.kept_chars:>7} {ch.dropped_chars:>7}"
            f"  {_why(ch)}".rstrip()
        )
    for lo in book.left_out:
        lines.append(
            f"{'-':>3}  {_fit(lo.what, _TITLE_WIDTH)} {lo.chars:>7} {0:>7} {lo.chars:>7}  left out: {lo.reason}"
        )
    t = totals(book)
    share = 100 * t["kept_chars"] / t["source_chars"] if t["source_chars"] else 0.0
    lines.append(
        f"{'':>3}  {_fit('total', _TITLE_WIDTH)} {t['source_chars']:>7} {t['kept_chars']:>7} {t['dropped_chars']:>7}"
        f"  {t['chapters']} chapters, {share:.1f}% kept, {t['left_out']} parts left out"
        + (f", UNACCOUNTED {t['unaccounted_chars']}" if t["unaccounted_chars"] else "")
    )
    lines += [f"note: {note}" for note in book.notes]
    lines.append("(characters counted without whitespace)")
    if records:
        first, last = records[0]["output"], records[-1]["output"]
        lines.append(f"outputs: {first} ... {last}" if len(records) > 1 else f"output: {first}")
    return "\n".join(lines)


def as_dict(book: Book, records: list[dict], job_file: Path) -> dict:
    return {
        "source": str(book.source),
        "kind": book.kind,
        "book": book.title,
        "author": book.author,
        "language": book.language,
        "job_file": str(job_file),
        "chapters": [
            {
                "track": n,
                "id": rec["id"],
                "title": ch.title,
                "text_file": rec["text_file"],
                "output": rec["output"],
                "sources": ch.sources,
                "source_chars": ch.source_chars,
                "kept_chars": ch.kept_chars,
                "dropped_chars": dict(ch.dropped),
                "added_chars": ch.added_chars,
            }
            for n, (ch, rec) in enumerate(zip(book.chapters, records, strict=True), 1)
        ],
        "left_out": [{"what": lo.what, "reason": lo.reason, "chars": lo.chars} for lo in book.left_out],
        "notes": list(book.notes),
        "totals": totals(book),
    }


def markdown_report(book: Book, records: list[dict]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    by = f" by {book.author}" if book.author else ""
    lines = [
        f"# Import of {cell(book.title)}{cell(by)}",
        "",
        f"Source: `{book.source}` ({book.kind}). Characters are counted without whitespace.",
        "",
        "| # | chapter | source | kept | dropped | why |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for n, ch in enumerate(book.chapters, 1):
        lines.append(
            f"| {n} | {cell(ch.title)} | {ch.source_chars} | {ch.kept_chars} | {ch.dropped_chars} | {cell(_why(ch))} |"
        )
    for lo in book.left_out:
        lines.append(f"| - | {cell(lo.what)} | {lo.chars} | 0 | {lo.chars} | left out: {cell(lo.reason)} |")
    t = totals(book)
    lines.append(f"| | **total** | {t['source_chars']} | {t['kept_chars']} | {t['dropped_chars']} | |")
    if book.notes:
        lines += ["", *[f"- {cell(note)}" for note in book.notes]]
    return "\n".join(lines) + "\n"
