"""GLM-TTS engine on a tiny random checkpoint in the real layout: batching never changes the tokens."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from batchtts.engines.glmtts import GlmttsEngine, llm_cost, read_llm_config
from batchtts.engines.glmtts.llm.reference import decode_batch
from batchtts.engines.glmtts.llm.sampling import HISTORY, RowParams, sample, uniform
from batchtts.engines.glmtts.llm.slot_decoder import SlotDecoder
from batchtts.engines.glmtts.llm.types import Sampling
from batchtts.engines.glmtts.voice.features import mel_filterbank, prompt_mel
from batchtts.state.voice import load_voice
from tests.conftest import ROOT, write_jobs
from tests.tiny_glmtts import build_checkpoint

TEXTS = [
    "hello there.",
    "a much longer sentence, with more words in it.",
    "short.",
    "the keeper climbed the stair at six.",
    "它是一个人",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("glmtts") / "model")


@pytest.fixture(scope="module")
def engine(tiny, voice_wav):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GLMTTS_MODEL_DIR", str(tiny))
        mp.delenv("GLMTTS_HOME", raising=False)  # no GLM-TTS checkout anywhere on the path
        eng = GlmttsEngine.load("cpu")
        yield eng, eng.prepare_voice(load_voice(voice_wav, "the prompt text"))
        eng.close()


def _prompts(eng, voice):
    sp = eng.special
    out, lens = [], []
    for t in TEXTS:
        ids = eng._text_ids(t, "en")
        out.append(voice["prompt_text"].tolist() + ids + [sp.boa] + (voice["prompt_speech"] + sp.ats).tolist())
        lens.append(len(ids))
    return out, lens


@pytest.mark.slow
@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
def test_a_padded_batch_decodes_exactly_what_each_row_decodes_alone(engine, greedy):
    eng, voice = engine
    prompts, lens = _prompts(eng, voice)
    samplings = [Sampling(greedy=greedy)] * len(prompts)
    seeds = [101, 202, 303, 404, 505]
    batch, cut = decode_batch(eng.llm, prompts, lens, eng.special, samplings, seeds)
    for i in range(len(prompts)):
        alone, alone_cut = decode_batch(eng.llm, [prompts[i]], [lens[i]], eng.special, [samplings[i]], [seeds[i]])
        assert batch[i] == alone[0] and cut[i] == alone_cut[0]
        assert 2 * lens[i] <= len(batch[i]) <= 20 * lens[i]  # GLM-TTS's min and max length rules
    # any other batch composition, in any order, gives the same rows
    order = [3, 0, 4]
    again, _ = decode_batch(
        eng.llm,
        [prompts[i] for i in order],
        [lens[i] for i in order],
        eng.special,
        [samplings[i] for i in order],
        [seeds[i] for i in order],
    )
    assert again == [batch[i] for i in order]
    if greedy:
        assert all(cut)  # a random model never chooses EOA greedily: decoding stops at 20x
    assert all(0 <= t < eng.special.n_speech for row in batch for t in row)


@pytest.mark.slow
def test_the_engines_decoder_is_the_slot_decoder_and_says_what_the_reference_says(engine):
    """The one decode path (slots refilled and compacted as rows end) must not change what is said."""
    eng, voice = engine
    prompts, lens = _prompts(eng, voice)
    assert isinstance(eng.slot_decoder(), SlotDecoder) and not eng.graphs  # eager steps on a CPU
    decoder = SlotDecoder(eng.fused, eng.special, slots=2, length=4096, quantum=32)  # refills and compaction
    for greedy, max_ratio in ((True, 20.0), (False, 8.0)):
        samplings = [Sampling(greedy=greedy)] * len(prompts)
        seeds = [11, 22, 33, 44, 55]
        want = decode_batch(eng.llm, prompts, lens, eng.special, samplings, seeds, 2.0, max_ratio)
        assert decoder.decode(prompts, lens, eng.special, samplings, seeds, 2.0, max_ratio) == want
        assert eng.slot_decoder().decode(prompts, lens, eng.special, samplings, seeds, 2.0, max_ratio) == want
        assert len({len(t) for t in want[0]}) > 2  # rows end at different steps: refills are exercised


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_decode_matches_eager_steps_through_the_engine_on_the_tiny_checkpoint(tiny, voice_wav, monkeypatch):
    """The production path on CUDA (the engine's SlotDecoder, steps replayed as CUDA graphs) in fp32 says what the
    same decoder says with eager steps; every step ran as a captured graph. (Against the Hugging Face reference
    the CUDA kernels may round differently: the CPU tests hold that equality.)"""
    for key, value in _env(tiny).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GLMTTS_DTYPE", "fp32")
    eng = GlmttsEngine.load("cuda")
    voice = eng.prepare_voice(load_voice(voice_wav, "the prompt text"))
    prompts, lens = _prompts(eng, voice)
    decoder = eng.slot_decoder()
    assert eng.graphs and decoder.use_graphs
    eager = SlotDecoder(eng.fused, eng.special, decoder.slots, decoder.length, graphs=False)
    for greedy, max_ratio in ((True, 20.0), (False, 8.0)):
        samplings = [Sampling(greedy=greedy)] * len(prompts)
        seeds = [11, 22, 33, 44, 55]
        want = eager.decode(prompts, lens, eng.special, samplings, seeds, 2.0, max_ratio)
        assert decoder.decode(prompts, lens, eng.special, samplings, seeds, 2.0, max_ratio) == want
    assert decoder._graphs and set(decoder.shape_steps) <= set(decoder._graphs)  # every step was a replay
    assert decoder.capture_seconds > 0


def test_sampling_follows_ras_rules():
    n = 4000
    logits = torch.tensor([5.0, 4.0, 1.0, 0.0, -1.0]).expand(n, 5)  # the last column is EOA
    u = uniform(torch.arange(n), torch.zeros(n, dtype=torch.long), 0)
    ok = torch.ones(n, dtype=torch.bool)
    s = Sampling(top_k=2, top_p=0.99)
    empty = torch.full((n, HISTORY), -1)

    def draw(history, sampling=s, eoa_ok=ok):
        return sample(logits, eoa_ok, RowParams.of([sampling] * n, "cpu"), history, u, u.flip(0), 32).tolist()

    draws = draw(empty)
    assert set(draws) == {0, 1}  # only the top-k survive when nothing repeats
    assert abs(draws.count(0) / n - math.e / (math.e + 1)) < 0.03  # in proportion to their probability
    assert set(draw(torch.zeros((n, HISTORY), dtype=torch.long))) - {0, 1}  # a repeat: draw from everything
    assert set(draw(empty, Sampling(greedy=True))) == {0}
    late = torch.tensor([0.0, 0.0, 0.0, 0.0, 9.0]).expand(n, 5)
    barred = sample(late, ~ok, RowParams.of([Sampling(greedy=True)] * n, "cpu"), empty, u, u, 32)
    assert 4 not in barred.tolist()  # EOA is barred before the minimum length


def test_cost_model_comes_from_the_llm_config(tiny, engine):
    model = tiny
    config = read_llm_config(model)
    head_dim = config["head_dim"]  # the published config sets it; the tiny one differs from hidden / heads
    assert head_dim != config["hidden_size"] // config["num_attention_heads"] and config["tie_word_embeddings"]
    assert (
        llm_cost(config, 2).bytes_per_token
        == 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * head_dim * 2
    )
    eng, _ = engine
    assert eng.cost_model().bytes_per_token == 2 * llm_cost(config, 2).bytes_per_token  # fp32 on a CPU


def test_voice_features(engine, voice_wav):
    eng, voice = engine
    assert voice["embedding"].shape == (192,)
    assert voice["prompt_mel"].shape == (4 * 50, 80)  # 4 s at 50 frames a second
    assert len(voice["prompt_speech"]) == 4 * 25
    fb = mel_filterbank(24000, 1920)
    assert fb.shape == (80, 961) and (fb >= 0).all() and fb[:, 961 * 8000 // 12000 + 2 :].max() == 0
    assert prompt_mel(np.zeros(24000, np.float32), 24000).shape == (50, 80)


def _env(tiny):
    env = {k: v for k, v in os.environ.items() if k != "GLMTTS_HOME"}  # no GLM-TTS checkout needed
    return {**env, "GLMTTS_MODEL_DIR": str(tiny)}


@pytest.mark.slow
def test_batchtts_run_with_glmtts_writes_chapters_end_to_end_on_cpu(tiny, tmp_path, voice_wav):
    voice = {"prompt_audio": str(voice_wav), "prompt_text": "the prompt text"}
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [
            {
                "id": "one",
                "text": "Hello there. The keeper climbed the stair.",
                "output": "one.wav",
                "engine": "glmtts",
                "voice": voice,
            },
            {
                "id": "two",
                "text": "Short one here. Another short line. And a third one.",
                "output": "two.flac",
                "engine": "glmtts",
                "voice": voice,
                "context": "rolling",
            },
        ],
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchtts",
            "run",
            str(jobs),
            "-v",
            "--waste-target",
            "5",
            "--log-json",
            str(tmp_path / "ev.jsonl"),
        ],
        cwd=ROOT,
        env=_env(tiny),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "one.wav").stat().st_size > 10_000 and (tmp_path / "out" / "two.flac").exists()
    batches = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert any(e["event"] == "batch" and e["size"] > 1 for e in batches)  # rows really shared a batch
    small = subprocess.run(  # a KV budget of one slot (4 MiB a slot in fp32): one row at a time, in other batches
        [sys.executable, "-m", "batchtts", "run", str(jobs), "--out", str(tmp_path / "small"), "--kv-budget", "5MiB"],
        cwd=ROOT,
        env=_env(tiny) | {"GLMTTS_DECODE": "eager"},
        capture_output=True,
        text=True,
    )
    assert small.returncode == 0, small.stderr
    for name in ("one.wav", "two.flac"):  # one slot says exactly what many slots say:
        # on a CPU the flow and vocoder run each row alone, so the batch never changes a chunk's audio
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "out" / name).read_bytes()
    plan = subprocess.run(
        [sys.executable, "-m", "batchtts", "plan", str(jobs), "--all", "--json"],
        cwd=ROOT,
        env=_env(tiny),
        capture_output=True,
        text=True,
    )
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)[0]["engine"] == "glmtts"


@pytest.mark.slow
def test_missing_glmtts_weights_are_a_clear_environment_error(tiny, tmp_path):
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [
            {
                "id": "a",
                "text": "Hello there.",
                "output": "a.wav",
                "engine": "glmtts",
                "voice": {"prompt_audio": str(ROOT / "examples" / "voice" / "narrator.wav"), "prompt_text": "hi"},
            }
        ],
    )
    env = _env(tiny)
    env["GLMTTS_MODEL_DIR"] = str(tmp_path / "nowhere")
    proc = subprocess.run(
        [sys.executable, "-m", "batchtts", "run", str(jobs)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 4 and "run `batchtts download`" in proc.stderr
    env = _env(tiny) | {"GLMTTS_DECODE": "graphs"}  # CUDA graphs on a CPU run
    proc = subprocess.run(
        [sys.executable, "-m", "batchtts", "run", str(jobs)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 4 and "GLMTTS_DECODE: decode mode 'graphs' needs a CUDA device" in proc.stderr


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or not os.environ.get("GLMTTS_HOME"),
    reason="needs a CUDA device, the real weights (GLMTTS_MODEL_DIR) and a GLM-TTS checkout",
)
def test_real_glmtts_pipeline_on_gpu(tmp_path):
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [
            {
                "id": "real",
                "text": "The keeper climbed the stair at six. 她点亮了灯。",
                "output": "real.wav",
                "engine": "glmtts",
                "voice": {
                    "prompt_audio": str(ROOT / "examples" / "voice" / "narrator.wav"),
                    "prompt_text": "This is the narrator of the example book. Every chapter is read in this voice.",
                },
            }
        ],
    )
    proc = subprocess.run(
        [sys.executable, "-m", "batchtts", "run", str(jobs), "--device", "cuda"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_rolling_context_prompt_keeps_the_reference_and_drops_the_oldest_sentences_first(engine):
    eng, voice = engine
    text, speech = list(voice["prompt_text"]), list(voice["prompt_speech"])
    ctx = (("one two.", tuple(range(300))), ("three four.", tuple(range(300, 600))), ("five.", tuple(range(5))))
    t, sp = eng._with_context(text, speech, ctx, n_text=8)
    assert t[: len(text)] == text and sp[: len(speech)] == speech  # the reference prompt always leads
    assert sp[len(speech) :] == list(range(300, 600)) + list(range(5))  # the oldest sentence went first
    assert len(sp) <= 750
    t, sp = eng._with_context(text, speech, ctx[-1:], n_text=8)
    assert sp == speech + list(range(5)) and t == text + eng._text_ids("five.", "en")


def test_rolling_context_ratio_is_taken_once_over_every_earlier_sentence(engine):
    eng, voice = engine
    text, speech = list(voice["prompt_text"]), list(voice["prompt_speech"])
    a, b, c = ("a.", tuple(range(600))), ("b" * 19 + ".", tuple(range(300))), ("c" * 19 + ".", tuple(range(20)))
    n = [len(eng._text_ids(t)) for t, _ in (a, b, c)]
    once = (len(speech) + 920) / (len(text) + sum(n))  # the official ratio: prompt and all three sentences
    after_a = (len(speech) + 320) / (len(text) + n[1] + n[2])  # what recomputing it after dropping a would give
    assert len(speech) + 320 + int(once * 20) > 750 >= len(speech) + 320 + int(after_a * 20)
    _, sp = eng._with_context(text, speech, (a, b, c), n_text=20)
    assert sp == speech + list(range(20))  # b went too: the ratio was not recomputed after a was dropped


def test_rolling_chains_in_one_call_match_sentence_by_sentence_calls(engine):
    """Two chapters handed to the engine as chains (SynthRequest.follows) in one call: each sentence's speech
    tokens and audio equal decoding the sentences one call at a time, in order, prompted by the ones before."""
    from batchtts.engines.base import SynthRequest, newest_context

    eng, voice = engine
    room, opts = eng.cost_model().context_tokens, dict(eng.option_defaults)
    chapters = {"a": TEXTS[:4], "b": TEXTS[1:3]}
    alone = {}
    for name, texts in chapters.items():
        done: tuple = ()
        for n, text in enumerate(texts):
            key = f"{name}{n}"
            req = SynthRequest(key, text, "en", 7 + n, opts, newest_context(done, room))
            (alone[key],) = eng.synthesize([req], voice)
            done = (*done, (text, alone[key].speech_tokens))
    (bare,) = eng.synthesize([SynthRequest("a1", TEXTS[1], "en", 8, opts)], voice)
    assert bare.speech_tokens != alone["a1"].speech_tokens  # the context changes what a sentence says
    reqs = [
        SynthRequest(f"{name}{n}", text, "en", 7 + n, opts, (), f"{name}{n - 1}" if n else None)
        for name, texts in chapters.items()
        for n, text in enumerate(texts)
    ]
    chained = dict(zip((r.key for r in reqs), eng.synthesize(reqs[::-1], voice)[::-1], strict=True))
    for key, want in alone.items():
        assert chained[key].speech_tokens == want.speech_tokens
        assert np.array_equal(chained[key].audio, want.audio)


def test_the_audio_worker_reports_each_flow_batch_of_takes_it_returns(engine):
    """`on_results` (what verification listens to) is called from the audio worker with each flow batch's rows:
    every request once, the very takes synthesize returns, equal to a call without the hook."""
    import threading

    from batchtts.engines.base import SynthRequest

    eng, voice = engine
    opts = dict(eng.option_defaults)
    reqs = [SynthRequest(f"r{i}", text, "en", 3 + i, opts) for i, text in enumerate(TEXTS[:4])]
    batches: list[tuple[str, list]] = []
    made = eng.synthesize(reqs, voice, on_results=lambda done: batches.append((threading.current_thread().name, done)))
    plain = eng.synthesize(reqs, voice)
    assert {name for name, _ in batches} == {"glmtts-audio"} and eng.streams_results
    reported = [pair for _, done in batches for pair in done]
    assert sorted(i for i, _ in reported) == [0, 1, 2, 3]
    for i, take in reported:
        assert take is made[i] and np.array_equal(take.audio, plain[i].audio) and take.audio.dtype == np.float32
        assert (take.tokens, take.truncated, take.speech_tokens) == (
            plain[i].tokens, plain[i].truncated, plain[i].speech_tokens)  # fmt: skip


@pytest.mark.slow
def test_rolling_chapters_run_as_chains_and_write_the_bytes_sentence_by_sentence_writes(
    tiny, tmp_path, voice_wav, monkeypatch
):
    """`context: rolling` on GLM-TTS: a chapter's sentences share one engine call (a chain through the slots),
    and every chapter's bytes equal the sentence-by-sentence run (one sentence per chapter per call)."""
    from batchtts import run

    voice = {"prompt_audio": str(voice_wav), "prompt_text": "the prompt text"}
    lines = ["它是一个人，他走在路上，天气很好，我们都很高兴。", "老人爬上了楼梯，看着远方的大海，想起了从前的日子。"]
    texts = ["".join(lines * 3), "".join(lines[::-1] * 2)]  # chunks of 30 to 60 units: two or more a chapter
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [
            {"id": f"c{i}", "text": t, "output": f"c{i}.wav", "engine": "glmtts", "voice": voice, "context": "rolling"}
            for i, t in enumerate(texts)
        ],
    )
    monkeypatch.setenv("GLMTTS_MODEL_DIR", str(tiny))
    monkeypatch.delenv("GLMTTS_HOME", raising=False)
    calls: list[list] = []
    synthesize = GlmttsEngine.synthesize

    def recorded(self, requests, state):
        calls.append([r.follows for r in requests])
        return synthesize(self, requests, state)

    monkeypatch.setattr(GlmttsEngine, "synthesize", recorded)
    n = run(jobs, out=tmp_path / "chains").synthesized
    assert n >= 4 and len(calls) == 1 and sum(f is not None for f in calls[0]) == n - 2  # two whole chapters
    calls.clear()
    monkeypatch.setattr(GlmttsEngine, "supports_rolling_chains", False)
    assert run(jobs, out=tmp_path / "one_by_one").synthesized == n
    assert len(calls) > 1 and all(f is None for call in calls for f in call)  # one sentence per chapter a call
    for i in range(len(texts)):
        assert (tmp_path / "chains" / f"c{i}.wav").read_bytes() == (tmp_path / "one_by_one" / f"c{i}.wav").read_bytes()
