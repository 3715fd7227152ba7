"""GLM-TTS end to end (LLM decode -> flow -> HiFT vocoder), random weights at the real dimensions, side by side:

- official order: one sentence through all three stages at a time, as `glmtts_inference.py` runs (timed on
  an evenly spread sample of the sentences, since it is slow);
- batched, stages in turn: the planner's batches, each decoded, then its flow and vocoder batches;
- batched, overlapped: the same, with a batch's flow and vocoder on a worker thread (its own CUDA stream)
  while the next batch decodes, and while its own does (the slot decoder reports rows as they finish).

The decoder is the engine's (llm/slot_decoder.py: CUDA graphs on CUDA), sized by llm/capacity.py's
`slot_capacity` from the KV budget, as a run sizes it. The table is rewritten after every strategy, so a
timeout loses only the strategy it interrupted. On CUDA, a last step measures the DiT's mel in bf16 against
fp32 on the same inputs (relative L2), the fidelity probe of GLMTTS_DTYPE.

Per strategy: audio seconds per second, time per stage (where stages run in turn), GPU busy fraction
(`nvidia-smi` utilisation sampled every 100 ms), peak memory. LLM dimensions from
batchtts/engines/glmtts/llm-config.json (GLM-TTS's published llm/config.json); flow and vocoder at the official code's
defaults (DiT 768 wide, 18 blocks, 12 heads; HiFT 512 channels). Decoded lengths are forced to `--ratio`
speech tokens per text token so every strategy does the same work. `--device cpu` runs small dimensions,
for smoke runs. Writes bench/results/e2e-<device>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchtts import config  # noqa: E402
from batchtts.config import format_size, parse_size  # noqa: E402
from batchtts.engines.glmtts import llm_cost  # noqa: E402
from batchtts.engines.glmtts.audio.flow import FlowModel, parse_flow_config  # noqa: E402
from batchtts.engines.glmtts.audio.hift import HiFT  # noqa: E402
from batchtts.engines.glmtts.audio.token2wav import TokenToWave  # noqa: E402
from batchtts.engines.glmtts.llm.capacity import PREFILL_TOKENS, slot_capacity  # noqa: E402
from batchtts.engines.glmtts.llm.llama import FusedLlama  # noqa: E402
from batchtts.engines.glmtts.llm.slot_decoder import SlotDecoder  # noqa: E402
from batchtts.engines.glmtts.llm.types import Sampling, output_ids  # noqa: E402
from batchtts.planning.plan import plan_batches  # noqa: E402
from batchtts.text.chunks import Chunk  # noqa: E402
from batchtts.text.split import detect_language  # noqa: E402
from bench.bench_llm import PROMPT_SPEECH, PROMPT_TEXT, book_sentences, build_model, specials  # noqa: E402

SAMPLE_RATE = 24000
FLOW_CONFIG = """flow: !new:flow.flow.Flow
    spkr_emb_adaLN: True
    speech_token_cfg: False
    remove_spkr_concat_condition: True
    mel_dim: 80
    mel_framerate: 50
    input_frame_rate: 25
"""  # the published flow/config.yaml
OFFICIAL_DIT = {  # the official Flow's DiT (big_model=False) and its token embedding
    "dim": 768,
    "depth": 18,
    "heads": 12,
    "ff_inner": 1536,
    "extra": 192,
    "mel_dim": 80,
    "vocab": 100001,
    "text_dim": 512,
    "text_blocks": 4,
    "text_inner": 1024,
    "cond_dim": 80,
}
SMALL_DIT = OFFICIAL_DIT | {"dim": 64, "depth": 2, "heads": 2, "ff_inner": 128, "vocab": 4097, "text_dim": 32}
SMALL_DIT |= {"text_blocks": 2, "text_inner": 64}
OFFICIAL_HIFT = {"base": 512, "f0_channels": 512}
SMALL_HIFT = {"base": 32, "f0_channels": 16}


def build_audio(device: str, small: bool, memory: int | None, dtype=None) -> TokenToWave:
    torch.manual_seed(1)
    dtype = dtype or (torch.bfloat16 if device == "cuda" else torch.float32)
    with torch.device(device):
        flow = FlowModel(parse_flow_config(FLOW_CONFIG), SMALL_DIT if small else OFFICIAL_DIT)
        hift = HiFT(**(SMALL_HIFT if small else OFFICIAL_HIFT))
    inv_freq = flow.estimator.rotary_embed.inv_freq.clone()
    flow = flow.to(device=device, dtype=dtype).eval()
    flow.estimator.rotary_embed.inv_freq = inv_freq.to(device)  # rotary angles stay fp32, as in FlowModel.from_files
    return TokenToWave(flow, hift.to(device).eval(), device, memory)


def random_voice(prompt_tokens: int = PROMPT_SPEECH, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "prompt_speech": rng.integers(0, 1000, prompt_tokens).astype(np.int64),
        "prompt_mel": rng.normal(-5, 2, (2 * prompt_tokens, 80)).astype(np.float32),
        "embedding": rng.normal(0, 1, 192).astype(np.float32),
    }


class BusySampler:
    """GPU utilisation (the fraction of time a kernel ran) from `nvidia-smi`, sampled every 100 ms."""

    def __init__(self, device: str):
        self.device, self.values, self.proc = device, [], None

    def __enter__(self):
        if self.device == "cuda" and shutil.which("nvidia-smi"):
            index = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]
            cmd = ["nvidia-smi", "-i", index if index.isdigit() else "0", "--query-gpu=utilization.gpu"]
            self.proc = subprocess.Popen(
                [*cmd, "--format=csv,noheader,nounits", "-lms", "100"], stdout=subprocess.PIPE, text=True
            )
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            if line.strip().isdigit():
                self.values.append(int(line))

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
        return False

    def fraction(self) -> float | None:
        return round(sum(self.values) / len(self.values) / 100, 3) if self.values else None


def _sync(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def run(name, decoder, audio, sp, voice, batches, lens_of, ratio, device, overlap=False) -> dict:
    """One strategy over `batches` (lists of chunks); returns its row of the results."""
    stages = {"decode": 0.0}
    audio.timings = None if overlap else stages
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    samples = tokens = 0
    pending = None
    with BusySampler(device) as busy:
        t0 = _sync(device)
        for batch in batches:
            speech = [sp.ats + 1] * len(voice["prompt_speech"])
            prompts = [[5] * PROMPT_TEXT + [7] * lens_of[c.key] + [sp.boa] + speech for c in batch]
            seeds = [c.index for c in batch]
            pipe = audio.pipeline(voice, seeds)
            feed = {"on_row_done": pipe.submit} if overlap else {}
            if overlap:
                pipe.start()
            td = _sync(device)
            out, _ = decoder.decode(
                prompts, [lens_of[c.key] for c in batch], sp, [Sampling()] * len(batch), seeds, ratio, ratio, **feed
            )
            stages["decode"] += _sync(device) - td
            tokens += sum(len(o) for o in out)
            if overlap:  # this batch's audio runs while the next batch decodes
                pipe.end(out)
                if pending is not None:
                    samples += sum(len(w) for w in pending[0].finish(pending[1]))
                pending = (pipe, out)
            else:
                samples += sum(len(w) for w in pipe.finish(out))
        if pending is not None:
            samples += sum(len(w) for w in pending[0].finish(pending[1]))
        wall = _sync(device) - t0
    audio.timings = None
    audio_s = samples / SAMPLE_RATE
    return {
        "strategy": name,
        "sentences": sum(len(b) for b in batches),
        "batches": len(batches),
        "speech_tokens": tokens,
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall, 3),
        "audio_s_per_s": round(audio_s / wall, 2),
        "stage_s": None if overlap else {k: round(v, 3) for k, v in stages.items()},
        "gpu_busy": busy.fraction(),
        "peak_mem_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=ROOT / "batchtts" / "engines" / "glmtts" / "llm-config.json")
    parser.add_argument("--jobs", type=Path, default=ROOT / "jobs" / "book.jsonl")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sentences", type=int, default=None, help="default: 1000 on CUDA, 8 on CPU")
    parser.add_argument("--sample", type=int, default=None, help="sentences run in the official order (20 / 2)")
    parser.add_argument("--kv-budget", default=None, help="default: 10GiB on CUDA, 512MiB on CPU")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--audio-memory", default=None, help="flow + vocoder activations (default: the engine's)")
    parser.add_argument("--ratio", type=float, default=6.5, help="speech tokens decoded per text token")
    parser.add_argument("--decode", default=config.glmtts_decode(), help="auto, graphs or eager (GLMTTS_DECODE)")
    parser.add_argument("--prompt-tokens", type=int, default=PROMPT_SPEECH, help="the voice's prompt (25 a second)")
    parser.add_argument("--small", action="store_true", help="small dimensions (default on CPU)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-probe", action="store_true", help="skip the DiT bf16 vs fp32 probe (CUDA)")
    args = parser.parse_args()
    device = args.device
    small = args.small or device == "cpu"
    n = args.sentences or (1000 if device == "cuda" else 8)

    model, dims = build_model(json.loads(args.config.read_text()), device, small)
    sp = specials(dims["vocab_size"])
    fused = FusedLlama(model, output_ids(sp))
    audio = build_audio(device, small, parse_size(args.audio_memory) if args.audio_memory else None)
    voice = random_voice(args.prompt_tokens)
    book = book_sentences(args.jobs, 1)
    sentences = book_sentences(args.jobs, math.ceil(n / len(book)))[:n]
    chunks = [
        Chunk("book", i, f"k{i}", t, t, detect_language(t), "sentence", {}, "narrator") for i, t in enumerate(sentences)
    ]
    cost = llm_cost(dims, 2 if device == "cuda" else 4)
    lens_of = {c.key: cost.text_tokens(c.text, c.language) for c in chunks}
    budget = parse_size(args.kv_budget or ("10GiB" if device == "cuda" else "512MiB"))
    capacity = slot_capacity(budget, cost.bytes_per_token, fused.max_positions)
    graphs = device == "cuda" and args.decode != "eager"
    decoder = SlotDecoder(fused, sp, capacity.slots, capacity.slot_tokens, graphs=graphs, prefill_tokens=PREFILL_TOKENS)
    plan = plan_batches(chunks, cost, budget, args.max_batch, {"narrator": PROMPT_TEXT + 1 + args.prompt_tokens})
    batches = [list(b.chunks) for b in plan.batches]
    k = args.sample or (20 if device == "cuda" else 2)
    sample = [[chunks[i]] for i in np.linspace(0, len(chunks) - 1, min(k, len(chunks))).astype(int)]

    result = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"CPU {platform.machine()}",
        "small_dims": small,
        "llm": {k: dims[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")},
        "flow": SMALL_DIT if small else OFFICIAL_DIT,
        "hift": SMALL_HIFT if small else OFFICIAL_HIFT,
        "decode_mode": "CUDA graphs" if graphs else "eager steps",
        "slots": capacity.slots,
        "slot_tokens": capacity.slot_tokens,
        "prompt_tokens": args.prompt_tokens,
        "ratio": args.ratio,
        "sentences": n,
        "kv_budget": format_size(budget),
        "audio_memory": format_size(audio.memory_bytes),
        "audio_bytes_per_frame": {"flow": audio.bytes_per_frame[0], "vocoder": audio.bytes_per_frame[1]},
        "strategies": {},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"e2e-{device}"

    def save() -> None:  # after every row: a timeout loses only the strategy it interrupted
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        stem.with_suffix(".md").write_text(markdown(result))

    t0 = time.perf_counter()
    run("warm-up", decoder, audio, sp, voice, [chunks[:2], chunks[2:3]], lens_of, args.ratio, device)
    result["warm_up_s"] = round(time.perf_counter() - t0, 2)
    result["graphs"] = len(decoder._graphs)
    result["capture_s"] = round(decoder.capture_seconds, 2)
    save()
    strategies = [
        ("official order (one sentence, all stages)", sample, False),
        ("batched, stages in turn", batches, False),
        ("batched, audio overlapped with decode", batches, True),
    ]
    base = None
    for name, work, overlap in strategies:
        r = run(name, decoder, audio, sp, voice, work, lens_of, args.ratio, device, overlap)
        base = base or r["audio_s_per_s"]
        r["speed_up"] = round(r["audio_s_per_s"] / base, 1) if base else None
        result["strategies"][name] = r
        save()
        print(f"{name}: {r['audio_s_per_s']} audio s/s", flush=True)
    if device == "cuda" and not args.no_probe:
        result["dit_bf16_vs_fp32"] = dit_dtype_probe(audio, voice, small)
        save()
    print(markdown(result))


@torch.inference_mode()
def dit_dtype_probe(audio: TokenToWave, voice: dict, small: bool, rows: int = 4, tokens: int = 150) -> dict:
    """The flow's mel in bf16 against the same weights in fp32, on the same tokens, prompt and noise:
    relative L2 (||bf16 - fp32|| / ||fp32||) per row; the fidelity probe behind GLMTTS_DTYPE's default."""
    fp32 = build_audio("cuda", small, audio.memory_bytes, torch.float32).flow  # the same seed: the same weights
    rng = np.random.default_rng(3)
    toks = [torch.from_numpy(rng.integers(0, 1000, tokens + len(voice["prompt_speech"]))) for _ in range(rows)]
    mels = [torch.from_numpy(voice["prompt_mel"])] * rows
    emb = torch.from_numpy(np.stack([voice["embedding"]] * rows))
    noises = [fp32.noise(tokens, seed, "cuda") for seed in range(rows)]
    low = audio.flow.sample(toks, mels, emb, noises)
    high = fp32.sample(toks, mels, emb, noises)
    rel = [float((a.float() - b).norm() / b.norm()) for a, b in zip(low, high, strict=True)]
    return {"rows": rows, "tokens": tokens, "relative_l2": [round(x, 5) for x in rel], "max": round(max(rel), 5)}


def markdown(result: dict) -> str:
    lines = [
        f"# GLM-TTS end to end on {result['device']}",
        "",
        f"{result['sentences']} sentences of the example book; random weights"
        + (" at small dimensions (smoke run)" if result["small_dims"] else " at the real dimensions")
        + f"; a {result['prompt_tokens'] / 25:g} s voice prompt"
        + f"; decode with {result['decode_mode']} ({result['slots']} slots of {result['slot_tokens']} tokens; "
        f"{result.get('graphs', 0)} graphs captured in {result.get('capture_s', 0)} s), "
        f"{result['ratio']} speech tokens per text token; "
        f"KV budget {result['kv_budget']}, flow + vocoder memory {result['audio_memory']}.",
        "",
        "| strategy | sentences | audio s | wall s | audio s / s | speed-up | decode s | flow s | vocoder s "
        "| GPU busy | peak GPU memory |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["strategies"].values():
        st = r["stage_s"] or {}
        mem = format_size(r["peak_mem_bytes"]) if r["peak_mem_bytes"] else "-"
        lines.append(
            f"| {r['strategy']} | {r['sentences']} | {r['audio_s']} | {r['wall_s']} | {r['audio_s_per_s']} "
            f"| {r['speed_up']}x | {st.get('decode', '-')} | {st.get('flow', '-')} | {st.get('vocoder', '-')} "
            f"| {r['gpu_busy'] if r['gpu_busy'] is not None else '-'} | {mem} |"
        )
    if "dit_bf16_vs_fp32" in result:
        p = result["dit_bf16_vs_fp32"]
        lines += ["", f"DiT mel, bf16 vs fp32 on the same inputs: relative L2 {p['relative_l2']} (max {p['max']})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
