"""Scale benchmark (issue 23): peak RSS and wall time of a re-stitch at ~8 min, ~1 h and ~10 h of chapter
audio, and of `run` / no-op `run` / `status` / `plan` / `chunks` / `retry` on 1 h, 5 h and 50 h books.

Books are made cheap by repeated sentences (identical chunks share a key, so a 50-hour book synthesises a
few hundred chunks) and a fast test engine (tests/fakes.py's ToneEngine, 8 kHz), registered in each child
process. Every measurement is a child process: wall clock and its ru_maxrss. Not a test: numbers go to
bench/results/scale.md.

    python bench/bench_scale.py [--hours 1 5 50] [--chapter-minutes 8 60 600] [--skip-books] [--skip-chapters]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "scale.md"

# A pool of sentences ~30 characters long (1.8 s each from the tone engine): chapters are drawn from it.
WORDS = "amber birch cedar delta ember fjord grove harbor island juniper kettle lantern meadow north".split()
POOL = [f"The {WORDS[i % 14]} {WORDS[(i * 5) % 14]} waits by {WORDS[(i * 3) % 14]} {i}." for i in range(300)]

LAUNCH = (
    "import sys; from batchtts.engines import register_engine; from tests.fakes import ToneEngine; "
    "register_engine(ToneEngine); from batchtts.cli import main; sys.argv = ['batchtts'] + sys.argv[1:]; main()"
)


def make_book(folder: Path, hours: float, chapters: int) -> Path:
    """A job file of `chapters` chapters totalling about `hours` of tone-engine audio, one m4b book."""
    per_sentence = 0.06 * 30 + 0.45  # seconds of audio and pause per pool sentence
    sentences = int(hours * 3600 / per_sentence / chapters)
    lines = []
    for c in range(chapters):
        text = " ".join(POOL[(c * 7 + i) % len(POOL)] for i in range(sentences))
        paragraphs = "\n\n".join(text[i : i + 4000] for i in range(0, len(text), 4000))
        (folder / f"ch{c:03d}.txt").write_text(paragraphs.replace(". \n", ".\n"), encoding="utf-8")
        lines.append(
            json.dumps(
                {
                    "id": f"ch{c:03d}",
                    "text_file": f"ch{c:03d}.txt",
                    "output": f"book/ch{c:03d}.wav",  # lossy chapter encodes only add ffmpeg time
                    "title": f"Chapter {c + 1}",
                    "book": "Scale",
                    "track": c + 1,
                    "engine": "tone",
                    # The re-stitch rows measure the loudness passes; here they would only add output time
                    # that grows with the audio, which the books' rows are not about.
                    "loudness": False,
                }
            )
        )
    jobs = folder / "book.jsonl"
    jobs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return jobs


def measure_child(args: list[str]) -> dict:
    """Wall seconds and peak RSS (MiB) of one child running batchtts `args` (its own rusage, from wait4)."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as err:  # files, not pipes: a child blocked on a full pipe never exits
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=_env()
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        err.seek(0)
        err = err.read().decode(errors="replace")
    if rc not in (0, 1):
        raise SystemExit(f"batchtts {' '.join(args)} failed ({rc}): {err[-2000:]}")
    return {"wall_s": round(wall, 2), "rss_mib": round(usage.ru_maxrss / 1024, 1)}


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def bench_books(hours_list: list[float], work: Path) -> list[dict]:
    rows = []
    for hours in hours_list:
        chapters = max(1, round(hours * 4))  # 15-minute chapters: 200 at 50 h
        folder = work / f"book{hours:g}h"
        folder.mkdir()
        jobs = make_book(folder, hours, chapters)
        out = folder / "out"
        row = {"hours": hours, "chapters": chapters}
        plan = measure_child(["plan", str(jobs), "--out", str(out), "--json"])
        row["plan (before run)"] = plan
        row["run"] = measure_child(["run", str(jobs), "--out", str(out)])
        for name, args in (
            ("no-op run", ["run", str(jobs), "--out", str(out)]),
            ("status", ["status", str(jobs), "--out", str(out)]),
            ("plan", ["plan", str(jobs), "--out", str(out), "--json"]),
            ("chunks", ["chunks", str(jobs), "--json"]),
            ("retry", ["retry", str(jobs), "--out", str(out)]),
        ):
            row[name] = measure_child(args)
        row["chunks_total"] = _chunk_count(out)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _chunk_count(out: Path) -> int:
    import sqlite3

    with sqlite3.connect(out / ".batchtts" / "ledger.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]


# Five speech-like clips with a peak the limiter must catch, repeated to the chapter length; the same in both
# scripts below (each runs alone in a child process, the second against an older checkout).
CLIPS = """
import json, resource, sys, time
from pathlib import Path
import numpy as np
minutes, folder = float(sys.argv[1]), Path(sys.argv[2])
rate = 22050
rng = np.random.default_rng(0)
clips = []
for i in range(5):
    t = np.arange(int(rate * (3.0 + 0.4 * i))) / rate
    clip = 0.1 * np.sin(2 * np.pi * (150 + 40 * i) * t) * (1 + np.sin(2 * np.pi * 3 * t))
    clip += 0.01 * rng.standard_normal(len(t))
    clip[len(t) // 3] = 0.6
    clips.append(clip.astype(np.float32))
"""

RESTITCH = CLIPS + """
from batchtts.jobs.types import Loudness, Pauses
from batchtts.output.chapter import stitch_chapter
from batchtts.output.encode import Tags
from batchtts.output.stitch import Piece

def pieces():
    total, i = 0.0, 0
    while total < minutes * 60:
        clip = clips[i % 5]
        total += len(clip) / rate + 0.45
        yield Piece(clip, rate, "sentence", f"s{i}", f"k{i % 5}")
        i += 1

t0 = time.monotonic()
ch = stitch_chapter(pieces(), rate, Pauses(), Loudness(), None, folder / "ch.flac", folder / "ch.wav", Tags("T"))
print(json.dumps({"audio_h": ch.duration / 3600, "wall_s": time.monotonic() - t0, "scratch_mb": ch.scratch_bytes / 1e6,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


# The same chapter through the whole-array API (build_chapter, write_pcm, write_audio): what main did before
# streaming. Run with --baseline <a checkout of that commit> to measure the old slope.
WHOLE_ARRAY = CLIPS + """
from batchtts.jobs.types import Loudness, Pauses
from batchtts.output.encode import Tags, write_audio, write_pcm
from batchtts.output.stitch import Piece, build_chapter
pieces = []
total, i = 0.0, 0
while total < minutes * 60:
    clip = clips[i % 5]
    total += len(clip) / rate + 0.45
    pieces.append(Piece(clip, rate, "sentence", f"s{i}", f"k{i % 5}"))
    i += 1
t0 = time.monotonic()
ch = build_chapter(pieces, rate, Pauses(), Loudness(), None)
write_pcm(folder / "ch.flac", ch.audio, rate)
write_audio(folder / "ch.wav", ch.audio, rate, Tags("T"))
print(json.dumps({"audio_h": ch.duration / 3600, "wall_s": time.monotonic() - t0, "scratch_mb": 0.0}))
"""


# An m4b past 4 GB through write_book, the code that writes every book: 26 chapters of 30 minutes of 48 kHz noise
# (13 hours). AAC at the book's 96 kbit/s would need ~93 hours of audio to pass 4 GB, so this child swaps the
# encoder for ALAC (lossless: noise stays ~768 kbit/s) in the same mp4 muxer with the same flags.
BIG_M4B = """
import json, resource, sys, time
from pathlib import Path
import numpy as np, soundfile as sf
from batchtts.output import encode
from batchtts.output.book import BookChapter, write_book
encode._FFMPEG_ARGS["aac"] = ["-c:a", "alac", "-movflags", "+faststart", "-f", "mp4"]
folder, chapters, minutes = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
rate = 48000
pcm = folder / "noise.wav"
with sf.SoundFile(str(pcm), "w", rate, 1, subtype="PCM_16") as fh:
    rng = np.random.default_rng(0)
    for _ in range(int(minutes)):
        fh.write((rng.uniform(-0.9, 0.9, rate * 60)).astype(np.float32))
book = [BookChapter(f"Chapter {i + 1}", folder / f"ch{i}.m4a", pcm, str(i)) for i in range(chapters)]
t0 = time.monotonic()
marks = write_book(folder / "big.m4b", book, encode.Tags("Big"))
print(json.dumps({"wall_s": time.monotonic() - t0, "last_start_s": marks[-1].start, "end_s": marks[-1].end,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_big_m4b(work: Path, chapters: int = 26, minutes: float = 30) -> dict:
    """Write a >4 GB, >24 h-capable m4b with write_book and read it back: size, 64-bit chunk offsets (the
    moov's co64 box, at the front after faststart), every chapter through ffprobe, and 5 s decoded from inside
    the last chapter. The file is removed afterwards."""
    folder = work / "big"
    folder.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", BIG_M4B, str(folder), str(chapters), str(minutes)],
        cwd=ROOT, capture_output=True, text=True, env=_env(), check=True,
    )
    row = json.loads(proc.stdout)
    m4b = folder / "big.m4b"
    row["bytes"] = m4b.stat().st_size
    with m4b.open("rb") as fh:
        head = fh.read(64 << 20)
    row["co64"], row["stco"] = b"co64" in head, b"stco" in head
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(m4b)], capture_output=True, text=True,
        check=True,
    )
    marks = json.loads(probe.stdout)["chapters"]
    row["chapters_read"] = len(marks)
    row["last_chapter_start_read_s"] = float(marks[-1]["start_time"])
    play = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{row['last_start_s'] + 60:.0f}", "-i", str(m4b), "-t", "5"]
        + ["-f", "s16le", "-"],
        capture_output=True,
    )
    row["decoded_s_at_last_chapter"] = len(play.stdout) / 2 / 48000 if play.returncode == 0 else 0.0
    m4b.unlink()
    print(json.dumps(row), flush=True)
    return row


def bench_chapters(minutes_list: list[float], work: Path, script: str = RESTITCH, root: Path = ROOT) -> list[dict]:
    rows = []
    for minutes in minutes_list:
        folder = work / f"chapter{minutes:g}-{abs(hash(str(root)))}"
        folder.mkdir()
        start = time.monotonic()
        env = dict(os.environ, PYTHONPATH=str(root))
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(minutes), str(folder)], cwd=root, stdout=subprocess.PIPE, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        out = json.loads(proc.stdout.read())
        proc.stdout.close()
        out.update(minutes=minutes, wall_s=round(time.monotonic() - start, 1), rss_mib=round(usage.ru_maxrss / 1024, 1))
        print(json.dumps(out), flush=True)
        rows.append(out)
    return rows


def _table(chapters: list[dict], books: list[dict], before: list[dict] | None = None, big: dict | None = None) -> str:
    lines = [
        "# Scale benchmark",
        "",
        f"`make bench-scale` on {os.cpu_count()} cores ({time.strftime('%Y-%m-%d')}). Peak RSS is each child process's",
        "ru_maxrss; wall time is the child's.",
        "",
    ]
    if chapters:
        lines += [
            "## Re-stitch of one chapter (stitch, loudness, true-peak limiter, FLAC PCM, WAV), 22.05 kHz",
            "",
            "| chapter audio | wall s | peak RSS MiB | temporary disk MB |",
            "|---|---|---|---|",
        ]
        row = "| {:.1f} min | {} | {} | {:.0f} |"
        lines += [row.format(r["audio_h"] * 60, r["wall_s"], r["rss_mib"], r["scratch_mb"]) for r in chapters]
        lines += ["", f"Slope (streaming): {_slope(chapters):.2f} MiB per hour of chapter audio."]
        if before:
            lines += [
                "",
                "Before (the whole-array stitch of main at f4bc294, `--baseline`):",
                "",
                "| chapter audio | wall s | peak RSS MiB |",
                "|---|---|---|",
            ]
            lines += [f"| {r['audio_h'] * 60:.1f} min | {r['wall_s']} | {r['rss_mib']} |" for r in before]
            lines += ["", f"Slope (before): {_slope(before):.0f} MiB per hour of chapter audio."]
        lines.append("")
    if books:
        stages = ["plan (before run)", "run", "no-op run", "status", "plan", "chunks", "retry"]
        lines += [
            "## Books (tone engine at 8 kHz, 15-minute WAV chapters without loudness passes, one AAC m4b with a"
            " marker per chapter)",
            "",
            "| book | chapters | chunks | " + " | ".join(stages) + " |",
            "|---|---|---|" + "---|" * len(stages),
        ]
        for r in books:
            cells = [f"{r[s]['wall_s']} s / {r[s]['rss_mib']} MiB" for s in stages]
            lines.append(f"| {r['hours']:g} h | {r['chapters']} | {r['chunks_total']} | " + " | ".join(cells) + " |")
        lines.append("")
    if big:
        lines += [
            "## An m4b past 4 GB (`--big-m4b`: write_book, ALAC in the same mp4 muxer, 48 kHz noise)",
            "",
            f"{big['bytes'] / 1e9:.2f} GB, {big['end_s'] / 3600:.1f} h, written in {big['wall_s']:.0f} s at"
            f" {big['rss_mib']:.0f} MiB peak RSS; 64-bit chunk offsets (co64): {big['co64']}, 32-bit (stco):"
            f" {big['stco']}; ffprobe reads {big['chapters_read']} chapters, the last starting at"
            f" {big['last_chapter_start_read_s']:.3f} s (written {big['last_start_s']:.3f} s); 5 s decoded from"
            f" inside the last chapter: {big['decoded_s_at_last_chapter']:.2f} s.",
            "",
        ]
    return "\n".join(lines)


def _slope(rows: list[dict]) -> float:
    a, b = rows[0], rows[-1]
    return (b["rss_mib"] - a["rss_mib"]) / max(1e-9, b["audio_h"] - a["audio_h"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, nargs="*", default=[1, 5, 50])
    parser.add_argument("--chapter-minutes", type=float, nargs="*", default=[8, 60, 600])
    parser.add_argument("--skip-books", action="store_true")
    parser.add_argument("--skip-chapters", action="store_true")
    parser.add_argument("--big-m4b", action="store_true", help="also write and read back an m4b past 4 GB")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of the pre-streaming code: its slope, at 8 and 16 min"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        chapters = [] if args.skip_chapters else bench_chapters(args.chapter_minutes, work)
        before = bench_chapters([8, 16], work, WHOLE_ARRAY, args.baseline) if args.baseline else None
        books = [] if args.skip_books else bench_books(args.hours, work)
        big = bench_big_m4b(work) if args.big_m4b else None
    text = _table(chapters, books, before, big)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
