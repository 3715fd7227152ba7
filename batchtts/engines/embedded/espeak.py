"""espeak-ng (Debian's package) as the offline Mandarin voice: formant speech, deterministic."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from batchtts.errors import EnvironmentProblem

# espeak-ng's Mandarin voice. Not `cmn` ("latin as English"): in espeak-ng 1.51 (Debian 12) that voice turns each
# character into pinyin with a tone digit and then reads the digit in English ("你好" -> "nee three, how three";
# espeak-ng issues #1028, #1370). `cmn-latn-pinyin` reads the same pinyin as Mandarin syllables with their tones.
# Latin words never reach it: mixed.py sends them to the English voice.
MANDARIN_VOICE = "cmn-latn-pinyin"


def espeak_version() -> str:
    """espeak-ng's version (part of Mandarin chunk keys), asked once per process and program path."""
    exe = shutil.which("espeak-ng")
    return "espeak-ng missing" if exe is None else _version_of(exe)


@functools.cache
def _version_of(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    return " ".join(out.split()[:4])


def phonemes(text: str, voice: str = MANDARIN_VOICE) -> str:
    """espeak-ng's phoneme mnemonics for `text` (`espeak-ng -q -x`); `(en)` in them marks a switch to English."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EnvironmentProblem("espeak-ng is not installed (apt-get install espeak-ng, or run `make setup`)")
    return subprocess.run([exe, "-v", voice, "-q", "-x", "--", text], capture_output=True, text=True, check=True).stdout


def speak(text: str, voice: str, rate: int, words_per_minute: int = 175) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EnvironmentProblem(
            "espeak-ng is not installed; it speaks Chinese chunks (apt-get install espeak-ng, or run `make setup`)"
        )
    with tempfile.TemporaryDirectory(prefix="batchtts-espeak-") as tmp:
        wav = Path(tmp) / "out.wav"
        proc = subprocess.run(
            [exe, "-v", voice, "-s", str(words_per_minute), "-w", str(wav), "--", text],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or not wav.exists():
            raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.strip()[:200]}")
        audio, src_rate = sf.read(str(wav), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if src_rate != rate:
        audio = soxr.resample(audio, src_rate, rate)
    return np.asarray(audio, np.float32)
