"""A chapter's peak memory does not depend on its length (issue 23): measured in a child process's peak RSS
(ru_maxrss), never its time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

# Stitches, normalises (gain, true-peak limiter) and encodes (mp3 through ffmpeg, plus the FLAC chapter PCM) a
# chapter of `seconds` built from five distinct clips repeated, then prints its own peak RSS in KiB.
CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import numpy as np
    from batchtts.jobs.types import Loudness, Pauses
    from batchtts.output.chapter import stitch_chapter
    from batchtts.output.encode import Tags
    from batchtts.output.stitch import Piece

    seconds, folder = float(sys.argv[1]), Path(sys.argv[2])
    rate = 22050
    rng = np.random.default_rng(0)
    clips = []
    for i in range(5):
        t = np.arange(int(rate * (1.5 + 0.2 * i))) / rate
        clip = 0.05 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.005 * rng.standard_normal(len(t))
        clip[len(t) // 2] = 0.5  # a spike the limiter has to catch
        clips.append(clip.astype(np.float32))

    def pieces():
        total = 0.0
        i = 0
        while total < seconds:
            clip = clips[i % 5]
            total += len(clip) / rate + 0.45
            yield Piece(clip, rate, "sentence", f"sentence {i}", f"k{i % 5}")
            i += 1

    from batchtts.output.loudness import measure
    raw = measure(np.concatenate(clips), rate)  # the gain to -18 LUFS puts the spikes this far over 0 dBFS:
    over_db = 20 * np.log10(0.5) + (-18.0 - raw.integrated_lufs)
    ch = stitch_chapter(pieces(), rate, Pauses(), Loudness(), None, folder / "ch.flac", folder / "ch.mp3", Tags("T"))
    print(json.dumps({"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "seconds": ch.duration,
                      "lufs": ch.loudness.integrated_lufs, "dbtp": ch.loudness.true_peak_db, "over_db": over_db}))
    """
)


def _peak(seconds: float, folder) -> dict:
    folder.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(seconds), str(folder)], capture_output=True, text=True, cwd=ROOT, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_ten_times_longer_chapter_needs_no_more_memory(tmp_path):
    short = _peak(27, tmp_path / "short")
    long = _peak(300, tmp_path / "long")
    assert long["seconds"] >= 10 * short["seconds"] * 0.95
    for run in (short, long):  # both really went through gain and the limiter
        assert run["over_db"] > 3.0 and abs(run["lufs"] + 18.0) <= 0.1 and run["dbtp"] <= -1.5
    # The whole-array stitch grew about 2 MiB per second of audio (540 MiB more for these 270 s).
    assert long["rss_kib"] - short["rss_kib"] < 24 * 1024, (short, long)
