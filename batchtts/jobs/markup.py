"""The inline syntax of a job's text: `[pause:N]` markers, scene and verse-line markers, and what counts as
speakable.

Part of the job-file format, so the job parser can check a job's text without the text stage.
"""

from __future__ import annotations

import re

PAUSE_MARKER_RE = re.compile(r"\[pause:\s*(\d+(?:\.\d+)?)\s*s?\]\s*", re.IGNORECASE)
_SPEAKABLE_RE = re.compile(r"[^\W_]")

# A scene break: this marker alone on a line (a paragraph of its own). `batchtts import` writes it for `* * *`, `⁂`,
# `<hr/>` and the like; the splitter turns it, or such a line in a job's own text, into a `scene` pause (the job's
# `pauses.scene`), never read aloud.
SCENE_MARKER = "[scene]"
# A verse line break: written after each line of a stanza but the last. The splitter gives it the `line` pause
# (`pauses.line`) and invents no sentence-final stop there.
LINE_MARKER = "[line]"

# A scene break as a line of its own: the marker, or what books print for one (`* * *`, `***`, `⁂`, `#`, `~~~`,
# `——`, `o o o`).
SCENE_LINE_RE = re.compile(
    r"^[^\S\n]*(?:"
    + re.escape(SCENE_MARKER)
    + r"|(?:\*[^\S\n]*){3,}|⁂|#{1,3}|~{3,}|—{2,}|-{3,}|(?:[oO·•][^\S\n]*){3})[^\S\n]*$",
    re.MULTILINE,
)
_LINE_MARKER_RE = re.compile(re.escape(LINE_MARKER) + r"[^\S\n]*")


def strip_markers(text: str, keep_lines: bool = False) -> str:
    """`text` with every `[pause:N]` and `[scene]` marker (and, unless `keep_lines`, every `[line]` marker)
    replaced by one space."""
    text = PAUSE_MARKER_RE.sub(" ", text).replace(SCENE_MARKER, " ")
    return text if keep_lines else _LINE_MARKER_RE.sub(" ", text)


def speakable(text: str) -> int:
    """Letters and digits in any script: what an engine can actually say (markers are not)."""
    return len(_SPEAKABLE_RE.findall(strip_markers(text)))
