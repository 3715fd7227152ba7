"""Ray scaling on one machine: the example book with 1 and 2 CPU actors, and the local executor, in one
invocation against one local Ray cluster (started once, so its start-up is not counted)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402

from batchtts import run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=Path, default=ROOT / "jobs" / "book.jsonl")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    ray.init(include_dashboard=False, log_to_driver=False)
    tmp = Path(tempfile.mkdtemp(prefix="batchtts-ray-"))
    rows = {}
    try:
        for name, opts in [
            ("local executor", {}),
            ("ray, 1 actor", {"executor": "ray", "workers": 1}),
            ("ray, 2 actors", {"executor": "ray", "workers": 2}),
        ]:
            t0 = time.perf_counter()
            s = run(args.jobs, out=tmp / name.replace(" ", "_").replace(",", ""), fresh=True, **opts)
            rows[name] = {
                "wall_s": round(time.perf_counter() - t0, 2),
                "chunks": s.synthesized,
                "audio_s": round(s.audio_seconds, 1),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        ray.shutdown()
    one, two = rows["ray, 1 actor"]["wall_s"], rows["ray, 2 actors"]["wall_s"]
    md = [
        f"Device: CPU {platform.machine()}, {os.cpu_count()} cores; book {args.jobs.name}",
        "",
        "| executor | chunks | audio s | wall s |",
        "|---|---:|---:|---:|",
    ]
    md += [f"| {k} | {v['chunks']} | {v['audio_s']} | {v['wall_s']} |" for k, v in rows.items()]
    md += [
        "",
        f"2 actors over 1: {one / two:.2f}x; Ray (2 actors) over local: "
        f"{rows['local executor']['wall_s'] / two:.2f}x. Command: `python bench/bench_ray.py`",
    ]
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "ray.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.results / "ray.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
