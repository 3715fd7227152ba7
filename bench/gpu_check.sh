#!/usr/bin/env bash
# One GPU check, 7 minutes at most (8 with a minute to spare), on a CUDA machine with no network:
#   0. setup: the carried wheels (.whl/, from bench/wheels.sh) into /tmp/site, then every runtime import; it stops at
#      once, with one line, when a wheel is missing, python3 -m pip is missing and unzipping fails, transformers is
#      older than 5.20 (5.17 breaks the reference loop), or any import fails;
#   1. pytest -m gpu: the production decode path (SlotDecoder with CUDA graphs) against the reference, bf16 graphs
#      twice with one decoder, batched flow and vocoder on CUDA;
#   2. bench_llm.py: the LLM stage at GLM-TTS's real dimensions in bf16 (tables llm-<device>.*);
#   3. bench_e2e.py: decode, flow and vocoder, 1,000 sentences, the table rewritten row by row (e2e-<device>.*),
#      and the DiT's mel in bf16 vs fp32;
#   4. probe_dtype.py: the decode in fp32 and bf16 on the same sentences (probe-dtype-<device>.*);
#   5. bench_asr.py (when it exists): Whisper ASR with random weights on the device.
# Each step has its own timeout and writes into RESULTS_DIR as results exist, so a hang keeps the earlier ones.
#
#   bench/gpu_check.sh RESULTS_DIR [--device cpu]
#
# Budget on an H100/H200 at the real dimensions (estimated from bandwidth and FLOPs; the step limits add up to
# 420 s): a bf16 decode step reads 3.1 GB of weights (>= 1 ms at 3 TB/s), the reference loop runs ~20-30 ms a step
# (launch-bound Hugging Face forward); bench_llm: 8 sentences alone (~640 steps, ~16 s), 32 in fixed batches of 16
# (~300 steps, ~10 s), 1,024 sentences through 64 graphed slots (~1,400 steps at ~2 ms + refills, ~5 s), 112 graphs
# captured (~5-10 s), 64 sentences alone on one slot (~6 s), model build ~5 s: ~60 s of a 90 s limit. bench_e2e:
# the DiT (18 x 768 wide, ~0.1 B parameters: ~0.2 GFLOP a frame and ODE step) over 1,000 rows x ~460 frames x 10
# steps x 2 (guidance) is ~4 PFLOP, ~10 s at a realistic 400 TFLOP/s in bf16; HiFT ~5 s; decode ~5 s; two batched
# strategies + 20 sentences in the official order + warm-up: ~70 s of 140 s. pytest -m gpu ~30 s of 50 s (tiny
# models; CUDA start-up dominates); the dtype probe ~30 s of 50 s (two models, 128 sentences, <= 20x lengths);
# Whisper 60 s; set-up 20 s.
# Through the session `run` tool: command `bash bench/gpu_check.sh "$OUT/gpu"`, carry [".whl"], timeout_s 480;
# then copy llm-cuda.*, e2e-cuda.* and probe-dtype-cuda.* from the returned files into bench/results/ and commit them.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bench/gpu_check.sh RESULTS_DIR [--device cpu]" >&2; exit 2; }
RESULTS=$(mkdir -p "$1" && cd "$1" && pwd)
DEVICE=cuda
[ "${2:-}" = "--device" ] && DEVICE=${3:-cuda}
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/batchtts-site}
WHEELS=${WHEELS:-.whl}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
die() { echo "gpu_check: $*" | tee -a "$RESULTS/steps.txt" >&2; exit 9; }
: >"$RESULTS/steps.txt"
T0=$SECONDS

# 0. Set-up: carried wheels, then the imports every step makes.
if [ "${GPU_CHECK_NO_WHEELS:-}" != 1 ]; then
  [ -f "$WHEELS/closure.txt" ] || die "no $WHEELS/closure.txt: run bench/wheels.sh on a machine with PyPI, carry .whl"
  present=$(ls "$WHEELS" | tr 'A-Z-' 'a-z_')  # normalised wheel names (one listing: no grep -q on a pipe)
  while read -r req; do
    name=$(printf '%s' "$req" | sed -E 's/[<>=!~;[ ].*//' | tr 'A-Z-' 'a-z_')
    grep -q "^${name}_[0-9]" <<<"$present" || die "wheel missing from $WHEELS/: $req (run bench/wheels.sh)"
  done < "$WHEELS/closure.txt"
  mkdir -p "$SITE"
  if $PYTHON -m pip --version >/dev/null 2>&1; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
      >"$RESULTS/pip.txt" 2>&1 || die "pip could not install $WHEELS/ (see pip.txt): $(tail -1 "$RESULTS/pip.txt")"
  else
    echo "note: $PYTHON -m pip is missing; unzipping the wheels onto PYTHONPATH"
    for w in "$WHEELS"/*.whl; do
      $PYTHON -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$SITE" \
        || die "cannot unzip $w"
    done
  fi
  export PYTHONPATH="$SITE:$PYTHONPATH"
fi
{
  date -u
  git rev-parse --short HEAD 2>/dev/null
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv
} >"$RESULTS/env.txt" 2>&1
$PYTHON - >>"$RESULTS/env.txt" 2>&1 <<'PY' || die "$(tail -1 "$RESULTS/env.txt")"
import importlib, os, sys
mods = """torch transformers huggingface_hub jsonlines soundfile soxr pyloudnorm kaldi_native_fbank tiktoken wetext emoji
pronouncing yaml onnxruntime pytest hypothesis batchtts.cli batchtts.engines.glmtts.engine batchtts.engines.glmtts.checkpoint
batchtts.engines.glmtts.llm.slot_decoder batchtts.engines.glmtts.llm.reference batchtts.engines.glmtts.audio.token2wav
batchtts.engines.glmtts.voice.speech_tokenizer batchtts.engines.glmtts.voice.features batchtts.verify.stage
batchtts.verify.asr.whisper batchtts.text.normalize bench.bench_llm bench.bench_e2e bench.probe_dtype""".split()
if os.path.isfile("bench/bench_asr.py"):
    mods.append("bench.bench_asr")
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as exc:
        sys.exit(f"import {m} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
import torch, transformers
from packaging.version import Version
if Version(transformers.__version__) < Version("5.20"):
    sys.exit(f"transformers {transformers.__version__} from {os.path.dirname(transformers.__file__)}: 5.20 or newer "
             "is needed (the carried wheel did not take precedence)")
print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__,
      "cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))
PY
cat "$RESULTS/env.txt"
echo "setup rc=0 took=$((SECONDS - T0))s" | tee -a "$RESULTS/steps.txt"

status=0
step() {  # step NAME SECONDS COMMAND...: run with a timeout, keep its output, note its exit code and time
  local name=$1 limit=$2
  shift 2
  echo "== $name (timeout ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$RESULTS/$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "$name rc=$rc limit=${limit}s took=$((SECONDS - t0))s" | tee -a "$RESULTS/steps.txt"
  [ "$rc" -eq 0 ] || status=1
}

if [ "$DEVICE" = cuda ]; then
  step pytest-gpu 50 $PYTHON -m pytest -m gpu -q -p no:cacheprovider tests/test_decode.py tests/test_glmtts.py \
    tests/test_flow.py
  step bench-llm 90 $PYTHON bench/bench_llm.py --device cuda --alone 8 --fixed 32 --identical 64 --results "$RESULTS"
  step bench-e2e 140 $PYTHON bench/bench_e2e.py --device cuda --sentences 1000 --results "$RESULTS"
  step probe-dtype 50 $PYTHON bench/probe_dtype.py --device cuda --sentences 128 --results "$RESULTS"
  if [ -f bench/bench_asr.py ]; then
    step bench-asr 60 $PYTHON bench/bench_asr.py --device cuda --random-weights --out "$RESULTS"
  fi
else  # the same steps at small dimensions, to exercise the script (make gpu-check-replica)
  step pytest-gpu 120 $PYTHON -m pytest -m gpu -q -p no:cacheprovider tests/test_decode.py tests/test_glmtts.py \
    tests/test_flow.py
  step bench-llm 300 $PYTHON bench/bench_llm.py --device cpu --repeat 1 --limit 12 --alone 2 --fixed 12 \
    --identical 4 --results "$RESULTS"
  step bench-e2e 300 $PYTHON bench/bench_e2e.py --device cpu --sentences 3 --sample 1 --prompt-tokens 25 \
    --results "$RESULTS"
  step probe-dtype 300 $PYTHON bench/probe_dtype.py --device cpu --sentences 3 --results "$RESULTS"
  if [ -f bench/bench_asr.py ]; then
    step bench-asr 300 $PYTHON bench/bench_asr.py --device cpu --random-weights --out "$RESULTS"
  fi
fi

echo "== done in $((SECONDS - T0))s: $RESULTS (status $status)"
cat "$RESULTS/steps.txt"
exit $status
