"""Issue 16's property over a fixed table of hostile values per field (tests/test_hostile.py draws its own):
whatever a job line holds, `batchtts plan` and `batchtts run` end with exit 0, 1 or 2, one line and no
traceback, and no file outside the output folder (nor any input) changes.

Job lines mix valid fields with hostile values (run in-process on the fake ToneEngine). DEFECTS are the
values that broke the property before issue 16 was fixed, each with its defect. Values that would make an
unchecked run allocate gigabytes (pause markers of 1e5 s, a 1 GHz sample rate) are never run here.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchtts.cli import main

TEXT = "Hello there. A second sentence follows it."
BASE = {"id": "ch", "text": TEXT, "output": "ch.wav", "engine": "tone"}

# Valid and hostile values per field; none of them may end in a traceback or touch a file outside --out.
VALUES: dict[str, list] = {
    "id": ["ch", "a.b_c-1", "", "a\n", "../x", "x" * 200, "a\x00b", "\ud800", 5, None, [], {}],
    "text": [TEXT, "", "\x00\x00", "." * 1000, "word " * 400, "Hi &#0; there.", "Hi &#xD800; there.", "灯塔亮了。"],
    "text_file": ["chapter.txt", "missing.txt", "/etc/passwd", "..", "voice.wav", "", 3],
    "output": [
        "ch.wav",
        "ch.mp3",
        "sub/ch.flac",
        "../escape.wav",
        "/tmp/abs.wav",
        "dir/",
        "a.txt",
        "",
        ".wav",
        "sub/../../e.wav",
    ],
    "sampling": [
        {"speed": 1.1},
        {"speed": math.nan},
        {"speed": 0},
        {"speed": -1},
        {"speed": 1e30},
        {"speed": "x"},
        {"x": 1},
        [],
        "s",
    ],
    "seed": [7, 2**80, -1, 1.5, "1", True],
    "pauses": [{"sentence": 0.5}, {"sentence": -1}, {"sentence": math.nan}, {"bogus": 1}, []],
    "pronunciations": [{"Hello": "Hallo"}, {"": "x"}, {"Hello": "\x00"}, {"(": "x"}, {"Hello": 5}],
    "language": ["en", "auto", "xx", "", None, 5],
    "sample_rate": [16000, 0, -1, 1.5, "x"],
    "loudness": [False, {"target": -20}, {"target": 100}, {"target": math.nan}, "x", True, {"true_peak": 50}],
    "title": ["Chapter", "a\x00b", "x" * 10000],
    "book": ["Saga", "../x", "War/and/Peace", ""],
    "track": [1, -1, 2**70, "1"],
    "cover": ["voice.wav", "missing.jpg", "book.jsonl"],
    "context": ["prompt", "rolling", "x"],
    "voice": [{"prompt_audio": "voice.wav", "prompt_text": "Hi."}, {"prompt_audio": "book.jsonl"}, "x"],
    "unknown_key": [1],
}

# Found by this test before they were fixed.
DEFECTS = [
    ("text", "Hi \ud800 there.", "plan", "defect 9: a lone surrogate in the text is a UnicodeEncodeError"),
    ("text", "Hi \ud800 there.", "run", "defect 9: a lone surrogate in the text is a UnicodeEncodeError"),
    ("title", "\ud800", "run", "defect 9: a lone surrogate in a tag is a UnicodeEncodeError when writing"),
    ("text_file", "a\x00.txt", "plan", "defect 9: a NUL in a path is a ValueError"),
    ("output", "a\x00.wav", "plan", "defect 9: a NUL in a path is a ValueError"),
    ("pronunciations", {"Hello": "\\1"}, "plan", "defect 9: a replacement is used as a regex template"),
    ("book", "\x00", "run", "defect 9: a NUL in a tag fails in libsndfile after synthesis (exit 4)"),
    ("output", "x" * 300 + ".wav", "run", "defect 10: a name too long for the file system fails after synthesis"),
    ("book", "a" * 300, "run", "defect 10: a book name too long for the file system fails after synthesis"),
    ("output", "book.mp3", "run --out . book.json", "defect 2: an output's timings JSON may overwrite the job file"),
    ("output", "voice.wav", "run --out . voice", "defect 2: an output may overwrite the voice clip"),
]


def _sandbox(records: list[dict], command: str) -> None:
    """Run `command` on a job file of `records` in a fresh folder; check the outcome and every file outside --out."""
    with tempfile.TemporaryDirectory(prefix="batchtts-hostile-") as tmp:
        root = Path(tmp)
        sf.write(root / "voice.wav", (0.1 * np.sin(np.arange(32000) / 10)).astype(np.float32), 8000)
        (root / "chapter.txt").write_text("Text from a file. It has two sentences.\n")
        parts = command.split()
        job_file = root / (parts[-1] if parts[-1].startswith("book.") else "book.jsonl")
        job_file.write_text("".join(json.dumps(r) + "\n" for r in records))
        out = root if "." in parts else root / "out"

        def snapshot() -> dict[str, str]:
            return {
                str(p): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in root.rglob("*")
                if p.is_file() and (out == root or out not in p.parents) and ".batchtts" not in p.parts
            }

        inputs = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.iterdir()}
        before = snapshot() if out != root else {}
        result = CliRunner().invoke(main, [parts[0], str(job_file), "--out", str(out)])
        crashed = result.exception if not isinstance(result.exception, SystemExit | None) else None
        assert crashed is None, f"{type(crashed).__name__}: {crashed}"
        assert result.exit_code in (0, 1, 2), result.output
        assert "Traceback" not in result.output
        if result.exit_code == 2:
            assert len(result.output.strip().splitlines()) == 1, result.output
        assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs if p.is_file()} == inputs
        if out != root:
            assert snapshot() == before, "a file outside the output folder changed"


@st.composite
def job_files(draw) -> list[dict]:
    record = dict(BASE)
    for name in draw(st.lists(st.sampled_from(sorted(VALUES)), unique=True, max_size=3)):
        record[name] = draw(st.sampled_from(VALUES[name]))
        if name == "text_file":
            record.pop("text", None)
    records = [record]
    if draw(st.booleans()):  # a second line: another chapter, or the same id again
        records.append({**BASE, "id": draw(st.sampled_from(["ch2", "ch"])), "output": "ch2.wav"})
    return records


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(job_files(), st.sampled_from(["plan", "run"]))
def test_hostile_values_end_in_0_1_or_2_and_touch_nothing_outside_the_output_folder(records, command):
    _sandbox(records, command)


@pytest.mark.parametrize(("field", "value", "command"), [pytest.param(f, v, c, id=why) for f, v, c, why in DEFECTS])
def test_each_defect_found_by_the_property_stays_fixed(field, value, command):
    record = {**BASE, field: value}
    if field == "text_file":
        record.pop("text")
    if command.endswith("voice"):
        record["voice"] = {"prompt_audio": "voice.wav"}
    _sandbox([record], command)
