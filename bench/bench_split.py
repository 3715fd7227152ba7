"""Splitting speed: seconds per MB of text at 0.1, 1 and 10 MB, in one run (issue 16, defect 8).

Linear splitting costs the same per MB at every size; the old abbreviation check (a regex search from
the start of the text for every period) made it grow with the size (100 / 200 / 400 KB: 5 / 18 / 67 s).
Texts are the example book repeated (`book`); `--kinds` adds texts with no sentence punctuation at all
(`nopunct`, cut only at the hard limit) and of tiny sentences merged into neighbours (`tiny`).
Writes bench/results/split.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchtts.text.split import split_text  # noqa: E402

KINDS = {
    "book": lambda: "\n\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples/book").glob("*.txt"))),
    "nopunct": lambda: "word and more words ",
    "tiny": lambda: "Oh. ",
}


def measure(kind: str, megabytes: float, max_chars: int) -> dict:
    unit = KINDS[kind]()
    n = int(megabytes * 1_000_000)
    text = (unit * (n // len(unit) + 1))[:n]
    t0 = time.perf_counter()
    segments = split_text(text, max_chars)
    seconds = time.perf_counter() - t0
    return {
        "kind": kind,
        "mb": megabytes,
        "chars": len(text),
        "segments": len(segments),
        "seconds": round(seconds, 4),
        "seconds_per_mb": round(seconds / megabytes, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="0.1,1,10", help="MB of text, comma separated")
    ap.add_argument("--kinds", default="book", help=f"texts, comma separated, of: {', '.join(KINDS)}")
    ap.add_argument("--max-chars", type=int, default=300, help="the engine's chunk limit (embedded: 300)")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    rows = [measure(kind, float(mb), args.max_chars) for kind in args.kinds.split(",") for mb in args.sizes.split(",")]
    lines = [
        f"Splitting on {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"max_chars {args.max_chars}",
        "",
        "| text | MB | segments | seconds | s/MB |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['kind']} | {r['mb']} | {r['segments']} | {r['seconds']} | {r['seconds_per_mb']} |" for r in rows]
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "split.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    (args.results / "split.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
