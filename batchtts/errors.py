"""Every exception batchtts raises on purpose, each a `BatchttsError` with the exit code cron and Makefiles act on.

Exit codes (documented in the README): 0 all done; 1 chunks failed (`FailFast`, or a run that ends with
failures); 2 bad input (`InputError`, `OptionError`, `PlanError`); 3 the output folder is busy (`Busy`);
4 something outside the input is missing or broken (`EnvironmentProblem`, `LedgerUnreadable`);
128+N stopped by signal N (`Interrupted`). Where a builtin says the same thing, the class is also that
builtin (`InputError` is a `ValueError`), so callers that catch the builtin keep working.
"""

from __future__ import annotations

import signal
from pathlib import Path

EXIT_CHUNKS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BUSY = 3
EXIT_ENVIRONMENT = 4

__all__ = [
    *("EXIT_BAD_INPUT", "EXIT_BUSY", "EXIT_CHUNKS_FAILED", "EXIT_ENVIRONMENT"),
    *("BatchttsError", "Busy", "EnvironmentProblem", "FailFast", "InputError", "Interrupted", "LedgerUnreadable"),
    *("OptionError", "PlanError"),
]


class BatchttsError(Exception):
    """A failure to report as one line, then exit with `exit_code`."""

    exit_code = EXIT_ENVIRONMENT


class InputError(BatchttsError, ValueError):
    """The job file or a file it names is wrong: the user must fix it (exit 2).

    `path`, `line` (1-based, or None) and `field` (e.g. "sampling.temperature", or None) say where;
    the message reads "path:line: field 'f': what is wrong".
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: object, line: int | None, field: str | None, message: str):
        self.path, self.line, self.field, self.message = path, line, field, message
        where = f"{path}:{line}" if line is not None else f"{path}"
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class OptionError(BatchttsError, ValueError):
    """A job asked for a sampling option the engine does not have, or a value outside its range (exit 2).

    Raised by `Engine.resolve_options`; the job loader turns it into an `InputError` naming the job file's
    line. `field` is the option, e.g. "sampling.temperature", or None when the option itself is unknown.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class PlanError(BatchttsError, ValueError):
    """A chunk cannot fit the memory budget even alone (exit 2: raise --kv-budget or shorten the sentence).

    Raised by the planner; `plan` and `run` turn it into an `InputError` naming the job file.
    """

    exit_code = EXIT_BAD_INPUT


class FailFast(BatchttsError):
    """`--fail-fast`: a chunk failed all its attempts, so the run stops there (exit 1); finished chunks are kept."""

    exit_code = EXIT_CHUNKS_FAILED


class Busy(BatchttsError):
    """Another batchtts process holds the output folder's lock (exit 3); try again when it is done."""

    exit_code = EXIT_BUSY


class EnvironmentProblem(BatchttsError):
    """Something outside the input is missing: a program, a model, disk space (exit 4)."""

    exit_code = EXIT_ENVIRONMENT


class LedgerUnreadable(EnvironmentProblem):
    """The ledger file is not a readable SQLite database; the message says how to get out (exit 4)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(
            f"{path} cannot be read ({reason}); move it aside (mv {path} {path}.bad) and run again, which "
            "recovers finished chunks from the chunk store, or run with --fresh to start over"
        )


class Interrupted(BatchttsError):
    """A helper program was stopped by a signal (Ctrl-C reaches the whole process group): exit 128+N."""

    def __init__(self, what: str, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(
            f"{what} was stopped by {signal.Signals(signum).name}; finished chunks are kept. "
            "Run the same command again to resume"
        )
