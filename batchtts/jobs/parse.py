"""Read and validate a JSONL job file before anything is synthesized.

Every problem is reported as one line naming file, line and field (exit code 2), so a nightly run
fails at once rather than at chapter 9. Each field has its own small reader; `parse_job` only
strings them together.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonlines
import soundfile as sf

from batchtts.errors import InputError
from batchtts.jobs.formats import OUTPUT_FORMATS, SAMPLE_RATES
from batchtts.jobs.markup import PAUSE_MARKER_RE, speakable, strip_markers
from batchtts.jobs.textfile import normalize_text, read_text_file
from batchtts.jobs.types import ASR_CHOICES, CONTEXTS, LANGUAGES, Job, Loudness, Pauses, Source, Verify, Voice

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TOP_KEYS = {
    *("id", "text", "text_file", "output", "voice", "language", "sample_rate", "seed", "sampling", "engine"),
    *("pauses", "title", "book", "author", "track", "pronunciations", "cover", "loudness", "context", "verify"),
}
_LOUDNESS_KEYS = {"target", "true_peak"}
_VERIFY_KEYS = {"asr", "max_error", "retakes"}
MAX_RETAKES = 20
_VOICE_KEYS = {"prompt_audio", "prompt_text"}
_PAUSE_KEYS = set(Pauses.__dataclass_fields__)
MAX_PAUSE = 60.0  # seconds, for `pauses` and inline [pause:N] markers alike
MAX_DEPTH = 32  # nesting of JSON arrays and objects; no field needs more than 2
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG: what ffmpeg attaches as a cover


@dataclass(frozen=True)
class _Line:
    """One record being read: where it came from, its object, and the folders its paths resolve against."""

    src: Source
    obj: dict
    base_dir: Path
    out_dir: Path
    allow_abs_paths: bool

    def typed(self, key: str, types: type | tuple[type, ...], obj: dict | None = None, prefix: str = "") -> Any:
        return _typed(self.src, self.obj if obj is None else obj, key, types, prefix)


def _typed(src: Source, obj: dict, key: str, types: type | tuple[type, ...], prefix: str = "") -> Any:
    value = obj.get(key)
    if value is None:
        return None
    wanted = types if isinstance(types, tuple) else (types,)
    # bool is an int in Python; a JSON true is never a valid number here.
    if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
        names = " or ".join(_JSON_TYPES[t] for t in wanted)
        raise src.error(prefix + key, f"must be {names}, got {json.dumps(value)[:60]}")
    return value


_JSON_TYPES = {str: "a string", dict: "an object", int: "an integer", float: "a number"}


def _strings(src: Source, obj: dict) -> None:
    """Every key and string, walked without recursion: lone surrogates cannot be written anywhere (UTF-8
    file names, tags, logs), NUL cannot be in a path or a tag; `text` alone is cleaned of control
    characters instead. Nesting is bounded so that no later reader recurses without limit."""
    stack: list[tuple[str | None, object, int]] = [(None, obj, 0)]
    while stack:
        where, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise src.error(None, f"nested too deeply (over {MAX_DEPTH} levels)")
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE_RE.search(key) or "\0" in key:
                    raise src.error(where, "a key holds a lone surrogate or a NUL character")
                stack.append((f"{where}.{key}" if where else key, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((where, item, depth + 1) for item in value)
        elif isinstance(value, str):
            if _SURROGATE_RE.search(value):
                raise src.error(where, "holds a lone surrogate (half of a UTF-16 pair), which is not text")
            if "\0" in value and where != "text":
                raise src.error(where, "holds a NUL character")


def _unknown(src: Source, obj: dict, allowed: set[str], prefix: str = "") -> None:
    for key in obj:
        if key not in allowed:
            raise src.error(prefix + key, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _id(line: _Line) -> str:
    job_id = line.typed("id", str)
    if job_id is None:
        raise line.src.error("id", "missing")
    if not _ID_RE.fullmatch(job_id):  # match() would let "$" accept a trailing newline
        raise line.src.error("id", f"'{job_id}' must be 1-128 letters, digits, '.', '_' or '-'")
    return job_id


def _text(line: _Line) -> tuple[str, Path | None]:
    text = line.typed("text", str)
    text_file = line.typed("text_file", str)
    if text is not None and text_file is not None:
        raise line.src.error("text_file", "give either 'text' or 'text_file', not both")
    if text is None and text_file is None:
        raise line.src.error("text", "missing (give 'text' or 'text_file')")
    path = (line.base_dir / text_file).resolve() if text_file is not None else None
    if path is not None:
        text = read_text_file(line.src, path)
    text = normalize_text(text)
    name = "text_file" if text_file is not None else "text"
    if not strip_markers(text).strip():
        why = "is empty" if not text.strip() else "has only markers ([scene], [pause:N]), no words"
        raise line.src.error(name, why)
    if not speakable(strip_markers(text)):
        raise line.src.error(name, "has nothing to speak (only punctuation or symbols)")
    for marker in re.finditer(r"\[pause\s*:[^\]\n]{0,40}\]", text, re.IGNORECASE):  # "[Pause.]" in a play is read
        if not PAUSE_MARKER_RE.match(marker.group(0)):
            raise line.src.error(name, f"pause marker {marker.group(0)} is not [pause:SECONDS], e.g. [pause:1.5]")
    for marker in PAUSE_MARKER_RE.finditer(text):
        if float(marker.group(1)) > MAX_PAUSE:
            raise line.src.error(
                name, f"pause marker [pause:{marker.group(1)}] is outside 0-{MAX_PAUSE:g} seconds (like 'pauses')"
            )
    return text, path


def _output(line: _Line) -> Path:
    raw = line.typed("output", str)
    if not raw:
        raise line.src.error("output", "missing")
    rel = Path(raw)
    if rel.is_absolute() and not line.allow_abs_paths:
        raise line.src.error(
            "output", f"must be a path relative to the output folder, got {raw} (or pass --allow-abs-paths)"
        )
    resolved = (line.out_dir / rel).resolve()
    if not resolved.is_relative_to(line.out_dir.resolve()) and not line.allow_abs_paths:
        raise line.src.error("output", f"{raw} leaves the output folder {line.out_dir} (or pass --allow-abs-paths)")
    if resolved.suffix.lower() not in OUTPUT_FORMATS:
        raise line.src.error(
            "output", f"unsupported format '{resolved.suffix}' (use one of {', '.join(sorted(OUTPUT_FORMATS))})"
        )
    return resolved


def _voice(line: _Line) -> Voice:
    obj = line.typed("voice", dict) or {}
    _unknown(line.src, obj, _VOICE_KEYS, "voice.")
    prompt = line.typed("prompt_audio", str, obj, "voice.")
    path = None
    if prompt is not None:
        path = (line.base_dir / prompt).resolve()
        if not path.is_file():
            raise line.src.error("voice.prompt_audio", f"file not found: {path}")
        try:
            info = sf.info(str(path))
        except Exception as exc:  # libsndfile says why in its own words
            raise line.src.error("voice.prompt_audio", f"cannot read audio {path}: {exc}") from None
        if info.frames == 0:
            raise line.src.error("voice.prompt_audio", f"{path} holds no audio")
    return Voice(path, line.typed("prompt_text", str, obj, "voice.") or "")


def _choice(line: _Line, key: str, choices: tuple[str, ...], default: str) -> str:
    value = line.typed(key, str) or default
    if value not in choices:
        raise line.src.error(key, f"'{value}' is not one of {', '.join(choices)}")
    return value


def _sample_rate(line: _Line, output: Path) -> int | None:
    rate = line.typed("sample_rate", int)
    if rate is not None and not 8000 <= rate <= 192000:
        raise line.src.error("sample_rate", f"{rate} is outside 8000-192000")
    fmt = OUTPUT_FORMATS[output.suffix.lower()]
    if rate is not None and fmt in SAMPLE_RATES and rate not in SAMPLE_RATES[fmt]:
        rates = ", ".join(map(str, SAMPLE_RATES[fmt]))
        raise line.src.error("sample_rate", f"{fmt} cannot hold {rate} Hz ({output.suffix} allows {rates})")
    return rate


def _numbers(line: _Line, key: str) -> dict[str, float]:
    obj = line.typed(key, dict) or {}
    for k, value in obj.items():
        if value is None:  # `typed` reads null as "not given"; inside these objects it is a wrong value
            raise line.src.error(f"{key}.{k}", "must be a number, got null")
    return {k: float(line.typed(k, (int, float), obj, f"{key}.")) for k in obj}


def _pauses(line: _Line) -> Pauses:
    obj = line.typed("pauses", dict) or {}
    _unknown(line.src, obj, _PAUSE_KEYS, "pauses.")
    _numbers(line, "pauses")
    for key in obj:
        value = line.typed(key, (int, float), obj, "pauses.")
        if not 0 <= value <= MAX_PAUSE:
            raise line.src.error(f"pauses.{key}", f"{value} is outside 0-{MAX_PAUSE:g} seconds")
    return Pauses(**_numbers(line, "pauses"))


def _pronunciations(line: _Line) -> dict[str, str]:
    table = line.typed("pronunciations", dict) or {}
    for key in table:
        line.typed(key, str, table, "pronunciations.")
        if not key:
            raise line.src.error("pronunciations", "an empty word cannot be replaced")
    return dict(table)


def _cover(line: _Line) -> Path | None:
    cover = line.typed("cover", str)
    if cover is None:
        return None
    path = (line.base_dir / cover).resolve()
    if not path.is_file():
        raise line.src.error("cover", f"file not found: {path}")
    if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise line.src.error("cover", "must be a .jpg or .png image")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise line.src.error("cover", f"cannot read {path}: {exc.strerror or exc}") from None
    if not head.startswith(_IMAGE_MAGIC):
        raise line.src.error("cover", f"{path} is not a JPEG or PNG image")
    stat = path.stat()
    if problem := _undecodable(path, stat.st_size, stat.st_mtime_ns):
        raise line.src.error("cover", f"{path} cannot be decoded: {problem}")
    return path


@functools.lru_cache(maxsize=64)
def _undecodable(path: Path, _size: int, _mtime: int) -> str | None:
    """Decode the picture with the ffmpeg that will embed it (once per file version), so a damaged one
    fails here rather than after synthesis; without ffmpeg the run stops on that anyway."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    cmd = [exe, "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    return (lines[-1] if lines else f"ffmpeg exit {proc.returncode}") if proc.returncode else None


def _verify(line: _Line) -> Verify:
    raw = line.obj.get("verify")
    if raw is False:
        return Verify(asr=None)
    if raw is None or raw is True:
        return Verify()
    if not isinstance(raw, dict):
        raise line.src.error("verify", 'must be an object like {"asr": "auto", "retakes": 2} or false')
    _unknown(line.src, raw, _VERIFY_KEYS, "verify.")
    asr = raw.get("asr", "auto")
    if asr is not False and asr not in ASR_CHOICES:
        raise line.src.error("verify.asr", f"{json.dumps(asr)} is not one of {', '.join(ASR_CHOICES)}, false")
    max_error = line.typed("max_error", (int, float), raw, "verify.")
    if max_error is not None and not 0 <= max_error <= 10:
        raise line.src.error("verify.max_error", f"{max_error} is outside 0 to 10 (an error rate; 0.3 is 30%)")
    retakes = line.typed("retakes", int, raw, "verify.")
    if retakes is not None and not 0 <= retakes <= MAX_RETAKES:
        raise line.src.error("verify.retakes", f"{retakes} is outside 0 to {MAX_RETAKES}")
    return Verify(
        None if asr is False else asr,
        None if max_error is None else float(max_error),
        Verify.retakes if retakes is None else retakes,
    )


def _loudness(line: _Line) -> Loudness:
    raw = line.obj.get("loudness")
    if raw is False:
        return Loudness(enabled=False)
    if raw is None:
        return Loudness()
    if not isinstance(raw, dict):
        raise line.src.error("loudness", 'must be an object like {"target": -18, "true_peak": -1.5} or false')
    _unknown(line.src, raw, _LOUDNESS_KEYS, "loudness.")
    target = line.typed("target", (int, float), raw, "loudness.")
    peak = line.typed("true_peak", (int, float), raw, "loudness.")
    if target is not None and not -40 <= target <= -6:
        raise line.src.error("loudness.target", f"{target} LUFS is outside -40 to -6")
    if peak is not None and not -12 <= peak <= 0:
        raise line.src.error("loudness.true_peak", f"{peak} dBTP is outside -12 to 0")
    return Loudness(
        float(Loudness.target if target is None else target), float(Loudness.true_peak if peak is None else peak)
    )


def parse_job(src: Source, obj: Any, base_dir: Path, out_dir: Path, allow_abs_paths: bool = False) -> Job:
    """One record to a Job; the engine name is only type-checked here (prepare resolves it)."""
    if not isinstance(obj, dict):
        raise src.error(None, "each line must be a JSON object")
    _strings(src, obj)
    _unknown(src, obj, _TOP_KEYS)
    line = _Line(src, obj, base_dir, out_dir, allow_abs_paths)
    job_id = _id(line)
    text, text_file = _text(line)
    output = _output(line)
    return Job(
        id=job_id,
        text=text,
        text_file=text_file,
        output=output,
        source=src,
        voice=_voice(line),
        language=_choice(line, "language", LANGUAGES, "auto"),
        sample_rate=_sample_rate(line, output),
        seed=line.typed("seed", int) or 0,
        engine=line.typed("engine", str),
        sampling=_numbers(line, "sampling"),
        pauses=_pauses(line),
        title=line.typed("title", str),
        book=line.typed("book", str),
        author=line.typed("author", str),
        track=line.typed("track", int),
        pronunciations=_pronunciations(line),
        cover=_cover(line),
        loudness=_loudness(line),
        context=_choice(line, "context", CONTEXTS, "prompt"),
        verify=_verify(line),
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
    for lineno, obj in _records(job_file):
        src = Source(job_file, lineno)
        job = parse_job(src, obj, base_dir, out_dir, allow_abs_paths)
        if job.id in seen_ids:
            raise src.error("id", f"duplicate id '{job.id}' (first on line {seen_ids[job.id]})")
        seen_ids[job.id] = lineno
        jobs.append(job)
    if not jobs:
        raise InputError(job_file, None, None, "holds no jobs")
    return jobs


def _records(job_file: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, object), skipping blank lines and turning bad lines into InputError."""
    counter = {"line": 0}
    try:
        fh = open(job_file, "rb")  # noqa: SIM115 - closed below, whatever the reader raises
    except OSError as exc:  # there, but unreadable
        raise InputError(job_file, None, None, f"cannot read it: {exc.strerror or exc}") from None

    def lines():
        for counter["line"], raw in enumerate(fh, 1):
            yield raw

    with fh:
        yield from _objects(job_file, jsonlines.Reader(lines()), counter)


def _objects(job_file: Path, reader: jsonlines.Reader, counter: dict) -> Iterator[tuple[int, Any]]:
    while True:
        try:
            obj = reader.read(skip_empty=True)
        except EOFError:
            return
        except RecursionError:
            raise InputError(job_file, counter["line"], None, "not valid JSON: nested too deeply") from None
        except jsonlines.InvalidLineError as exc:
            cause = exc.__cause__
            if isinstance(cause, UnicodeDecodeError):
                detail = f"not UTF-8 (bad byte at offset {cause.start} of the line)"
            elif exc.line.strip() in (b"null", "null"):
                detail = "each line must be a JSON object"
            else:
                detail = f"not valid JSON: {cause or exc}"
            raise InputError(job_file, exc.lineno, None, detail) from None
        yield counter["line"], obj
