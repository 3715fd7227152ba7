"""An ASR backend in a child process of its own: `python -m batchtts.verify.asr.child NAME`.

For a CPU backend that holds the GIL while it decodes (pocketsphinx: measured, a Python thread beside it is
starved), a thread cannot overlap it with synthesis; a process can. verify/listen.py starts one per worker.

Protocol over the child's stdin and stdout, one request at a time: a frame is a little-endian u32 count of parts,
then per part a u32 byte length and the bytes. Request: [language (UTF-8), payload (`AsrBackend.payload`)];
reply: [b"ok", transcript (UTF-8)] or [b"error", one line]. Nothing else is written to stdout (the child's
fd 1 is its stderr from the start, so a library's print cannot corrupt the stream).

The child ends by itself when the parent goes: EOF on stdin (the parent exited, was killed, or closed the pipe).
It ignores SIGINT and SIGTERM: Ctrl-C (or a service manager's SIGTERM) reaches the whole process group, and the
parent's interrupt handling (state/interrupt.py) decides when its workers stop: after the current batch, which
still needs its takes heard; the parent closes the pipe then, or exits and so closes it.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from typing import BinaryIO

_U32 = struct.Struct("<I")


def send(stream: BinaryIO, *parts: bytes) -> None:
    """Write one frame of `parts` and flush."""
    stream.write(_U32.pack(len(parts)) + b"".join(_U32.pack(len(p)) + p for p in parts))
    stream.flush()


def _exactly(stream: BinaryIO, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            return None
        data += more
    return bytes(data)


def receive(stream: BinaryIO) -> list[bytes] | None:
    """The next frame's parts, or None at EOF (also in the middle of a frame: the writer is gone)."""
    head = _exactly(stream, 4)
    if head is None:
        return None
    parts = []
    for _ in range(_U32.unpack(head)[0]):
        size = _exactly(stream, 4)
        part = _exactly(stream, _U32.unpack(size)[0]) if size is not None else None
        if part is None:
            return None
        parts.append(part)
    return parts


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


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the reply stream
    try:
        serve(sys.argv[1], sys.stdin.buffer, replies)
    except BrokenPipeError:  # the parent went while a reply was being written
        pass


if __name__ == "__main__":
    main()
