"""The checkpoint log: SQLite in WAL mode beside the outputs.

Synthesis state is kept per content key (table `audio`), chapter layout per job (table `chunks`),
so editing one sentence changes one key and leaves every other finished chunk in place.

The schema is versioned with `PRAGMA user_version`: version 0 is the unversioned schema of the first
releases (`_SCHEMA`, still created as is), and each later version is one step in `_MIGRATIONS`, applied in
order in its own transaction when a ledger is opened. A ledger from a newer batchtts is refused.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from batchtts.errors import EnvironmentProblem, LedgerUnreadable
from batchtts.state.store import ChunkStore, StoredAudio, digest, unchanged

log = logging.getLogger("batchtts")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL DEFAULT 'running', job_file TEXT, summary TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, job_file TEXT NOT NULL, output TEXT NOT NULL, n_chunks INTEGER NOT NULL,
    stitched_sig TEXT, stitched_at REAL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    job_id TEXT NOT NULL, idx INTEGER NOT NULL, key TEXT NOT NULL, text TEXT NOT NULL,
    brk TEXT NOT NULL, PRIMARY KEY (job_id, idx)
);
CREATE INDEX IF NOT EXISTS chunks_key ON chunks(key);
CREATE TABLE IF NOT EXISTS books (book TEXT PRIMARY KEY, sig TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, nbytes INTEGER NOT NULL, sha256 TEXT NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audio (
    key TEXT PRIMARY KEY, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, path TEXT,
    duration REAL, nbytes INTEGER, sha256 TEXT, error TEXT, run_id INTEGER, updated REAL NOT NULL
);
"""

# One step per version: _MIGRATIONS[n] takes a ledger from version n to n + 1. Never edit a released step.
_MIGRATIONS = (
    # 1: ASR verification (issue 24): per take its score, transcript, number of takes and flag; and the
    # take number a listener gave a chunk position with `batchtts retake`.
    """
    ALTER TABLE audio ADD COLUMN takes INTEGER;
    ALTER TABLE audio ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE audio ADD COLUMN asr_backend TEXT;
    ALTER TABLE audio ADD COLUMN asr_metric TEXT;
    ALTER TABLE audio ADD COLUMN asr_error REAL;
    ALTER TABLE audio ADD COLUMN transcript TEXT;
    CREATE TABLE IF NOT EXISTS retakes (
        job_id TEXT NOT NULL, idx INTEGER NOT NULL, take INTEGER NOT NULL, updated REAL NOT NULL,
        PRIMARY KEY (job_id, idx)
    );
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)

DONE, FAILED = "done", "failed"


@dataclass(frozen=True)
class Verdict:
    """What verification said about the take that was kept (stored per key beside its audio).

    `error`: WER (English) or CER (Chinese) of the transcript against the spoken text, 0 = every word heard;
    None when no backend checked it (`backend` is then "none"). `takes`: takes synthesised for this chunk in
    the run that kept it, the kept one included. `flagged`: no take passed its threshold; the best is kept.
    """

    backend: str
    metric: str | None = None  # "wer" | "cer"
    error: float | None = None
    transcript: str | None = None
    takes: int = 1
    flagged: bool = False


@dataclass(frozen=True)
class DoneChunk:
    key: str
    nbytes: int
    sha256: str
    duration: float
    updated: float  # when the ledger recorded it (time.time()); the file's mtime is older unless it was replaced


def ledger_problem(path: Path) -> str | None:
    """Why the ledger at `path` cannot be used (not a database, damaged), or None; it is opened read-only."""
    path = Path(path)
    if path.is_symlink():
        return "it is a symbolic link"
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "unable to open" in str(exc):
            return None  # busy or unreadable for other reasons: the writer reports those as it always did
        return str(exc)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    if rows != [("ok",)]:
        return "damaged: " + "; ".join(str(r[0]) for r in rows[:3])
    return None


def read_take_numbers(path: Path) -> dict[str, dict[int, int]]:
    """Job id -> {chunk position: take number} given by `batchtts retake`, read without writing (no ledger,
    or one from before version 1: none)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return {}
    try:  # a damaged ledger is the run's to report (ledger_problem); here it only means no take numbers
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = db.execute("SELECT job_id, idx, take FROM retakes").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError:  # also OperationalError: no retakes table (before version 1), busy, unreadable
        return {}
    out: dict[str, dict[int, int]] = {}
    for job_id, idx, take in rows:
        out.setdefault(job_id, {})[idx] = take
    return out


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        problem = ledger_problem(self.path)
        if problem:
            raise LedgerUnreadable(self.path, problem)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._created = not self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]  # not upgraded
            self.db.executescript(_SCHEMA)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "full" in str(exc)):
                raise
            raise LedgerUnreadable(self.path, str(exc)) from None

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION, one step per version, each step and its version bump atomic."""
        version = self.version()
        if version > SCHEMA_VERSION:
            raise EnvironmentProblem(
                f"{self.path} was written by a newer batchtts (ledger version {version}; this one reads up to "
                f"{SCHEMA_VERSION}): upgrade batchtts, or use another --out"
            )
        for step in range(version, SCHEMA_VERSION):
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                if self.version() != step:
                    continue  # another process migrated it while this one waited for the write lock
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {step + 1}")
            if not self._created:
                log.info("ledger %s upgraded to version %d", self.path, step + 1)

    def version(self) -> int:
        """The schema version (PRAGMA user_version)."""
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def recover_from(self, store: ChunkStore, keys: Iterable[str]) -> int:
        """Mark done every chunk the ledger does not call done whose stored file proves its key.

        An emptied or replaced ledger then costs no synthesis: chunk files are written (atomically)
        before the ledger marks them, and each carries a tag that verifies its key and samples.
        """
        keys = set(keys)
        missing = keys - set(self.done_chunks(keys))
        found = {k: s for k in sorted(missing) if (s := store.proven(k)) is not None}
        if found:
            self.mark_done(None, found)
            log.info("recovered %d finished chunks from the chunk store (the ledger did not list them)", len(found))
        return len(found)

    def job_files(self) -> dict[str, str]:
        """The job file each job id was last run from."""
        return dict(self.db.execute("SELECT job_id, job_file FROM jobs").fetchall())

    def close(self) -> None:
        self.db.close()

    def start_run(self, job_file: Path) -> int:
        cur = self.db.execute("INSERT INTO runs(started, job_file) VALUES (?, ?)", (time.time(), str(job_file)))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str, summary: dict) -> None:
        self.db.execute(
            "UPDATE runs SET finished=?, status=?, summary=? WHERE id=?",
            (time.time(), status, json.dumps(summary), run_id),
        )

    def set_layout(self, job_id: str, job_file: Path, output: Path, rows: Iterable[tuple[int, str, str, str]]) -> None:
        """Record a job's chunks (idx, key, text, brk); replaces an older layout in one transaction."""
        rows = list(rows)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            old = self.db.execute("SELECT idx, key, brk FROM chunks WHERE job_id=? ORDER BY idx", (job_id,)).fetchall()
            if old != [(i, k, b) for i, k, _, b in rows]:
                self.db.execute("DELETE FROM chunks WHERE job_id=?", (job_id,))
                self.db.executemany(
                    "INSERT INTO chunks(job_id, idx, key, text, brk) VALUES (?,?,?,?,?)",
                    [(job_id, *row) for row in rows],
                )
                self.db.execute("UPDATE jobs SET stitched_sig=NULL WHERE job_id=?", (job_id,))
            self.db.execute(
                "INSERT INTO jobs(job_id, job_file, output, n_chunks, updated) VALUES (?,?,?,?,?) "
                "ON CONFLICT(job_id) DO UPDATE SET job_file=excluded.job_file, output=excluded.output, "
                "n_chunks=excluded.n_chunks, updated=excluded.updated",
                (job_id, str(job_file), str(output), len(rows), time.time()),
            )

    def _by_key(self, columns: str, state: str, keys: Iterable[str]) -> list[tuple]:
        """Rows of `audio` in `state` for these keys, queried in slices (SQLite caps bound parameters)."""
        keys = list(set(keys))
        rows: list[tuple] = []
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            q = f"SELECT key, {columns} FROM audio WHERE state=? AND key IN ({','.join('?' * len(part))})"
            rows += self.db.execute(q, [state, *part]).fetchall()
        return rows

    def done_chunks(self, keys: Iterable[str]) -> dict[str, DoneChunk]:
        return {r[0]: DoneChunk(*r) for r in self._by_key("nbytes, sha256, duration, updated", DONE, keys)}

    def failed_attempts(self, keys: Iterable[str]) -> dict[str, int]:
        """Failed chunks and how many attempts they have had (retries continue with new seeds)."""
        return dict(self._by_key("attempts", FAILED, keys))

    def failures(self, keys: Iterable[str]) -> dict[str, str]:
        return dict(self._by_key("error", FAILED, keys))

    def mark_done(
        self, run_id: int | None, stored: dict[str, StoredAudio], verdicts: dict[str, Verdict] | None = None
    ) -> None:
        """Mark a whole batch done in one transaction, after its audio files are safely on disk, with what
        verification said of each kept take (none: not verified, e.g. recovered from the chunk store)."""
        now = time.time()
        verdicts = verdicts or {}
        rows = []
        for k, s in stored.items():
            v = verdicts.get(k)
            asr = (v.takes, int(v.flagged), v.backend, v.metric, v.error, v.transcript) if v else (None, 0, *[None] * 4)
            rows.append((k, DONE, str(s.path), s.duration, s.nbytes, s.sha256, run_id, now, *asr))
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO audio(key, state, attempts, path, duration, nbytes, sha256, error, run_id, updated, "
                "takes, flagged, asr_backend, asr_metric, asr_error, transcript) "
                "VALUES (?, ?, 1, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "state=excluded.state, attempts=audio.attempts+1, path=excluded.path, duration=excluded.duration, "
                "nbytes=excluded.nbytes, sha256=excluded.sha256, error=NULL, run_id=excluded.run_id, "
                "updated=excluded.updated, takes=excluded.takes, flagged=excluded.flagged, "
                "asr_backend=excluded.asr_backend, asr_metric=excluded.asr_metric, asr_error=excluded.asr_error, "
                "transcript=excluded.transcript",
                rows,
            )

    def verdicts(self, keys: Iterable[str]) -> dict[str, Verdict]:
        """What verification said of each done key that was verified (or skipped), by key."""
        cols = "asr_backend, asr_metric, asr_error, transcript, takes, flagged"
        return {
            r[0]: Verdict(r[1], r[2], r[3], r[4], r[5] or 1, bool(r[6]))
            for r in self._by_key(cols, DONE, keys)
            if r[1] is not None
        }

    def attempts(self, keys: Iterable[str]) -> dict[str, int]:
        """Synthesis attempts recorded per key, whatever its state."""
        keys = list(set(keys))
        rows: list[tuple] = []
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            q = f"SELECT key, attempts FROM audio WHERE key IN ({','.join('?' * len(part))})"
            rows += self.db.execute(q, part).fetchall()
        return dict(rows)

    def take_numbers(self, job_id: str) -> dict[int, int]:
        """Chunk position -> take number a listener asked for with `batchtts retake` (absent: take 0)."""
        return dict(self.db.execute("SELECT idx, take FROM retakes WHERE job_id=?", (job_id,)).fetchall())

    def set_take(self, job_id: str, index: int, take: int) -> None:
        self.db.execute(
            "INSERT INTO retakes(job_id, idx, take, updated) VALUES (?, ?, ?, ?) ON CONFLICT(job_id, idx) "
            "DO UPDATE SET take=excluded.take, updated=excluded.updated",
            (job_id, index, take, time.time()),
        )

    def mark_failed(self, run_id: int, key: str, error: str, tries: int = 1) -> None:
        self.db.execute(
            "INSERT INTO audio(key, state, attempts, error, run_id, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET state=excluded.state, attempts=audio.attempts+excluded.attempts, "
            "error=excluded.error, run_id=excluded.run_id, updated=excluded.updated",
            (key, FAILED, tries, error, run_id, time.time()),
        )

    def mark_stitched(self, job_id: str, signature: str) -> None:
        self.db.execute(
            "UPDATE jobs SET stitched_sig=?, stitched_at=? WHERE job_id=?", (signature, time.time(), job_id)
        )

    def record_files(self, paths: Iterable[Path]) -> None:
        """Size and hash of files just written (chapters, timings, chapter PCM, books), to check them later."""
        rows = [(str(p), *digest(p), time.time()) for p in paths]
        self.db.executemany("INSERT OR REPLACE INTO files(path, nbytes, sha256, updated) VALUES (?,?,?,?)", rows)

    def files_intact(self, paths: Iterable[Path]) -> bool:
        """Every file is there with the size and hash recorded when batchtts wrote it: a truncated, emptied or
        replaced output is not up to date, so it is written again from the chunk store (`unchanged`: a file not
        modified since it was recorded is not hashed again)."""
        for path in paths:
            row = self.db.execute("SELECT nbytes, sha256, updated FROM files WHERE path=?", (str(path),)).fetchone()
            if row is None or not unchanged(Path(path), *row):
                return False
        return True

    def stitched_signature(self, job_id: str) -> str | None:
        row = self.db.execute("SELECT stitched_sig FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return row[0] if row else None

    def book_signature(self, book: str) -> str | None:
        row = self.db.execute("SELECT sig FROM books WHERE book=?", (book,)).fetchone()
        return row[0] if row else None

    def mark_book(self, book: str, signature: str) -> None:
        self.db.execute(
            "INSERT INTO books(book, sig, updated) VALUES (?, ?, ?) ON CONFLICT(book) DO UPDATE SET "
            "sig=excluded.sig, updated=excluded.updated",
            (book, signature, time.time()),
        )
