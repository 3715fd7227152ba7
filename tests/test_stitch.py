import json
import subprocess

import numpy as np
import pytest
import soundfile as sf

from batchtts.jobs.types import Loudness, Pauses
from batchtts.output.encode import ChapterMark, Tags, write_audio
from batchtts.output.stitch import FADE_SECONDS, HARD_CUT_PAUSE, TRIM_MARGIN, Piece, assemble, build_chapter, trim
from batchtts.text.split import COMMA, END, HARD, PARAGRAPH, PAUSE, SENTENCE

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


def ffprobe(path, *entries: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", *entries, str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_chunks_are_joined_in_order_with_the_pause_of_each_break():
    levels = [0.1, 0.2, 0.3, 0.4, 0.45, 0.5]
    brks = [SENTENCE, COMMA, PARAGRAPH, HARD, PAUSE, END]
    pieces = [
        Piece(np.full(800, lv, np.float32), RATE, b, pause=1.5 if b == PAUSE else None)
        for lv, b in zip(levels, brks, strict=True)
    ]
    audio, cues = assemble(pieces, RATE, PAUSES, lead=0.25)
    runs = _runs(audio)
    silences = [n for sound, n, _ in runs if not sound]
    sounds = [(n, lv) for sound, n, lv in runs if sound]
    # Fades reach zero at a chunk's first and last sample; those samples join the silences beside them.
    expected = [
        PAUSES.chapter_start + 0.25,
        PAUSES.sentence,
        PAUSES.comma,
        PAUSES.paragraph,
        HARD_CUT_PAUSE,
        1.5,
        PAUSES.chapter_end,
    ]
    assert silences == [round(p * RATE) + (1 if i in (0, 6) else 2) for i, p in enumerate(expected)]
    assert [pytest.approx(lv) for _, lv in sounds] == levels
    assert all(n == 798 for n, _ in sounds)
    starts = np.flatnonzero(np.diff((audio != 0).astype(int)) == 1) + 1
    assert [round(c.start * RATE) for c in cues] == (starts - 1).tolist()  # each cue starts on its chunk's sample


def test_edge_silence_is_trimmed_to_a_natural_margin():
    rate = 16000
    speech = 0.3 * np.sin(np.arange(rate) / 3).astype(np.float32)
    padded = np.concatenate(
        [np.zeros(rate, np.float32), 1e-4 * np.ones(rate // 2, np.float32), speech, np.zeros(2 * rate, np.float32)]
    )
    out = trim(padded, rate)
    assert len(speech) <= len(out) <= len(speech) + 2 * TRIM_MARGIN * rate + 2 * 0.01 * rate
    assert trim(np.zeros(rate, np.float32), rate).size == 0


def test_joins_fade_to_silence_so_they_cannot_click():
    piece = Piece(np.full(800, 0.9, np.float32), RATE, SENTENCE)
    audio, _ = assemble([piece, piece], RATE, PAUSES)
    fade = int(RATE * FADE_SECONDS)
    assert np.abs(np.diff(audio)).max() <= 0.9 / (fade - 1) + 1e-6


def test_pieces_at_other_rates_are_resampled_to_the_chapter_rate():
    pieces = [Piece(np.full(1600, 0.5, np.float32), 16000, END)]
    audio, _ = assemble(pieces, RATE, Pauses(chapter_start=0, chapter_end=0))
    assert len(audio) == 800


def test_loudness_off_leaves_levels_alone():
    pieces = [Piece(np.full(800, 0.2, np.float32), RATE, END)]
    chapter = build_chapter(pieces, RATE, PAUSES, Loudness(enabled=False))
    assert chapter.loudness is None and np.abs(chapter.audio).max() == pytest.approx(0.2)


TAGS = Tags("标题 One", "An Author", "The Book", 3, "zh")


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_wav_and_flac_round_trip_with_tags(tmp_path, suffix):
    audio = (0.5 * np.sin(np.arange(RATE) / 5)).astype(np.float32)
    path = tmp_path / f"ch{suffix}"
    write_audio(path, audio, RATE, TAGS)
    back, rate = sf.read(path, dtype="float32")
    assert rate == RATE and np.abs(back - audio).max() < 1e-4
    with sf.SoundFile(path) as fh:
        assert fh.title == "标题 One" and fh.artist == "An Author" and fh.album == "The Book"
    assert not list(tmp_path.glob(".*tmp*"))  # no temp file left behind


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".mp3", "mp3"), (".ogg", "opus"), (".opus", "opus"), (".m4a", "aac"), (".m4b", "aac")]
)
def test_compressed_formats_carry_tags_and_cover(tmp_path, suffix, codec):
    from PIL import Image

    cover = tmp_path / "cover.jpg"
    Image.new("RGB", (64, 64), (200, 80, 40)).save(cover)
    audio = (0.5 * np.sin(np.arange(2 * RATE) / 5)).astype(np.float32)
    path = tmp_path / f"ch{suffix}"
    tags = Tags(TAGS.title, TAGS.artist, TAGS.album, TAGS.track, TAGS.language, cover)
    write_audio(path, audio, RATE, tags)
    probe = ffprobe(path, "-show_format", "-show_streams")
    streams = {s["codec_type"]: s for s in probe["streams"]}
    assert streams["audio"]["codec_name"] == codec
    meta = {k.lower(): v for k, v in probe["format"].get("tags", {}).items()}
    meta.update({k.lower(): v for k, v in streams["audio"].get("tags", {}).items()})  # ogg keeps tags per stream
    assert meta["title"] == "标题 One" and meta["artist"] == "An Author" and meta["album"] == "The Book"
    assert meta["track"].split("/")[0] == "3"
    if suffix in (".mp3", ".m4a", ".m4b"):
        assert streams["video"]["disposition"]["attached_pic"] == 1
    assert float(probe["format"]["duration"]) == pytest.approx(2.0, abs=0.25)  # codecs pad the last frame
    first = path.read_bytes()
    write_audio(path, audio, RATE, tags)
    assert path.read_bytes() == first  # same input, same bytes


def test_m4b_chapter_markers(tmp_path):
    audio = (0.3 * np.sin(np.arange(6 * RATE) / 5)).astype(np.float32)
    marks = [ChapterMark(0.0, 2.5, "One"), ChapterMark(2.5, 6.0, "第二章")]
    path = tmp_path / "book.m4b"
    write_audio(path, audio, RATE, Tags("Book", "Author", "Book"), marks)
    chapters = ffprobe(path, "-show_chapters")["chapters"]
    assert [(float(c["start_time"]), float(c["end_time"]), c["tags"]["title"]) for c in chapters] == [
        (0.0, 2.5, "One"),
        (2.5, 6.0, "第二章"),
    ]
