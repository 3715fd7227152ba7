"""The LLM-stage benchmark runs (small dimensions on the CPU) and reports every strategy side by side."""

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_llm_benchmark_smoke_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, "bench/bench_llm.py", "--device", "cpu", "--limit", "6", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "llm-cpu.json").read_text())
    rows = result["strategies"]
    assert set(rows) == {"one at a time (official)", "fixed batch of 16, book order", "batchtts planner"}
    work = {r["speech_tokens"] for r in rows.values()}
    assert len(work) == 1  # every strategy decodes the same tokens
    assert rows["one at a time (official)"]["batches"] == 6 and result["planner_vs_one_at_a_time"] > 0
    assert "| batchtts planner |" in (tmp_path / "llm-cpu.md").read_text()
    steps = result["decode_steps_ablation"]
    assert list(steps) == [
        "eager attention",
        "+ SDPA attention (default)",
        "+ preallocated KV cache",
        "+ torch.compile step",
    ]  # CUDA graphs only on a GPU
    assert {r["speech_tokens"] for r in steps.values()} == work  # every technique does the same work
    assert result["memory_bytes_per_s"] > 0
    assert all(0 < r["bound_fraction"] for r in [*rows.values(), *steps.values()])
