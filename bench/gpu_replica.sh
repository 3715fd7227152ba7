#!/usr/bin/env bash
# `make gpu-check-replica`: bench/gpu_check.sh --device cpu in a replica of the GPU test machine's Python: a Python
# 3.12 venv with the machine's own versions (bench/gpu-machine-packages.txt: torch 2.11.0, transformers 5.17.0, ...)
# and batchtts itself, then the carried wheels (.whl/, bench/wheels.sh) as gpu_check.sh installs them there.
# torch 2.11.0 comes from PyPI (its Linux wheel is the CUDA build, ~2.6 GB with its nvidia-* libraries, and runs on a
# CPU); when pip cannot get it, the newest local torch wheel for that Python is used, and the output says so.
# Also checks that Python 3.12 and 3.13 resolve `batchtts[glmtts]` (pip's resolver, metadata only).
#   REPLICA_PYTHON=/path/to/python3.12 REPLICA=.venv-gpu-replica PIP_ARGS="--find-links DIR" bench/gpu_replica.sh [RESULTS]
set -euo pipefail
cd "$(dirname "$0")/.."
PY312=${REPLICA_PYTHON:-$(ls -d /root/.pyenv/versions/3.12*/bin/python 2>/dev/null | sort -V | tail -1)}
PY313=${REPLICA_PYTHON313:-$(ls -d /root/.pyenv/versions/3.13*/bin/python 2>/dev/null | sort -V | tail -1)}
VENV=${REPLICA:-.venv-gpu-replica}
RESULTS=${1:-/tmp/batchtts-gpu-replica}
read -r -a PIP_ARGS <<< "${PIP_ARGS:-}"
[ -x "$PY312" ] || { echo "gpu_replica: no Python 3.12 (set REPLICA_PYTHON)" >&2; exit 2; }
grep -qxF "/$VENV/" "$(git rev-parse --git-common-dir)/info/exclude" 2>/dev/null \
  || echo "/$VENV/" >> "$(git rev-parse --git-common-dir)/info/exclude"
quiet() {  # quiet COMMAND...: run it, show the last lines of its output without pip's index warnings
  local log rc=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  grep -v '^WARNING: Location' "$log" | tail -5 || true
  rm -f "$log"
  return $rc
}
t0=$SECONDS
for py in "$PY312" "$PY313"; do  # the package installs on 3.12 and 3.13 (resolution only: no multi-GB download)
  [ -x "$py" ] && [ "${SKIP_RESOLVE:-}" != 1 ] || continue
  echo "== $($py --version): pip install --dry-run .[glmtts]"
  quiet "$py" -m pip install -q --dry-run --ignore-installed --report /tmp/batchtts-resolve.json ".[glmtts]" \
    "${PIP_ARGS[@]}" || { echo "gpu_replica: $py cannot install batchtts[glmtts]"; exit 1; }
  "$py" -c 'import json; r = json.load(open("/tmp/batchtts-resolve.json")); v = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in r["install"]}; print("resolves:", len(v), "distributions; torch", v.get("torch"), "transformers", v.get("transformers"))'
done
echo "resolve took=$((SECONDS - t0))s"
t1=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
  "$PY312" -m venv "$VENV"
fi
machine=$(grep -v '^#' bench/gpu-machine-packages.txt | sed 's/#.*//' | grep -v '^ *$' | grep -v -e '^torch' -e '^triton')
if "$VENV/bin/python" -c 'import torch; assert torch.__version__.startswith("2.11.0")' 2>/dev/null; then
  echo "torch 2.11.0 already in $VENV"
elif quiet "$VENV/bin/python" -m pip install -q "${PIP_ARGS[@]}" torch==2.11.0 \
     && "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "torch 2.11.0 from PyPI (the CUDA build, run on the CPU), as on the GPU machine"
else
  local_wheel=$(ls /opt/wheels/torch-*-cp312-*.whl 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$local_wheel" ] || { echo "gpu_replica: pip cannot get torch 2.11.0 and no local torch wheel for Python 3.12"; exit 1; }
  echo "NOTE: torch 2.11.0 unavailable; using the local wheel $local_wheel instead"
  "$VENV/bin/python" -m pip install -q "$local_wheel"
fi
# shellcheck disable=SC2086
quiet "$VENV/bin/python" -m pip install -q "${PIP_ARGS[@]}" $machine || { echo "gpu_replica: the machine's packages"; exit 1; }
quiet "$VENV/bin/python" -m pip install -q --no-deps -e . || { echo "gpu_replica: batchtts itself"; exit 1; }
echo "venv took=$((SECONDS - t1))s: $("$VENV/bin/python" -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__)')"
[ -f .whl/closure.txt ] || bash bench/wheels.sh
OMP_NUM_THREADS=1 PYTHON="$VENV/bin/python" SITE=/tmp/batchtts-replica-site bash bench/gpu_check.sh "$RESULTS" --device cpu
