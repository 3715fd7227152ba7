"""GLM-TTS (zai-org): zero-shot voice cloning, with its LLM stage batched by batchtts.

Layout of a model folder (what `batchtts download` fetches, default `models/GLM-TTS`, or
`GLMTTS_MODEL_DIR`): ckpt/llm (Llama config and weights), ckpt/vq32k-phoneme-tokenizer (text tokenizer),
ckpt/speech_tokenizer (Whisper-VQ), ckpt/flow (flow.pt, config.yaml), ckpt/hift (vocoder), and
frontend/campplus.onnx (speaker encoder; also found in a GLM-TTS checkout).

Per voice, once: prompt text tokens, prompt speech tokens (25 per second), the prompt mel and the
CAM++ embedding. Per batch: the LLM decodes the rows with continuous batching over a slot KV cache
(decode.py; `GLMTTS_DECODE` picks another path, decoders.py: the same tokens), then flow and vocoder
per row (the official flow takes one sequence at a time).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from batchtts.download import ModelLock
from batchtts.engines.base import CostModel, Engine, SynthRequest, SynthResult, VoiceState, llama_kv_bytes_per_token
from batchtts.errors import EnvironmentProblem
from batchtts.voice import VoiceAudio

MODEL_ENV = "GLMTTS_MODEL_DIR"
DECODE_ENV = "GLMTTS_DECODE"  # auto (default), slots, graphs, dynamic, static or compile: see decoders.py
DEFAULT_MODEL_DIR = Path("models") / "GLM-TTS"
SAMPLE_RATE = 24000  # HiFT; the 32 kHz vocoder is not published yet
TOKENS_PER_SECOND = 25
DECODE_VERSION = 3  # bump when decoding changes what a chunk sounds like
MAX_PROMPT_SPEECH = 750  # the official rolling context keeps at most ~30 s of speech tokens in the prompt


def model_dir() -> Path:
    return Path(os.environ.get(MODEL_ENV) or DEFAULT_MODEL_DIR).resolve()


def read_llm_config(folder: Path | None = None) -> dict:
    path = (folder or model_dir()) / "ckpt" / "llm" / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise EnvironmentProblem(
            f"GLM-TTS is not downloaded: {path} is missing; run `batchtts download` "
            f"(or set {MODEL_ENV} to the model folder)"
        ) from None


def llm_cost(config: dict, dtype_bytes: int) -> CostModel:
    """The planner's view of the LLM, from its config: KV bytes per token, weights, token rates."""
    hidden, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    kv_heads = config.get("num_key_value_heads") or heads
    per_layer = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2 + 3 * hidden * inter
    params = layers * per_layer + 2 * config["vocab_size"] * hidden
    return CostModel(
        bytes_per_token=llama_kv_bytes_per_token(config, dtype_bytes),
        chars_per_text_token={"en": 4.0, "zh": 1.3},  # GLM-4 BPE; its Chinese tokens hold at most two characters
        speech_ratio={"en": 6.5, "zh": 6.5},  # 25 tokens/s; ~15 letters/s in English, ~5 characters/s in Chinese
        min_ratio=2.0,
        max_ratio=20.0,
        special_tokens=1,  # BOA
        prompt_tokens_per_second=TOKENS_PER_SECOND,
        weights_bytes=params * dtype_bytes,
        activation_bytes_per_seq=hidden * 4 * 64,
        tokens_per_second=TOKENS_PER_SECOND,
        padding="prompt",  # left-padded prompts; a row leaves the batch at EOA (glmtts_llm.decode_batch)
    )


class GlmttsEngine(Engine):
    name = "glmtts"
    max_chars = 150
    can_clone = True
    supports_rolling_context = True
    option_defaults: ClassVar[dict[str, float]] = {
        "top_k": 25,
        "top_p": 0.8,
        "temperature": 1.0,
        "ras": 1.0,
        "greedy": 0.0,
        "min_ratio": 2.0,
        "max_ratio": 20.0,
    }

    def __init__(self, folder: Path, device: str, tokenizer, llm, special, speaker, official):
        from batchtts.engines.glmtts.decoders import EngineDecoder

        self.folder, self.device = folder, device
        self.tokenizer, self.llm, self.special = tokenizer, llm, special
        try:
            self.decoder = EngineDecoder(llm, special, os.environ.get(DECODE_ENV) or "auto")
        except ValueError as exc:
            raise EnvironmentProblem(f"{DECODE_ENV}: {exc}") from None
        self.speaker, self.official = speaker, official
        self.sample_rate = SAMPLE_RATE
        cost = llm_cost(read_llm_config(folder), llm.dtype.itemsize)
        self.cost_model = lambda: cost  # a loaded engine knows its real dtype (fp32 on a CPU)

    @classmethod
    def revision(cls) -> str:
        lock = ModelLock.read(model_dir())
        return f"glmtts {lock.commit if lock else 'unpinned'}; decode v{DECODE_VERSION}; sr {SAMPLE_RATE}"

    @classmethod
    def cost_model(cls) -> CostModel:
        return llm_cost(read_llm_config(), 2)  # bf16, as on a GPU

    @classmethod
    def default_batch_size(cls) -> int:
        # A batch is the decoder's queue: its slots (at most 64, as many as the KV budget holds) are
        # refilled from it as sentences end, so a queue longer than the slots keeps them all busy; the
        # planner still caps a batch by the KV budget's worst case.
        return 256

    @classmethod
    def check_install(cls) -> list[tuple[str, bool, str]]:
        folder = model_dir()
        lock = ModelLock.read(folder)
        if lock is None:
            return [("model", False, f"{folder}: not downloaded (batchtts download)")]
        missing = lock.missing(folder)
        checks = [
            (
                "model",
                not missing,
                f"{folder} @ {lock.commit[:12]}: "
                + (f"{len(missing)} files missing, run batchtts download" if missing else f"{len(lock.files)} files"),
            )
        ]
        from batchtts.engines.glmtts.official import glmtts_home

        try:
            checks.append(("code", True, str(glmtts_home())))
        except EnvironmentProblem as exc:
            checks.append(("code", False, str(exc)))
        return checks

    @classmethod
    def load(cls, device: str = "cpu") -> GlmttsEngine:
        import torch
        from transformers import AutoTokenizer, LlamaForCausalLM

        from batchtts.engines.glmtts.frontend import SpeakerEncoder
        from batchtts.engines.glmtts.llm import special_ids
        from batchtts.engines.glmtts.official import OfficialModules, glmtts_home

        folder = model_dir()
        lock = ModelLock.read(folder)
        if lock is None or lock.missing(folder):
            raise EnvironmentProblem(f"GLM-TTS weights in {folder} are missing or incomplete; run `batchtts download`")
        if device == "cuda" and not torch.cuda.is_available():
            raise EnvironmentProblem("--device cuda, but torch sees no CUDA device")
        home = glmtts_home()
        tokenizer = AutoTokenizer.from_pretrained(folder / "ckpt" / "vq32k-phoneme-tokenizer", trust_remote_code=True)
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        llm = LlamaForCausalLM.from_pretrained(folder / "ckpt" / "llm", dtype=dtype).to(device).eval()
        campplus = folder / "frontend" / "campplus.onnx"
        if not campplus.is_file():
            campplus = home / "frontend" / "campplus.onnx"
        official = OfficialModules(home, folder, device, SAMPLE_RATE)
        return cls(folder, device, tokenizer, llm, special_ids(tokenizer), SpeakerEncoder(campplus), official)

    def _text_ids(self, text: str, language: str) -> list[int]:
        # The official front end lower-cases English before tokenising.
        return self.tokenizer.encode(text.lower() if language == "en" else text, add_special_tokens=False)

    def prepare_voice(self, voice: VoiceAudio) -> VoiceState:
        from batchtts.engines.glmtts.frontend import prompt_mel

        if voice.path is None:
            raise EnvironmentProblem("GLM-TTS clones a voice: give each job voice.prompt_audio and voice.prompt_text")
        audio16 = voice.resampled(16000)
        return {
            "prompt_text": np.asarray(self._text_ids(voice.prompt_text.strip() + " ", "en"), np.int64),
            "prompt_speech": np.asarray(self.official.speech_tokens(audio16), np.int64),
            "prompt_mel": prompt_mel(voice.resampled(SAMPLE_RATE), SAMPLE_RATE),
            "embedding": self.speaker(audio16),
        }

    def synthesize(self, requests: list[SynthRequest], voice: VoiceState) -> list[SynthResult]:
        from batchtts.engines.glmtts.llm import Sampling

        sp = self.special
        prefix_text = voice["prompt_text"].tolist()
        prompt_speech = voice["prompt_speech"].tolist()
        prompts, lens, samplings = [], [], []
        for r in requests:
            ids = self._text_ids(r.text, r.language)
            text, speech = self._with_context(prefix_text, prompt_speech, r.context, len(ids))
            prompts.append(text + ids + [sp.boa] + [sp.ats + t for t in speech])
            lens.append(len(ids))
            o = r.options
            samplings.append(
                Sampling(
                    top_k=int(o["top_k"]),
                    top_p=o["top_p"],
                    temperature=o["temperature"],
                    ras=bool(o["ras"]),
                    greedy=bool(o["greedy"]),
                )
            )
        o = requests[0].options  # length rules are the same for a batch (options are part of the key)
        tokens, truncated = self.decoder.decode(
            prompts, lens, sp, samplings, [r.seed for r in requests], o["min_ratio"], o["max_ratio"]
        )
        out = []
        for toks, cut in zip(tokens, truncated, strict=True):
            wav = self.official.waveform(toks, voice["prompt_speech"], voice["prompt_mel"], voice["embedding"])
            out.append(
                SynthResult(np.clip(wav, -1.0, 1.0).astype(np.float32), SAMPLE_RATE, len(toks), cut, tuple(toks))
            )
        return out

    def _with_context(
        self, prompt_text: list[int], prompt_speech: list[int], context, n_text: int
    ) -> tuple[list[int], list[int]]:
        """The official rolling prompt: the reference prompt, then earlier sentences' text and decoded speech,
        oldest dropped first (never the reference) while the speech part plus this sentence's expected
        length would pass MAX_PROMPT_SPEECH tokens."""
        from batchtts.split import detect_language

        entries = [(self._text_ids(text, detect_language(text)), list(tokens)) for text, tokens in context]
        while entries:
            speech = len(prompt_speech) + sum(len(t) for _, t in entries)
            text = len(prompt_text) + sum(len(i) for i, _ in entries)
            if speech + int(speech / max(1, text) * n_text) <= MAX_PROMPT_SPEECH:
                break
            entries.pop(0)
        return (
            prompt_text + [i for ids, _ in entries for i in ids],
            prompt_speech + [t for _, toks in entries for t in toks],
        )

    def activation_reserve(self) -> int:
        """On CUDA, the measured peak of the decoder's largest prefill (decoders.py)."""
        return self.decoder.activation_reserve()

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
        self.llm = self.decoder = None
