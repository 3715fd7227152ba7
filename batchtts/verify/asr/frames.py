"""Frames between a worker and its ASR child process (child.py): a little-endian u32 count of parts, then per part
a u32 byte length and the bytes. Its own module, so the parent never imports the module the child runs as __main__."""

from __future__ import annotations

import struct
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
