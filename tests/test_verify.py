"""The verify stage with the real embedded engine and pocketsphinx: a take that drops a word is taken again
and the best take kept; a chunk that never passes is flagged, written, and does not fail the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import batchtts
from batchtts.cli import main
from batchtts.engines import register_engine
from batchtts.engines.base import SynthRequest
from batchtts.engines.embedded import EmbeddedEngine
from batchtts.state.ledger import Ledger
from tests.conftest import write_jobs

SENTENCE = "The cat did not answer."
STRICT = {"asr": "pocketsphinx", "max_error": 0.1, "retakes": 2}


class DropWordEngine(EmbeddedEngine):
    """The embedded engine, except that the first take of each chunk leaves out the word "not"."""

    name = "dropword"

    def __init__(self, piper):
        super().__init__(piper)
        self.takes: dict[str, int] = {}

    def synthesize(self, requests, voice, on_results=None):
        edited = []
        for r in requests:
            self.takes[r.key] = self.takes.get(r.key, 0) + 1
            text = r.text.replace(" not ", " ") if self.takes[r.key] == 1 else r.text
            edited.append(SynthRequest(r.key, text, r.language, r.seed, r.options, r.context))
        return super().synthesize(edited, voice, on_results)


class WrongTextEngine(EmbeddedEngine):
    """Always reads another sentence than the one asked for: no take can pass."""

    name = "wrongtext"

    def synthesize(self, requests, voice, on_results=None):
        other = [
            SynthRequest(r.key, "Seven green bottles hung on the wall.", r.language, r.seed, r.options)
            for r in requests
        ]
        return super().synthesize(other, voice, on_results)


register_engine(DropWordEngine)
register_engine(WrongTextEngine)


def _verdicts(out: Path) -> dict:
    ledger = Ledger(out / ".batchtts" / "ledger.sqlite")
    try:
        keys = [k for (k,) in ledger.db.execute("SELECT key FROM audio")]
        return ledger.verdicts(keys)
    finally:
        ledger.close()


def test_dropped_word_is_retaken_and_the_best_take_kept(tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {
                "id": "cat",
                "engine": "dropword",
                "language": "en",
                "output": "cat.wav",
                "text": SENTENCE,
                "verify": STRICT,
            }
        ],
    )
    summary = batchtts.run(jobs, out=tmp_path / "out", progress=False)
    assert summary.stats.verified == 1 and summary.stats.retaken == 1 and not summary.flagged
    (verdict,) = _verdicts(tmp_path / "out").values()
    assert verdict.takes == 2 and not verdict.flagged
    assert verdict.backend == "pocketsphinx" and verdict.metric == "wer"
    assert verdict.error <= 0.1 and "not" in verdict.transcript.split()
    manifest = json.loads((tmp_path / "out" / "cat.json").read_text())
    (row,) = manifest["chunks"]
    assert row["takes"] == 2 and row["flagged"] is False and row["asr"]["error"] == verdict.error
    # A resumed run does not verify again.
    again = batchtts.run(jobs, out=tmp_path / "out", progress=False)
    assert again.synthesized == 0 and again.stats.verified == 0
    assert _verdicts(tmp_path / "out") == {row["key"]: verdict}


@pytest.mark.slow
def test_chunk_that_never_passes_is_flagged_written_and_strict_exits_1(tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": "bad", "engine": "wrongtext", "language": "en", "output": "bad.wav",
             "text": "The lamp was lit at six every evening. Nobody came to the island that winter.",
             "verify": {"asr": "pocketsphinx", "retakes": 1}},
        ],
    )  # fmt: skip
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(jobs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 flagged" in result.output or "2 chunks flagged" in result.output
    assert (out / "bad.wav").is_file()
    verdicts = _verdicts(out)
    assert len(verdicts) == 2 and all(v.flagged and v.takes == 2 and v.error > 0.5 for v in verdicts.values())
    rows = json.loads((out / "bad.json").read_text())["chunks"]
    assert [r["flagged"] for r in rows] == [True, True]
    # --strict: a run that flags chunks exits 1 (--fresh, so this run synthesises and flags them again).
    strict = CliRunner().invoke(main, ["run", str(jobs), "--out", str(out), "--strict", "--fresh"])
    assert strict.exit_code == 1, strict.output


def test_a_chunk_mixing_chinese_and_english_is_not_scored_by_an_english_only_backend(tmp_path, caplog):
    """pocketsphinx hears English only: the Mandarin run of a mixed chunk would count as missing words on every
    take, so such a chunk is left unchecked (said once), never retaken or flagged for it."""
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": "mix", "language": "en", "output": "mix.wav", "text": "He said 你好 to the keeper of the light."}],
    )
    with caplog.at_level("WARNING", logger="batchtts"):
        summary = batchtts.run(jobs, out=tmp_path / "out", progress=False)
    assert summary.synthesized == 1 and summary.stats.verified == 0
    assert summary.stats.retaken == 0 and not summary.flagged
    assert sum("mixing Chinese and English" in r.message for r in caplog.records) == 1
    assert _verdicts(tmp_path / "out") == {}


def test_no_verify_checks_nothing(tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": "bad", "engine": "wrongtext", "language": "en", "output": "bad.wav", "text": SENTENCE}],
    )
    summary = batchtts.run(jobs, out=tmp_path / "out", progress=False, verify=False)
    assert summary.synthesized == 1 and summary.stats.verified == 0 and not summary.flagged
    assert _verdicts(tmp_path / "out") == {}


def test_verify_field_is_checked(tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": "a", "text": "Hi there.", "output": "a.wav", "verify": {"asr": "vosk"}}]
    )
    with pytest.raises(batchtts.errors.InputError, match="verify.asr"):
        batchtts.chunks(jobs)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{"id": "a", "text": "Hi there.", "output": "a.wav", "verify": {"retakes": -1}}]
    )
    with pytest.raises(batchtts.errors.InputError, match="verify.retakes"):
        batchtts.chunks(jobs)


def test_chinese_without_whisper_is_skipped_with_one_message(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BATCHTTS_WHISPER_DIR", str(tmp_path / "no-whisper"))
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"id": "zh1", "language": "zh", "output": "zh1.wav", "text": "山间有一座小茶馆。"},
            {"id": "zh2", "language": "zh", "output": "zh2.wav", "text": "老板每天早上煮茶。"},
            {"id": "en", "language": "en", "output": "en.wav", "text": SENTENCE},
        ],
    )
    with caplog.at_level("INFO", logger="batchtts"):
        summary = batchtts.run(jobs, out=tmp_path / "out", progress=False)
    skipped = [r for r in caplog.records if "verification skipped for 'zh'" in r.getMessage()]
    assert len(skipped) == 1 and "batchtts download --repo openai/whisper-large-v3-turbo" in skipped[0].getMessage()
    assert summary.synthesized == 3 and summary.stats.verified == 1
    assert [v.backend for v in _verdicts(tmp_path / "out").values()] == ["pocketsphinx"]
