"""Jobs to keyed chunks, with every input error raised before anything is loaded or written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchtts.engines import DEFAULT_ENGINE, engine_class, engine_names
from batchtts.engines.base import Engine
from batchtts.errors import InputError, OptionError
from batchtts.jobs.parse import default_out_dir, load_jobs
from batchtts.jobs.targets import check_targets
from batchtts.jobs.types import Job
from batchtts.state.ledger import read_take_numbers
from batchtts.state.voice import VoiceAudio, load_voice
from batchtts.state.workspace import Workspace
from batchtts.text.chunkrule import split_by_rule
from batchtts.text.chunks import Chunk, make_chunks
from batchtts.text.split import split_text


@dataclass
class Prepared:
    """Jobs with their chunks, keyed and validated; nothing loaded, nothing written."""

    job_file: Path
    out_dir: Path
    jobs: list[Job]
    engine_of: dict[str, str]  # job id -> engine name
    chunks: dict[str, list[Chunk]]  # job id -> chunks in reading order
    voices: dict[str, VoiceAudio]  # fingerprint -> voice

    def engines(self) -> list[str]:
        """Engine names in the order jobs first use them."""
        return list(dict.fromkeys(self.engine_of.values()))

    def chunks_for(self, engine: str) -> list[Chunk]:
        return [c for j in self.jobs if self.engine_of[j.id] == engine for c in self.chunks[j.id]]

    def all_chunks(self) -> list[Chunk]:
        return [c for j in self.jobs for c in self.chunks[j.id]]


def _engine(job: Job, name: str) -> type[Engine]:
    """The one place an engine name is checked (the job's own, or the run's default)."""
    try:
        return engine_class(name)
    except KeyError:
        raise job.source.error("engine", f"unknown engine '{name}' (known: {', '.join(engine_names())})") from None


def prepare(
    job_file: Path, out_dir: Path | None = None, default_engine: str | None = None, allow_abs_paths: bool = False
) -> Prepared:
    job_file = Path(job_file)
    out_dir = Path(out_dir).resolve() if out_dir else default_out_dir(job_file)
    jobs = load_jobs(job_file, out_dir, allow_abs_paths)
    check_targets(job_file, jobs, out_dir, Workspace(out_dir).state)
    takes = read_take_numbers(Workspace(out_dir).ledger_path)  # positions given a new take by `batchtts retake`
    voices_by_path: dict[tuple[Path | None, str], VoiceAudio] = {}
    engine_of, chunks = {}, {}
    for job in jobs:
        name = job.engine or default_engine or DEFAULT_ENGINE
        cls = _engine(job, name)
        try:
            options = cls.resolve_options(job.sampling)
        except OptionError as exc:
            raise job.source.error(exc.field or "sampling", str(exc)) from None
        if job.context == "rolling" and not cls.supports_rolling_context:
            raise job.source.error("context", f"engine '{name}' cannot prompt with earlier sentences; use \"prompt\"")
        key = (job.voice.prompt_audio, job.voice.prompt_text)
        if key not in voices_by_path:
            try:
                voices_by_path[key] = load_voice(job.voice.prompt_audio, job.voice.prompt_text)
            except InputError as exc:  # a clip that is silent, mostly silence or clipped: name the job's line
                raise job.source.error(exc.field, f"{job.voice.prompt_audio}: {exc.message}") from None
        voice = voices_by_path[key]
        rule = cls.chunk_rule
        segments = split_by_rule(job.text, rule) if rule else split_text(job.text, cls.max_chars)
        engine_of[job.id] = name
        chunks[job.id] = make_chunks(
            job, segments, voice.fingerprint, name, cls.revision_for, options, cls.speakable_text, takes.get(job.id)
        )
    voices = {v.fingerprint: v for v in voices_by_path.values()}
    return Prepared(job_file, out_dir, jobs, engine_of, chunks, voices)
