"""GLM-TTS (zai-org): zero-shot voice cloning, with its LLM stage batched by batchtts.

Layout of a model folder (what `batchtts download` fetches, default `models/GLM-TTS`, or
`GLMTTS_MODEL_DIR`): the hub repository's root is the official `ckpt/` folder, so the folder holds llm/
(Llama config and weights), vq32k-phoneme-tokenizer/ (text tokenizer), speech_tokenizer/ (Whisper-VQ),
flow/ (flow.pt, config.yaml) and hift/ (vocoder). The CAM++ speaker encoder is not in the hub repository:
see assets.campplus_path.

Per voice, once: prompt text tokens, prompt speech tokens (25 per second), the prompt mel and the
CAM++ embedding. Per batch (a queue): the LLM decodes the rows with continuous batching over a slot KV cache
(llm/slot_decoder.py, CUDA graphs on CUDA, eager steps elsewhere; the one decode path), sized from the run's
KV budget by llm/capacity.py (a rolling-context chapter is a chain through the slots: SynthRequest.follows),
then batchtts's own flow and vocoder over many rows per forward (token2wav.py), fed as rows finish.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from batchtts import config
from batchtts.engines.base import CostModel, Engine, OnResults, SynthRequest, SynthResult, VoiceState
from batchtts.engines.download import ModelLock
from batchtts.engines.glmtts.audio.cost import audio_bytes_per_frame
from batchtts.engines.glmtts.llm.capacity import GRAPH_POOL_BYTES, H100_BYTES_PER_S, PREFILL_TOKENS, slot_capacity
from batchtts.engines.glmtts.text_frontend import CHUNK_RULE, normalize
from batchtts.errors import EnvironmentProblem
from batchtts.state.voice import VoiceAudio

SAMPLE_RATE = 24000  # HiFT; the 32 kHz vocoder is not published yet
TOKENS_PER_SECOND = 25
# Bump when decoding changes what a chunk sounds like (3: normalised prompt text, own speech tokenizer, own
# flow and vocoder, counter-based sampling).
DECODE_VERSION = 3
MAX_PROMPT_SPEECH = 750  # the official rolling context keeps at most ~30 s of speech tokens in the prompt


def model_dir() -> Path:
    return config.glmtts_model_dir()


def read_llm_config(folder: Path | None = None) -> dict:
    path = (folder or model_dir()) / "llm" / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise EnvironmentProblem(
            f"GLM-TTS is not downloaded: {path} is missing; run `batchtts download` "
            f"(or set {config.GLMTTS_MODEL_DIR} to the model folder)"
        ) from None


def llm_cost(config: dict, dtype_bytes: int) -> CostModel:
    """The planner's view of the LLM, from its config: KV bytes per token, weights, token rates."""
    from batchtts.engines.base import llama_kv_bytes_per_token

    hidden, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    kv_heads = config.get("num_key_value_heads") or heads
    per_layer = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2 + 3 * hidden * inter
    # Tied embeddings (the published config) share the input embedding with the output head: one matrix.
    embeddings = (1 if config.get("tie_word_embeddings") else 2) * config["vocab_size"] * hidden
    params = layers * (per_layer + 2 * hidden) + hidden + embeddings  # + RMSNorm weights: 2 a layer, 1 final
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
        audio_bytes_per_frame=sum(audio_bytes_per_frame(dtype_bytes=dtype_bytes)),  # flow + vocoder (token2wav.py)
        tokens_per_second=TOKENS_PER_SECOND,
        padding="queue",  # continuous batching: a batch is a queue through the decoder's slots (capacity.py)
        context_tokens=MAX_PROMPT_SPEECH + 150,  # rolling context: its speech tokens, plus their text
    )


class GlmttsEngine(Engine):
    name = "glmtts"
    # The official long-text path: pieces of 30 to 60 units (a Chinese character 1, an English word 0.7 per
    # syllable, a digit or punctuation mark 1), cut at punctuation (text.py, split.py).
    chunk_rule = CHUNK_RULE
    can_clone = True
    supports_rolling_context = True
    supports_rolling_chains = True  # a chapter's sentences follow each other through the decoder's slots
    streams_results = True  # each flow batch's rows, from the audio worker (token2wav.AudioPipeline)
    option_defaults: ClassVar[dict[str, float]] = {
        "top_k": 25,
        "top_p": 0.8,
        "temperature": 1.0,
        "ras": 1.0,
        "greedy": 0.0,
        "min_ratio": 2.0,
        "max_ratio": 20.0,
    }
    option_ranges: ClassVar[dict[str, tuple[float, float]]] = {
        "top_k": (1, 65536),
        "top_p": (0.01, 1.0),
        "temperature": (0.01, 10.0),
        "ras": (0.0, 1.0),
        "greedy": (0.0, 1.0),
        "min_ratio": (0.0, 50.0),
        "max_ratio": (0.5, 50.0),
    }

    FALLBACK_SLOTS = 8  # slots when no run handed a budget (use_memory_budget): benchmarks, tests

    def __init__(self, folder: Path, device: str, tokenizer, llm, special, speaker, speech_tokenizer, audio):
        from batchtts.engines.glmtts.llm.llama import FusedLlama
        from batchtts.engines.glmtts.llm.types import output_ids

        self.folder, self.device = folder, device
        self.tokenizer, self.llm, self.special = tokenizer, llm, special
        mode = config.glmtts_decode()
        cuda = llm.device.type == "cuda"
        if mode not in ("auto", "graphs", "eager"):
            raise EnvironmentProblem(f"{config.GLMTTS_DECODE}={mode!r}: choose auto, graphs or eager")
        if mode == "graphs" and not cuda:
            raise EnvironmentProblem(f"{config.GLMTTS_DECODE}: decode mode 'graphs' needs a CUDA device")
        self.graphs = cuda and mode != "eager"
        self.fused = FusedLlama(llm, output_ids(special))
        self.decoder = None  # the SlotDecoder, allocated at the first decode from the budget
        self.kv_budget: int | None = None
        self._reserve: int | None = None
        self.speaker, self.speech_tokenizer, self.audio = speaker, speech_tokenizer, audio
        self.sample_rate = SAMPLE_RATE
        cost = llm_cost(read_llm_config(folder), llm.dtype.itemsize)
        self.cost_model = lambda: cost  # a loaded engine knows its real dtype (fp32 on a CPU)

    @classmethod
    def revision(cls) -> str:
        lock = ModelLock.read(model_dir())
        return f"glmtts {lock.commit if lock else 'unpinned'}; decode v{DECODE_VERSION}; sr {SAMPLE_RATE}"

    @classmethod
    def cost_model(cls, device: str = "cuda") -> CostModel:
        """From the downloaded llm/config.json, at the dtype the engine runs on `device` (GLMTTS_DTYPE)."""
        return llm_cost(read_llm_config(), 2 if config.glmtts_dtype(device) == "bf16" else 4)

    @classmethod
    def default_batch_size(cls, threads: int | None = None) -> int:
        # A batch is the decoder's queue: its slots (at most 64, as many as the KV budget holds) are
        # refilled from it as sentences end, so a queue longer than the slots keeps them all busy; the
        # planner still caps a batch by the KV budget's worst case.
        return 256

    @classmethod
    def decode_outlook(cls, sentences: list[tuple[int, int, str]], budget: int, device: str) -> dict | None:
        """Continuous batching's slots, predicted decode steps and, on CUDA, time (at H100 bandwidth)."""
        from dataclasses import asdict

        from batchtts.engines.glmtts.llm.capacity import engine_decode_plan

        if not sentences:
            return None
        cost = cls.cost_model(device)
        dtype_bytes = 2 if config.glmtts_dtype(device) == "bf16" else 4
        try:
            plan = engine_decode_plan(
                cost,
                sentences,
                budget,
                bandwidth=None if device == "cpu" else H100_BYTES_PER_S,
                config=read_llm_config(),
                dtype_bytes=dtype_bytes,
            )
        except ValueError as exc:  # not even one slot fits the budget
            return {"summary": f"no decode slot fits: {exc}"}
        return {
            **asdict(plan),
            "budget_bytes": budget,
            "queue_order": "per voice, longest predicted decode first (each batch is a queue through the slots)",
            "summary": plan.describe() + (" on an H100" if device != "cpu" else ""),
        }

    @classmethod
    def speakable_text(cls, text: str, language: str) -> str:
        """The official text_normalize (WeTextProcessing via wetext, then GLM-TTS's symbol rules)."""
        return normalize(text, language)

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
        from batchtts.engines.glmtts.assets import campplus_path

        try:
            checks.append(("speaker model", True, str(campplus_path(folder))))
        except EnvironmentProblem as exc:
            checks.append(("speaker model", False, str(exc)))
        return checks

    @classmethod
    def load(cls, device: str = "cpu", threads: int | None = None) -> GlmttsEngine:
        import torch

        from batchtts.engines.download import DEFAULT_REPO
        from batchtts.engines.glmtts.assets import campplus_path
        from batchtts.engines.glmtts.checkpoint import check_llm_config, load_llm, load_tokenizer, special_ids_of
        from batchtts.engines.glmtts.llm.capacity import default_config
        from batchtts.engines.glmtts.voice.features import SpeakerEncoder
        from batchtts.engines.glmtts.voice.speech_tokenizer import SpeechTokenizer

        folder = model_dir()
        lock = ModelLock.read(folder)
        if lock is None or lock.missing(folder):
            raise EnvironmentProblem(f"GLM-TTS weights in {folder} are missing or incomplete; run `batchtts download`")
        if device == "cuda" and not torch.cuda.is_available():
            raise EnvironmentProblem("--device cuda, but torch sees no CUDA device")
        # The official repository's files: their ids and dimensions are known (a test fixture says it is one).
        published = lock.repo == DEFAULT_REPO and not read_llm_config(folder).get("batchtts_test_checkpoint")
        check_llm_config(folder, default_config() if published else None)
        tokenizer = load_tokenizer(folder)
        special = special_ids_of(tokenizer, folder, published)
        dtype = torch.bfloat16 if config.glmtts_dtype(device) == "bf16" else torch.float32
        llm = load_llm(folder, dtype, device, special)
        speaker = SpeakerEncoder(campplus_path(folder))
        return cls(
            folder,
            device,
            tokenizer,
            llm,
            special,
            speaker,
            SpeechTokenizer.load(folder / "speech_tokenizer", device),
            _load_audio_stages(folder, device, dtype),
        )

    def _text_ids(self, text: str, language: str = "") -> list[int]:
        """Token ids of text that already went through speakable_text (Chunk.text is), as the official
        script tokenises its normalised text; the ChatGLM tokenizer adds no special tokens to one sequence."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def voice_key(self, voice: VoiceAudio) -> str:
        """The model revision (download lock, decode version) and the prompt text as the text frontend now
        normalises it: a new checkpoint or a normalisation fix prepares cached prompts again."""
        import hashlib

        text = self.speakable_text(voice.prompt_text, "auto")
        return "-" + hashlib.sha256(f"{self.revision()}\n{text}".encode()).hexdigest()[:12]

    def prepare_voice(self, voice: VoiceAudio) -> VoiceState:
        from batchtts.engines.glmtts.voice.features import prompt_mel

        if voice.path is None:
            raise EnvironmentProblem("GLM-TTS clones a voice: give each job voice.prompt_audio and voice.prompt_text")
        audio16 = voice.resampled(16000)
        prompt = self.speakable_text(voice.prompt_text, "auto") + " "  # the official script adds the space
        return {
            "prompt_text": np.asarray(self._text_ids(prompt), np.int64),
            "prompt_speech": np.asarray(self.speech_tokenizer(audio16), np.int64),
            "prompt_mel": prompt_mel(voice.resampled(SAMPLE_RATE), SAMPLE_RATE),
            "embedding": self.speaker(audio16),
        }

    def synthesize(
        self, requests: list[SynthRequest], voice: VoiceState, on_results: OnResults | None = None
    ) -> list[SynthResult]:
        from batchtts.engines.base import newest_context
        from batchtts.engines.glmtts.llm.types import Sampling

        sp = self.special
        prefix_text = voice["prompt_text"].tolist()
        prompt_speech = voice["prompt_speech"].tolist()
        index = {r.key: i for i, r in enumerate(requests)}
        followers: dict[int, list[int]] = {}
        contexts = [r.context for r in requests]
        prompts, lens, samplings, all_ids = [], [], [], []

        def prompt(i: int) -> list[int]:
            text, speech = self._with_context(prefix_text, prompt_speech, contexts[i], len(all_ids[i]))
            return text + all_ids[i] + [sp.boa] + [sp.ats + t for t in speech]

        for i, r in enumerate(requests):
            all_ids.append(self._text_ids(r.text, r.language))
            chained = r.follows is not None and r.follows in index
            if chained:
                followers.setdefault(index[r.follows], []).append(i)
            prompts.append(None if chained else prompt(i))
            lens.append(len(all_ids[-1]))
            o = r.options
            kind = dict(top_k=int(o["top_k"]), top_p=o["top_p"], temperature=o["temperature"])
            samplings.append(Sampling(**kind, ras=bool(o["ras"]), greedy=bool(o["greedy"])))
        o = requests[0].options  # length rules are the same for a batch (options are part of the key)
        decoder = self.slot_decoder()
        audio = self.audio.pipeline(voice, [r.seed for r in requests], on_results)  # flow + vocoder as rows finish
        room = self.cost_model().context_tokens

        def then(i: int, toks: list[int], cut: bool) -> list[tuple[int, list[int]]]:
            """A chain's next sentences: prompted as if decoded after this one (the worker's history rule)."""
            ready = []
            for j in followers.get(i, ()):
                contexts[j] = newest_context((*contexts[i], (requests[i].text, tuple(toks))), room)
                ready.append((j, prompt(j)))
            return ready

        audio.start()
        try:
            seeds, ratios = [r.seed for r in requests], (o["min_ratio"], o["max_ratio"])
            tokens, truncated = decoder.decode(
                prompts, lens, sp, samplings, seeds, *ratios, on_row_done=audio.submit, then=then if followers else None
            )
        except BaseException:
            audio.abort()
            raise
        return audio.results(tokens, truncated)  # flow and vocoder done; the takes reported to `on_results`

    def _with_context(
        self, prompt_text: list[int], prompt_speech: list[int], context, n_text: int
    ) -> tuple[list[int], list[int]]:
        """The official rolling prompt: the reference prompt, then earlier sentences' text (already normalised:
        it is Chunk.text) and decoded speech. The speech-per-text ratio is taken once, over the reference and
        every earlier sentence given; then the oldest sentences are dropped (never the reference) while the
        speech part plus this sentence's expected length passes MAX_PROMPT_SPEECH tokens."""
        entries = [(self._text_ids(text), list(tokens)) for text, tokens in context]
        speech = len(prompt_speech) + sum(len(t) for _, t in entries)
        text = len(prompt_text) + sum(len(i) for i, _ in entries)
        expected = int(speech / (text or 1) * n_text)
        while entries and speech + expected > MAX_PROMPT_SPEECH:
            speech -= len(entries.pop(0)[1])
        return (
            prompt_text + [i for ids, _ in entries for i in ids],
            prompt_speech + [t for _, toks in entries for t in toks],
        )

    def activation_reserve(self) -> int:
        """On CUDA, bytes kept free beside the KV budget, measured once: the peak of the decoder's largest
        refill prefill (PREFILL_TOKENS), the captured graphs' pool, and the flow and vocoder batches."""
        if self._reserve is None:
            from batchtts.engines.glmtts.llm.slot_decoder import SlotDecoder

            if self.llm.device.type != "cuda":
                self._reserve = 0
            else:
                prefill = SlotDecoder.prefill_reserve(self.fused, self.special.pad, PREFILL_TOKENS)
                self._reserve = prefill + (GRAPH_POOL_BYTES if self.graphs else 0) + self.audio.reserve_bytes()
        return self._reserve

    def use_memory_budget(self, budget: int) -> None:
        """Size the decode slots from the run's KV budget (bytes), as `batchtts plan` predicts."""
        self.kv_budget = budget

    def slot_decoder(self):
        """The engine's one decoder, allocated at the first decode: `slot_capacity(kv_budget)` slots (the
        planner's rule), or FALLBACK_SLOTS when no run handed a budget."""
        if self.decoder is None:
            from batchtts.engines.glmtts.llm.slot_decoder import SlotDecoder

            per_token = llm_cost(read_llm_config(self.folder), self.llm.dtype.itemsize).bytes_per_token
            if self.kv_budget is None:
                slots, length = self.FALLBACK_SLOTS, slot_capacity(0, per_token, self.fused.max_positions).slot_tokens
            else:
                cap = slot_capacity(self.kv_budget, per_token, self.fused.max_positions)
                slots, length = cap.slots, cap.slot_tokens
            if slots < 1:
                raise EnvironmentProblem(
                    f"a KV budget of {self.kv_budget} bytes has no room for one GLM-TTS decode slot of {length} tokens"
                )
            self.decoder = SlotDecoder(
                self.fused, self.special, slots, length, graphs=self.graphs, prefill_tokens=PREFILL_TOKENS
            )
        return self.decoder

    def close(self) -> None:
        self.llm = self.decoder = self.fused = None
        self.audio = None


def _load_audio_stages(folder: Path, device: str, dtype=None):
    """batchtts's flow and vocoder, loading the official flow/ and hift/ weights of the model folder (the
    flow in `dtype`, GLMTTS_DTYPE's; the vocoder always fp32)."""
    from batchtts.engines.glmtts.audio.token2wav import TokenToWave

    try:
        return TokenToWave.load(folder, device, dtype)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise EnvironmentProblem(f"GLM-TTS flow/vocoder weights in {folder} cannot be loaded: {exc}") from None
