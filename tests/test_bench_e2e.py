"""The end-to-end benchmark's CPU smoke run: every strategy runs and writes its table."""

import json
import subprocess
import sys

import pytest

from tests.conftest import HANG_GUARD_S, ROOT


@pytest.mark.slow
def test_end_to_end_benchmark_smoke_run(tmp_path):
    proc = subprocess.run(
        [
            sys.executable, "bench/bench_e2e.py", "--device", "cpu", "--sentences", "3", "--sample", "1",
            "--prompt-tokens", "25", "--results", str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,  # a hang guard only
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "e2e-cpu.json").read_text())
    rows = result["strategies"]
    assert len(rows) == 3 and result["device"].startswith("CPU") and result["small_dims"]
    batched = rows["batched, stages in turn"]
    assert rows["batched, audio overlapped with decode"]["audio_s"] == batched["audio_s"] > 0  # the same work
    assert set(batched["stage_s"]) == {"decode", "flow", "vocoder"}
    assert all(r["audio_s_per_s"] > 0 for r in rows.values())
    assert "| strategy |" in (tmp_path / "e2e-cpu.md").read_text()
