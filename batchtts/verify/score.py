"""Score a transcript against the text the engine spoke: WER for English, CER for Chinese.

Both sides pass through the same per-language normalisation first, so only what a listener would call a
different word counts: case, punctuation and spacing never do. The rules follow the Seed-TTS-eval recipe
(the benchmark GLM-TTS and CosyVoice report): English lower-cased with punctuation removed and words
compared (WER); Chinese with punctuation and spaces removed and characters compared (CER).
"""

from __future__ import annotations

import re
import unicodedata

import jiwer

# Default thresholds, per backend and language: the highest error a take may have and pass.
# pocketsphinx (its small bundled English model, capped search: verify/asr/pocketsphinx.py) mishears clean Piper
# English at a WER near 0.37 on average and up to 0.82 on single long sentences of good takes (proper names),
# against a mean of 0.70 and up to 1.5 on garbled takes;
# measured on the example book (README, "Verification"), so its good takes are never retaken.
# Whisper large-v3(-turbo): ~2-3% WER on clean English TTS and, with Paraformer/Whisper, ~1-2% CER on
# Seed-TTS-eval Chinese (GLM-TTS reports CER 1.03%); a per-sentence bound must sit well above the mean.
THRESHOLDS: dict[tuple[str, str], float] = {
    ("pocketsphinx", "en"): 0.85,
    ("whisper", "en"): 0.25,
    ("whisper", "zh"): 0.2,
}
METRIC = {"en": "wer", "zh": "cer"}
# A sentence this short is scored but never retaken on its score alone: one misheard word of three is 33%.
MIN_WORDS = {"en": 3, "zh": 3}

_CJK_PUNCT = "，。！？、；：「」『』（）《》〈〉【】—…·“”‘’"


def normalise(text: str, language: str) -> str:
    """The comparable form of `text`: English words lower-cased, apostrophes kept, digits kept, every other
    symbol a space; Chinese characters with punctuation and whitespace removed (Latin words kept as words)."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    if language == "zh":
        text = "".join(" " if unicodedata.category(ch).startswith("P") or ch in _CJK_PUNCT else ch for ch in text)
        return "".join(text.split())
    text = re.sub(r"[^\w' ]+|_", " ", text)
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


def size(text: str, language: str) -> int:
    """Reference length in the metric's units (words for English, characters for Chinese)."""
    norm = normalise(text, language)
    return len(norm) if language == "zh" else len(norm.split())


def error_rate(reference: str, transcript: str, language: str) -> tuple[str, float]:
    """(metric, error): WER (English and anything else) or CER (Chinese) of `transcript` against
    `reference`, after `normalise`; 0.0 means every word heard, 1.0 that none was (it can exceed 1 when
    the recogniser hears extra words). An empty reference scores 0 against an empty transcript, else 1."""
    metric = METRIC.get(language, "wer")
    ref, hyp = normalise(reference, language), normalise(transcript, language)
    if not ref:
        return metric, 0.0 if not hyp else 1.0
    if metric == "cer":
        return metric, float(jiwer.cer(ref, hyp or " "))
    return metric, float(jiwer.wer(ref, hyp or "-"))


def threshold(backend: str, language: str, override: float | None = None) -> float:
    """The highest error that passes: the job's `verify.max_error`, else the default for this backend and
    language (THRESHOLDS), else 0.5."""
    if override is not None:
        return override
    return THRESHOLDS.get((backend, language), 0.5)


def diff(reference: str, transcript: str, language: str) -> list[tuple[str, str, str]]:
    """The alignment as (op, reference part, transcript part), op one of equal/substitute/delete/insert, in
    the units of the metric; the review page marks the differences with it."""
    ref, hyp = normalise(reference, language), normalise(transcript, language)
    if not ref or not hyp:
        return [("delete", ref, "")] if ref else ([("insert", "", hyp)] if hyp else [])
    if language == "zh":
        out = jiwer.process_characters(ref, hyp)
        r, h, sep = list(ref), list(hyp), ""
    else:
        out = jiwer.process_words(ref, hyp)
        r, h, sep = ref.split(), hyp.split(), " "
    parts = []
    for chunk in out.alignments[0]:
        a = sep.join(r[chunk.ref_start_idx : chunk.ref_end_idx])
        b = sep.join(h[chunk.hyp_start_idx : chunk.hyp_end_idx])
        parts.append((chunk.type, a, b))
    return parts
