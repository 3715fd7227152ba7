"""The library under the CLI: the example book from Python, one 'done' answer for every command, and a
CLI that only parses and prints."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from click.testing import CliRunner

import batchtts
from batchtts.cli import main
from batchtts.state.workspace import Workspace
from tests.conftest import ROOT, write_jobs
from tests.fakes import ToneEngine

PACKAGE = ROOT / "batchtts"


def test_the_example_book_runs_from_python(tmp_path):
    out = tmp_path / "book"
    summary = batchtts.run(ROOT / "jobs" / "book.jsonl", out=out)
    assert not summary.failed and summary.synthesized == summary.chunks > 0
    assert sorted(Path(p).name for p in summary.written) == [
        "01-the-lighthouse.mp3",
        "02-tea-house.mp3",
        "03-two-languages.mp3",
        "Lanterns.m4b",
    ]
    report = batchtts.status(ROOT / "jobs" / "book.jsonl", out=out)
    assert [s.job_id for s in report] == ["ch01", "ch02", "ch03"]
    assert all(s.written and s.left == 0 and s.failed == 0 for s in report)
    again = batchtts.run(ROOT / "jobs" / "book.jsonl", out=out)
    assert again.synthesized == 0 and again.reused == summary.chunks and again.written == []


def _book(tmp_path: Path) -> Path:
    text = "The first lamp. The second lamp. The third lamp. The fourth lamp."
    return write_jobs(tmp_path / "book.jsonl", [{"id": "a", "text": text, "output": "a.wav", "engine": "tone"}])


def test_a_deleted_chunk_file_is_not_done_for_status_and_is_redone_by_run(tmp_path):
    jobs, out = _book(tmp_path), tmp_path / "out"
    first = batchtts.run(jobs, out=out)
    assert first.synthesized == 4
    victim = batchtts.chunks(jobs, out=out)[2]
    Workspace(out).store().path_for(victim.key).unlink()

    [status] = batchtts.status(jobs, out=out)
    assert (status.done, status.left, status.written) == (3, 1, False)
    result = CliRunner().invoke(main, ["status", str(jobs), "--out", str(out)])
    assert result.exit_code == 0
    assert result.output.splitlines()[1].split()[:4] == ["a", "3", "1", "0"]
    [plan] = batchtts.plan(jobs, out=out)
    assert [i.chunk.key for b in plan.plan.batches for i in b.items] == [victim.key]

    ToneEngine.calls.clear()
    again = batchtts.run(jobs, out=out)
    assert ToneEngine.calls == [[victim.key]] and again.synthesized == 1 and again.reused == 3
    [status] = batchtts.status(jobs, out=out)
    assert (status.done, status.left, status.written) == (4, 0, True)


def test_a_rolling_chunk_without_its_tokens_is_not_done_anywhere(tmp_path):
    text = "One lamp. Two lamps. Three lamps."
    jobs = write_jobs(
        tmp_path / "r.jsonl", [{"id": "r", "text": text, "output": "r.wav", "engine": "tone", "context": "rolling"}]
    )
    out = tmp_path / "out"
    batchtts.run(jobs, out=out)
    last = batchtts.chunks(jobs, out=out)[-1]
    Workspace(out).store().tokens_path(last.key).unlink()
    assert batchtts.status(jobs, out=out)[0].left == 1
    ToneEngine.calls.clear()
    assert batchtts.run(jobs, out=out).synthesized == 1 and ToneEngine.calls == [[last.key]]


def test_chunks_shows_what_the_engine_reads_without_loading_it(tmp_path):
    job = {"id": "a", "text": "Hello Lin. Bye.", "output": "a.wav", "engine": "tone", "pronunciations": {"Lin": "Linn"}}
    jobs = write_jobs(tmp_path / "b.jsonl", [job])
    result = CliRunner().invoke(main, ["chunks", str(jobs), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["job"], r["index"], r["text"], r["break"]) for r in rows] == [
        ("a", 0, "Hello Linn.", "sentence"),
        ("a", 1, "Bye.", "end"),
    ]
    assert rows[0]["key"] == batchtts.chunks(jobs)[0].key


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_cli_only_parses_and_prints():
    internals = (
        *("batchtts.state.ledger", "batchtts.planning.plan", "batchtts.planning.schedule"),
        *("batchtts.synthesis.worker", "batchtts.synthesis.commit", "batchtts.synthesis.executors"),
        *("batchtts.synthesis.runner", "batchtts.planning.prepare", "batchtts.state.store", "batchtts.state.workspace"),
    )
    bad = sorted(n for n in _imports(PACKAGE / "cli.py") if n.startswith(internals))
    assert bad == []
    # and, lazily or not, it reaches no module but the library, the errors and the size parser
    reached = {n.split(".")[1] for n in _imports(PACKAGE / "cli.py") if n.startswith("batchtts.")}
    assert reached <= {"__version__", "api", "errors", "config"}


def test_only_the_workspace_knows_the_state_folder_layout_and_no_module_is_long():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 400, path
        if path.name != "workspace.py":
            assert "ledger.sqlite" not in text and '".batchtts"' not in text, path
