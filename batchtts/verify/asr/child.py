"""An ASR backend in a child process of its own: `python -m batchtts.verify.asr.child NAME`.

For a CPU backend that holds the GIL while it decodes (pocketsphinx: measured, a Python thread beside it is
starved), a thread cannot overlap it with synthesis; a process can. verify/listen.py starts one per worker (its
BOOT runs `main` without batchtts/__init__.py: the library API imports ~1100 modules, 1.4 s and ~100 MB the child
does not need).

Protocol over the child's stdin and stdout, one request at a time, in frames (frames.py). Request: [language
(UTF-8), payload (`AsrBackend.payload`)]; reply: [b"ok", transcript (UTF-8)] or [b"error", one line]. Nothing else
is written to stdout (the child's fd 1 is its stderr from the start, so a library's print cannot corrupt it).

The child ends by itself when the parent goes: EOF on stdin (the parent exited, was killed, or closed the pipe).
It ignores SIGINT and SIGTERM: Ctrl-C (or a service manager's SIGTERM) reaches the whole process group, and the
parent's interrupt handling (state/interrupt.py) decides when its workers stop: after the current batch, which
still needs its takes heard; the parent closes the pipe then, or exits and so closes it.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import BinaryIO

from batchtts.verify.asr.frames import receive, send


def serve(name: str, requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests for backend `name` until EOF on `requests`."""
    from batchtts.verify.asr import backend_class

    backend = backend_class(name).load("cpu")
    try:
        while (frame := receive(requests)) is not None:
            try:
                language, payload = frame
                reply = [b"ok", backend.transcribe_payload(payload, language.decode()).encode()]
            except Exception as exc:  # noqa: BLE001 - one bad request is the parent's to report
                reply = [b"error", f"{type(exc).__name__}: {exc}".encode()]
            send(replies, *reply)
    finally:
        backend.close()


def main(name: str | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the reply stream
    try:
        serve(name or sys.argv[1], sys.stdin.buffer, replies)
    except BrokenPipeError:  # the parent went while a reply was being written
        pass


if __name__ == "__main__":
    main()
