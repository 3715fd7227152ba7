"""The LLM-stage benchmark runs (small dimensions on the CPU) and reports every strategy side by side."""

import json
import subprocess
import sys

import pytest

from tests.conftest import HANG_GUARD_S, ROOT


@pytest.mark.slow  # the real LLM stage in a subprocess: minutes of CPU on a loaded machine
def test_llm_benchmark_smoke_run(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "bench/bench_llm.py",
            "--device",
            "cpu",
            "--repeat",
            "1",
            "--limit",
            "6",
            "--alone",
            "2",
            "--identical",
            "3",
            *("--ratio", "2", "--max-slots", "8"),  # tiny: fewer decode steps, fewer slots to warm up
            "--results",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,  # only a hang guard: the test asserts what the run reports, never how fast
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "llm-cpu.json").read_text())
    rows = result["strategies"]
    assert list(rows) == [
        "one at a time, reference loop",
        "fixed batches of 16, reference loop",
        "continuous batching, eager steps",
    ]
    assert rows["one at a time, reference loop"]["sentences"] == 2
    full = {name: r["speech_tokens"] for name, r in rows.items() if r["sentences"] == 6}
    assert len(full) == 2 and len(set(full.values())) == 1  # every strategy decodes the same work
    assert result["identical_tokens"]["continuous_vs_alone_same_loop"] == 1.0  # fp32 on a CPU: batch-invariant
    assert result["identical_tokens"]["continuous_vs_reference_loop_alone"] == 1.0
    assert result["dims"]["small"] and result["config"].endswith("llm-config.json")
    assert all(0 < r["bound_fraction"] and r["tokens_per_s"] > 0 for r in rows.values())
    assert "| continuous batching, eager steps |" in (tmp_path / "llm-cpu.md").read_text()
