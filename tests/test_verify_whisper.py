"""The Whisper backend from a tiny random checkpoint in the Hugging Face layout, fetched from the local hub
stand-in through `batchtts download`, reused offline, run batched inside a verified run. Its transcripts are
noise: loading, batching and memory accounting are what this tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import batchtts
from batchtts.config import DEFAULT_WHISPER_REPO
from batchtts.state.ledger import Ledger
from batchtts.verify.asr import whisper as whisper_module
from batchtts.verify.asr.whisper import WhisperBackend
from batchtts.verify.stage import choose_backend
from tests.conftest import write_jobs
from tests.hubserver import FakeHub
from tests.tiny_whisper import build_tiny_whisper


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory) -> Path:
    ckpt = build_tiny_whisper(tmp_path_factory.mktemp("tiny") / "ckpt")
    files = {p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file()}
    target = tmp_path_factory.mktemp("models") / "whisper"
    with FakeHub(DEFAULT_WHISPER_REPO, files) as hub:
        got = batchtts.api.download(DEFAULT_WHISPER_REPO, endpoint=hub.url, local_dir=target)
        assert got.fetched and any(path.endswith("/model_info") or "revision" in path for _, path in hub.requests)
    return target


@pytest.fixture
def whisper_dir(downloaded, monkeypatch) -> Path:
    monkeypatch.setenv("BATCHTTS_WHISPER_DIR", str(downloaded))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # from here on, the downloaded copy only
    return downloaded


def test_without_a_download_auto_skips_chinese_and_uses_pocketsphinx_for_english(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHTTS_WHISPER_DIR", str(tmp_path / "nothing"))
    assert choose_backend("auto", "en", "cpu") == ("pocketsphinx", "")
    name, why = choose_backend("auto", "zh", "cpu")
    assert name is None and "batchtts download --repo openai/whisper-large-v3-turbo" in why


def test_downloaded_checkpoint_loads_and_transcribes_in_batches(whisper_dir, monkeypatch):
    assert choose_backend("auto", "zh", "cpu") == ("whisper", "")
    assert choose_backend("auto", "en", "cpu")[0] == "pocketsphinx"  # English on a CPU stays on pocketsphinx
    assert choose_backend("auto", "en", "cuda")[0] == "whisper"
    backend = WhisperBackend.load("cpu")
    clips = [np.random.default_rng(i).normal(0, 0.1, 8000 * (i + 1)).astype(np.float32) for i in range(5)]
    monkeypatch.setattr(whisper_module, "MAX_BATCH", 2)
    heard = backend.transcribe(clips, [16000, 22050, 16000, 24000, 16000], "zh")
    assert len(heard) == 5 and all(isinstance(h, str) for h in heard)
    assert backend.batches == 3  # 5 clips, at most 2 per generate() call
    # Memory: nothing on the CPU; on CUDA the weights plus the largest batch are kept from the engine's budget.
    params = sum(p.numel() * p.element_size() for p in backend.model.parameters())
    assert backend.memory_bytes() == 0 and backend.weights_bytes() == params > 0
    assert backend.batch_bytes(2) == 2 * backend.batch_bytes(1) > 0
    backend.device = "cuda"
    assert backend.memory_bytes() == params + backend.batch_bytes(whisper_module.MAX_BATCH)
    assert backend.batch_reserve_bytes() == backend.batch_bytes()  # a worker's free memory already lacks the weights
    # `batchtts plan` reserves the same, without loading the model: parameters from the safetensors headers
    # (at 2 bytes, the fp16 the backend loads on CUDA) plus the batch.
    assert WhisperBackend.planned_bytes("cpu") == 0
    planned = WhisperBackend.planned_bytes("cuda")
    n_params = sum(p.numel() for p in backend.model.parameters())
    assert planned == 2 * n_params + whisper_module._batch_bytes(32, 1, 2, whisper_module.MAX_BATCH)


def test_a_verified_chinese_run_uses_whisper(whisper_dir, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": "zh", "language": "zh", "output": "zh.wav", "text": "山间有一座小茶馆。老板每天早上煮茶。",
          "verify": {"asr": "auto", "max_error": 10, "retakes": 0}}],
    )  # fmt: skip
    summary = batchtts.run(jobs, out=tmp_path / "out", progress=False)
    assert summary.synthesized == 2 and summary.stats.verified == 2 and not summary.flagged
    ledger = Ledger(tmp_path / "out" / ".batchtts" / "ledger.sqlite")
    try:
        verdicts = ledger.verdicts([c.key for c in batchtts.chunks(jobs, out=tmp_path / "out")])
    finally:
        ledger.close()
    assert {(v.backend, v.metric) for v in verdicts.values()} == {("whisper", "cer")}


@pytest.mark.slow
def test_on_glmtts_whisper_hears_the_takes_on_the_audio_worker(whisper_dir, tmp_path, voice_wav, monkeypatch):
    """GLM-TTS reports each flow batch's takes from its audio worker; Whisper transcribes them there, while the
    LLM decodes the rest (verify/listen.py), and the run verifies every chunk."""
    import threading

    from batchtts.verify import listen, stage
    from tests.tiny_glmtts import build_checkpoint

    monkeypatch.setenv("GLMTTS_MODEL_DIR", str(build_checkpoint(tmp_path / "glmtts")))
    monkeypatch.delenv("GLMTTS_HOME", raising=False)
    threads: list[str] = []

    class Spy(listen.Listener):
        def submit(self, takes):
            threads.extend(threading.current_thread().name for t in takes if t[0] not in self.submitted)
            super().submit(takes)

    monkeypatch.setattr(stage, "Listener", Spy)
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": "zh", "language": "zh", "output": "zh.wav", "engine": "glmtts", "text": "他是一个人。你在这中国。",
          "voice": {"prompt_audio": str(voice_wav), "prompt_text": "the prompt text"},
          "verify": {"asr": "whisper", "max_error": 10, "retakes": 0}}],
    )  # fmt: skip
    summary = batchtts.run(jobs, out=tmp_path / "out", progress=False)
    assert summary.stats.verified == summary.synthesized >= 1 and not summary.stats.failed
    assert threads and set(threads) == {"glmtts-audio"}
