"""Batch text-to-speech for long-form audio: chapters in, audiobook files out, resumable.

The library API (`run`, `retry`, `status`, `plan`, `chunks`, `review`, `retake`, `doctor`, `download`,
`waveform`, `import_book`) is what the `batchtts` command calls; every exception it raises on purpose is in
`batchtts.errors`.
"""

__version__ = "0.1.0"

from batchtts.api import (  # noqa: E402
    ChunkFailure,
    ChunkState,
    EnginePlan,
    JobStatus,
    chunks,
    doctor,
    download,
    import_book,
    plan,
    retake,
    retry,
    review,
    run,
    status,
    waveform,
)
from batchtts.errors import (  # noqa: E402
    BatchttsError,
    Busy,
    EnvironmentProblem,
    FailFast,
    InputError,
    Interrupted,
    LedgerUnreadable,
    OptionError,
    PlanError,
)
from batchtts.synthesis.runner import RunSummary  # noqa: E402

__all__ = [
    "BatchttsError",
    "Busy",
    "ChunkFailure",
    "ChunkState",
    "EnginePlan",
    "EnvironmentProblem",
    "FailFast",
    "InputError",
    "Interrupted",
    "JobStatus",
    "LedgerUnreadable",
    "OptionError",
    "PlanError",
    "RunSummary",
    "chunks",
    "doctor",
    "download",
    "import_book",
    "plan",
    "retake",
    "retry",
    "review",
    "run",
    "status",
    "waveform",
]
