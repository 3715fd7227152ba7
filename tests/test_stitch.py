import subprocess

import numpy as np
import pytest
import soundfile as sf

from batchtts.jobs import Pauses
from batchtts.split import COMMA, END, HARD, PARAGRAPH, SENTENCE
from batchtts.stitch import FADE_SECONDS, HARD_CUT_PAUSE, Piece, Tags, assemble, write_audio

RATE = 8000
PAUSES = Pauses(sentence=0.5, comma=0.25, paragraph=1.0, chapter_start=0.125, chapter_end=0.75)


def _runs(audio: np.ndarray) -> list[tuple[bool, int, float]]:
    """(is_sound, length, level) for each run of silence or sound."""
    nonzero = audio != 0
    edges = np.flatnonzero(np.diff(nonzero.astype(int))) + 1
    bounds = [0, *edges.tolist(), len(audio)]
    return [
        (bool(nonzero[a]), b - a, float(np.abs(audio[a:b]).max())) for a, b in zip(bounds, bounds[1:], strict=False)
    ]


def test_chunks_are_joined_in_order_with_the_pause_of_each_break():
    levels = [0.1, 0.2, 0.3, 0.4, 0.5]
    brks = [SENTENCE, COMMA, PARAGRAPH, HARD, END]
    pieces = [Piece(np.full(800, lv, np.float32), RATE, b) for lv, b in zip(levels, brks, strict=True)]
    runs = _runs(assemble(pieces, RATE, PAUSES))
    silences = [n for sound, n, _ in runs if not sound]
    sounds = [(n, lv) for sound, n, lv in runs if sound]
    # Fades reach zero at a chunk's first and last sample; those samples join the silences beside them.
    expected = [
        PAUSES.chapter_start,
        PAUSES.sentence,
        PAUSES.comma,
        PAUSES.paragraph,
        HARD_CUT_PAUSE,
        PAUSES.chapter_end,
    ]
    assert silences == [round(p * RATE) + (1 if i in (0, 5) else 2) for i, p in enumerate(expected)]
    assert [pytest.approx(lv) for _, lv in sounds] == levels
    assert all(n == 798 for n, _ in sounds)


def test_joins_fade_to_silence_so_they_cannot_click():
    piece = Piece(np.full(800, 0.9, np.float32), RATE, SENTENCE)
    audio = assemble([piece, piece], RATE, PAUSES)
    fade = int(RATE * FADE_SECONDS)
    start = round(PAUSES.chapter_start * RATE)
    assert np.abs(np.diff(audio[start - 1 : start + fade + 1])).max() <= 0.9 / (fade - 1) + 1e-6


def test_pieces_at_other_rates_are_resampled_to_the_chapter_rate():
    pieces = [Piece(np.full(1600, 0.5, np.float32), 16000, END)]
    audio = assemble(pieces, RATE, Pauses(chapter_start=0, chapter_end=0))
    assert len(audio) == 800


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_wav_and_flac_round_trip_with_tags(tmp_path, suffix):
    audio = (0.5 * np.sin(np.arange(RATE) / 5)).astype(np.float32)
    path = tmp_path / f"ch{suffix}"
    write_audio(path, audio, RATE, Tags("The Title", "An Author", "The Book", 3))
    back, rate = sf.read(path, dtype="float32")
    assert rate == RATE and np.abs(back - audio).max() < 1e-4
    with sf.SoundFile(path) as fh:
        assert fh.title == "The Title" and fh.artist == "An Author" and fh.album == "The Book"
    assert not list(tmp_path.glob(".*tmp*"))  # no temp file left behind


def test_mp3_is_encoded_by_ffmpeg_with_tags(tmp_path):
    audio = (0.5 * np.sin(np.arange(2 * RATE) / 5)).astype(np.float32)
    path = tmp_path / "ch.mp3"
    write_audio(path, audio, RATE, Tags("标题", "An Author", "The Book", 2))
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration,format_name:format_tags",
            "-of",
            "default=nw=1",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "format_name=mp3" in probe and "TAG:title=标题" in probe and "TAG:track=2" in probe
    duration = float(next(line for line in probe.splitlines() if line.startswith("duration=")).split("=")[1])
    assert duration == pytest.approx(2.0, abs=0.25)  # MP3 frames pad the end
    first = path.read_bytes()
    write_audio(path, audio, RATE, Tags("标题", "An Author", "The Book", 2))
    assert path.read_bytes() == first  # same input, same bytes
