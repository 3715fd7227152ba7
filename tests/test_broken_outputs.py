"""Issue 16, defect 4: a file batchtts wrote that is later truncated, emptied or replaced is never 'up to date';
the next run writes it again from the chunk store, with the same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

import batchtts
from batchtts.state.workspace import Workspace
from tests.conftest import write_jobs


def _book(tmp_path: Path) -> tuple[Path, Path]:
    lines = [
        {"id": "one", "text": "The first lamp. It burned.", "output": "one.mp3", "book": "Lamps", "track": 1},
        {"id": "two", "text": "The second lamp. It glowed.", "output": "two.flac", "book": "Lamps", "track": 2},
    ]
    jobs = write_jobs(tmp_path / "book.jsonl", [{**line, "engine": "tone"} for line in lines])
    out = tmp_path / "out"
    first = batchtts.run(jobs, out=out)
    assert not first.failed and len(first.written) == 3  # two chapters and the book
    return jobs, out


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("one.mp3", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),  # truncated
        ("two.flac", lambda p: p.write_bytes(b"")),  # emptied
        ("one.srt", lambda p: p.write_text("1\n00:00:00,000 --> 00:00:01,000\nsomething else\n")),  # replaced
        ("Lamps.m4b", lambda p: p.write_bytes(p.read_bytes()[:1000])),
    ],
)
def test_a_damaged_output_is_written_again_with_the_same_bytes(tmp_path, name, damage, tone):
    jobs, out = _book(tmp_path)
    path = out / name
    good = path.read_bytes()
    damage(path)
    tone.calls.clear()
    again = batchtts.run(jobs, out=out)
    assert tone.calls == [] and again.synthesized == 0  # from the chunk store, nothing synthesized
    assert path.read_bytes() == good
    assert again.written  # and the run says it wrote it


def test_a_truncated_chapter_pcm_is_rebuilt_before_the_book_needs_it(tmp_path):
    jobs, out = _book(tmp_path)
    pcm = Workspace(out).chapter_pcm("one")
    good_pcm, good_book = pcm.read_bytes(), (out / "Lamps.m4b").read_bytes()
    pcm.write_bytes(good_pcm[:100])
    (out / "Lamps.m4b").unlink()  # the book must be built again, from the chapters' PCM
    again = batchtts.run(jobs, out=out)
    assert not again.failed and pcm.read_bytes() == good_pcm
    assert (out / "Lamps.m4b").read_bytes() == good_book


def test_untouched_outputs_stay_up_to_date(tmp_path):
    jobs, out = _book(tmp_path)
    again = batchtts.run(jobs, out=out)
    assert again.written == [] and sorted(Path(p).name for p in again.up_to_date) == ["one.mp3", "two.flac"]


def test_a_same_size_replacement_is_written_again(tmp_path, tone):
    """Size and modification time let an untouched file skip its hash; a replacement of the same size has a
    newer mtime, so it is hashed and caught (outputs and stored chunks alike)."""
    jobs, out = _book(tmp_path)
    srt = out / "one.srt"
    good = srt.read_bytes()
    srt.write_bytes(good.swapcase())  # same size, other bytes, written now
    chunk = next(Workspace(out).store().folder.rglob("*.wav"))
    damaged = chunk.read_bytes()[:-8] + bytes(8)
    chunk.write_bytes(damaged)
    again = batchtts.run(jobs, out=out)
    assert srt.read_bytes() == good
    assert again.synthesized == 1 and chunk.read_bytes() != damaged  # taken again (a new seed: other bytes)
    assert batchtts.run(jobs, out=out).synthesized == 0  # and recorded: the next run trusts it


def test_unchanged_trusts_size_and_mtime_up_to_the_record_and_hashes_after_it(tmp_path):
    import os

    from batchtts.state.store import digest, unchanged

    path = tmp_path / "f.bin"
    path.write_bytes(b"abcdef")
    nbytes, sha = digest(path)
    recorded = path.stat().st_mtime + 10
    assert unchanged(path, nbytes, sha, recorded)
    path.write_bytes(b"ABCDEF")
    os.utime(path, (recorded + 5, recorded + 5))  # written after the record: hashed, and it differs
    assert not unchanged(path, nbytes, sha, recorded)
    assert not unchanged(path, nbytes, sha)  # no record time: always hashed
    os.utime(path, (recorded - 5, recorded - 5))  # an old mtime at the same size is trusted (documented)
    assert unchanged(path, nbytes, sha, recorded)
    assert not unchanged(path, nbytes + 1, sha, recorded) and not unchanged(tmp_path / "gone", nbytes, sha, recorded)
