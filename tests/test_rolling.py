"""`context: rolling`: each sentence is prompted with the sentences before it (as the official GLM-TTS
script does), while batches still fill up with the next sentence of other chapters."""

from dataclasses import replace

from click.testing import CliRunner

from batchtts import run
from batchtts.cli import main
from batchtts.engines.base import SynthRequest, SynthResult, newest_context
from batchtts.state.workspace import Workspace
from tests.conftest import write_jobs
from tests.fakes import ToneEngine

ROLL = [
    "First rolling line here.",
    "Second rolling line here.",
    "Third rolling line here.",
    "Fourth rolling line here.",
]


def _book(tmp_path, r1=ROLL):
    return write_jobs(
        tmp_path / "book.jsonl",
        [
            {"id": "r1", "text": " ".join(r1), "output": "r1.wav", "engine": "tone", "context": "rolling"},
            {
                "id": "r2",
                "text": " ".join(s.replace("rolling", "other") for s in ROLL),
                "output": "r2.wav",
                "engine": "tone",
                "context": "rolling",
            },
            {
                "id": "p",
                "text": " ".join(s.replace("rolling", "plain") for s in ROLL),
                "output": "p.wav",
                "engine": "tone",
            },
        ],
    )


def _keys(summary_dir):
    import sqlite3

    with sqlite3.connect(Workspace(summary_dir).ledger_path) as db:
        return dict(db.execute("SELECT job_id || '#' || idx, key FROM chunks"))


def test_each_sentence_is_prompted_by_the_ones_before_and_batches_hold_one_per_chapter(tmp_path, tone):
    jobs = _book(tmp_path)
    summary = run(jobs, out=tmp_path / "out", max_batch=8, waste_target=100.0)
    assert summary.synthesized == 12 and not summary.failed
    keys = _keys(tmp_path / "out")
    for call in tone.calls:
        chapters = [k for k in call if k in {keys[f"r1#{i}"] for i in range(4)}]
        assert len(chapters) <= 1  # a rolling chapter's sentences run one after another
    assert max(len(c) for c in tone.calls) >= 3  # ... while different chapters share batches
    for job in ("r1", "r2"):
        for i in range(4):
            ctx = tone.contexts[keys[f"{job}#{i}"]]
            assert len(ctx) == i  # every earlier sentence, oldest first
            assert [t for t, _ in ctx] == [s.replace("rolling", "other") if job == "r2" else s for s in ROLL[:i]]
    assert all(tone.contexts[keys[f"p#{i}"]] == () for i in range(4))


def test_editing_a_rolling_sentence_redoes_it_and_those_after_it(tmp_path, tone):
    jobs = _book(tmp_path)
    run(jobs, out=tmp_path / "out")
    edited = [ROLL[0], "Second rolling line, edited.", ROLL[2], ROLL[3]]
    _book(tmp_path, r1=edited)
    tone.calls.clear()
    summary = run(jobs, out=tmp_path / "out")
    assert summary.synthesized == 3  # r1 sentences 2-4; r2 and the plain chapter are untouched


def test_a_failed_sentence_holds_back_the_rest_of_its_chapter_and_retry_resumes_from_stored_tokens(tmp_path, tone):
    jobs = _book(tmp_path)
    tone.fail_texts.add(ROLL[1])
    result = CliRunner().invoke(main, ["run", str(jobs), "--out", str(tmp_path / "out"), "--retries", "0"])
    assert result.exit_code == 1
    assert "the sentence before it failed" in result.output
    assert not (tmp_path / "out" / "r1.wav").exists() and (tmp_path / "out" / "r2.wav").exists()
    tone.fail_texts.clear()
    tone.contexts.clear()
    result = CliRunner().invoke(main, ["retry", str(jobs), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    keys = _keys(tmp_path / "out")
    assert len(tone.contexts[keys["r1#1"]]) == 1  # prompted by sentence 1, read back from the store
    assert len(tone.contexts[keys["r1#3"]]) == 3
    run(jobs, out=tmp_path / "clean")
    for name in ("r2.wav", "p.wav"):  # r1 differs by design: its failed sentence was retried with a new seed
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()


def test_engines_without_rolling_support_refuse_it_as_bad_input(tmp_path):
    jobs = write_jobs(
        tmp_path / "b.jsonl", [{"id": "a", "text": "Hello there.", "output": "a.wav", "context": "rolling"}]
    )
    result = CliRunner().invoke(main, ["run", str(jobs)])
    assert result.exit_code == 2 and "field 'context': engine 'embedded' cannot prompt" in result.output
    bad = write_jobs(tmp_path / "c.jsonl", [{"id": "a", "text": "Hello.", "output": "a.wav", "context": "long"}])
    assert "'long' is not one of prompt, rolling" in CliRunner().invoke(main, ["run", str(bad)]).output


class ChainTone(ToneEngine):
    """The tone engine taking chapters as chains (as GLM-TTS does): a request that follows another of the same
    call is prompted by that one's context, text and tokens, cut by the worker's rule (newest_context)."""

    supports_rolling_chains = True

    def synthesize(self, requests: list[SynthRequest], voice) -> list[SynthResult]:
        by_key = {r.key: r for r in requests}
        done: dict[str, tuple[SynthRequest, SynthResult]] = {}
        while len(done) < len(requests):  # a chain's sentences one after another, as the decoder admits them
            for r in requests:
                if r.key in done or (r.follows and r.follows not in done):
                    continue
                if r.follows:
                    before, result = done[r.follows]
                    ctx = (*before.context, (before.text, result.speech_tokens))
                    r = replace(r, context=newest_context(ctx, self.cost_model().context_tokens), follows=None)
                (done[r.key],) = [(r, res) for res in super().synthesize([r], voice)]
        self.record.calls[len(self.record.calls) - len(requests) :] = [[r.key for r in requests]]
        return [done[k][1] for k in by_key]


def test_a_chain_engine_gets_whole_chapters_per_batch_with_the_same_prompts(tmp_path, tone, bind_engine):
    bind_engine(ChainTone)
    jobs = _book(tmp_path)
    summary = run(jobs, out=tmp_path / "out", max_batch=12, waste_target=100.0)
    assert summary.synthesized == 12 and not summary.failed
    keys = _keys(tmp_path / "out")
    r1 = {keys[f"r1#{i}"] for i in range(4)}
    assert max(len(r1 & set(call)) for call in tone.calls) == 4  # a whole chapter in one engine call
    for job in ("r1", "r2"):  # ... prompted exactly as sentence by sentence
        for i in range(4):
            ctx = tone.contexts[keys[f"{job}#{i}"]]
            assert [t for t, _ in ctx] == [s.replace("rolling", "other") if job == "r2" else s for s in ROLL[:i]]
    assert all(tone.contexts[keys[f"p#{i}"]] == () for i in range(4))


def test_a_failed_sentence_in_a_chain_holds_back_the_rest_of_its_chapter(tmp_path, tone, bind_engine):
    bind_engine(ChainTone)
    jobs = _book(tmp_path)
    tone.fail_texts.add(ROLL[1])
    result = CliRunner().invoke(main, ["run", str(jobs), "--out", str(tmp_path / "out"), "--retries", "0"])
    assert result.exit_code == 1
    assert "the sentence before it failed" in result.output
    assert not (tmp_path / "out" / "r1.wav").exists() and (tmp_path / "out" / "r2.wav").exists()
    keys = _keys(tmp_path / "out")
    tone.fail_texts.clear()
    tone.contexts.clear()
    result = CliRunner().invoke(main, ["retry", str(jobs), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert keys["r1#0"] not in tone.contexts  # the finished first sentence was kept
    assert len(tone.contexts[keys["r1#1"]]) == 1 and len(tone.contexts[keys["r1#3"]]) == 3
