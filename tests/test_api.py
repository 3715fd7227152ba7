"""The library under the CLI: the example book from Python, one 'done' answer for every command, every
exception in errors.py, every parameter documented, and the README's calls bound to the real signatures.
That the CLI only parses and prints is the import-linter contract in pyproject.toml (`make lint`)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import batchtts
from batchtts.cli import main
from batchtts.state.workspace import Workspace
from tests.conftest import ROOT, write_jobs

PACKAGE = ROOT / "batchtts"


@pytest.mark.slow
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


def test_a_deleted_chunk_file_is_not_done_for_status_and_is_redone_by_run(tmp_path, tone):
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

    tone.calls.clear()
    again = batchtts.run(jobs, out=out)
    assert tone.calls == [[victim.key]] and again.synthesized == 1 and again.reused == 3
    [status] = batchtts.status(jobs, out=out)
    assert (status.done, status.left, status.written) == (4, 0, True)


def test_a_rolling_chunk_without_its_tokens_is_not_done_anywhere(tmp_path, tone):
    text = "One lamp. Two lamps. Three lamps."
    jobs = write_jobs(
        tmp_path / "r.jsonl", [{"id": "r", "text": text, "output": "r.wav", "engine": "tone", "context": "rolling"}]
    )
    out = tmp_path / "out"
    batchtts.run(jobs, out=out)
    last = batchtts.chunks(jobs, out=out)[-1]
    Workspace(out).store().tokens_path(last.key).unlink()
    assert batchtts.status(jobs, out=out)[0].left == 1
    tone.calls.clear()
    assert batchtts.run(jobs, out=out).synthesized == 1 and tone.calls == [[last.key]]


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


def test_every_exception_is_in_errors_and_is_a_batchtts_error():
    """No module but errors.py defines an exception class; each in errors.py is a BatchttsError with an exit code."""
    import builtins
    import inspect

    from batchtts import errors

    defined = {name for name, obj in vars(errors).items() if inspect.isclass(obj) and obj.__module__ == errors.__name__}
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                builtin = {b for b in bases if isinstance(getattr(builtins, b, None), type)}
                if bases & defined or any(issubclass(getattr(builtins, b), BaseException) for b in builtin):
                    elsewhere.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert elsewhere == []
    assert {"InputError", "OptionError", "PlanError", "Busy", "FailFast", "LedgerUnreadable", "Interrupted"} <= defined
    for name in defined:
        cls = getattr(errors, name)
        assert issubclass(cls, batchtts.BatchttsError), name
        assert getattr(batchtts, name) is cls, f"batchtts.{name} is not exported"
    codes = {errors.InputError: 2, errors.OptionError: 2, errors.PlanError: 2, errors.Busy: 3, errors.FailFast: 1}
    assert {cls: cls.exit_code for cls in codes} == codes
    assert isinstance(errors.InputError("jobs.jsonl", 3, "text", "empty"), ValueError)


def _public_functions():
    import inspect

    return [getattr(batchtts.api, n) for n in batchtts.api.__all__ if inspect.isfunction(getattr(batchtts.api, n))]


def test_every_library_function_documents_every_parameter_and_hides_none():
    import inspect

    names = [f.__name__ for f in _public_functions()]
    assert {"run", "retry", "status", "plan", "chunks", "doctor", "download", "waveform", "import_book"} <= set(names)
    for fn in _public_functions():
        params = inspect.signature(fn).parameters.values()
        assert not [p.name for p in params if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)], fn.__name__
        undocumented = [p.name for p in params if f"{p.name}:" not in fn.__doc__ and f"{p.name}," not in fn.__doc__]
        assert undocumented == [], fn.__name__
    assert "Bytes" in batchtts.run.__doc__.split("kv_budget:")[1].splitlines()[0]


def test_a_mode_outside_its_literal_is_an_input_error_before_any_work(tmp_path):
    jobs = _book(tmp_path)
    for call in (
        lambda: batchtts.run(jobs, out=tmp_path / "out", device="gpu"),
        lambda: batchtts.retry(jobs, out=tmp_path / "out", executor="dask"),
        lambda: batchtts.plan(jobs, device="tpu"),
    ):
        try:
            call()
        except batchtts.InputError as exc:
            assert isinstance(exc, ValueError) and "must be one of" in str(exc)
        else:
            raise AssertionError("a bad mode was accepted")
    assert not (tmp_path / "out").exists()


def test_the_readme_python_section_calls_the_real_signatures():
    """Every `batchtts.X(...)` in the README's Python code binds to the real function's signature."""
    import inspect
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "no Python code block in the README"
    calls = []
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "batchtts"
            ):
                fn = getattr(batchtts, node.func.attr)  # AttributeError: the README names what is not there
                args = [None] * len(node.args)
                inspect.signature(fn).bind(*args, **{k.arg: None for k in node.keywords})  # TypeError if wrong
                calls.append(node.func.attr)
    assert {"run", "retry", "status", "plan"} <= set(calls)


def test_only_the_workspace_knows_the_state_folder_layout_and_no_module_is_long():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 400, path
        if path.name != "workspace.py":
            assert "ledger.sqlite" not in text and '".batchtts"' not in text, path


def test_the_library_imports_without_the_signal_processing_stack():
    """scipy.signal (pyloudnorm's filters) costs ~0.7 s of start-up that `status`, `plan` and `chunks` never use;
    output.loudness imports it on first use, and a run that will write preloads it beside the engine's load."""
    code = "import sys, batchtts.api; print(sorted(m for m in ('scipy.signal', 'pyloudnorm') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
