"""The planner: coverage, the memory bound, monotonicity in the budget, padding waste, OOM recovery."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from batchtts import run
from batchtts.cli import main
from batchtts.config import parse_size
from batchtts.engines.base import CostModel, SynthRequest, SynthResult, llama_kv_bytes_per_token
from batchtts.errors import PlanError
from batchtts.jobs.parse import load_jobs
from batchtts.planning.plan import LengthPredictor, batch_bytes, plan_batches
from batchtts.text.chunks import Chunk
from batchtts.text.split import detect_language, split_text
from tests.conftest import ROOT, write_jobs
from tests.fakes import ToneEngine

# GLM-TTS-like numbers: a KV cache per token, 2x..20x decode ratio, a voice prompt prefix.
COST = CostModel(
    bytes_per_token=64 * 1024,
    chars_per_text_token={"en": 4.0, "zh": 1.5},
    speech_ratio={"en": 5.0, "zh": 6.0},
    special_tokens=3,
    prompt_tokens_per_second=25.0,
)


def _chunks(texts: list[str], voices: int = 1) -> list[Chunk]:
    return [
        Chunk("job", i, f"k{i}", t, t, detect_language(t), "sentence", {}, f"v{i % voices}")
        for i, t in enumerate(texts)
    ]


def _book_sentences() -> list[str]:
    texts = []
    for job in load_jobs(ROOT / "jobs" / "book.jsonl"):
        texts += [s.text for s in split_text(job.text, 300)]
    return texts


def _long_text_sentences(n: int = 400) -> list[str]:
    import random

    rng = random.Random(7)
    words = "the keeper lamp stair storm light ship sea night wind wave island winter door".split()
    han = "山路尽头有一家小茶馆门前挂着一盏旧灯笼老板姓林每天清晨烧水"
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append("".join(rng.choice(han) for _ in range(rng.randint(4, 60))) + "。")
        else:
            out.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 45))).capitalize() + ".")
    return out


sentences = st.lists(
    st.text(alphabet="abcdefgh 山路茶馆", min_size=1, max_size=300).filter(str.strip), min_size=1, max_size=60
)


@settings(max_examples=150, deadline=None)
@given(
    sentences,
    st.integers(1, 3),
    st.integers(1, 64),
    st.floats(1.0, 50.0),
    st.floats(0.05, 1.0),
    st.sampled_from(["full", "prompt"]),
)
def test_every_chunk_planned_once_and_no_batch_over_budget(texts, voices, max_batch, budget_scale, waste, padding):
    chunks = _chunks(texts, voices)
    prefix = {f"v{i}": 3 + 25 * (i + 2) for i in range(voices)}
    biggest = max(batch_bytes(COST, max(prefix.values()), [_item(c)])[0] for c in chunks)
    budget = int(biggest * budget_scale)
    cost = dataclasses.replace(COST, padding=padding)
    plan = plan_batches(chunks, cost, budget, max_batch, prefix, waste_target=waste)
    planned = [c.key for b in plan.batches for c in b.chunks]
    assert sorted(planned) == sorted(c.key for c in chunks)
    for b in plan.batches:
        assert b.worst_bytes <= budget and len(b.items) <= max_batch
        assert len({c.voice for c in b.chunks}) == 1
        assert b.worst_bytes == batch_bytes(COST, prefix[b.voice], b.items)[0]
        assert b.padded_slots <= waste * b.useful_slots + 1e-9


def _item(chunk):
    from batchtts.planning.plan import Item

    n = COST.text_tokens(chunk.text, chunk.language)
    return Item(chunk, n, COST.predicted_decode(n, COST.speech_ratio[chunk.language]), COST.worst_decode(n))


@settings(max_examples=150, deadline=None)
@given(sentences, st.integers(1, 64), st.floats(1.0, 30.0), st.floats(1.0, 4.0))
def test_a_bigger_budget_never_yields_more_batches(texts, max_batch, scale, factor):
    chunks = _chunks(texts)
    biggest = max(batch_bytes(COST, 3, [_item(c)])[0] for c in chunks)
    small = plan_batches(chunks, COST, int(biggest * scale), max_batch)
    big = plan_batches(chunks, COST, int(biggest * scale * factor), max_batch)
    assert len(big.batches) <= len(small.batches)


@pytest.mark.parametrize("texts", [_book_sentences(), _long_text_sentences()], ids=["example-book", "long-text"])
def test_padding_waste_stays_under_target_on_realistic_books(texts):
    chunks = _chunks(texts)
    for target in (0.1, 0.2):
        steps = {}
        for padding in ("full", "prompt"):
            cost = dataclasses.replace(COST, padding=padding)
            plan = plan_batches(chunks, cost, parse_size("10GiB"), 64, {"v0": 200}, waste_target=target)
            assert plan.padding_waste <= target
            assert all(b.padded_slots <= target * b.useful_slots for b in plan.batches)
            assert plan.decode_steps < plan.sequential_steps
            steps[padding] = plan.decode_steps
        # Rows that leave the batch when done pad only their prompts: wider buckets, fewer steps.
        assert steps["prompt"] < steps["full"]


def test_a_chunk_too_big_for_the_budget_is_a_clear_error():
    with pytest.raises(PlanError, match="raise --kv-budget"):
        plan_batches(_chunks(["a" * 300]), COST, 1024, 8)


def test_kv_bytes_per_token_comes_from_the_llama_config():
    config = {"hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 4, "num_hidden_layers": 24}
    assert llama_kv_bytes_per_token(config, 2) == 2 * 24 * 4 * 128 * 2
    assert llama_kv_bytes_per_token({**config, "head_dim": 64}, 4) == 2 * 24 * 4 * 64 * 4


def test_predictor_learns_observed_decode_lengths():
    pred = LengthPredictor(COST)
    assert pred.ratio("en") == 5.0
    for _ in range(50):
        pred.observe("en", 100, 1000)
    assert 9.5 < pred.ratio("en") < 10.0 and pred.ratio("zh") == 6.0


def test_parse_size():
    assert parse_size("12GiB") == 12 * 2**30 and parse_size("800MB") == 800 * 10**6 and parse_size("1.5G") == 3 * 2**29
    with pytest.raises(ValueError):
        parse_size("lots")


class OomEngine(ToneEngine):
    """Raises CUDA's out-of-memory error for any batch bigger than `limit`, like a real device would; every
    batch it is handed is in the test's `tone.calls`, the refused ones too."""

    name = "oom"
    limit = 2

    @classmethod
    def default_batch_size(cls, threads: int | None = None) -> int:
        return 8

    def synthesize(self, requests: list[SynthRequest], voice) -> list[SynthResult]:
        if len(requests) > self.limit:
            self.record.calls.append([r.key for r in requests])
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().synthesize(requests, voice)


def test_out_of_memory_splits_the_batch_lowers_the_ceiling_and_loses_nothing(tmp_path: Path, tone, bind_engine):
    text = " ".join(f"Sentence number {n} is here." for n in range(1, 25))
    records = [{"id": "a", "text": text, "output": "a.wav", "engine": "oom"}]
    jobs = write_jobs(tmp_path / "book.jsonl", records)
    bind_engine(OomEngine)
    summary = run(jobs, out=tmp_path / "oom", waste_target=10.0)
    assert summary.synthesized == summary.chunks == 24 and not summary.failed
    sizes = [len(call) for call in tone.calls]
    assert sizes[0] == 8  # tried big, then split
    assert max(sizes[sizes.index(2) :]) <= 2  # the lower ceiling held for the rest
    import sqlite3

    with sqlite3.connect(tmp_path / "oom" / ".batchtts" / "ledger.sqlite") as db:
        rows = db.execute("SELECT state, attempts, COUNT(*) FROM audio GROUP BY state, attempts").fetchall()
    assert rows == [("done", 1, 24)]  # every chunk done exactly once
    bind_engine(OomEngine, limit=100)
    run(jobs, out=tmp_path / "roomy", waste_target=10.0)
    assert (tmp_path / "oom" / "a.wav").read_bytes() == (tmp_path / "roomy" / "a.wav").read_bytes()


def test_chapter_bytes_do_not_depend_on_batch_composition(tmp_path: Path, voice_wav):
    voice = {"prompt_audio": str(voice_wav), "prompt_text": "test"}
    records = [
        {"id": f"c{i}", "text": t, "output": f"c{i}.flac", "engine": "tone", "voice": voice}
        for i, t in enumerate([" ".join(_long_text_sentences(30)), " ".join(_book_sentences()[:20])])
    ]
    jobs = write_jobs(tmp_path / "book.jsonl", records)
    outs = []
    for n, opts in enumerate([{}, {"kv_budget": parse_size("8MiB")}, {"max_batch": 1}, {"waste_target": 0.01}]):
        run(jobs, out=tmp_path / str(n), **opts)
        outs.append([(tmp_path / str(n) / f"c{i}.flac").read_bytes() for i in range(2)])
    assert all(o == outs[0] for o in outs)


def test_runs_learn_lengths_and_replan(tmp_path: Path, caplog):
    caplog.set_level("DEBUG", logger="batchtts")
    text = " ".join(f"Sentence number {n} is here." for n in range(1, 40))
    jobs = write_jobs(tmp_path / "book.jsonl", [{"id": "a", "text": text, "output": "a.wav", "engine": "tone"}])
    run(jobs, out=tmp_path / "o", max_batch=4)
    # ToneEngine decodes 3 units per character, 12 per text token, while the cost model guessed 4: re-planned.
    assert caplog.text.count("planned") >= 2


def test_plan_command_prints_and_emits_json_without_loading_a_model():
    result = CliRunner().invoke(main, ["plan", str(ROOT / "jobs" / "book.jsonl"), "--all", "--kv-budget", "1GiB"])
    assert result.exit_code == 0, result.output
    assert "decode steps:" in result.output and "bucket edges" in result.output
    result = CliRunner().invoke(main, ["plan", str(ROOT / "jobs" / "book.jsonl"), "--all", "--json"])
    [report] = json.loads(result.output)
    assert report["engine"] == "embedded" and report["chunks"] == sum(b["size"] for b in report["batches"])
    assert report["waste_target"] is None and report["step_saving"] > 1
    assert all(b["worst_bytes"] <= report["budget_bytes"] for b in report["batches"])
    assert not math.isnan(report["padding_waste"])
