#!/usr/bin/env bash
# Issue 15's GPU check (flow + vocoder + end to end): run from the project root on the CUDA machine, after the
# install line of ../shared/device/wheels.sh. Results go to $1 (default bench/results), each step's as it ends.
#   bench/gpu_check_e2e.sh bench/results        # about 6-8 minutes on an H100
# E2E_ARGS adds bench_e2e.py options (e.g. "--sentences 400" for a shorter run, "--decode graphs").
set -uo pipefail
OUT=${1:-bench/results}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# Batched flow/vocoder equal each row alone on CUDA too (fp32), and match the CPU.
timeout 180 "$PY" -m pytest -q -m gpu tests/test_flow.py 2>&1 | tee "$OUT/e2e-gpu-tests.log"
# >= 1000 sentences at GLM-TTS's real dimensions: official order vs batched vs overlapped (e2e-cuda.{json,md}).
# shellcheck disable=SC2086
timeout 480 "$PY" bench/bench_e2e.py --device cuda --results "$OUT" ${E2E_ARGS:-} 2>&1 | tee "$OUT/e2e-cuda.log"
