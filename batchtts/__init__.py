"""Batch text-to-speech for long-form audio: chapters in, audiobook files out, resumable.

The library API (`run`, `retry`, `status`, `plan`, `chunks`) is what the `batchtts` command calls.
"""

__version__ = "0.1.0"

from batchtts.api import ChunkFailure, EnginePlan, JobStatus, chunks, plan, retry, run, status  # noqa: E402
from batchtts.errors import BatchttsError, EnvironmentProblem, InputError  # noqa: E402
from batchtts.synthesis.runner import RunSummary  # noqa: E402

__all__ = [
    "BatchttsError",
    "ChunkFailure",
    "EnginePlan",
    "EnvironmentProblem",
    "InputError",
    "JobStatus",
    "RunSummary",
    "chunks",
    "plan",
    "retry",
    "run",
    "status",
]
