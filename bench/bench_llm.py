"""GLM-TTS's LLM stage, strategies side by side in one process, at the published model's dimensions.

Random weights at `batchtts/engines/glmtts/llm-config.json` (bf16 on CUDA; on a CPU, small dimensions so a
run takes minutes), the example book repeated to >= 1,000 sentences, GLM-TTS's RAS sampling, and every row
decoding exactly `--ratio` x its text tokens (min and max length equal), so every strategy does the same
work per sentence:

- one at a time with the Hugging Face reference loop (llm/reference.py, the official script's shape; timed on
  a sample: the first `--alone` sentences, reported per sentence),
- fixed batches of 16 in book order with the reference loop (on the first `--fixed` sentences),
- continuous batching over slots sized by the KV budget (llm/slot_decoder.py, the engine's one decode path),
  with CUDA graphs on CUDA; graph capture time reported on its own.

Each reports speech tokens/s, audio seconds per second, decode steps, peak memory and the fraction of its
bandwidth floor: per decode step the weights it reads (the layers and the speech-token rows of the output
projection; not the embedding table) plus the KV of the rows still decoding, at the bandwidth a large copy
measures. Then the first `--identical` sentences are decoded alone through a one-slot decoder and compared
with their continuous-batching tokens (identical-token rate). Results are rewritten after every strategy.

Sizes on an H100/H200 at the real dimensions (bf16, about 1 ms of weight reads per step at ~3 TB/s): the
reference loop runs ~15-25 ms a step (Hugging Face's forward, launch-bound), so 16 sentences alone of ~80
tokens are ~25 s and 64 in batches of 16 ~10 s; 1,024 sentences through 64 graphed slots are ~1,400 steps
at ~2-3 ms plus refills, ~5 s; capture of 7 buckets x 16 spans ~10-20 s. Defaults keep the whole under 90 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchtts.config import format_size, parse_size  # noqa: E402
from batchtts.engines.glmtts import TOKENS_PER_SECOND, llm_cost  # noqa: E402
from batchtts.engines.glmtts.llm.capacity import slots_for_budget  # noqa: E402
from batchtts.engines.glmtts.llm.llama import FusedLlama  # noqa: E402
from batchtts.engines.glmtts.llm.reference import decode_batch  # noqa: E402
from batchtts.engines.glmtts.llm.slot_decoder import SlotDecoder  # noqa: E402
from batchtts.engines.glmtts.llm.types import Sampling, SpecialIds, output_ids  # noqa: E402
from batchtts.jobs.parse import load_jobs  # noqa: E402
from batchtts.planning.plan import plan_batches  # noqa: E402
from batchtts.text.chunks import Chunk  # noqa: E402
from batchtts.text.split import detect_language, split_text  # noqa: E402

CONFIG = ROOT / "batchtts" / "engines" / "glmtts" / "llm-config.json"
PROMPT_SPEECH = 150  # a 6 s reference clip at 25 tokens a second
PROMPT_TEXT = 20
SMALL = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    vocab_size=4096,
)


def book_sentences(job_file: Path, repeat: int) -> list[str]:
    texts = [s.text for job in load_jobs(job_file) for s in split_text(job.text, 150)]
    return texts * repeat


def build_model(config: dict, device: str, small: bool, dtype: torch.dtype | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = {k: v for k, v in config.items() if not k.startswith("_") and k not in ("architectures", "torch_dtype")}
    if small:  # CPU run: the same code path at dimensions a 2-core machine decodes in minutes
        cfg.update(SMALL)
    dtype = dtype or (torch.bfloat16 if device == "cuda" else torch.float32)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(LlamaConfig(**cfg)).to(dtype).eval()
    return model, cfg


def specials(vocab: int) -> SpecialIds:
    n_speech = min(32768, vocab // 2)
    return SpecialIds(ats=vocab - n_speech, n_speech=n_speech, boa=3, eoa=2, pad=0)


class Workload:
    def __init__(self, chunks: list[Chunk], lens: dict[str, int], sp: SpecialIds, ratio: float):
        self.chunks, self.lens, self.sp, self.ratio = chunks, lens, sp, ratio

    def prompt(self, c: Chunk) -> list[int]:
        return [5] * PROMPT_TEXT + [7] * self.lens[c.key] + [self.sp.boa] + [self.sp.ats + 1] * PROMPT_SPEECH

    def decoded(self, c: Chunk) -> int:
        return int(self.lens[c.key] * self.ratio)

    def kv_tokens_read(self, chunks) -> int:
        """Cache entries the decode steps of these sentences read (each step: its row's context)."""
        total = 0
        for c in chunks:
            p, d = len(self.prompt(c)), self.decoded(c)
            total += d * p + d * (d - 1) // 2
        return total

    def args(self, chunks):
        return (
            [self.prompt(c) for c in chunks],
            [self.lens[c.key] for c in chunks],
            self.sp,
            [Sampling()] * len(chunks),
            [c.index for c in chunks],  # a seed per sentence
            self.ratio,
            self.ratio,
        )


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(device: str, fn) -> tuple[object, float, int | None]:
    _sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    wall = time.perf_counter() - t0
    return out, wall, torch.cuda.max_memory_allocated() if device == "cuda" else None


def row(tokens: list[list[int]], steps: int, wall: float, peak: int | None, sentences: int, **extra) -> dict:
    n = sum(len(t) for t in tokens)
    return {
        "sentences": sentences,
        "speech_tokens": n,
        "decode_steps": steps,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(n / wall, 1),
        "audio_s_per_s": round(n / TOKENS_PER_SECOND / wall, 2),
        "ms_per_step": round(1000 * wall / max(1, steps), 3),
        "peak_mem_bytes": peak,
        **extra,
    }


def memory_bandwidth(device: str) -> float:
    """Bytes per second of a large copy in device memory (read + write): HBM on a GPU, DRAM on a CPU."""
    x = torch.empty((1 << 30) if device == "cuda" else (1 << 28), dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    _sync(device)
    return 2 * x.numel() * 10 / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--jobs", type=Path, default=ROOT / "jobs" / "book.jsonl")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--kv-budget", default=None, help="default: 10GiB on CUDA, 512MiB on CPU")
    parser.add_argument("--max-slots", type=int, default=64)
    parser.add_argument("--ratio", type=float, default=6.5, help="speech tokens decoded per text token")
    parser.add_argument("--repeat", type=int, default=32, help="copies of the example book (32 x 32 sentences)")
    parser.add_argument("--small", action="store_true", help="small dimensions (always on a CPU)")
    parser.add_argument("--alone", type=int, help="sentences one at a time, reference loop (16 CUDA, 8 CPU)")
    parser.add_argument("--fixed", type=int, help="sentences in fixed batches of 16 (64 CUDA, 32 CPU)")
    parser.add_argument("--identical", type=int, help="sentences compared alone vs continuous (64 CUDA, 16 CPU)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N sentences (smoke runs)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    device = args.device
    defaults = {"alone": 16, "fixed": 64, "identical": 64} if device == "cuda" else {"alone": 8, "fixed": 32}
    for name, value in (defaults | ({} if device == "cuda" else {"identical": 16})).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    small = args.small or device == "cpu"
    model, dims = build_model(json.loads(args.config.read_text()), device, small)
    sp = specials(dims["vocab_size"])
    cost = llm_cost(dims, model.dtype.itemsize)
    budget = parse_size(args.kv_budget or ("10GiB" if device == "cuda" else "512MiB"))
    sentences = book_sentences(args.jobs, args.repeat)[: args.limit]
    chunks = [
        Chunk("book", i, f"k{i}", t, t, detect_language(t), "sentence", {}, "narrator") for i, t in enumerate(sentences)
    ]
    work = Workload(chunks, {c.key: cost.text_tokens(c.text, c.language) for c in chunks}, sp, args.ratio)
    plan = plan_batches(chunks, cost, budget, args.max_slots, {"narrator": PROMPT_TEXT + 1 + PROMPT_SPEECH})
    queue = [c for b in plan.batches for c in b.chunks]  # the planner's length order
    fused = FusedLlama(model, output_ids(sp))  # makes the HF weights views of the fused ones: no extra memory
    step_weights = fused.weight_bytes_per_step()
    bw = memory_bandwidth(device)
    per_token = cost.bytes_per_token
    out = args.results
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"CPU {platform.machine()}",
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "config": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config),
        "dims": {
            k: dims[k]
            for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size")
        }
        | {"dtype_bytes": model.dtype.itemsize, "small": small},
        "kv_bytes_per_token": per_token,
        "weights_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "step_weight_bytes": step_weights,
        "budget_bytes": budget,
        "sentences": len(chunks),
        "ratio": args.ratio,
        "sampling": "ras",
        "memory_bytes_per_s": bw,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "strategies": {},
    }

    def record(name: str, r: dict, chunks_done) -> None:
        floor = (r["decode_steps"] * step_weights + work.kv_tokens_read(chunks_done) * per_token) / bw
        r["bound_fraction"] = round(floor / r["wall_s"], 4)
        result["strategies"][name] = r
        write(result, out, device)
        print(f"{name}: {r['tokens_per_s']} tok/s, {r['ms_per_step']} ms/step, of floor {r['bound_fraction']}")

    def reference(*a):
        return decode_batch(model, *a)

    reference(*work.args(chunks[:2]))  # warm-up

    subset = chunks[: args.alone]
    runs, wall, peak = timed(device, lambda: [reference(*work.args([c])) for c in subset])
    alone_ref = [r[0][0] for r in runs]
    steps = sum(len(t) + 1 for t in alone_ref)  # the prefill's token, then a step per further token
    record("one at a time, reference loop", row(alone_ref, steps, wall, peak, len(subset)), subset)
    result["strategies"]["one at a time, reference loop"]["s_per_sentence"] = round(wall / len(subset), 3)

    subset = chunks[: args.fixed]
    batches = [subset[i : i + 16] for i in range(0, len(subset), 16)]
    runs, wall, peak = timed(device, lambda: [reference(*work.args(b)) for b in batches])
    toks = [t for r in runs for t in r[0]]
    steps = sum(max(len(t) for t in r[0]) for r in runs)
    record("fixed batches of 16, reference loop", row(toks, steps, wall, peak, len(subset)), subset)

    graphs = device == "cuda"
    length = -(-max(len(work.prompt(c)) + work.decoded(c) + 1 for c in chunks) // 64) * 64
    slots = slots_for_budget(budget, per_token, length, args.max_slots)
    t0 = time.perf_counter()
    decoder = SlotDecoder(fused, sp, slots, length, graphs=graphs)
    decoder.decode(*work.args(queue[:2]))  # warm-up (and, on CUDA, the graphs' capture)
    warm = time.perf_counter() - t0
    steps0 = decoder.steps_run
    decoder.prefill_seconds()
    (toks, _), wall, peak = timed(device, lambda: decoder.decode(*work.args(queue)))
    prefill = decoder.prefill_seconds()
    name = "continuous batching" + (", CUDA graphs" if decoder.use_graphs else ", eager steps")
    r = row(toks, decoder.steps_run - steps0, wall, peak, len(queue), slots=slots, slot_tokens=length)
    r["warm_up_s"] = round(warm, 2)
    r["capture_s"] = round(decoder.capture_seconds, 2)
    r["graphs"] = len(decoder._graphs)
    r["kv_cache_bytes"] = decoder.kv_bytes()
    r["prefill_s"] = round(prefill, 3)
    record(name, r, queue)
    floor = r["bound_fraction"] * r["wall_s"]
    r["decode_bound_fraction"] = round(floor / max(1e-9, r["wall_s"] - prefill), 4)  # decode steps' time only
    write(result, out, device)
    continuous = dict(zip((c.key for c in queue), toks, strict=True))

    # Honest determinism: the same sentences decoded alone (one slot) against continuous batching.
    one = SlotDecoder(fused, sp, 1, length, graphs=graphs)
    subset = chunks[: args.identical]
    alone = [one.decode(*work.args([c]))[0][0] for c in subset]
    same = sum(continuous[c.key] == a for c, a in zip(subset, alone, strict=True))
    vs_ref = sum(continuous[c.key] == a for c, a in zip(chunks, alone_ref, strict=False))
    result["identical_tokens"] = {
        "sentences": len(subset),
        "continuous_vs_alone_same_loop": round(same / len(subset), 4),
        "mean_abs_length_difference": round(
            sum(abs(len(continuous[c.key]) - len(a)) for c, a in zip(subset, alone, strict=True)) / len(subset), 3
        ),
        "continuous_vs_reference_loop_alone": round(vs_ref / len(alone_ref), 4),
        "note": "lengths are forced (min = max ratio), so the length difference is 0 by construction here",
    }
    one_tps = result["strategies"]["one at a time, reference loop"]["tokens_per_s"]
    result["continuous_vs_one_at_a_time"] = round(r["tokens_per_s"] / one_tps, 1)
    write(result, out, device)
    print((out / f"llm-{device}.md").read_text())


def write(result: dict, out: Path, device: str) -> None:
    """JSON and a Markdown table, rewritten after each strategy so a later crash loses nothing."""
    (out / f"llm-{device}.json").write_text(json.dumps(result, indent=2) + "\n")
    d = result["dims"]
    md = [
        f"Device {result['device']}; commit {result['commit']}; config {result['config']} "
        f"({'small dims' if d['small'] else 'full dims'}: {d['num_hidden_layers']} layers x {d['hidden_size']}, "
        f"{d['dtype_bytes'] * 8}-bit); KV {format_size(result['kv_bytes_per_token'])}/token; "
        f"a step reads {format_size(result['step_weight_bytes'])} of weights; {result['sentences']} sentences; "
        f"{result['ratio']} speech tokens per text token; RAS sampling; "
        f"memory bandwidth {result['memory_bytes_per_s'] / 1e9:.0f} GB/s",
        "",
        "| strategy | sentences | decode steps | ms/step | speech tok/s | audio s/s | peak mem | of bandwidth floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["strategies"].items():
        mem = format_size(r["peak_mem_bytes"]) if r["peak_mem_bytes"] else "-"
        md.append(
            f"| {name} | {r['sentences']} | {r['decode_steps']} | {r['ms_per_step']} | {r['tokens_per_s']} | "
            f"{r['audio_s_per_s']} | {mem} | {r['bound_fraction']} |"
        )
    if "identical_tokens" in result:
        same = result["identical_tokens"]
        md += [
            "",
            f"Continuous batching over one at a time: {result['continuous_vs_one_at_a_time']}x speech tokens/s.",
            f"Identical tokens, first {same['sentences']} sentences: continuous batching vs the same loop alone "
            f"{100 * same['continuous_vs_alone_same_loop']:.1f}%; vs the reference loop alone "
            f"{100 * same['continuous_vs_reference_loop_alone']:.1f}%; mean length difference "
            f"{same['mean_abs_length_difference']} tokens (lengths forced here).",
        ]
    for name, r in result["strategies"].items():
        if "prefill_s" in r:
            md += [
                "",
                f"{name}: {r['slots']} slots of {r['slot_tokens']} tokens, {r.get('graphs', 0)} CUDA graphs captured "
                f"in {r.get('capture_s', 0)} s (first decode with warm-up {r['warm_up_s']} s); "
                f"refill prefills took {r['prefill_s']} s of {r['wall_s']} s; the decode steps alone ran at "
                f"{r.get('decode_bound_fraction', '-')} of the bandwidth floor.",
            ]
    md += ["", f"Command: `python bench/{result['command']}`"]
    (out / f"llm-{device}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
