"""A job's text: read from disk safely and cleaned of what no engine should see."""

from __future__ import annotations

import codecs
import html
import re
import unicodedata
from pathlib import Path

from batchtts.jobs.types import Source

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


def normalize_text(text: str) -> str:
    """What any text source may carry but no engine should see: HTML entities, control and zero-width
    characters, Windows line ends, decomposed accents."""
    if _ENTITY_RE.search(text):
        text = html.unescape(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", _CONTROL_RE.sub(" ", text))
