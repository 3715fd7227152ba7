"""The verify stage: every take is transcribed and scored before it is committed.

The driver decides, once per run, which backend checks which job's language (`plan_verification`, and
says once which languages go unchecked); each worker then scores its takes (`Verifier`): as the engine reports
them, while it makes the rest of the batch, through the verifier's `listener()` (verify/listen.py), or in one
call per batch (`Verifier.score`). Both give the same scores. Retakes and the choice of the best take are the
worker's (synthesis/worker.py), which owns the seeds.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from batchtts import config
from batchtts.errors import EnvironmentProblem
from batchtts.jobs.types import Job
from batchtts.verify.asr import backend_class
from batchtts.verify.asr.base import AsrBackend
from batchtts.verify.listen import Listener
from batchtts.verify.score import MIN_WORDS, error_rate, size, threshold

log = logging.getLogger("batchtts")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class VerifyPlan:
    """How the chunks of one job in one language are checked: plain data, sent to workers."""

    backend: str
    max_error: float  # highest error that passes (WER or CER)
    retakes: int  # new-seed takes after the first, for a take that does not pass


@dataclass(frozen=True)
class Score:
    backend: str
    metric: str
    error: float
    transcript: str
    passed: bool


Plans = dict[tuple[str, str], VerifyPlan]  # (job id, language) -> plan


def choose_backend(asr: str, language: str, device: str) -> tuple[str | None, str]:
    """(backend name or None, why none) for `asr` ("auto" or a backend) on `language` and `device`.

    auto: Whisper where a downloaded checkpoint exists (for English only on CUDA, where it is cheap), else
    pocketsphinx for English; Chinese without a downloaded Whisper goes unchecked.
    """
    names = ("whisper", "pocketsphinx") if asr == "auto" else (asr,)
    reasons = []
    for name in names:
        if asr == "auto" and name == "whisper" and language == "en" and device != "cuda":
            continue
        why = backend_class(name).available(language, device)
        if why is None:
            return name, ""
        reasons.append(why)
    return None, "; ".join(reasons) or f"no ASR backend for '{language}'"


def plan_verification(
    jobs: Iterable[Job],
    languages: dict[str, set[str]],
    speaks: dict[str, bool],
    device: str,
    enabled: bool = True,
    quiet: bool = False,
) -> Plans:
    """The plan per (job, language) for every job whose engine speaks and whose `verify` is on; languages
    left unchecked are logged once, in one line. A backend named explicitly that cannot run is an error.

    `languages`: job id -> languages of its chunks; `speaks`: job id -> whether its engine emits speech.
    """
    plans: Plans = {}
    skipped: dict[str, str] = {}
    for job in jobs:
        if not enabled or job.verify.asr is None or not speaks.get(job.id, True):
            continue
        for language in sorted(languages.get(job.id, ())):
            name, why = choose_backend(job.verify.asr, language, device)
            if name is None:
                if job.verify.asr != "auto" and language in backend_class(job.verify.asr).languages:
                    raise EnvironmentProblem(f"verify.asr '{job.verify.asr}' (job {job.id}) cannot run: {why}")
                skipped.setdefault(language, why)
                continue
            plans[(job.id, language)] = VerifyPlan(
                name, threshold(name, language, job.verify.max_error), job.verify.retakes
            )
    for language, why in skipped.items() if not quiet else ():
        log.warning("verification skipped for '%s' chunks: %s", language, why)
    return plans


def asr_reserve(plans: Plans, device: str) -> int:
    """Device bytes the backends these plans name will take (weights plus largest batch), without loading
    them: what `batchtts plan` keeps from the engine's budget (CostModel.asr_reserve_bytes)."""
    return sum(backend_class(name).planned_bytes(device) for name in {p.backend for p in plans.values()})


class Verifier:
    """Loaded ASR backends of one worker, one per name, loaded on first use; its listener. Thread-safe: the
    engine's threads (GLM-TTS's audio worker) and the listener's score takes beside the worker's thread."""

    def __init__(self, plans: Plans, device: str = "cpu", serial: bool | None = None):
        """`serial`: score in this process, after each batch (BATCHTTS_VERIFY_SERIAL when None)."""
        self.plans, self.device = plans, device
        self.serial = config.verify_serial() if serial is None else serial
        self.backends: dict[str, AsrBackend] = {}
        self.seconds = 0.0  # spent transcribing (in this process or its ASR child), for the run summary
        self.mixed_unchecked = 0  # chunks of two scripts a one-language backend cannot hear (said once)
        self._lock = threading.RLock()  # backends and seconds
        self._listener: Listener | None = None

    def plan(self, job_id: str, language: str, text: str = "") -> VerifyPlan | None:
        """The plan for a chunk of `job_id` in `language`, or None when it goes unchecked: no backend for the
        language, or a chunk that mixes Chinese and Latin script while its backend hears one language only
        (pocketsphinx's English model would score the Mandarin run as missing words on every take)."""
        plan = self.plans.get((job_id, language))
        if plan is None or not (_HAN.search(text) and _LATIN.search(text)):
            return plan
        if {"en", "zh"} <= set(backend_class(plan.backend).languages):
            return plan
        if not self.mixed_unchecked:
            log.warning("verification skipped for chunks mixing Chinese and English: %s hears one", plan.backend)
        self.mixed_unchecked += 1
        return None

    def load(self) -> None:
        """Load every backend the plans name now (before the engine's memory budget is measured); one that runs in
        a child process starts with the first take instead."""
        for name in {p.backend for p in self.plans.values()}:
            if self.serial or not backend_class(name).in_child:
                self._backend(name)

    def listener(self) -> Listener:
        """This worker's listener (verify/listen.py), made on first use; closed with the verifier."""
        with self._lock:
            if self._listener is None:
                self._listener = Listener(self, self.serial)
            return self._listener

    def add_seconds(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds

    def batch_reserve_bytes(self) -> int:
        """Device memory the loaded backends' batches take beyond their weights (kept from the engine's budget)."""
        return sum(b.batch_reserve_bytes() for b in self.backends.values())

    def _backend(self, name: str) -> AsrBackend:
        with self._lock:
            if name not in self.backends:
                log.info("loading ASR backend '%s' on %s", name, self.device)
                self.backends[name] = backend_class(name).load(self.device)
            return self.backends[name]

    def judge(self, plan: VerifyPlan, text: str, language: str, transcript: str) -> Score:
        """The score of `transcript` against the spoken `text` under `plan`: the error in the language's metric;
        it passes at or under the plan's threshold, or when the text is too short to judge by its score."""
        metric, error = error_rate(text, transcript, language)
        short = size(text, language) < MIN_WORDS.get(language, 1)
        return Score(plan.backend, metric, round(error, 4), transcript, short or error <= plan.max_error)

    def score(self, takes: list[tuple[VerifyPlan, str, str, np.ndarray, int]]) -> list[Score]:
        """Score takes given as (plan, spoken text, language, audio, sample rate), batched per backend and
        language; in the order given."""
        t0 = time.monotonic()
        out: list[Score | None] = [None] * len(takes)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (plan, _text, language, _audio, _rate) in enumerate(takes):
            groups.setdefault((plan.backend, language), []).append(i)
        for (name, language), idx in groups.items():
            heard = self._backend(name).transcribe([takes[i][3] for i in idx], [takes[i][4] for i in idx], language)
            for i, transcript in zip(idx, heard, strict=True):
                out[i] = self.judge(takes[i][0], takes[i][1], language, transcript)
        self.add_seconds(time.monotonic() - t0)
        return out  # type: ignore[return-value]

    def close(self) -> None:
        """End the listener (and its child processes), then release the backends."""
        if self._listener is not None:
            self._listener.close()
        for b in self.backends.values():
            b.close()
