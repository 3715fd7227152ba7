"""Verification overlapped with synthesis (verify/listen.py): takes reported by the engine as they finish are heard
while the rest are made (pocketsphinx in a child process), with the scores, verdicts and chapter bytes of scoring
each batch after it is made; the child ends with its parent, ignores Ctrl-C, and a dead one is replaced by scoring in
this process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import batchtts
from batchtts.engines.base import SynthRequest, SynthResult
from batchtts.engines.embedded import EmbeddedEngine
from batchtts.state.ledger import Ledger
from batchtts.verify import asr, listen, stage
from batchtts.verify.asr import backend_class
from batchtts.verify.asr.base import AsrBackend
from batchtts.verify.stage import Verifier, VerifyPlan
from tests.conftest import HANG_GUARD_S, wait_for, write_jobs
from tests.fakes import ToneEngine

TEXT = (
    "The lamp was lit at six every evening. Nobody came to the island that winter. "
    "Mara kept a log of every ship that passed. The storm began quietly, with a change in the wind."
)
PLAN = VerifyPlan("pocketsphinx", 0.85, 2)


@pytest.fixture(scope="module")
def embedded():
    engine = EmbeddedEngine.load(threads=2)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def takes(embedded) -> list[tuple[str, SynthResult]]:
    texts = [s.strip() + "." for s in TEXT.split(".") if s.strip()]
    opts = dict(EmbeddedEngine.option_defaults)
    made = embedded.synthesize([SynthRequest(f"k{i}", t, "en", 7 + i, opts) for i, t in enumerate(texts)], {})
    return list(zip(texts, made, strict=True))


def _verdicts(out: Path) -> dict:
    ledger = Ledger(out / ".batchtts" / "ledger.sqlite")
    try:
        return ledger.verdicts([k for (k,) in ledger.db.execute("SELECT key FROM audio")])
    finally:
        ledger.close()


def _gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.slow
def test_an_overlapped_run_gives_the_verdicts_and_chapter_bytes_of_serial_scoring(tmp_path, monkeypatch):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": "ch", "language": "en", "output": "ch.wav", "text": TEXT,
          "verify": {"asr": "pocketsphinx", "max_error": 0.3, "retakes": 1}}],
    )  # fmt: skip
    monkeypatch.setenv("BATCHTTS_VERIFY_SERIAL", "1")
    serial = batchtts.run(jobs, out=tmp_path / "serial", progress=False)

    submitters: list[str] = []
    children: list[listen.AsrChild] = []

    class Spy(listen.Listener):
        def submit(self, takes):
            submitters.extend(threading.current_thread().name for _ in takes)
            super().submit(takes)

    class Child(listen.AsrChild):
        def __init__(self, name):
            super().__init__(name)
            children.append(self)

    monkeypatch.delenv("BATCHTTS_VERIFY_SERIAL")
    monkeypatch.setattr(stage, "Listener", Spy)
    monkeypatch.setattr(listen, "AsrChild", Child)
    overlapped = batchtts.run(jobs, out=tmp_path / "overlapped", progress=False)

    assert serial.stats.verified == overlapped.stats.verified == 4
    assert serial.stats.retaken == overlapped.stats.retaken
    assert _verdicts(tmp_path / "serial") == _verdicts(tmp_path / "overlapped")
    assert (tmp_path / "serial" / "ch.wav").read_bytes() == (tmp_path / "overlapped" / "ch.wav").read_bytes()
    # Heard while the batch was being made: submitted from Piper's threads, decoded in one child, ended with the run.
    assert any(name.startswith("piper") for name in submitters)
    assert len(children) == 1 and children[0].proc.poll() == 0


def test_the_listener_scores_as_verifier_score_does_whatever_the_order(takes):
    items = [(i, PLAN, text, "en", take.audio, take.sample_rate) for i, (text, take) in enumerate(takes)]
    serial = Verifier({}, serial=True)
    expected = serial.score([item[1:] for item in items])
    verifier = Verifier({})
    try:
        listener = verifier.listener()
        listener.submit(items[::-1][:2])  # out of order, and some only at collect
        got = listener.collect(items)
        assert [got[i] for i in range(len(items))] == expected
        assert set(verifier.backends) == set() and verifier.seconds > 0  # heard in the child, not here
        (child,) = listener.children.values()
        os.kill(child.proc.pid, signal.SIGINT)  # Ctrl-C reaches the process group: the parent decides
        os.kill(child.proc.pid, signal.SIGTERM)  # as does a service manager's stop
        assert listener.collect(items[:1]) == {0: expected[0]} and child.proc.poll() is None
    finally:
        verifier.close()
    assert child.proc.returncode == 0  # EOF on stdin: it exited by itself


def test_a_dead_child_is_said_once_and_its_takes_are_scored_in_this_process(takes, caplog):
    items = [(i, PLAN, text, "en", take.audio, take.sample_rate) for i, (text, take) in enumerate(takes)]
    expected = Verifier({}, serial=True).score([item[1:] for item in items])
    verifier = Verifier({})
    try:
        listener = verifier.listener()
        assert listener.collect(items[:1]) == {0: expected[0]}
        (child,) = listener.children.values()
        child.proc.kill()
        child.proc.wait()
        got = listener.collect(items[1:])
        assert [got[i] for i in range(1, len(items))] == expected[1:]
        assert "pocketsphinx" in verifier.backends and not listener.children
        said = [r.message for r in caplog.records if "child process" in r.message]
        assert len(said) == 1 and "exit code -9" in said[0] and "scored in this process" in said[0]
    finally:
        verifier.close()


def test_the_child_exits_when_its_parent_is_killed(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", "import sys; from batchtts.verify.listen import AsrChild; "
         "c = AsrChild('pocketsphinx'); print(c.proc.pid, flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        pid = int(parent.stdout.readline())
        assert not _gone(pid)
    finally:
        parent.kill()
        parent.wait(timeout=HANG_GUARD_S)
    wait_for(lambda: _gone(pid), f"the exit of ASR child {pid} after its parent was killed")


def test_the_embedded_engine_reports_every_take_once_from_the_thread_that_made_it(embedded):
    reqs = [
        SynthRequest("a", "The lamp was lit at six.", "en", 1),
        SynthRequest("b", "She climbed the stair.", "en", 2),
        SynthRequest("c", "He said 你好 and left.", "en", 3),  # a Mandarin run: reported at the end
        SynthRequest("d", "Nobody came to the island that winter.", "en", 4),
    ]
    reqs = [SynthRequest(r.key, r.text, r.language, r.seed, dict(EmbeddedEngine.option_defaults)) for r in reqs]
    reported: list[tuple[int, SynthResult, str]] = []
    lock = threading.Lock()

    def on_results(done):
        with lock:
            reported.extend((i, r, threading.current_thread().name) for i, r in done)

    made = embedded.synthesize(reqs, {}, on_results=on_results)
    plain = embedded.synthesize(reqs, {})
    assert sorted(i for i, _, _ in reported) == [0, 1, 2, 3]
    for i, result, thread in reported:
        assert result is made[i] and np.array_equal(result.audio, plain[i].audio)
        assert result.tokens == plain[i].tokens and thread.startswith("piper" if i != 2 else "MainThread")


class ToneAsr(AsrBackend):
    """Hears a tone as the text its engine (StreamingTones) recorded for that exact audio; stands in for
    pocketsphinx (a job names only the built-in backends), in this process."""

    name = "pocketsphinx"
    languages = ("en",)
    heard: dict[bytes, str] = {}

    @classmethod
    def load(cls, device="cpu"):
        return cls()

    def transcribe(self, audio, sample_rate, language):
        return [self.heard[np.asarray(a).tobytes()] for a in audio]


class StreamingTones(ToneEngine):
    """A call of more than one request reports its takes (heard as babble), then fails; a call of one returns its
    take without reporting it. Only the takes of the one-at-a-time calls may be scored: the reported ones of the
    same chunks were thrown away."""

    name = "streaming-tones"
    speaks = True
    streams_results = True

    def synthesize(self, requests, voice, on_results=None):
        made = super().synthesize(requests, voice)
        for r, take in zip(requests, made, strict=True):
            ToneAsr.heard[take.audio.tobytes()] = r.text if len(requests) == 1 else "babble babble babble"
        if len(requests) > 1:
            on_results([(i, take) for i, take in enumerate(made)])
            raise RuntimeError("the batch failed after its takes were reported")
        return made


def test_takes_reported_by_a_call_that_failed_are_never_the_ones_scored(tmp_path, bind_engine, tone, monkeypatch):
    monkeypatch.setitem(asr._registered, "pocketsphinx", ToneAsr)
    bind_engine(StreamingTones)
    assert backend_class("pocketsphinx") is ToneAsr
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [{"id": "t", "engine": "streaming-tones", "language": "en", "output": "t.wav",
          "text": "The lamp was lit at six. She climbed the stair alone. Nobody came that winter.",
          "verify": {"asr": "pocketsphinx", "max_error": 0.0, "retakes": 2}}],
    )  # fmt: skip
    summary = batchtts.run(jobs, out=tmp_path / "out", progress=False)
    assert [len(c) for c in tone.calls] == [3, 1, 1, 1]  # the batch, then each chunk alone
    verdicts = _verdicts(tmp_path / "out")
    assert len(verdicts) == 3 and summary.stats.retaken == 0 and not summary.flagged
    assert all(v.error == 0.0 and v.takes == 1 and "babble" not in v.transcript for v in verdicts.values())


def test_the_child_protocol_answers_each_request_and_a_bad_one_with_an_error_line():
    import io

    from batchtts.verify.asr.child import serve
    from batchtts.verify.asr.frames import receive, send
    from batchtts.verify.asr.pocketsphinx import PocketsphinxBackend

    silence = PocketsphinxBackend.payload(np.zeros(8000, np.float32), 16000)
    requests = io.BytesIO()
    send(requests, b"en", silence)
    send(requests, b"en")  # a frame missing its payload
    send(requests, b"en", silence)
    replies = io.BytesIO()
    serve("pocketsphinx", io.BytesIO(requests.getvalue()), replies)
    replies.seek(0)
    first, bad, last = receive(replies), receive(replies), receive(replies)
    assert first == last and first[0] == b"ok" and receive(replies) is None
    assert bad[0] == b"error" and bad[1].startswith(b"ValueError")
