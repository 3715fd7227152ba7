"""A real local Ray cluster (two CPU workers, the default engine): same chapter bytes as a local run, a
killed actor is recovered, and a killed driver resumes on either executor."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from batchtts import run
from tests.conftest import HANG_GUARD_S, ROOT, done_count, run_cli, wait_for, write_jobs

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep the test cluster on 127.0.0.1
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
OUTPUTS = ["a.wav", "b.flac", "c.wav"]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:")
    yield address
    ray.shutdown()


@pytest.fixture(scope="module")
def book(tmp_path_factory, cluster):
    tmp = tmp_path_factory.mktemp("raybook")
    line = "Sentence {n} of chapter {c} goes on for a while, so that there is something to share out."
    jobs = write_jobs(
        tmp / "book.jsonl",
        [
            {"id": c, "text": " ".join(line.format(n=n, c=c) for n in range(1, 9)), "output": out}
            for c, out in zip("abc", OUTPUTS, strict=True)
        ],
    )
    ref = run_cli("run", str(jobs), "--out", str(tmp / "local"))
    assert ref.returncode == 0, ref.stderr
    return jobs, tmp / "local"


def _same(out: Path, ref: Path) -> None:
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def _attempts(out: Path) -> set[int]:
    with sqlite3.connect(out / ".batchtts" / "ledger.sqlite") as db:
        return {a for (a,) in db.execute("SELECT attempts FROM audio WHERE state='done'")}


def test_ray_chapters_are_byte_identical_to_local(book, tmp_path):
    jobs, ref = book
    summary = run(jobs, out=tmp_path / "ray", executor="ray", workers=2)
    assert summary.synthesized == 24 and not summary.failed
    _same(tmp_path / "ray", ref)
    assert _attempts(tmp_path / "ray") == {1}


def test_a_killed_actor_is_replaced_and_nothing_is_lost_or_done_twice(book, tmp_path):
    jobs, ref = book
    out = tmp_path / "ray"
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("s", run(jobs, out=out, executor="ray", workers=2))
    )
    thread.start()
    wait_for(lambda: done_count(out) >= 2 or not thread.is_alive(), "two chunks done")
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("batchtts-")]
    assert names, "actors should be running"
    ray.kill(
        ray.get_actor(
            sorted(names)[0],
            namespace=next(
                a["namespace"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"] == sorted(names)[0]
            ),
        )
    )
    thread.join(timeout=HANG_GUARD_S)
    assert not thread.is_alive(), f"the run did not end within {HANG_GUARD_S} s (hang guard)"
    summary = result["s"]
    assert summary.synthesized + summary.reused == 24 and not summary.failed
    _same(out, ref)
    assert _attempts(out) == {1}


def _driver(jobs: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "batchtts", "run", str(jobs), "--out", str(out), *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("first, then", [("ray", "local"), ("local", "ray")])
def test_a_killed_driver_resumes_on_either_executor(book, cluster, tmp_path, first, then):
    jobs, ref = book
    out = tmp_path / "out"
    args = {"ray": ["--executor", "ray", "--address", cluster, "--workers", "2"], "local": []}
    proc = _driver(jobs, out, *args[first])
    wait_for(lambda: done_count(out) >= 4, "four chunks done", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < done_count(out) < 24
    resumed = run_cli("run", str(jobs), "--out", str(out), *args[then], "-v")
    assert resumed.returncode == 0, resumed.stderr
    _same(out, ref)
    assert _attempts(out) == {1}


def test_work_units_keep_rolling_chapters_whole_and_cut_the_rest_small():
    from batchtts.synthesis.executors.ray import work_units
    from batchtts.text.chunks import Chunk

    def chunk(job, i, rolling, voice="v"):
        return Chunk(
            job,
            i,
            f"{job}{i}",
            "t",
            "t",
            "en",
            "sentence",
            {},
            voice,
            rolling=rolling,
            after=f"{job}{i - 1}" if rolling and i else None,
        )

    todo = [chunk("r", i, True) for i in range(7)] + [chunk("p", i, False) for i in range(7)]
    todo += [chunk("q", i, False, "w") for i in range(3)]
    units = list(work_units(todo, 3))
    assert [len(u[1]) for u in units] == [7, 3, 3, 1, 3]
    assert [c.index for c in units[0][1]] == list(range(7)) and {u[0] for u in units} == {"v", "w"}
