"""A picture of a stitched chapter: waveform, chunk boundaries and the pauses between them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from batchtts.errors import EnvironmentProblem, InputError
from batchtts.output.encode import require_ffmpeg


def read_any(path: Path) -> tuple[np.ndarray, int]:
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return audio.mean(axis=1), rate
    except sf.LibsndfileError:
        raw = subprocess.run(
            [require_ffmpeg(), "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-"],
            capture_output=True,
            check=True,
        ).stdout
        rate = int(
            subprocess.run(
                [
                    "ffprobe",
                    "-v",
                    "error",
                    "-select_streams",
                    "a:0",
                    "-show_entries",
                    "stream=sample_rate",
                    "-of",
                    "csv=p=0",
                    str(path),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        return np.frombuffer(raw, np.float32), rate


def _manifest(path: Path) -> dict:
    """The timings manifest, checked for the fields the picture reads: a bad one is one line, exit 2."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        chunks = manifest["chunks"]
        for c in chunks:
            if "index" not in c or not all(type(c[k]) in (int, float) for k in ("start", "end")):
                raise TypeError
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError, IndexError):
        what = "not a batchtts timings manifest (a 'chunks' list with index, start and end)"
        raise InputError(path, None, None, what) from None
    return manifest


def waveform_png(chapter: Path, png: Path, seconds: float | None = None) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EnvironmentProblem("matplotlib is needed for pictures: pip install 'batchtts[plot]'") from None
    manifest = _manifest(chapter.with_suffix(".json"))
    try:
        audio, rate = read_any(chapter)
    except (subprocess.CalledProcessError, ValueError):
        raise InputError(chapter, None, None, "cannot read it as audio") from None
    end = len(audio) / rate if seconds is None else min(seconds, len(audio) / rate)
    n = int(end * rate)
    t = np.arange(n) / rate
    fig, ax = plt.subplots(figsize=(14, 4), dpi=110)
    ax.plot(t, audio[:n], linewidth=0.3, color="#1f4e79")
    chunks = [c for c in manifest["chunks"] if c["start"] < end]
    for i, c in enumerate(chunks):
        ax.axvspan(c["start"], min(c["end"], end), color="#9ecae1" if i % 2 else "#c6dbef", alpha=0.35, lw=0)
        ax.axvline(c["start"], color="#08519c", lw=0.8)
        ax.axvline(min(c["end"], end), color="#cb181d", lw=0.8, ls="--")
        ax.text(c["start"], 1.02, str(c["index"]), fontsize=7, transform=ax.get_xaxis_transform())
    for a, b in zip(chunks, chunks[1:], strict=False):
        ax.text(
            (a["end"] + b["start"]) / 2,
            -0.92,
            f"{b['start'] - a['end']:.2f}s",
            ha="center",
            fontsize=6,
            color="#636363",
        )
    level = manifest.get("loudness_lufs")
    title = f"{manifest.get('title') or manifest['job']}: {end:.1f} s shown"
    if level is not None:
        title += f", {level:.1f} LUFS, true peak {manifest.get('true_peak_db'):.1f} dBTP"
    ax.set_title(title + " (blue: chunk start, red dashed: chunk end, gaps: pauses)", fontsize=9, pad=14)
    ax.set_xlim(0, end)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png
