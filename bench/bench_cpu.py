"""End-to-end CPU benchmark: the embedded engine on a job file, batched versus one chunk at a time.

Both runs happen in this one invocation, on the same machine, each in a fresh output folder and a
fresh process. Writes bench/results/cpu.json and cpu.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def _run(jobs: Path, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "batchtts", "run", str(jobs), "--out", str(out), "--fresh", *extra]
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    t0 = time.perf_counter()
    proc = subprocess.run(timer + cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"benchmark run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    for line in proc.stderr.splitlines():
        if "Maximum resident set size" in line:
            peak_kib = int(line.split(":")[1])
    with sqlite3.connect(out / ".batchtts" / "ledger.sqlite") as db:
        summary = json.loads(db.execute("SELECT summary FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0])
    synth = summary["real_time_factor"] * summary["audio_seconds"]
    return {
        "command": " ".join(["batchtts", *cmd[3:]]),
        "chunks": summary["synthesised"],
        "audio_s": summary["audio_seconds"],
        "synth_s": round(synth, 3),
        "rtf": summary["real_time_factor"],
        "wall_s": round(wall, 3),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def chapter_wer(out: Path, chapter: str) -> float:
    """WER of one English chapter: each sentence cut from the stitched file by its cue, transcribed."""
    sys.path.insert(0, str(ROOT))
    from batchtts.output.plot import read_any
    from bench.asr import transcribe, wer

    path = next(out.rglob(f"{chapter}.mp3"))
    manifest = json.loads(path.with_suffix(".json").read_text())
    audio, rate = read_any(path)
    refs = [c["text"] for c in manifest["chunks"]]
    hyps = [transcribe(audio[int(c["start"] * rate) : int(c["end"] * rate)], rate) for c in manifest["chunks"]]
    return round(wer(refs, hyps), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=Path, default=ROOT / "jobs" / "book.jsonl")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--wer-chapter", default="01-the-lighthouse", help="English chapter to transcribe ('' skips)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="batchtts-bench-"))
    try:
        batched = _run(args.jobs, tmp / "batched", [])
        single = _run(args.jobs, tmp / "single", ["--max-batch", "1"])
        if args.wer_chapter:
            batched["wer"] = chapter_wer(tmp / "batched", args.wer_chapter)
            single["wer"] = chapter_wer(tmp / "single", args.wer_chapter)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    device = f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    result = {
        "device": device,
        "commit": _commit(),
        "engine": "embedded",
        "jobs": str(args.jobs),
        "batched": batched,
        "one_at_a_time": single,
        "speedup_synth": round(single["synth_s"] / batched["synth_s"], 2),
        "speedup_wall": round(single["wall_s"] / batched["wall_s"], 2),
    }
    rows = [("batched (default)", batched), ("one chunk at a time", single)]
    table = [
        "| strategy | chunks | audio s | synth s | RTF | wall s | peak RSS MiB | WER | command |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    table += [
        f"| {name} | {r['chunks']} | {r['audio_s']:.1f} | {r['synth_s']:.2f} | {r['rtf']:.4f} | "
        f"{r['wall_s']:.2f} | {r['peak_rss_mib']} | {r.get('wer', '-')} | `{r['command']}` |"
        for name, r in rows
    ]
    md = (
        f"Device: {device}; commit {result['commit']}; engine embedded\n\n"
        + "\n".join(table)
        + f"\n\nSynthesis speed-up, batched over one at a time: {result['speedup_synth']}x "
        f"(wall {result['speedup_wall']}x)\n"
    )
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results / "cpu.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
