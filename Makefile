# Set-up and everyday commands. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch; the default pip configuration of our CI machines serves it from local disk.
# Elsewhere pass e.g. TORCH_PIP_ARGS="--index-url <PyTorch's CPU wheel index>" to avoid a CUDA download.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
JOBS ?= jobs/book.jsonl
OUT ?= out/example-book
# `make audiobook EPUB=book.epub [NAME=name] [VOICE=clip.wav VOICE_TEXT="..."]`: import the book (an .epub, .md,
# .txt or a folder of them) to jobs/NAME.jsonl (NAME: the file's name), then run it into out/NAME/. The import
# is redone only when the source is newer than the job file, and replaces only a job file an import wrote.
ifdef EPUB
  NAME ?= $(basename $(notdir $(EPUB)))
  ifeq ($(origin JOBS),file)
    JOBS := jobs/$(NAME).jsonl
  endif
  ifeq ($(origin OUT),file)
    OUT := out/$(NAME)
  endif
endif

.PHONY: setup system-deps demo audiobook run status test test-fast lint bench bench-cpu bench-scale bench-llm bench-split bench-ray bench-gpu gpu-check-replica clean clean-audio

setup: system-deps $(VENV)/.installed

system-deps:
	@command -v ffmpeg >/dev/null && command -v espeak-ng >/dev/null && command -v chromium >/dev/null || \
	  { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends ffmpeg espeak-ng chromium; }

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

demo: setup  ## synthesise the example book on the embedded engine into $(OUT)
	$(BIN)/batchtts run $(JOBS) --out $(OUT) -v
	@echo "chapters written to $(OUT)/book/, the whole book to $(OUT)/Lanterns.m4b"

audiobook: setup $(if $(EPUB),$(JOBS))  ## JOBS=jobs/<book>.jsonl or EPUB=<book>.epub: chapters plus one m4b per book
	$(BIN)/batchtts run $(JOBS) --out $(OUT) -v

ifdef EPUB
$(JOBS): $(EPUB) | setup
	$(BIN)/batchtts import "$(EPUB)" -o $@ $(if $(wildcard $(@:.jsonl=.import.json)),--force) \
	  $(if $(VOICE),--voice "$(VOICE)") \
	  $(if $(VOICE_TEXT),--voice-text "$(VOICE_TEXT)") $(IMPORT_ARGS)
endif

run: setup
	$(BIN)/batchtts run $(JOBS) --out $(OUT) -v

status: setup
	$(BIN)/batchtts status $(JOBS) --out $(OUT)

test: setup  ## everything CI runs: the import layers (pyproject.toml [tool.importlinter]), then every test
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -q

test-fast: setup  ## the unit tier for the development loop: no test marked slow (real engine in subprocesses, Ray, GLM-TTS end to end)
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check batchtts tests bench
	$(BIN)/lint-imports --no-logo

bench: bench-cpu bench-llm bench-split  ## CPU benchmarks; tables in bench/results/

bench-cpu: setup  ## the default engine end to end: batched vs one chunk at a time, RTF, peak memory, WER; then vs Piper's CLI
	$(BIN)/python bench/bench_cpu.py --jobs $(JOBS)
	$(BIN)/python bench/bench_cpu.py --vs-piper $(PIPER_ARGS)

bench-scale: setup  ## peak RSS and wall of a re-stitch at 8 min, 1 h, 10 h of audio; run/status/plan on 1, 5, 50 h books
	$(BIN)/python bench/bench_scale.py $(SCALE_ARGS)

bench-llm: setup  ## the LLM-stage strategies at small dimensions on the CPU (the code path bench-gpu runs)
	$(BIN)/python bench/bench_llm.py --device cpu

bench-split: setup  ## sentence splitting: seconds per MB of text at 0.1, 1 and 10 MB (linear, not quadratic)
	$(BIN)/python bench/bench_split.py

bench-ray: setup  ## the example book on 1 and 2 Ray CPU actors against the local executor
	$(BIN)/python bench/bench_ray.py --jobs $(JOBS)

bench-gpu: setup  ## on a CUDA machine: LLM stage at GLM-TTS's dimensions in bf16, then end to end (bench/gpu_check.sh: the 8-minute check)
	$(BIN)/python bench/bench_llm.py --device cuda $(BENCH_ARGS)
	$(BIN)/python bench/bench_e2e.py --device cuda $(E2E_ARGS)

gpu-check-replica:  ## bench/gpu_check.sh --device cpu in a replica of the GPU machine's Python 3.12 (bench/gpu_replica.sh)
	bash bench/gpu_replica.sh $(RESULTS)

clean-audio:
	rm -rf $(OUT) jobs/out

clean: clean-audio
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
