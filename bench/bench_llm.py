"""LLM-stage throughput: one sentence at a time (as the official GLM-TTS script runs) against a fixed
batch without bucketing and against the batchtts planner under a KV budget, side by side in one process.

Random weights (bf16 on CUDA, fp32 on CPU) at the dimensions of a Llama config; sentence lengths from
the example book; every row decodes exactly `--ratio` x its text tokens (min and max length rules set
equal), so every strategy does the same work. It also measures memory bandwidth with a large copy
(HBM on CUDA, DRAM on a CPU) and reports each run against its memory-bound floor: every decode step
reads the weights once plus the KV cache of the rows still decoding.

Then the planner's batches again, once per decode-step technique, each row adding one to the row
above: eager attention, SDPA (the default), a preallocated KV cache, torch.compile of the step, and
on CUDA the step replayed as a CUDA graph; each with its gain over the row above.
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

from batchtts.chunks import Chunk  # noqa: E402
from batchtts.engines.glmtts import TOKENS_PER_SECOND, llm_cost  # noqa: E402
from batchtts.engines.glmtts.llm import Sampling, SpecialIds  # noqa: E402
from batchtts.engines.glmtts.static import StaticDecoder  # noqa: E402
from batchtts.jobs.parse import load_jobs  # noqa: E402
from batchtts.plan import plan_batches  # noqa: E402
from batchtts.sizes import format_size, parse_size  # noqa: E402
from batchtts.split import detect_language, split_text  # noqa: E402

PROMPT_SPEECH = 150  # a 6 s reference clip at 25 tokens a second
PROMPT_TEXT = 20
SAMPLING = Sampling()  # GLM-TTS's default RAS sampling; --greedy for argmax


def book_sentences(job_file: Path, repeat: int) -> list[str]:
    texts = [s.text for job in load_jobs(job_file) for s in split_text(job.text, 150)]
    return (texts * repeat)[: len(texts) * repeat]


def build_model(config: dict, device: str, small: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = {k: v for k, v in config.items() if not k.startswith("_") and k != "architectures"}
    if small:  # CPU smoke run: same code path, dimensions a 2-core machine can decode in seconds
        cfg.update(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            vocab_size=4096,
        )
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(LlamaConfig(**cfg)).to(dtype).eval()
    return model, cfg


def specials(vocab: int) -> SpecialIds:
    n_speech = min(32768, vocab // 2)
    return SpecialIds(ats=vocab - n_speech, n_speech=n_speech, boa=3, eoa=2, pad=0)


def run_strategy(decoder: StaticDecoder, sp, lens_of, batches, ratio, device, repeats: int = 1) -> dict:
    """The run with the median wall time of `repeats`."""
    runs = sorted(
        (_run_once(decoder, sp, lens_of, batches, ratio, device) for _ in range(repeats)), key=lambda r: r["wall_s"]
    )
    return runs[len(runs) // 2] | {"repeats": repeats}


def _run_once(decoder: StaticDecoder, sp, lens_of, batches, ratio, device) -> dict:
    steps = tokens = padded = useful = 0
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for batch in batches:
        prompts, lens = [], []
        for c in batch:
            n = lens_of[c.key]
            prompts.append([5] * PROMPT_TEXT + [7] * n + [sp.boa] + [sp.ats + 1] * PROMPT_SPEECH)
            lens.append(n)
        out, _ = decoder.decode(
            prompts,
            lens,
            sp,
            [SAMPLING] * len(batch),
            [c.index for c in batch],  # a seed per sentence
            min_ratio=ratio,
            max_ratio=ratio,
        )
        got = [len(o) for o in out]
        tokens += sum(got)
        steps += max(got)
        # Rows leave the batch when done, so only left-padded prompt slots are held and read for nothing.
        width = max(len(p) for p in prompts)
        padded += sum(width - len(p) for p in prompts)
        useful += sum(len(p) + g for p, g in zip(prompts, got, strict=True))
    if device == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    return {
        "batches": len(batches),
        "speech_tokens": tokens,
        "decode_steps": steps,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 1),
        "audio_s_per_s": round(tokens / TOKENS_PER_SECOND / wall, 2),
        "padding_waste": round(padded / useful, 4),
        "peak_mem_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None,
    }


def memory_bandwidth(device: str) -> float:
    """Bytes per second of a large copy in device memory (read + write): HBM on a GPU, DRAM on a CPU."""
    x = torch.empty((1 << 30) if device == "cuda" else (1 << 28), dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * x.numel() * 10 / (time.perf_counter() - t0)


def floor_seconds(batches, lens_of, prefix: int, ratio: float, weights: int, kv_per_token: int, bw: float) -> float:
    """The least time the batches can take at bandwidth bw: each decode step reads every weight once and
    the KV cache of the rows still decoding."""
    total = 0.0
    for batch in batches:
        n = [lens_of[c.key] for c in batch]
        width = max(n) + prefix
        ends = [int(x * ratio) for x in n]
        for step in range(max(ends)):
            live = sum(e > step for e in ends)
            total += (weights + live * (width + step) * kv_per_token) / bw
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=ROOT / "bench" / "llama_standin_config.json")
    parser.add_argument("--jobs", type=Path, default=ROOT / "jobs" / "book.jsonl")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--kv-budget", default=None, help="default: 10GiB on CUDA, 512MiB on CPU")
    parser.add_argument("--fixed-batch", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--ratio", type=float, default=6.5, help="speech tokens decoded per text token")
    parser.add_argument("--repeat", type=int, default=None, help="copies of the book (default: 4 CUDA, 1 CPU)")
    parser.add_argument("--small", action="store_true", help="tiny dimensions (default on CPU)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N sentences (smoke runs)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="runs per row, median reported (default: 1 CUDA, 3 CPU)"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--greedy", action="store_true", help="argmax instead of RAS sampling")
    parser.add_argument(
        "--steps",
        default="eager,static,compile,graphs",
        help="decode-step techniques to compare on the planner's batches (graphs only on CUDA); 'none' to skip",
    )
    args = parser.parse_args()
    if args.greedy:
        global SAMPLING
        SAMPLING = Sampling(greedy=True)
    device = args.device
    small = args.small or device == "cpu"
    config = json.loads(args.config.read_text())
    model, dims = build_model(config, device, small)
    sp = specials(dims["vocab_size"])
    dtype_bytes = 2 if device == "cuda" else 4
    cost = llm_cost(dims, dtype_bytes)
    budget = parse_size(args.kv_budget or ("10GiB" if device == "cuda" else "512MiB"))

    sentences = book_sentences(args.jobs, args.repeat or (4 if device == "cuda" else 1))[: args.limit]
    chunks = [
        Chunk("book", i, f"k{i}", t, t, detect_language(t), "sentence", {}, "narrator") for i, t in enumerate(sentences)
    ]
    lens_of = {c.key: cost.text_tokens(c.text, c.language) for c in chunks}
    prefix = {"narrator": PROMPT_TEXT + 1 + PROMPT_SPEECH}
    plan = plan_batches(chunks, cost, budget, args.max_batch, prefix)
    strategies = {
        "one at a time (official)": [[c] for c in chunks],
        f"fixed batch of {args.fixed_batch}, book order": [
            chunks[i : i + args.fixed_batch] for i in range(0, len(chunks), args.fixed_batch)
        ],
        "batchtts planner": [list(b.chunks) for b in plan.batches],
    }
    repeats = args.repeats or (1 if device == "cuda" else 3)
    dynamic = StaticDecoder(model, "dynamic")
    run_strategy(dynamic, sp, lens_of, [chunks[:2]], args.ratio, device)  # warm-up
    rows = {
        name: run_strategy(dynamic, sp, lens_of, batches, args.ratio, device, repeats)
        for name, batches in strategies.items()
    }

    planned = strategies["batchtts planner"]
    wanted = set(args.steps.split(","))
    steps = {}
    if "eager" in wanted:
        model.set_attn_implementation("eager")
        steps["eager attention"] = run_strategy(dynamic, sp, lens_of, planned, args.ratio, device, repeats)
        model.set_attn_implementation("sdpa")
    steps["+ SDPA attention (default)"] = dict(rows["batchtts planner"])
    for mode, label in (
        ("static", "+ preallocated KV cache"),
        ("compile", "+ torch.compile step"),
        ("graphs", "+ CUDA graph replay"),
    ):
        if mode not in wanted or (mode == "graphs" and device != "cuda"):
            continue
        decoder = StaticDecoder(model, mode)
        t0 = time.perf_counter()
        run_strategy(decoder, sp, lens_of, planned[:2] + planned[-2:], args.ratio, device)  # compiles its shapes
        warm = time.perf_counter() - t0
        steps[label] = run_strategy(decoder, sp, lens_of, planned, args.ratio, device, repeats)
        steps[label]["warm_up_s"] = round(warm, 1)
    previous = None
    for r in steps.values():
        r["gain"] = round(r["tokens_per_s"] / previous, 2) if previous else None
        previous = r["tokens_per_s"]
    best = max(steps, key=lambda k: steps[k]["tokens_per_s"])
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
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
        | {"dtype_bytes": dtype_bytes, "small": small},
        "kv_bytes_per_token": cost.bytes_per_token,
        "weights_bytes": weights,
        "budget_bytes": budget,
        "sentences": len(chunks),
        "ratio": args.ratio,
        "sampling": "greedy" if SAMPLING.greedy else "ras",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "strategies": rows,
        "decode_steps_ablation": steps,
    }
    one = rows["one at a time (official)"]["tokens_per_s"]
    result["planner_vs_one_at_a_time"] = round(rows["batchtts planner"]["tokens_per_s"] / one, 2)
    result["best_decode_step"] = best
    result["planner_best_step_vs_one_at_a_time"] = round(steps[best]["tokens_per_s"] / one, 2)
    bw = memory_bandwidth(device)
    result["memory_bytes_per_s"] = bw
    for name, batches in [*strategies.items(), *((label, planned) for label in steps)]:
        row = steps[name] if name in steps else rows[name]
        floor = floor_seconds(batches, lens_of, prefix["narrator"], args.ratio, weights, cost.bytes_per_token, bw)
        row["bound_fraction"] = round(floor / row["wall_s"], 3)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"llm-{device}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"Device {result['device']}; commit {result['commit']}; config {result['config']} "
        f"({'small dims' if small else 'full dims'}, {dims['num_hidden_layers']} layers x {dims['hidden_size']}); "
        f"KV {format_size(cost.bytes_per_token)}/token; budget {format_size(budget)}; "
        f"{len(chunks)} sentences; {args.ratio} speech tokens per text token; "
        f"{'greedy' if SAMPLING.greedy else 'RAS'} sampling; weights {format_size(weights)}; "
        f"measured memory bandwidth {bw / 1e9:.0f} GB/s",
        "",
        "| strategy | batches | speech tok/s | audio s per s | padding waste | peak mem | of bandwidth bound |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        mem = format_size(r["peak_mem_bytes"]) if r["peak_mem_bytes"] else "-"
        md.append(
            f"| {name} | {r['batches']} | {r['tokens_per_s']} | {r['audio_s_per_s']} | "
            f"{100 * r['padding_waste']:.1f}% | {mem} | {r.get('bound_fraction', '-')} |"
        )
    md += [
        "",
        f"Planner over one-at-a-time: {result['planner_vs_one_at_a_time']}x.",
        "",
        "The planner's batches, one decode-step technique added per row:",
        "",
        "| decode step | speech tok/s | gain over row above | of bandwidth bound | warm-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in steps.items():
        gain = f"{r['gain']}x" if r["gain"] else "-"
        warm = f"{r['warm_up_s']} s" if "warm_up_s" in r else "-"
        md.append(f"| {name} | {r['tokens_per_s']} | {gain} | {r.get('bound_fraction', '-')} | {warm} |")
    md += [
        "",
        f"Planner with the fastest step ({best.lstrip('+ ')}) over one-at-a-time: "
        f"{result['planner_best_step_vs_one_at_a_time']}x.",
        "",
        f"Command: `python {result['command']}`",
    ]
    (args.results / f"llm-{device}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
