"""Batch text-to-speech for long-form audio: chapters in, audiobook files out, resumable.

The library API (`run`, `retry`, `status`, `plan`, `chunks`, `review`, `retake`) is what the `batchtts` command calls.
"""

__version__ = "0.1.0"

from batchtts.api import (  # noqa: E402
    ChunkFailure,
    ChunkState,
    EnginePlan,
    JobStatus,
    chunks,
    plan,
    retake,
    retry,
    review,
    run,
    status,
)
from batchtts.errors import BatchttsError, EnvironmentProblem, InputError  # noqa: E402
from batchtts.synthesis.runner import RunSummary  # noqa: E402

__all__ = [
    "BatchttsError",
    "ChunkFailure",
    "ChunkState",
    "EnginePlan",
    "EnvironmentProblem",
    "InputError",
    "JobStatus",
    "RunSummary",
    "chunks",
    "plan",
    "retake",
    "retry",
    "review",
    "run",
    "status",
]
