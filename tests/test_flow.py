"""batchtts's GLM-TTS flow and HiFT vocoder: a padded batch gives each row what it gives alone, the published
checkpoints load in either layout, and (where a GLM-TTS checkout is named) the official modules agree."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from batchtts.engines.base import SynthRequest
from batchtts.engines.glmtts import GlmttsEngine, llm_cost
from batchtts.engines.glmtts.audio.cost import audio_bytes_per_frame
from batchtts.engines.glmtts.audio.flow import FlowModel, load_state, parse_flow_config
from batchtts.engines.glmtts.audio.hift import HiFT, fold_weight_norm
from batchtts.engines.glmtts.audio.token2wav import TokenToWave, hift_seed
from batchtts.state.voice import load_voice
from tests.conftest import ROOT
from tests.tiny_glmtts import build_checkpoint
from tests.tiny_glmtts_audio import FLOW_CONFIG, TINY_DIT, build_audio_stages, tiny_hift, weight_normed_state

TOL = 1e-5


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return build_audio_stages(tmp_path_factory.mktemp("hub"))  # the hub layout: the root is the ckpt folder


@pytest.fixture(scope="module")
def t2w(ckpt) -> TokenToWave:
    return TokenToWave.load(ckpt, "cpu")


def _voice(seed: int, prompt_tokens: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "prompt_speech": rng.integers(0, 64, prompt_tokens).astype(np.int64),
        "prompt_mel": rng.normal(-4, 2, (2 * prompt_tokens, 80)).astype(np.float32),
        "embedding": rng.normal(0, 1, 192).astype(np.float32),
    }


@pytest.mark.slow
def test_a_padded_flow_batch_gives_each_row_its_own_mel(t2w):
    flow = t2w.flow
    rows = [(20, 10, 0), (7, 6, 1), (33, 10, 2), (1, 4, 3)]  # decoded tokens, prompt tokens, voice
    tokens, mels, embs, noises = [], [], [], []
    for n, p, v in rows:
        voice = _voice(v, p)
        tok = torch.as_tensor(np.concatenate([voice["prompt_speech"], np.arange(n) % 64]))
        tokens.append(tok)
        mels.append(torch.as_tensor(voice["prompt_mel"]))
        embs.append(torch.as_tensor(voice["embedding"]))
        noises.append(flow.noise(len(tok), 100 + v, "cpu"))
    batch = flow.sample(tokens, mels, torch.stack(embs), noises)
    for i, (n, _, _) in enumerate(rows):
        alone = flow.sample([tokens[i]], [mels[i]], embs[i][None], [noises[i]])[0]
        assert batch[i].shape == alone.shape == (80, 2 * n)
        assert (batch[i] - alone).abs().max().item() <= TOL
    assert all(torch.isfinite(m).all() for m in batch)


@pytest.mark.slow
def test_a_padded_vocoder_batch_gives_each_row_its_own_waveform(t2w):
    gen = torch.Generator().manual_seed(5)
    mels = [torch.randn(80, n, generator=gen) * 2 - 3 for n in (40, 14, 70, 1)]
    seeds = [11, 12, 13, 14]
    batch = t2w.hift(mels, [torch.Generator().manual_seed(s) for s in seeds])
    for mel, seed, wav in zip(mels, seeds, batch, strict=True):
        alone = t2w.hift([mel], [torch.Generator().manual_seed(seed)])[0]
        assert wav.shape == alone.shape == (mel.shape[1] * 480,)
        assert (wav - alone).abs().max().item() <= TOL
    assert batch[2].abs().max() > 0.01  # not silence


@pytest.mark.slow
def test_tokens_to_audio_depends_on_tokens_voice_and_seed_only(t2w):
    voices = [_voice(0, 8), _voice(1, 5)]
    rows = [[1, 2, 3] * 4, [5] * 4, list(range(24)), [9, 8] * 8]
    seeds = [1, 2, 3, 4]
    vs = [voices[i % 2] for i in range(4)]
    batch = t2w.tokens_to_audio(rows, vs, seeds)
    for i in (3, 0):
        alone = t2w.tokens_to_audio([rows[i]], vs[i], [seeds[i]])[0]
        assert len(alone) == len(batch[i]) == 960 * len(rows[i])  # 25 tokens -> 24000 samples
        assert np.abs(alone - batch[i]).max() <= TOL
    other = t2w.tokens_to_audio([rows[0]], vs[0], [seeds[0] + 7])[0]
    assert np.abs(other - batch[0]).max() > 1e-3  # the seed is the noise
    saved, t2w.memory_bytes = t2w.memory_bytes, 20 * t2w.bytes_per_frame[1]  # several flow and vocoder batches
    try:
        small = t2w.tokens_to_audio(rows, vs, seeds)
    finally:
        t2w.memory_bytes = saved
    for a, b in zip(small, batch, strict=True):
        assert np.abs(a - b).max() <= TOL


def test_the_published_checkpoint_forms_all_load(ckpt, tmp_path):
    """flow.pt as a state dict or {"model": ...}; hift.pt with either torch spelling of weight norm."""
    state = load_state(ckpt / "flow" / "flow.pt")
    assert "estimator.rotary_embed.inv_freq" in state and "estimator.transformer_blocks.1.attn.to_q.weight" in state
    (tmp_path / "flow").mkdir()
    torch.save({"model": state, "epoch": 3}, tmp_path / "flow" / "flow.pt")
    (tmp_path / "flow" / "config.yaml").write_text(FLOW_CONFIG)
    wrapped = FlowModel.from_files(tmp_path / "flow")
    assert wrapped.config["input_frame_rate"] == 25 and wrapped.config["spkr_emb_adaLN"] is True
    hift = tiny_hift()
    for spelling in ("parametrizations", "old"):
        folded = fold_weight_norm(weight_normed_state(hift, spelling))
        assert set(folded) == set(hift.state_dict())
        for key, value in hift.state_dict().items():
            assert torch.allclose(folded[key], value, atol=1e-6), key
    raw = torch.load(ckpt / "hift" / "hift.pt", weights_only=True)
    assert "conv_pre.parametrizations.weight.original0" in raw and "source_downs.0.weight" in raw
    assert parse_flow_config("flow: !new:flow.flow.Flow\n    mel_dim: 80\n")["input_frame_rate"] == 12.5


class _ReportingDecoder:
    """The engine's decoder, reporting finished rows out of order through `on_row_done` (the decode issue's
    callback), from another thread, as a continuous-batching decoder would."""

    def __init__(self, inner):
        self.inner = inner

    def decode(self, prompts, lens, special, samplings, seeds, min_ratio, max_ratio, on_row_done=None, then=None):
        tokens, cut = self.inner.decode(prompts, lens, special, samplings, seeds, min_ratio, max_ratio, then=then)
        for i in reversed(range(len(tokens))):
            on_row_done(i, tokens[i], cut[i])
        return tokens, cut

    def close(self) -> None:
        self.inner.close()


@pytest.mark.slow
def test_engine_audio_is_the_same_batched_alone_and_overlapped_with_decode(tmp_path, monkeypatch):
    model = build_checkpoint(tmp_path / "model")
    monkeypatch.setenv("GLMTTS_MODEL_DIR", str(model))
    monkeypatch.delenv("GLMTTS_HOME", raising=False)
    eng = GlmttsEngine.load("cpu")
    clip = tmp_path / "voice.wav"  # a 1 s reference: 25 prompt tokens, 50 prompt frames
    t = np.arange(16000) / 16000
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 140 * t) * np.hanning(len(t))).astype(np.float32), 16000)
    voice = eng.prepare_voice(load_voice(clip, "the prompt"))
    options = GlmttsEngine.resolve_options({"max_ratio": 3.0})
    reqs = [
        SynthRequest(f"k{i}", text, "en", 1000 + i, options)
        for i, text in enumerate(["hello there.", "a longer one here.", "short."])
    ]
    batch = eng.synthesize(reqs, voice)
    alone = eng.synthesize(reqs[1:2], voice)[0]
    # Through both stages the flow's 1e-7 rounding reaches F0, whose phase integrates over the sentence.
    assert np.abs(alone.audio - batch[1].audio).max() <= 1e-4 and alone.speech_tokens == batch[1].speech_tokens
    for r in batch:  # 960 samples a token, less a frame where the official int(n / 25 * 50) rounds down
        assert r.sample_rate == 24000 and 0 <= 960 * r.tokens - len(r.audio) <= 480 and np.isfinite(r.audio).all()
    eng.decoder = _ReportingDecoder(eng.decoder)
    eng.audio.memory_bytes = 40 * eng.audio.bytes_per_frame[0]  # small flow batches: the worker runs several
    overlapped = eng.synthesize(reqs, voice)
    for a, b in zip(overlapped, batch, strict=True):
        assert a.speech_tokens == b.speech_tokens and np.abs(a.audio - b.audio).max() <= 1e-4
    eng.close()


def _official_modules():
    home = os.environ.get("GLMTTS_HOME")
    if not home:
        pytest.skip("set GLMTTS_HOME to a GLM-TTS checkout (with its requirements) to compare with the official code")
    sys.path.insert(0, str(home))
    for name in [m for m in sys.modules if m.split(".")[0] in ("utils", "cosyvoice", "flow")]:
        del sys.modules[name]  # a stand-in checkout imported earlier in this session
    try:
        from cosyvoice.hifigan_cosy2.f0_predictor import ConvRNNF0Predictor
        from cosyvoice.hifigan_cosy2.generator import HiFTGenerator
        from flow.dit import DiT
        from flow.flow import Flow
    except ImportError as exc:
        pytest.skip(f"GLM-TTS code not importable from {home}: {exc}")
    return Flow, DiT, HiFTGenerator, ConvRNNF0Predictor


def _official_hift(generator, f0_predictor, base: int, f0_channels: int):
    """The official HiFT at the official settings (utils/hift_util.py), channel widths given."""
    return generator(
        in_channels=80,
        base_channels=base,
        nb_harmonics=8,
        sampling_rate=24000,
        nsf_alpha=0.1,
        nsf_sigma=0.003,
        nsf_voiced_threshold=10,
        upsample_rates=[8, 5, 3],
        upsample_kernel_sizes=[16, 11, 7],
        istft_params={"n_fft": 16, "hop_len": 4},
        resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        source_resblock_kernel_sizes=[7, 7, 11],
        source_resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        lrelu_slope=0.1,
        audio_limit=0.99,
        f0_predictor=f0_predictor(num_class=1, in_channels=80, cond_channels=f0_channels),
    ).eval()


@pytest.mark.official
def test_our_flow_and_vocoder_give_the_official_modules_output(ckpt, capsys):
    flow_cls, dit_cls, hift_cls, f0_cls = _official_modules()
    cfg = {k: v for k, v in parse_flow_config(FLOW_CONFIG).items() if k not in ("t_scheduler", "spk_embed_dim")}
    # The official default sizes (DiT 768 x 18, HiFT 512) load unchanged into our modules.
    official = flow_cls(**cfg)
    from batchtts.engines.glmtts.audio.dit import dit_sizes

    FlowModel(parse_flow_config(FLOW_CONFIG), dit_sizes(official.state_dict())).load_state_dict(
        official.state_dict(), strict=True
    )
    full = _official_hift(hift_cls, f0_cls, 512, 512)
    HiFT().load_state_dict(fold_weight_norm(full.state_dict()), strict=True)
    # Same tiny weights and seeds: the official modules one sentence at a time, ours in one batch.
    off = flow_cls(**cfg)
    t = TINY_DIT
    off.estimator = dit_cls(
        trans_dim=t["dim"], depth=t["depth"], heads=t["heads"], ff_mult=t["ff_inner"] // t["dim"],
        text_emb_dim=t["text_dim"], conv_layers=t["text_blocks"], mel_dim=80, text_vocab_size=t["vocab"] - 1,
        condition_dim=80, spkr_emb_adaLN=True,
    )  # fmt: skip
    off.load_state_dict(load_state(ckpt / "flow" / "flow.pt"), strict=True)
    off.eval()
    off_hift = _official_hift(hift_cls, f0_cls, 32, 16)
    off_hift.load_state_dict(torch.load(ckpt / "hift" / "hift.pt", weights_only=True), strict=True)
    ours = TokenToWave.load(ckpt, "cpu")
    voice = _voice(3, 40)
    rows = [list(range(5, 35)), [7, 3] * 30, [1] * 9]
    seeds = [21, 22, 23]
    got = ours.tokens_to_audio(rows, voice, seeds)
    worst_mel = worst_wav = 0.0
    for row, seed, wav in zip(rows, seeds, got, strict=True):
        torch.manual_seed(seed)
        mel, _ = off.inference_with_cache(
            token=torch.tensor(row)[None],
            prompt_token=torch.as_tensor(voice["prompt_speech"])[None],
            prompt_feat=torch.as_tensor(voice["prompt_mel"])[None],
            embedding=torch.as_tensor(voice["embedding"])[None],
            n_timesteps=10,
        )
        toks = torch.as_tensor(np.concatenate([voice["prompt_speech"], row]))
        our_mel = ours.flow.sample(
            [toks], [torch.as_tensor(voice["prompt_mel"])], torch.as_tensor(voice["embedding"])[None],
            [ours.flow.noise(len(toks), seed, "cpu")],
        )[0]  # fmt: skip
        worst_mel = max(worst_mel, (our_mel - mel[0]).abs().max().item())
        torch.manual_seed(hift_seed(seed))
        off_wav, _ = off_hift.inference(speech_feat=mel)
        our_wav = ours.hift([mel[0]], [torch.Generator().manual_seed(hift_seed(seed))])[0]
        worst_wav = max(worst_wav, (our_wav - off_wav.reshape(-1)).abs().max().item())
        assert len(wav) == off_wav.shape[-1]
    with capsys.disabled():
        print(
            f"\nofficial vs batchtts (fp32 CPU, tiny random weights): mel max abs {worst_mel:.2e}, wav {worst_wav:.2e}"
        )
    assert worst_mel <= 1e-4 and worst_wav <= 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_a_padded_batch_gives_each_row_its_own_audio_and_the_cpu_s(ckpt, t2w):
    gpu = TokenToWave.load(ckpt, "cuda", dtype=torch.float32)
    voice = _voice(0, 8)
    rows, seeds = [[1, 2, 3] * 4, [5] * 4, list(range(24))], [1, 2, 3]
    batch = gpu.tokens_to_audio(rows, voice, seeds)
    cpu = t2w.tokens_to_audio(rows, voice, seeds)
    for i in range(len(rows)):
        alone = gpu.tokens_to_audio([rows[i]], voice, [seeds[i]])[0]
        assert np.abs(alone - batch[i]).max() <= 1e-4
        assert len(cpu[i]) == len(batch[i]) and np.isfinite(batch[i]).all()
    bf16 = TokenToWave.load(ckpt, "cuda").tokens_to_audio(rows, voice, seeds)  # the default: DiT in bf16
    assert all(len(a) == len(b) and np.isfinite(a).all() for a, b in zip(bf16, batch, strict=True))


def test_a_failed_decode_ends_the_audio_worker_and_the_cost_model_counts_the_audio_stages(t2w, tmp_path):
    class Failing:
        def decode(self, *args, on_row_done=None):
            on_row_done(0, [1, 2, 3], False)
            raise RuntimeError("decode failed")

    pipe = t2w.pipeline(_voice(0, 4), [1, 2])
    pipe.start()
    with pytest.raises(RuntimeError):
        Failing().decode(on_row_done=pipe.submit)
    pipe.abort()
    assert not pipe.thread.is_alive()
    config = json.loads((ROOT / "batchtts" / "engines" / "glmtts" / "llm-config.json").read_text())
    flow, vocoder = audio_bytes_per_frame(dtype_bytes=2)
    assert llm_cost(config, 2).audio_bytes_per_frame == flow + vocoder > 0
