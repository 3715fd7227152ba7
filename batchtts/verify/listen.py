"""Takes heard while the engine makes others: verification overlapped with synthesis.

A worker `submit`s each take that passed the quality checks as soon as its engine reports it (an engine that
`streams_results`), and `collect`s the scores once the engine call returns. Each backend runs where it overlaps:

- a CPU backend that holds the GIL (`AsrBackend.in_child`: pocketsphinx) in ONE long-lived child process per
  worker (verify/asr/child.py), started on the first take and fed by one thread of the listener, so synthesis
  threads keep running while it decodes;
- any other (Whisper) in the thread that submits: for GLM-TTS that is its audio worker, which hands over the rows
  of each flow-and-vocoder batch at once, so Whisper transcribes them as one batch while the LLM keeps decoding
  (one such batch at a time: the embedded engine's threads report one take each, and take turns).

Scores are those `Verifier.score` gives for the same takes (the same backend code, the same judging), whatever
the order takes arrive in: a backend's transcript depends on the take alone. A child process that dies is said
once (a warning naming its exit code) and its takes, that one included, are then scored in this process: slower,
never different. With BATCHTTS_VERIFY_SERIAL=1 everything is scored in `collect`, in this process.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from batchtts.errors import EnvironmentProblem
from batchtts.verify.asr import backend_class
from batchtts.verify.asr.frames import receive, send

if TYPE_CHECKING:  # stage.py imports this module
    from batchtts.verify.stage import Score, Verifier, VerifyPlan

log = logging.getLogger("batchtts")

#: (key, plan, spoken text, language, audio float32 mono, sample rate): one take to score; keys are the caller's.
Take = tuple[Hashable, "VerifyPlan", str, str, np.ndarray, int]
# `python -c BOOT PACKAGE_DIR NAME`: `batchtts` as a bare package (its __init__ not run), then child.py's `main`.
BOOT = (
    "import sys, types; pkg = types.ModuleType('batchtts'); pkg.__path__ = [sys.argv[1]]; "
    "sys.modules['batchtts'] = pkg; from batchtts.verify.asr.child import main; main(sys.argv[2])"
)
CLOSE_GUARD_S = 60  # seconds a closing child may take to see EOF and exit before it is killed (a hang guard)


class AsrChild:
    """One backend in a child process (verify/asr/child.py, started with its BOOT), one request at a time."""

    def __init__(self, name: str):
        self.name = name
        package = str(Path(__file__).resolve().parents[1])  # this batchtts, from a checkout or site-packages
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BOOT, package, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def transcribe(self, language: str, payload: bytes) -> str | None:
        """The child's transcript of one payload; None if it is not there to answer (`ended` says why);
        EnvironmentProblem if it answered with an error (the backend failed on the take)."""
        try:
            send(self.proc.stdin, language.encode(), payload)
            reply = receive(self.proc.stdout)
        except (BrokenPipeError, ConnectionError, ValueError):  # ValueError: the pipe was closed here
            reply = None
        if reply is None:
            return None
        status, text = reply
        if status != b"ok":
            raise EnvironmentProblem(f"ASR backend '{self.name}' failed in its child process: {text.decode()}")
        return text.decode()

    def ended(self) -> str:
        """Why a child that did not answer is gone (it is reaped here)."""
        return f"the {self.name} ASR child process (pid {self.proc.pid}) ended with exit code {self.proc.wait()}"

    def close(self) -> None:
        """Close its stdin (EOF: it exits by itself); kill it only if it does not within CLOSE_GUARD_S."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=CLOSE_GUARD_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Listener:
    """Scores a worker's takes as they are submitted, on the backends' own threads or processes (module doc)."""

    def __init__(self, verifier: Verifier, serial: bool = False):
        self.verifier, self.serial = verifier, serial
        self.cond = threading.Condition()
        self.near = threading.Lock()  # one in-thread batch at a time: a model's memory reserve is for one batch
        self.queue: list[Take] = []  # for child processes, in submission order
        self.submitted: set[Hashable] = set()
        self.scores: dict[Hashable, Score] = {}
        self.busy = 0  # queued or being heard by a child
        self.error: BaseException | None = None
        self.children: dict[str, AsrChild] = {}
        self.fallen: set[str] = set()  # backends whose child died: scored in this process since
        self.thread: threading.Thread | None = None
        self.closed = False

    def _far(self, take: Take) -> bool:
        return not self.serial and backend_class(take[1].backend).in_child

    def submit(self, takes: list[Take]) -> None:
        """Start scoring `takes` (each key once): queued for a child process, or scored now in this thread (Whisper:
        one batch per backend and language). Never raises: an error is raised by `collect`. Any thread."""
        takes = [t for t in takes if t[0] not in self.submitted]
        far = [t for t in takes if self._far(t)]
        near = [t for t in takes if not self._far(t)]
        with self.cond:
            self.submitted.update(t[0] for t in takes)
            if far:
                self.queue += far
                self.busy += len(far)
                if self.thread is None:
                    self.thread = threading.Thread(target=self._serve, name="batchtts-listen", daemon=True)
                    self.thread.start()
                self.cond.notify_all()
        if near:
            try:
                with self.near:
                    scores = self.verifier.score([t[1:] for t in near])
            except BaseException as exc:  # noqa: BLE001 - raised in collect, on the worker's thread
                with self.cond:
                    self.error = self.error or exc
                    self.cond.notify_all()
                return
            with self.cond:
                self.scores.update(zip((t[0] for t in near), scores, strict=True))
                self.cond.notify_all()

    def collect(self, takes: list[Take]) -> dict[Hashable, Score]:
        """Scores of `takes` by key, once every take submitted so far is scored (those of `takes` never submitted
        are scored now). Forgets everything submitted: keys of takes the caller threw away are not kept. Raises
        what a backend raised."""
        self.submit(takes)
        with self.cond:
            self.cond.wait_for(lambda: self.busy == 0 or self.error is not None)
            error, self.error = self.error, None
            scores, self.scores = self.scores, {}
            self.submitted.clear()
            if error is not None:
                self.queue, self.busy = [], 0  # the batch fails as a whole; its queued takes are dropped
        if error is not None:
            raise error
        return {t[0]: scores[t[0]] for t in takes}

    def _serve(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.queue or self.closed)
                if self.closed:
                    return
                take = self.queue.pop(0)
            try:
                score = self._hear(take)
            except BaseException as exc:  # noqa: BLE001 - raised in collect
                with self.cond:
                    self.error = self.error or exc
                    self.busy = max(0, self.busy - 1)
                    self.cond.notify_all()
                continue
            with self.cond:
                if take[0] in self.submitted:  # else collected after an error, or forgotten
                    self.scores[take[0]] = score
                self.busy = max(0, self.busy - 1)
                self.cond.notify_all()

    def _hear(self, take: Take) -> Score:
        """One take through its backend's child process (or this process, once that child has died)."""
        _, plan, text, language, audio, rate = take
        name = plan.backend
        if name in self.fallen:
            return self.verifier.score([take[1:]])[0]
        t0 = time.monotonic()
        if name not in self.children:
            self.children[name] = AsrChild(name)
        transcript = self.children[name].transcribe(language, backend_class(name).payload(audio, rate))
        if transcript is None:
            why = self.children[name].ended()
            log.warning("%s; its takes are scored in this process from now on (slower, same scores)", why)
            self.fallen.add(name)
            self.children.pop(name).close()
            return self.verifier.score([take[1:]])[0]
        self.verifier.add_seconds(time.monotonic() - t0)
        return self.verifier.judge(plan, text, language, transcript)

    def close(self) -> None:
        """Stop the listening thread (after the take it is hearing) and end the child processes."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join()
        for child in self.children.values():
            child.close()
        self.children.clear()
