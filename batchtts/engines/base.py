"""The one small interface every engine implements; the runner knows nothing else about engines."""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from batchtts.errors import OptionError
from batchtts.state.voice import VoiceAudio

if TYPE_CHECKING:
    from batchtts.text.chunkrule import ChunkRule

VoiceState = dict[str, np.ndarray]


@dataclass(frozen=True)
class SynthRequest:
    key: str  # the chunk's content key
    text: str
    language: str  # "en" or "zh"
    seed: int  # derived from the key, so a chunk's audio never depends on its batch
    options: dict[str, float] = field(default_factory=dict)
    # Rolling context: the sentences before this one, oldest first, as (text, speech tokens they decoded).
    context: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Rolling chains (engines with `supports_rolling_chains`): the key of an earlier request of the same call
    # whose text and decoded speech tokens follow `context` (then cut by `newest_context`) in this one's prompt.
    follows: str | None = None


Context = tuple[tuple[str, tuple[int, ...]], ...]


def newest_context(entries: Context, room: int) -> Context:
    """Earlier sentences (oldest first), newest first back to `room` speech tokens: the newest sentence that
    reaches it is kept (the engine prunes exactly). The one rule for the worker's history and an engine's chains."""
    out: list[tuple[str, tuple[int, ...]]] = []
    for text, tokens in reversed(entries):
        if room <= 0:
            break
        out.append((text, tokens))
        room -= len(tokens)
    return tuple(reversed(out))


@dataclass(frozen=True)
class SynthResult:
    audio: np.ndarray  # float32, mono, in [-1, 1]
    sample_rate: int
    tokens: int | None = None  # units decoded (speech tokens, frames): refines the planner's length model
    truncated: bool = False  # decoding stopped at its maximum length instead of ending by itself
    speech_tokens: tuple[int, ...] | None = None  # kept for rolling context, when the engine decodes tokens


#: Called by an engine that `streams_results` as takes finish, with (request index, result) pairs, possibly from
#: another thread; each reported result is the very object `synthesize` returns for that index.
OnResults = Callable[[list[tuple[int, SynthResult]]], None]


def _frozen(d: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class CostModel:
    """What one sequence costs, so the planner can fill a device without overflowing it.

    Token counts are the engine's own units: text tokens in, decoded units (speech tokens for an LLM,
    frames for VITS) out. Memory per token is the KV cache of a transformer LLM
    (2 x layers x kv_heads x head_dim x dtype bytes) or the activations per decoded unit otherwise.
    """

    bytes_per_token: int
    chars_per_text_token: Mapping[str, float] = field(default_factory=lambda: _frozen({"en": 1.0, "zh": 1.0}))
    speech_ratio: Mapping[str, float] = field(default_factory=lambda: _frozen({"en": 5.0, "zh": 5.0}))
    min_ratio: float = 2.0  # decoded units per text token, at least
    max_ratio: float = 20.0  # ... and at most (decoding stops there)
    special_tokens: int = 0  # per sequence (BOS/BOA and the like)
    prompt_tokens_per_second: float = 0.0  # speech tokens per second of reference audio in the prefix
    weights_bytes: int = 0
    activation_bytes_per_seq: int = 0
    # Later stages that turn decoded units into audio (GLM-TTS's flow and vocoder): activation bytes per
    # output frame of one row. Their batches are cut to a fixed reserve (part of the activation reserve).
    audio_bytes_per_frame: int = 0
    tokens_per_second: float = 25.0  # decoded units per second of audio
    # Rolling context: tokens the earlier sentences may add to a prompt (the engine prunes to this).
    context_tokens: int = 0
    # How a batch pads: "full" (every row runs as long as the longest), "prompt" (prompts are
    # left-padded to the longest, and a row leaves the batch when it is done), "none" (rows run unpadded).
    padding: str = "full"
    # Device memory kept free for an ASR model that verifies takes beside the engine (weights plus its
    # largest batch, bytes). The worker sets it from the loaded backend (ASR reserve); 0: none on the device.
    asr_reserve_bytes: int = 0

    def text_tokens(self, text: str, language: str) -> int:
        return max(1, math.ceil(len(text) / self.chars_per_text_token.get(language, 1.0)))

    def prefix_tokens(self, prompt_seconds: float, prompt_text: str) -> int:
        """Tokens every sequence of a voice holds before its own text: prompt text and prompt speech."""
        prompt = self.text_tokens(prompt_text, "en") if prompt_text else 0
        return self.special_tokens + prompt + math.ceil(prompt_seconds * self.prompt_tokens_per_second)

    def worst_decode(self, text_tokens: int) -> int:
        return math.ceil(self.max_ratio * text_tokens)

    def predicted_decode(self, text_tokens: int, ratio: float) -> int:
        ratio = min(max(ratio, self.min_ratio), self.max_ratio)
        return math.ceil(ratio * text_tokens)


def llama_kv_bytes_per_token(config: Mapping, dtype_bytes: int = 2) -> int:
    """KV cache bytes per token of a Llama-style config.json: 2 (K and V) x layers x kv_heads x head_dim x dtype."""
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    kv_heads = config.get("num_key_value_heads") or heads
    return 2 * config["num_hidden_layers"] * kv_heads * head_dim * dtype_bytes


def available_ram() -> int:
    """Bytes of RAM free for use: MemAvailable from /proc/meminfo (usable without swapping), else free pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def is_out_of_memory(exc: BaseException) -> bool:
    """A device OOM, recognised without importing torch where the engine does not use it."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, MemoryError)


class Engine(ABC):
    name: ClassVar[str]
    #: Longest text (in characters) one chunk may carry; the splitter cuts to this.
    max_chars: ClassVar[int] = 300
    #: Chunk lengths in the engine's own units (chunkrule.ChunkRule); when set it replaces `max_chars`.
    chunk_rule: ClassVar[ChunkRule | None] = None
    #: Whether `prepare_voice` clones the narrator; if not, the runner says so once.
    can_clone: ClassVar[bool] = False
    #: Whether `context: rolling` jobs can run (the engine reads SynthRequest.context).
    supports_rolling_context: ClassVar[bool] = False
    #: Whether one `synthesize` call can decode a chapter's chain (SynthRequest.follows) in order.
    supports_rolling_chains: ClassVar[bool] = False
    #: Sampling options a job may set under `sampling`, with their defaults.
    option_defaults: ClassVar[dict[str, float]] = {}
    #: Inclusive (lowest, highest) value of each option; a value outside is refused before any work.
    option_ranges: ClassVar[dict[str, tuple[float, float]]] = {}
    #: Whether its audio is speech an ASR can check (verify stage); test doubles that emit tones say no.
    speaks: ClassVar[bool] = True
    #: Whether `synthesize` reports takes as they finish (`on_results`), so they can be checked while the rest of
    #: the batch is still being made; an engine that does not is never given the callback.
    streams_results: ClassVar[bool] = False

    sample_rate: int

    @classmethod
    @abstractmethod
    def revision(cls) -> str:
        """Identify weights and code, without loading them; it is part of every chunk key."""

    @classmethod
    def revision_for(cls, language: str) -> str:
        """The revision in the keys of chunks in `language`: engines whose languages run on different
        programs override it, so a program one language never uses cannot change that language's keys."""
        return cls.revision()

    @classmethod
    def resolve_options(cls, sampling: dict[str, float]) -> dict[str, float]:
        """The job's options over the defaults; unknown names, non-numbers, NaN, infinities and values outside
        `option_ranges` are refused (a length scale of 1e30 would otherwise allocate gigabytes after loading)."""
        unknown = sorted(set(sampling) - set(cls.option_defaults))
        if unknown:
            known = ", ".join(sorted(cls.option_defaults)) or "none"
            raise OptionError(f"engine '{cls.name}' has no option '{unknown[0]}' (known: {known})")
        for name, value in sampling.items():
            field = f"sampling.{name}"
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise OptionError(f"must be a finite number, got {value!r}", field)
            low, high = cls.option_ranges.get(name, (-math.inf, math.inf))
            if not low <= value <= high:
                raise OptionError(f"engine '{cls.name}' takes {low:g} to {high:g}, got {value:g}", field)
        return {**cls.option_defaults, **sampling}

    @classmethod
    def speakable_text(cls, text: str, language: str) -> str:
        """The text exactly as the engine will read it (its own text normalisation), computed without weights when
        chunks are made: it is Chunk.text and goes into the chunk key. `text` has already been through the job's
        pronunciations and the book-text normaliser (text.normalize: numbers, numerals, abbreviations, units and
        pause punctuation as a narrator reads them), so an engine's frontend sees no digits of the book. The default
        reads that text as it is."""
        return text

    @classmethod
    @abstractmethod
    def load(cls, device: str = "cpu", threads: int | None = None) -> Engine:
        """Load weights once per run; `threads`: CPU threads it may use (None: every core)."""

    @classmethod
    @abstractmethod
    def cost_model(cls) -> CostModel:
        """Memory and length model for the planner, read from configs, never from loaded weights."""

    @classmethod
    def decode_outlook(cls, sentences: list[tuple[int, int, str]], budget: int, device: str) -> dict | None:
        """What the engine's own scheduler will make of `sentences` (prefix tokens, text tokens, language; in
        queue order) under `budget` bytes, for `batchtts plan`: e.g. decode slots, predicted steps and time,
        with a one-line "summary". None when the planner's batches are the whole story."""
        return None

    @classmethod
    def check_install(cls) -> list[tuple[str, bool, str]]:
        """(what, ok, detail) for `batchtts doctor`: model files present and complete, and so on."""
        return []

    def activation_reserve(self) -> int:
        """Bytes to keep free beside the KV budget; CUDA engines measure a worst-case forward pass."""
        return 0

    def voice_key(self, voice: VoiceAudio) -> str:
        """What, beside the clip and its text, the prepared voice state depends on (model revision, text
        frontend): part of the voice cache's file name, so a change prepares the voice again."""
        return ""

    def use_memory_budget(self, budget: int) -> None:  # noqa: B027 - optional hook
        """The run's KV budget in bytes (planning/memory.py's, the figure `batchtts plan` uses): an engine
        that sizes its own cache (GLM-TTS's decode slots) sizes it from this."""

    @classmethod
    def default_batch_size(cls, threads: int | None = None) -> int:
        """How many chunks one `synthesize` call should get when the user sets no limit (no weights needed)."""
        return 8

    def prepare_voice(self, voice: VoiceAudio) -> VoiceState:
        """Per-voice state (speaker embedding, prompt tokens); cached on disk by the runner."""
        return {}

    @abstractmethod
    def synthesize(
        self, requests: list[SynthRequest], voice: VoiceState, on_results: OnResults | None = None
    ) -> list[SynthResult]:
        """One waveform per request, in order; all requests share `voice`. An engine that `streams_results` calls
        `on_results` (when given) as takes finish, each request at most once, with the object it returns for it;
        a call that raises may have reported some takes before. `on_results` must not raise."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release threads, sessions or device memory."""
