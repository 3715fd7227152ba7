"""Errors that end a run, each with the exit code cron and Makefiles can act on."""

from __future__ import annotations

EXIT_CHUNKS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BUSY = 3
EXIT_ENVIRONMENT = 4


class BatchttsError(Exception):
    """A failure to report as one line, then exit with `exit_code`."""

    exit_code = EXIT_ENVIRONMENT


class InputError(BatchttsError):
    """The job file or a file it names is wrong: the user must fix it."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: object, line: int | None, field: str | None, message: str):
        self.path, self.line, self.field, self.message = path, line, field, message
        where = f"{path}:{line}" if line is not None else f"{path}"
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class EnvironmentProblem(BatchttsError):
    """Something outside the input is missing: a program, a model, disk space."""

    exit_code = EXIT_ENVIRONMENT
