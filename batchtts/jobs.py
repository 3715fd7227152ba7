"""Read and validate a JSONL job file before anything is synthesised.

Every problem is reported as one line naming file, line and field (exit code 2), so a nightly run
fails at once rather than at chapter 9.
"""

from __future__ import annotations

import codecs
import html
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonlines
import soundfile as sf

from batchtts.engines import engine_names
from batchtts.errors import InputError
from batchtts.formats import OUTPUT_FORMATS
from batchtts.split import speakable, strip_markers

LANGUAGES = ("auto", "en", "zh")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Source:
    """Where a job came from, so later stages can still point at the offending line."""

    path: Path
    line: int

    def error(self, field: str | None, message: str) -> InputError:
        return InputError(self.path, self.line, field, message)


@dataclass(frozen=True)
class Voice:
    prompt_audio: Path | None = None
    prompt_text: str = ""


@dataclass(frozen=True)
class Pauses:
    """Silence, in seconds, inserted after each kind of break."""

    sentence: float = 0.45
    comma: float = 0.25
    paragraph: float = 1.0
    chapter_start: float = 0.3
    chapter_end: float = 1.0


@dataclass(frozen=True)
class Loudness:
    """Per-chapter loudness normalisation (EBU R128 style); `enabled=False` keeps the engine's level."""

    target: float = -18.0  # LUFS, integrated, a common audiobook level
    true_peak: float = -1.5  # dBTP ceiling
    enabled: bool = True


@dataclass(frozen=True)
class Job:
    id: str
    text: str
    output: Path
    source: Source
    voice: Voice = Voice()
    language: str = "auto"
    sample_rate: int | None = None
    seed: int = 0
    engine: str | None = None
    sampling: dict[str, float] = field(default_factory=dict)
    pauses: Pauses = Pauses()
    title: str | None = None
    book: str | None = None
    author: str | None = None
    track: int | None = None
    pronunciations: dict[str, str] = field(default_factory=dict)
    cover: Path | None = None
    loudness: Loudness = Loudness()
    context: str = "prompt"  # or "rolling": each sentence also prompted by the sentences before it


_TOP_KEYS = {
    "id",
    "text",
    "text_file",
    "output",
    "voice",
    "language",
    "sample_rate",
    "seed",
    "sampling",
    "engine",
    "pauses",
    "title",
    "book",
    "author",
    "track",
    "pronunciations",
}
_TOP_KEYS |= {"cover", "loudness", "context"}
CONTEXTS = ("prompt", "rolling")
_LOUDNESS_KEYS = {"target", "true_peak"}
_VOICE_KEYS = {"prompt_audio", "prompt_text"}
_PAUSE_KEYS = set(Pauses.__dataclass_fields__)


def _typed(src: Source, obj: dict, key: str, types: type | tuple[type, ...], prefix: str = "") -> Any:
    value = obj.get(key)
    if value is None:
        return None
    # bool is an int in Python; a JSON true is never a valid number here.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        value = object()
    if not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise src.error(prefix + key, f"must be {_json_type(names)}, got {json.dumps(obj.get(key))[:60]}")
    return value


def _json_type(names: str) -> str:
    return (
        names.replace("str", "a string")
        .replace("dict", "an object")
        .replace("int", "an integer")
        .replace("float", "a number")
    )


def _unknown(src: Source, obj: dict, allowed: set[str], prefix: str = "") -> None:
    for key in obj:
        if key not in allowed:
            raise src.error(prefix + key, f"unknown key (allowed: {', '.join(sorted(allowed))})")


MAX_TEXT_BYTES = 64 * 2**20  # one chapter; a whole book in one job defeats resuming and subtitles
_BLOCK = 1 << 20
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\ufeff]")
_ENTITY_RE = re.compile(r"&(?:#\d{1,7}|#x[0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def read_text_file(src: Source, path: Path) -> str:
    """Read in blocks through an incremental UTF-8 decoder: a bad byte is reported by its offset in the
    file, and an oversized file is refused before it is held in memory."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    parts: list[str] = []
    offset = 0
    try:
        if path.exists() and not path.is_file():  # opening a FIFO would wait for a writer for ever
            raise src.error("text_file", f"{path} is not a regular file")
        with open(path, "rb") as fh:
            while block := fh.read(_BLOCK):
                if offset + len(block) > MAX_TEXT_BYTES:
                    raise src.error(
                        "text_file", f"{path} is over {MAX_TEXT_BYTES >> 20} MiB; split it into one job per chapter"
                    )
                try:
                    parts.append(decoder.decode(block))
                except UnicodeDecodeError as exc:
                    raise src.error(
                        "text_file", f"{path} is not UTF-8 (bad byte at offset {offset + exc.start})"
                    ) from None
                offset += len(block)
            parts.append(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:  # truncated sequence at the very end
        raise src.error(
            "text_file", f"{path} is not UTF-8 (bad byte at offset {offset - len(exc.object) + exc.start})"
        ) from None
    except OSError as exc:
        raise src.error("text_file", f"cannot read {path}: {exc.strerror or exc}") from None
    return "".join(parts)


def normalise_text(text: str) -> str:
    """What any text source may carry but no engine should see: HTML entities, control and zero-width
    characters, Windows line ends, decomposed accents."""
    if _ENTITY_RE.search(text):
        text = html.unescape(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", _CONTROL_RE.sub(" ", text))


def _check_audio(src: Source, path: Path) -> None:
    if not path.is_file():
        raise src.error("voice.prompt_audio", f"file not found: {path}")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile says why in its own words
        raise src.error("voice.prompt_audio", f"cannot read audio {path}: {exc}") from None
    if info.frames == 0:
        raise src.error("voice.prompt_audio", f"{path} holds no audio")


def _output_path(src: Source, raw: str, out_dir: Path, allow_abs_paths: bool) -> Path:
    rel = Path(raw)
    if rel.is_absolute() and not allow_abs_paths:
        raise src.error(
            "output", f"must be a path relative to the output folder, got {raw} (or pass --allow-abs-paths)"
        )
    resolved = (out_dir / rel).resolve()
    if not resolved.is_relative_to(out_dir.resolve()) and not allow_abs_paths:
        raise src.error("output", f"{raw} leaves the output folder {out_dir} (or pass --allow-abs-paths)")
    if resolved.suffix.lower() not in OUTPUT_FORMATS:
        raise src.error(
            "output", f"unsupported format '{resolved.suffix}' (use one of {', '.join(sorted(OUTPUT_FORMATS))})"
        )
    return resolved


def parse_job(src: Source, obj: Any, base_dir: Path, out_dir: Path, allow_abs_paths: bool = False) -> Job:
    if not isinstance(obj, dict):
        raise src.error(None, "each line must be a JSON object")
    _unknown(src, obj, _TOP_KEYS)

    job_id = _typed(src, obj, "id", str)
    if job_id is None:
        raise src.error("id", "missing")
    if not _ID_RE.fullmatch(job_id):  # match() would let "$" accept a trailing newline
        raise src.error("id", f"'{job_id}' must be 1-128 letters, digits, '.', '_' or '-'")

    text = _typed(src, obj, "text", str)
    text_file = _typed(src, obj, "text_file", str)
    if text is not None and text_file is not None:
        raise src.error("text_file", "give either 'text' or 'text_file', not both")
    if text is None and text_file is None:
        raise src.error("text", "missing (give 'text' or 'text_file')")
    if text_file is not None:
        text = read_text_file(src, base_dir / text_file)
    text = normalise_text(text)
    text_field = "text_file" if text_file is not None else "text"
    if not strip_markers(text).strip():
        raise src.error(text_field, "is empty")
    if not speakable(strip_markers(text)):
        raise src.error(text_field, "has nothing to speak (only punctuation or symbols)")

    raw_out = _typed(src, obj, "output", str)
    if not raw_out:
        raise src.error("output", "missing")
    output = _output_path(src, raw_out, out_dir, allow_abs_paths)

    voice_obj = _typed(src, obj, "voice", dict) or {}
    _unknown(src, voice_obj, _VOICE_KEYS, "voice.")
    prompt = _typed(src, voice_obj, "prompt_audio", str, "voice.")
    prompt_path = None
    if prompt is not None:
        prompt_path = (base_dir / prompt).resolve()
        _check_audio(src, prompt_path)
    voice = Voice(prompt_path, _typed(src, voice_obj, "prompt_text", str, "voice.") or "")

    language = _typed(src, obj, "language", str) or "auto"
    if language not in LANGUAGES:
        raise src.error("language", f"'{language}' is not one of {', '.join(LANGUAGES)}")

    sample_rate = _typed(src, obj, "sample_rate", int)
    if sample_rate is not None and not 8000 <= sample_rate <= 192000:
        raise src.error("sample_rate", f"{sample_rate} is outside 8000-192000")

    engine = _typed(src, obj, "engine", str)
    if engine is not None and engine not in engine_names():
        raise src.error("engine", f"unknown engine '{engine}' (known: {', '.join(engine_names())})")

    sampling = _typed(src, obj, "sampling", dict) or {}
    for key in sampling:
        _typed(src, sampling, key, (int, float), "sampling.")

    pause_obj = _typed(src, obj, "pauses", dict) or {}
    _unknown(src, pause_obj, _PAUSE_KEYS, "pauses.")
    for key in pause_obj:
        value = _typed(src, pause_obj, key, (int, float), "pauses.")
        if not 0 <= value <= 60:
            raise src.error(f"pauses.{key}", f"{value} is outside 0-60 seconds")
    pauses = Pauses(**{k: float(v) for k, v in pause_obj.items()})

    prons = _typed(src, obj, "pronunciations", dict) or {}
    for key in prons:
        _typed(src, prons, key, str, "pronunciations.")
        if not key:
            raise src.error("pronunciations", "an empty word cannot be replaced")

    cover = _typed(src, obj, "cover", str)
    cover_path = None
    if cover is not None:
        cover_path = (base_dir / cover).resolve()
        if not cover_path.is_file():
            raise src.error("cover", f"file not found: {cover_path}")
        if cover_path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            raise src.error("cover", "must be a .jpg or .png image")

    loudness = Loudness()
    raw_loud = obj.get("loudness")
    if raw_loud is False:
        loudness = Loudness(enabled=False)
    elif raw_loud is not None:
        if not isinstance(raw_loud, dict):
            raise src.error("loudness", 'must be an object like {"target": -18, "true_peak": -1.5} or false')
        _unknown(src, raw_loud, _LOUDNESS_KEYS, "loudness.")
        target = _typed(src, raw_loud, "target", (int, float), "loudness.")
        peak = _typed(src, raw_loud, "true_peak", (int, float), "loudness.")
        if target is not None and not -40 <= target <= -6:
            raise src.error("loudness.target", f"{target} LUFS is outside -40 to -6")
        if peak is not None and not -12 <= peak <= 0:
            raise src.error("loudness.true_peak", f"{peak} dBTP is outside -12 to 0")
        loudness = Loudness(
            float(Loudness.target if target is None else target), float(Loudness.true_peak if peak is None else peak)
        )

    context = _typed(src, obj, "context", str) or "prompt"
    if context not in CONTEXTS:
        raise src.error("context", f"'{context}' is not one of {', '.join(CONTEXTS)}")

    seed = _typed(src, obj, "seed", int)
    return Job(
        id=job_id,
        text=text,
        output=output,
        source=src,
        voice=voice,
        language=language,
        sample_rate=sample_rate,
        seed=0 if seed is None else seed,
        engine=engine,
        sampling={k: float(v) for k, v in sampling.items()},
        pauses=pauses,
        title=_typed(src, obj, "title", str),
        book=_typed(src, obj, "book", str),
        author=_typed(src, obj, "author", str),
        track=_typed(src, obj, "track", int),
        pronunciations=dict(prons),
        cover=cover_path,
        loudness=loudness,
        context=context,
    )


def default_out_dir(job_file: Path) -> Path:
    return Path(job_file).resolve().parent / "out"


def load_jobs(job_file: Path, out_dir: Path | None = None, allow_abs_paths: bool = False) -> list[Job]:
    """Parse every line; raise InputError on the first bad one, before any work is done."""
    job_file = Path(job_file)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(job_file)
    base_dir = job_file.resolve().parent
    if not job_file.is_file():
        raise InputError(job_file, None, None, "job file not found")
    jobs: list[Job] = []
    seen_ids: dict[str, int] = {}
    seen_outputs: dict[Path, tuple[int, Path]] = {}  # by name without suffix: timings files share it
    for lineno, obj in _records(job_file):
        src = Source(job_file, lineno)
        job = parse_job(src, obj, base_dir, out_dir, allow_abs_paths)
        if job.id in seen_ids:
            raise src.error("id", f"duplicate id '{job.id}' (first on line {seen_ids[job.id]})")
        other = seen_outputs.get(job.output.with_suffix(""))
        if other and other[1] == job.output:
            raise src.error("output", f"same output as line {other[0]}")
        if other:
            raise src.error(
                "output", f"same name as the output on line {other[0]} (their .srt/.vtt/.json would collide)"
            )
        seen_ids[job.id] = lineno
        seen_outputs[job.output.with_suffix("")] = (lineno, job.output)
        jobs.append(job)
    if not jobs:
        raise InputError(job_file, None, None, "holds no jobs")
    return jobs


def _records(job_file: Path):
    """Yield (line number, object), skipping blank lines and turning bad lines into InputError."""
    counter = {"line": 0}

    def lines():
        with open(job_file, "rb") as fh:
            for counter["line"], raw in enumerate(fh, 1):
                yield raw

    reader = jsonlines.Reader(lines())
    while True:
        try:
            obj = reader.read(skip_empty=True)
        except EOFError:
            return
        except jsonlines.InvalidLineError as exc:
            cause = exc.__cause__
            if isinstance(cause, UnicodeDecodeError):
                detail = f"not UTF-8 (bad byte at offset {cause.start} of the line)"
            elif exc.line.strip() == b"null" or exc.line.strip() == "null":
                detail = "each line must be a JSON object"
            else:
                detail = f"not valid JSON: {cause or exc}"
            raise InputError(job_file, exc.lineno, None, detail) from None
        yield counter["line"], obj
