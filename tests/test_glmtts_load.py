"""The real checkpoint loads or says why, and `batchtts plan` predicts the decode slots a run allocates.

Each fixture breaks one file of the tiny checkpoint the way a real download can be broken (a pickle the safe
loader refuses, a missing tensor, a mis-shaped one, an unreadable tokenizer, ids that are not GLM-TTS's);
every one ends in one line naming the file and exit code 4, never a traceback."""

import json
import pickle
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from batchtts.cli import main
from batchtts.engines.glmtts import GlmttsEngine
from batchtts.engines.glmtts.llm.capacity import slot_capacity
from tests.conftest import write_jobs
from tests.tiny_glmtts import build_checkpoint


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("glmtts") / "model")


@pytest.fixture
def model(pristine, tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(pristine, copy)
    monkeypatch.setenv("GLMTTS_MODEL_DIR", str(copy))
    monkeypatch.delenv("GLMTTS_HOME", raising=False)
    monkeypatch.delenv("GLMTTS_CAMPPLUS", raising=False)
    return copy


def _relock(folder: Path, repo: str | None = None) -> None:
    """Record the sizes of edited files, so the download lock still calls the copy complete."""
    lock = json.loads((folder / "batchtts-model.lock.json").read_text())
    lock["files"] = {k: (folder / k).stat().st_size for k in lock["files"]}
    if repo:
        lock["repo"] = repo
    (folder / "batchtts-model.lock.json").write_text(json.dumps(lock))


def _run(tmp_path: Path, voice_wav: Path):
    voice = {"prompt_audio": str(voice_wav), "prompt_text": "the prompt text"}
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [{"id": "a", "text": "Hello there.", "output": "a.wav", "engine": "glmtts", "voice": voice}],
    )
    return CliRunner().invoke(main, ["run", str(jobs)])


def _one_line_exit_4(got, *needles: str) -> None:
    assert got.exit_code == 4, got.output
    lines = [x for x in got.output.splitlines() if x.startswith("batchtts: error:")]
    assert len(lines) == 1 and "Traceback" not in got.output, got.output
    for needle in needles:
        assert needle in lines[0], lines[0]


class Gadget:  # a class a pickle may name: torch's safe loader must refuse to build it
    pass


def test_a_flow_pt_holding_more_than_tensors_is_refused_naming_the_file(model, tmp_path, voice_wav):
    state = torch.load(model / "flow" / "flow.pt", weights_only=True)
    torch.save({"model": state, "extra": Gadget()}, model / "flow" / "flow.pt")
    _relock(model)
    _one_line_exit_4(_run(tmp_path, voice_wav), str(model / "flow" / "flow.pt"), "refusing to unpickle")


def test_a_hift_pt_with_a_missing_tensor_names_the_file(model, tmp_path, voice_wav):
    state = torch.load(model / "hift" / "hift.pt", weights_only=True)
    state = OrderedDict((k, v) for k, v in state.items() if not k.startswith("conv_post."))
    torch.save(state, model / "hift" / "hift.pt")
    _relock(model)
    _one_line_exit_4(_run(tmp_path, voice_wav), str(model / "hift" / "hift.pt"), "conv_post")


def test_a_garbled_hift_pt_names_the_file(model, tmp_path, voice_wav):
    (model / "hift" / "hift.pt").write_bytes(pickle.dumps([1, 2, 3])[:5])
    _relock(model)
    _one_line_exit_4(_run(tmp_path, voice_wav), str(model / "hift" / "hift.pt"))


def test_llm_weights_with_a_missing_or_misshaped_tensor_name_the_folder(model, tmp_path, voice_wav):
    path = model / "llm" / "model.safetensors"
    original = load_file(path)
    state = dict(original)
    del state["model.layers.1.mlp.down_proj.weight"]
    save_file(state, path)
    _relock(model)
    _one_line_exit_4(_run(tmp_path, voice_wav), str(model / "llm"), "down_proj")
    state = dict(original)
    state["model.layers.0.self_attn.o_proj.weight"] = torch.zeros(3, 3)
    save_file(state, path)
    _relock(model)
    (tmp_path / "again").mkdir()
    _one_line_exit_4(_run(tmp_path / "again", voice_wav), str(model / "llm"))


def test_an_unreadable_tokenizer_names_its_config(model, tmp_path, voice_wav):
    (model / "vq32k-phoneme-tokenizer" / "tokenizer.json").write_text("{ not json")
    _relock(model)
    _one_line_exit_4(_run(tmp_path, voice_wav), "tokenizer_config.json")


def test_the_official_repository_must_have_the_published_dimensions_and_ids(model, tmp_path, voice_wav):
    config = json.loads((model / "llm" / "config.json").read_text())
    del config["batchtts_test_checkpoint"]  # the tiny checkpoint now claims to be the published one
    (model / "llm" / "config.json").write_text(json.dumps(config))
    _relock(model, repo="zai-org/GLM-TTS")
    _one_line_exit_4(_run(tmp_path, voice_wav), str(model / "llm" / "config.json"), "hidden_size 64 (published 2048)")
    published = json.loads((Path(__file__).parent.parent / "batchtts/engines/glmtts/llm-config.json").read_text())
    from batchtts.engines.glmtts.checkpoint import check_llm_config, special_ids_of
    from batchtts.engines.glmtts.llm.types import SpecialIds
    from batchtts.errors import EnvironmentProblem

    (model / "llm" / "config.json").write_text(json.dumps(published))
    assert check_llm_config(model, published)["hidden_size"] == 2048  # the published config passes

    class Tok:  # ids as the published tokenizer gives them, but one speech token short
        vocab = {f"<|audio_{k}|>": 61498 + k for k in range(32767)}
        ids = {"<|audio_0|>": 61498, "<|begin_of_audio|>": 59260, "<|user|>": 59253, "<|endoftext|>": 59246}

        def encode(self, text, add_special_tokens=False):
            return [self.ids[text]]

        def get_vocab(self):
            return self.vocab

    with pytest.raises(EnvironmentProblem, match=r"tokenizer_config.json: .*n_speech 32767 \(published 32768\)"):
        special_ids_of(Tok(), model, published=True)
    Tok.vocab[f"<|audio_{32767}|>"] = 61498 + 32767
    assert special_ids_of(Tok(), model, published=True) == SpecialIds(61498, 32768, 59260, 59253, 59246)


# -- one owner of the KV budget ---------------------------------------------------------------------


def test_plan_predicts_the_slots_the_runs_decoder_allocates(model, tmp_path, voice_wav, monkeypatch):
    """With a forced free-memory figure, `batchtts plan --json` and a run's worker (memory_budget, then the
    engine's slot_capacity) agree on slots and slot length; the tiny model's slot is 4 MiB in fp32."""
    from batchtts.synthesis.worker import SynthSettings, Worker

    slot = 4096 * 1024  # 4096 tokens x (2 x 2 layers x 2 KV heads x 32 x 4 bytes)
    monkeypatch.setenv("BATCHTTS_FREE_MEMORY", str(2 * (5 * slot + slot // 2)))  # CPU share 0.5: 5.5 slots
    voice = {"prompt_audio": str(voice_wav), "prompt_text": "the prompt text"}
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [{"id": "a", "text": "Hello there. " * 12, "output": "a.wav", "engine": "glmtts", "voice": voice}],
    )
    got = CliRunner().invoke(main, ["plan", str(jobs), "--json"])
    assert got.exit_code == 0, got.output
    decode = json.loads(got.output)[0]["decode"]
    assert (decode["slots"], decode["slot_tokens"]) == (5, 4096) and decode["kv_bytes"] == 5 * slot
    assert decode["queue_order"].startswith("per voice, longest predicted decode first")
    worker = Worker("glmtts", SynthSettings(device="cpu"), {})
    try:
        assert worker.budget == decode["budget_bytes"]
        decoder = worker.engine.slot_decoder()
        assert (decoder.slots, decoder.length) == (decode["slots"], decode["slot_tokens"])
        assert decoder.kv_bytes() == decode["kv_bytes"]
    finally:
        worker.close()


def test_a_gpu_sized_budget_gives_the_planner_and_the_decoder_the_same_slots_at_the_real_dimensions():
    """The published config in bf16 on a 12 GiB device: both read llm/capacity.py's slot_capacity."""
    from batchtts.engines.glmtts import llm_cost
    from batchtts.engines.glmtts.llm.capacity import default_config, engine_decode_plan
    from batchtts.planning.memory import memory_budget

    config = default_config()
    cost = llm_cost(config, 2)
    free = 12 << 30
    budget = int((free - cost.weights_bytes) * 0.9)
    plan = engine_decode_plan(cost, [(171, 10, "en")] * 200, budget, config=config)
    cap = slot_capacity(budget, cost.bytes_per_token, config["max_position_embeddings"])
    assert (plan.slots, plan.slot_tokens) == (cap.slots, cap.slot_tokens) == (37, 4096)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BATCHTTS_FREE_MEMORY", str(free))
        assert memory_budget("cuda", cost) == budget  # no torch.cuda call: the forced figure
    assert GlmttsEngine.FALLBACK_SLOTS == 8


def test_the_voice_cache_key_follows_the_model_revision_and_the_text_frontend(model, monkeypatch, voice_wav):
    from batchtts.state.voice import load_voice

    engine = object.__new__(GlmttsEngine)  # voice_key reads no weights
    voice = load_voice(voice_wav, "It was 1921.")
    first = engine.voice_key(voice)
    assert first == engine.voice_key(voice) and first.startswith("-")
    lock = json.loads((model / "batchtts-model.lock.json").read_text())
    (model / "batchtts-model.lock.json").write_text(json.dumps(lock | {"commit": "f" * 40}))
    second = engine.voice_key(voice)
    assert second != first  # another checkpoint
    monkeypatch.setattr(GlmttsEngine, "speakable_text", classmethod(lambda cls, text, lang: text.upper()))
    assert engine.voice_key(voice) != second  # another normalisation of the prompt text


def test_a_tokenizer_in_the_chatglm4_layout_loads_under_transformers_5_and_gives_the_special_ids(tmp_path):
    """The official layout (tiktoken tokenizer.model, remote-code class named in tokenizer_config.json's auto_map,
    specials in added_tokens_decoder) through the loader the engine uses; a missing tokenizer.model names the file."""
    from batchtts.engines.glmtts.checkpoint import TOKENIZER_DIR, load_tokenizer, special_ids_of
    from batchtts.errors import EnvironmentProblem
    from tests.tiny_glmtts_chatglm import N_AUDIO, build_chatglm_tokenizer

    ids = build_chatglm_tokenizer(tmp_path / TOKENIZER_DIR)
    tok = load_tokenizer(tmp_path)
    sp = special_ids_of(tok, tmp_path, published=False)
    assert (sp.ats, sp.n_speech) == (ids["<|audio_0|>"], N_AUDIO)
    assert (sp.boa, sp.eoa, sp.pad) == (ids["<|begin_of_audio|>"], ids["<|user|>"], ids["<|endoftext|>"])
    text = tok.encode("hello there.", add_special_tokens=False)
    assert text == list(b"hello there.")  # byte-level ranks, no special tokens added to one sequence
    assert tok.encode("<|begin_of_audio|><|audio_3|>", add_special_tokens=False) == [sp.boa, sp.ats + 3]
    with pytest.raises(EnvironmentProblem, match="not the published GLM-TTS tokenizer"):
        special_ids_of(tok, tmp_path, published=True)
    (tmp_path / TOKENIZER_DIR / "tokenizer.model").unlink()
    with pytest.raises(EnvironmentProblem, match=r"tokenizer_config.json: cannot load the text tokenizer"):
        load_tokenizer(tmp_path)
