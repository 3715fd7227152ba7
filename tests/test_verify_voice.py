"""Voice clip checks at voice preparation: silent, mostly silent or clipped clips are refused in one line
naming the job's line; long leading/trailing silence is trimmed; a clean clip is used exactly as it is."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import batchtts
from batchtts.state.voice import load_voice
from tests.conftest import write_jobs

RATE = 16000


def _speechlike(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _clip(path, audio):
    sf.write(path, audio, RATE, subtype="PCM_16")
    return path


def _job(tmp_path, clip):
    return write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": "a", "engine": "tone", "text": "Hello there, friend.", "output": "a.wav",
          "voice": {"prompt_audio": clip.name, "prompt_text": "hi"}}],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("audio", "why"),
    [
        (np.zeros(4 * RATE, np.float32), "is silent"),
        (np.concatenate([_speechlike(0.6), np.zeros(4 * RATE, np.float32)]), "is mostly silence"),
        (np.clip(_speechlike(4) * 6, -1, 1), "is clipped"),
    ],
)
def test_bad_clips_are_refused_in_one_line_naming_the_job(tmp_path, audio, why):
    jobs = _job(tmp_path, _clip(tmp_path / "n.wav", audio))
    with pytest.raises(batchtts.InputError) as err:
        batchtts.chunks(jobs)
    message = str(err.value)
    assert message.startswith(f"{jobs}:1: field 'voice.prompt_audio': ") and why in message and "\n" not in message


def test_long_edge_silence_is_trimmed_and_a_clean_clip_kept_as_is(tmp_path, caplog):
    quiet = np.zeros(int(1.5 * RATE), np.float32)
    voice = load_voice(_clip(tmp_path / "padded.wav", np.concatenate([quiet, _speechlike(4), quiet])))
    assert 4.0 <= voice.duration <= 4.0 + 2 * 0.1 + 0.05  # 1.5 s each side cut to a 0.1 s margin
    assert "trimmed 1.5 s of leading and 1.5 s of trailing silence" in caplog.text
    clean = _speechlike(4)
    kept = load_voice(_clip(tmp_path / "clean.wav", clean))
    assert len(kept.samples) == len(clean)
