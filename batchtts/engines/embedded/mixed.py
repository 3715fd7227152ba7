"""Mixed-language sentences for the embedded engine: a Chinese run inside an English sentence is spoken by the
Mandarin voice (espeak-ng `cmn-latn-pinyin`, see espeak.py), English words inside a Chinese sentence by the English
voice (Piper), and the pieces are joined into one chunk's audio with short fades, so no join clicks."""

from __future__ import annotations

import re

import numpy as np

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A Chinese run: Han characters with the Chinese punctuation and spaces between and after them.
_ZH_RUN_RE = re.compile(rf"[{_HAN}](?:[{_HAN}\s，、；：“”‘’《》（）…—]*[{_HAN}])?[，。！？；：、”’》）…]*")
# An English run in Chinese text: Latin words with apostrophes, hyphens and the spaces between them.
_EN_RUN_RE = re.compile(r"[A-Za-z][A-Za-z'’\-]*(?:\s+[A-Za-z][A-Za-z'’\-]*)*[.,!?;:]?")
JOIN_FADE = 0.006  # seconds of fade at each inner edge of a join
JOIN_GAP = 0.04  # seconds of silence between two voices (the breath a reader takes at a language switch)


def voice_runs(text: str, language: str) -> list[tuple[str, str]]:
    """(language, text) runs of a chunk in reading order: "zh" runs for the Mandarin voice, "en" runs for the
    English one. A chunk in one script is one run; punctuation-only runs join their neighbour."""
    other = _ZH_RUN_RE if language != "zh" else _EN_RUN_RE
    other_lang = "zh" if language != "zh" else "en"
    runs: list[tuple[str, str]] = []
    pos = 0
    for m in other.finditer(text):
        if language == "zh" and len(re.sub(r"[^A-Za-z]", "", m.group(0))) < 2:
            continue  # a lone letter ("A股") reads fine in the Mandarin voice
        runs += [(language, text[pos : m.start()]), (other_lang, m.group(0))]
        pos = m.end()
    runs.append((language, text[pos:]))
    out: list[tuple[str, str]] = []
    for lang, piece in runs:
        if not piece.strip():
            continue
        if out and (out[-1][0] == lang or not re.search(r"\w", piece)):
            out[-1] = (out[-1][0], f"{out[-1][1]} {piece.strip()}")
        else:
            out.append((lang, piece.strip()))
    return out or [(language, text)]


def join(pieces: list[np.ndarray], rate: int) -> np.ndarray:
    """The pieces in order, each faded in and out at its inner edges and JOIN_GAP apart; float32 mono."""
    if len(pieces) == 1:
        return pieces[0]
    n = max(1, int(rate * JOIN_FADE))
    gap = np.zeros(int(rate * JOIN_GAP), np.float32)
    out = []
    for i, audio in enumerate(pieces):
        audio = np.asarray(audio, np.float32).copy()
        k = min(n, len(audio) // 2)
        if k:
            ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)
            if i > 0:
                audio[:k] *= ramp
            if i < len(pieces) - 1:
                audio[-k:] *= ramp[::-1]
        out += [audio, gap] if i < len(pieces) - 1 else [audio]
    return np.concatenate(out)
