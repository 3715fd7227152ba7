"""Fidelity probe behind GLMTTS_DTYPE: the same sentences decoded by the engine's slot decoder with the same
weights in fp32 and in bf16 (the official code runs fp32; batchtts's default on CUDA is bf16).

Lengths are free (GLM-TTS's rules: EOA allowed from 2x the text tokens, cut at 20x), sampling is RAS with the
engine's defaults and a seed per sentence, so the two runs differ only by rounding. Per dtype: speech tokens per
text token (mean, spread), the share of sentences ended by EOA per text-length band (the rest are truncations at
20x), truncations; between the two: identical rows and the mean position of the first differing token. Random
weights at the published dimensions (llm-config.json) unless --small; with the real checkpoint's weights these
numbers are the ones that decide the default. Writes probe-dtype-<device>.{json,md} as soon as they exist.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchtts.engines.glmtts.llm.llama import FusedLlama  # noqa: E402
from batchtts.engines.glmtts.llm.slot_decoder import SlotDecoder  # noqa: E402
from batchtts.engines.glmtts.llm.types import Sampling, output_ids  # noqa: E402
from bench.bench_llm import CONFIG, PROMPT_SPEECH, PROMPT_TEXT, book_sentences, build_model, specials  # noqa: E402

BANDS = ((1, 8), (9, 16), (17, 10_000))  # text tokens


def stats(tokens: list[list[int]], cut: list[bool], lens: list[int]) -> dict:
    ratios = [len(t) / n for t, n in zip(tokens, lens, strict=True)]
    by_band = {}
    for lo, hi in BANDS:
        rows = [not c for c, n in zip(cut, lens, strict=True) if lo <= n <= hi]
        if rows:
            by_band[f"{lo}-{hi if hi < 10_000 else ''}"] = round(sum(rows) / len(rows), 3)
    return {
        "tokens_per_text_token_mean": round(statistics.fmean(ratios), 3),
        "tokens_per_text_token_stdev": round(statistics.pstdev(ratios), 3),
        "eoa_rate_by_text_tokens": by_band,
        "truncated": sum(cut),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sentences", type=int, default=128)
    parser.add_argument("--small", action="store_true", help="small dimensions (always on a CPU)")
    parser.add_argument("--jobs", type=Path, default=ROOT / "jobs" / "book.jsonl")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    device, small = args.device, args.small or args.device == "cpu"
    t0 = time.perf_counter()
    fp32, dims = build_model(json.loads(CONFIG.read_text()), device, small, torch.float32)
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    sp = specials(dims["vocab_size"])
    gen = torch.Generator().manual_seed(0)
    sentences = book_sentences(args.jobs, 1 + args.sentences // 32)[: args.sentences]
    lens = [max(2, len(s) // 4) for s in sentences]  # ~4 characters a token (the cost model's English figure)
    prompts = [
        torch.randint(4, sp.ats, (PROMPT_TEXT + n,), generator=gen).tolist()
        + [sp.boa]
        + (sp.ats + torch.randint(0, sp.n_speech, (PROMPT_SPEECH,), generator=gen)).tolist()
        for n in lens
    ]
    length = -(-max(len(p) + 20 * n + 1 for p, n in zip(prompts, lens, strict=True)) // 256) * 256
    seeds = list(range(len(prompts)))
    samplings = [Sampling()] * len(prompts)
    result = {"device": device, "small_dims": small, "sentences": len(prompts), "slot_tokens": length, "dtypes": {}}
    out = args.results
    out.mkdir(parents=True, exist_ok=True)
    decoded = {}
    for name, model in (("fp32", fp32), ("bf16", bf16)):
        fused = FusedLlama(model, output_ids(sp))
        decoder = SlotDecoder(fused, sp, min(64, len(prompts)), length, graphs=device == "cuda")
        t1 = time.perf_counter()
        tokens, cut = decoder.decode(prompts, lens, sp, samplings, seeds, 2.0, 20.0)
        decoded[name] = tokens
        result["dtypes"][name] = stats(tokens, cut, lens) | {"seconds": round(time.perf_counter() - t1, 2)}
        del decoder, fused
        write(result, out, device)
    same = [a == b for a, b in zip(decoded["fp32"], decoded["bf16"], strict=True)]
    first = [
        next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        for a, b, s in zip(decoded["fp32"], decoded["bf16"], same, strict=True)
        if not s
    ]
    result["identical_rows"] = round(sum(same) / len(same), 3)
    result["mean_first_difference"] = round(statistics.fmean(first), 1) if first else None
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write(result, out, device)
    print((out / f"probe-dtype-{device}.md").read_text())


def write(result: dict, out: Path, device: str) -> None:
    (out / f"probe-dtype-{device}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Decode in fp32 vs bf16 ({result['device']}, {result['sentences']} sentences, "
        f"{'small' if result['small_dims'] else 'real'} dimensions, random weights)",
        "",
        "| dtype | speech tokens / text token | spread | EOA rate by text tokens | truncated | seconds |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name, s in result["dtypes"].items():
        bands = ", ".join(f"{k}: {v}" for k, v in s["eoa_rate_by_text_tokens"].items())
        lines.append(
            f"| {name} | {s['tokens_per_text_token_mean']} | {s['tokens_per_text_token_stdev']} | {bands} "
            f"| {s['truncated']} | {s['seconds']} |"
        )
    if "identical_rows" in result:
        lines += [
            "",
            f"Identical rows fp32 vs bf16: {result['identical_rows']}; first differing token at "
            f"{result['mean_first_difference']} on average.",
        ]
    (out / f"probe-dtype-{device}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
