#!/usr/bin/env bash
# Fill ./.whl (git-ignored) with the Python 3.12 wheels the GPU test machine lacks for batchtts, so they travel with
# the checkout (the `run` tool's carry: [".whl"]). Run from the project root on a machine with PyPI:
#   bench/wheels.sh [NAME==VERSION ...]
# What to carry is not a hand list: bench/wheel_closure.py walks the dependency closure of pyproject.toml's
# dependencies + the glmtts extra + the test runner, stopping at what the machine has
# (bench/gpu-machine-packages.txt), then again over the downloaded wheels' own METADATA until nothing new appears
# (so `jsonlines` brings `attrs`, `soundfile` brings `cffi` and `pycparser`, a newer transformers its tokenizers).
# Wheels only, for CPython 3.12 on manylinux x86_64; a pure-Python project published only as an sdist is built
# into a py3 wheel here. .whl/closure.txt lists what bench/gpu_check.sh must find there.
set -euo pipefail
[ -f pyproject.toml ] || { echo "run this from the project root" >&2; exit 2; }
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p .whl
rm -f .whl/*.whl .whl/closure.txt
plats=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 any; do
  plats+=(--platform "$p")
done
fetch() {  # fetch REQUIREMENT: its cp312 wheel, or a wheel built from its sdist when it has none (pure Python)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --abi abi3 --abi none "${plats[@]}" -d .whl "$1" 2>/dev/null \
  || "$PY" -m pip wheel -q --no-deps --no-binary=:all: -w .whl "$1" \
  || { echo "wheels.sh: cannot get a Python 3.12 wheel of $1" >&2; return 1; }
}
before=-1
for round in 1 2 3 4 5; do
  "$PY" bench/wheel_closure.py --wheels .whl "$@" > .whl/closure.txt
  while read -r req; do
    name=$(printf '%s' "$req" | sed -E 's/[<>=!~;[ ].*//' | tr 'A-Z-' 'a-z_')
    present=$(ls .whl | tr 'A-Z-' 'a-z_')
    grep -q "^${name}_[0-9]" <<<"$present" || fetch "$req"
  done < .whl/closure.txt
  now=$(ls .whl/*.whl | wc -l)
  [ "$now" -eq "$before" ] && break
  before=$now
  echo "round $round: $now wheels"
done
ls .whl; du -sh .whl
echo "bench/gpu_check.sh installs these into /tmp/site (or unzips them onto PYTHONPATH where pip is missing)."
