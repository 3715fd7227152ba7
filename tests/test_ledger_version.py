"""The versioned ledger: a ledger written before versioning opens, is upgraded in place, and a run resumes
from it without redoing the chunks it lists as done."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import batchtts
from batchtts.errors import EnvironmentProblem
from batchtts.state.ledger import SCHEMA_VERSION, Ledger
from tests.conftest import write_jobs

FIXTURE = Path(__file__).parent / "data" / "ledger_v0"
HARBOUR = (FIXTURE / "jobs.jsonl").read_text(encoding="utf-8").strip()


def _old_output(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(FIXTURE / "state", out / ".batchtts")
    return out


def test_fixture_is_unversioned():
    db = sqlite3.connect(f"file:{FIXTURE / 'state' / 'ledger.sqlite'}?mode=ro&immutable=1", uri=True)  # writes nothing
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM audio WHERE state='done'").fetchone()[0] == 3
    finally:
        db.close()


def test_old_ledger_upgrades_and_run_resumes_without_redoing(tmp_path, tone):
    out = _old_output(tmp_path)
    pier = {
        "id": "pier",
        "engine": "tone",
        "language": "en",
        "output": "pier.wav",
        "text": "The pier was empty in the rain. A lamp swung above the door.",
    }
    jobs = write_jobs(tmp_path / "jobs.jsonl", [HARBOUR, pier])
    old_keys = {c.key for c in batchtts.chunks(jobs, out=out) if c.job_id == "harbour"}
    summary = batchtts.run(jobs, out=out, progress=False)
    made = {k for call in tone.calls for k in call}
    assert summary.reused == 3 and summary.synthesized == 2
    assert not made & old_keys  # the three finished chunks were not synthesised again
    assert (out / "harbour.wav").is_file() and (out / "pier.wav").is_file()
    ledger = Ledger(out / ".batchtts" / "ledger.sqlite")
    try:
        assert ledger.version() == SCHEMA_VERSION
        assert set(ledger.done_chunks(old_keys)) == old_keys
        assert ledger.take_numbers("harbour") == {}
    finally:
        ledger.close()
    again = batchtts.run(jobs, out=out, progress=False)  # the upgraded ledger opens again as it is
    assert again.synthesized == 0 and again.reused == 5


def test_ledger_from_a_newer_batchtts_is_refused(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(EnvironmentProblem, match="newer batchtts"):
        Ledger(path)


def test_a_new_ledger_is_created_quietly_and_an_old_one_says_it_was_upgraded(tmp_path, caplog):
    caplog.set_level("INFO", logger="batchtts")
    Ledger(tmp_path / "new" / "ledger.sqlite").close()
    assert not [r for r in caplog.records if "upgraded" in r.getMessage()]
    Ledger(_old_output(tmp_path) / ".batchtts" / "ledger.sqlite").close()
    assert [r for r in caplog.records if "upgraded to version" in r.getMessage()]
