"""What verification costs.

    python bench/bench_asr.py --device cpu [--default-search] [--out DIR]
        pocketsphinx on the embedded engine's English (the example book's English chapters): ASR seconds as a
        fraction of synthesis seconds, and the per-sentence WER of good and garbled takes
        (sampling noise_scale/noise_w 2.0), i.e. what the default threshold flags. --default-search: with
        pocketsphinx's own search settings instead of batchtts's capped ones (to asr-cpu-default-search.*).
    python bench/bench_asr.py --device cuda --random-weights [--out DIR]
        Whisper at large-v3-turbo's dimensions with random weights (no download, no network), batched on the
        GPU: audio seconds transcribed per second and peak memory per batch size, beside the memory the
        backend reserves from the engine's budget (WhisperBackend.batch_bytes). With --device cpu the same
        step runs at toy dimensions, to exercise the script.
    python bench/bench_asr.py --device cpu --overlap [--rounds N] [--threads 1,2] [--out DIR]
        What verification adds to a batch's wall time on the embedded engine (the example book's English
        chapters, batches of 8, as a worker makes them): the same batches synthesised with verification off,
        verified serially (pocketsphinx in this process after each batch: before verify/listen.py) and
        overlapped (takes heard by pocketsphinx's child process as Piper reports them), side by side in
        rotating order for N rounds; medians, and the load average (to asr-cpu-overlap.*). Per engine thread
        count: the child only gains where the engine leaves a core idle.

Each result is written to DIR/asr-<device>.json (and .md) the moment it exists, so a timeout keeps what
finished. bench/gpu_check.sh calls the cuda form; it finishes in well under a minute on an H100.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLIP_SECONDS = 6.0  # a typical sentence
TURBO = dict(  # openai/whisper-large-v3-turbo's config.json
    d_model=1280, encoder_layers=32, decoder_layers=4, encoder_attention_heads=20, decoder_attention_heads=20,
    encoder_ffn_dim=5120, decoder_ffn_dim=5120, num_mel_bins=128, vocab_size=51866, max_target_positions=448,
)  # fmt: skip
TOY = dict(
    d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
    encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=128, vocab_size=51866, max_target_positions=448,
)  # fmt: skip


class Results:
    def __init__(self, folder: Path, device: str, stem: str = ""):
        self.folder, self.device, self.data = folder, device, {"device": device}
        self.stem = stem or f"asr-{device}"
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, value) -> None:
        self.data[name] = value
        stem = self.folder / self.stem
        stem.with_suffix(".json").write_text(json.dumps(self.data, indent=1, ensure_ascii=False) + "\n")
        lines = [f"# ASR verification benchmark ({self.stem})", ""]
        lines += [f"- **{k}**: `{json.dumps(v, ensure_ascii=False)}`" for k, v in self.data.items()]
        stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
        print(f"{name}: {json.dumps(value, ensure_ascii=False)}", flush=True)


def cpu_cost(results: Results, search: dict | None = None) -> None:
    import batchtts
    from batchtts.engines.base import SynthRequest
    from batchtts.engines.embedded import EmbeddedEngine
    from batchtts.text.chunks import chunk_seed
    from batchtts.verify.asr.pocketsphinx import PocketsphinxBackend
    from batchtts.verify.score import MIN_WORDS, error_rate, size, threshold

    chunks = [c for c in batchtts.chunks(ROOT / "jobs" / "book.jsonl") if c.language == "en"]
    engine, asr = EmbeddedEngine.load(), PocketsphinxBackend(search)
    limit = threshold("pocketsphinx", "en")
    try:
        for label, extra in (("good", {}), ("garbled", {"noise_scale": 2.0, "noise_w": 2.0})):
            reqs = [SynthRequest(c.key, c.text, "en", chunk_seed(c.key), {**c.options, **extra}) for c in chunks]
            t0 = time.perf_counter()
            takes = [t for i in range(0, len(reqs), 8) for t in synthesize(engine, reqs[i : i + 8])]
            synth = time.perf_counter() - t0
            kept = [c for c, t in zip(chunks, takes, strict=True) if t is not None]
            takes = [t for t in takes if t is not None]
            t0 = time.perf_counter()
            heard = asr.transcribe([t.audio for t in takes], [t.sample_rate for t in takes], "en")
            asr_s = time.perf_counter() - t0
            errors = [error_rate(c.text, h, "en")[1] for c, h in zip(kept, heard, strict=True)]
            audio = sum(len(t.audio) / t.sample_rate for t in takes)
            results.add(
                f"pocketsphinx_{label}",
                {
                    "chunks": len(kept),
                    "engine_failed": len(chunks) - len(kept),
                    "audio_seconds": round(audio, 2),
                    "synthesis_seconds": round(synth, 2),
                    "asr_seconds": round(asr_s, 2),
                    "asr_seconds_per_audio_second": round(asr_s / audio, 3),
                    "asr_share_of_synthesis": round(asr_s / synth, 3),
                    "wer_mean": round(statistics.mean(errors), 3),
                    "wer_median": round(statistics.median(errors), 3),
                    "wer_max": round(max(errors), 3),
                    "wer": [round(e, 3) for e in errors],
                    # what a run would retake: above the threshold, and long enough to be judged on its score
                    "above_threshold": sum(
                        e > limit and size(c.text, "en") >= MIN_WORDS["en"] for c, e in zip(kept, errors, strict=True)
                    ),
                    "threshold": limit,
                },
            )
    finally:
        engine.close()


def overlap_cost(results: Results, rounds: int, threads: int) -> None:
    import batchtts
    from batchtts.engines.base import SynthRequest
    from batchtts.engines.embedded import EmbeddedEngine
    from batchtts.text.chunks import chunk_seed
    from batchtts.verify.quality import check
    from batchtts.verify.stage import Verifier, VerifyPlan

    chunks = [c for c in batchtts.chunks(ROOT / "jobs" / "book.jsonl") if c.language == "en"]
    reqs = [SynthRequest(c.key, c.text, "en", chunk_seed(c.key), c.options) for c in chunks]
    batches = [list(range(i, min(i + 8, len(reqs)))) for i in range(0, len(reqs), 8)]
    plan = VerifyPlan("pocketsphinx", 0.85, 2)
    engine = EmbeddedEngine.load(threads=threads)
    serial, overlapped = Verifier({}, serial=True), Verifier({})
    listener, n = overlapped.listener(), iter(range(10**9))

    def take(i, result):
        return (next(n), plan, chunks[i].text, "en", result.audio, result.sample_rate)

    audio: dict[int, float] = {}

    def off(idx):
        made = engine.synthesize([reqs[i] for i in idx], {})
        audio.update({i: len(r.audio) / r.sample_rate for i, r in zip(idx, made, strict=True)})

    def before(idx):  # what Worker._attempt did: the batch, then its takes scored in this process
        made = engine.synthesize([reqs[i] for i in idx], {})
        serial.score([take(i, r)[1:] for i, r in zip(idx, made, strict=True)])

    def after(idx):  # what it does: takes heard as they are reported, collected when the call returns
        def heard(done):
            good = [(idx[k], r) for k, r in done if check(chunks[idx[k]].text, "en", r.audio, r.sample_rate) is None]
            listener.submit([take(i, r) for i, r in good])

        engine.synthesize([reqs[i] for i in idx], {}, on_results=heard)
        listener.collect([])

    modes = {"verify_off": off, "serial_before": before, "overlapped_after": after}
    t0 = time.perf_counter()
    after(batches[0])  # starts the child process (once per worker) and loads both decoders before timing
    before(batches[0])
    warm = round(time.perf_counter() - t0, 2)
    walls: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}  # this process's threads and the ASR child, seconds
    (child,) = listener.children.values()
    load0 = os.getloadavg()

    def cpu_now() -> float:
        fields = Path(f"/proc/{child.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return time.process_time() + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    try:
        for r in range(rounds):
            names = list(modes)[r % 3 :] + list(modes)[: r % 3]  # rotate, so no mode always runs first
            for name in names:
                t0, c0 = time.perf_counter(), cpu_now()
                for idx in batches:
                    modes[name](idx)
                walls[name].append(round(time.perf_counter() - t0, 2))
                cpu[name].append(round(cpu_now() - c0, 2))
    finally:
        engine.close()
        overlapped.close()
        serial.close()
    base = statistics.median(walls["verify_off"])
    results.add(
        f"overlap_threads_{threads}",
        {
            "chunks": len(chunks),
            "batches": len(batches),
            "rounds": rounds,
            "engine_threads": threads,
            "cores": os.cpu_count(),
            "warm_up_seconds": warm,
            "wall_seconds": walls,
            "median_seconds": {m: round(statistics.median(w), 2) for m, w in walls.items()},
            "cpu_seconds": cpu,
            "added_by_verification": {
                m: round(statistics.median(w) / base - 1, 3) for m, w in walls.items() if m != "verify_off"
            },
            "loadavg_before": [round(x, 2) for x in load0],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "asr_seconds": {"serial": round(serial.seconds, 2), "overlapped_child": round(overlapped.seconds, 2)},
            "audio_seconds": round(sum(audio.values()), 2),
        },
    )


def synthesize(engine, reqs) -> list:
    """The batch's takes; if the batch fails, each request alone, None for one the engine rejects (noise_w 2.0
    can make the embedded engine's duration predictor disagree with itself on a sentence)."""
    try:
        return engine.synthesize(reqs, {})
    except Exception:  # noqa: BLE001 - a garbling setting may break a take; the others still count
        out = []
        for req in reqs:
            try:
                out += engine.synthesize([req], {})
            except Exception:  # noqa: BLE001
                out.append(None)
        return out


def whisper_random(results: Results, device: str, batches: list[int]) -> None:
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    from batchtts.verify.asr.whisper import WhisperBackend

    dims = TURBO if device == "cuda" else TOY
    dtype = torch.float16 if device == "cuda" else torch.float32
    t0 = time.perf_counter()
    config = WhisperConfig(**dims, decoder_start_token_id=50258, eos_token_id=50257, pad_token_id=50257)
    with torch.device(device):
        model = WhisperForConditionalGeneration(config).to(dtype).eval()
    backend = WhisperBackend.__new__(WhisperBackend)  # the backend's own memory model on this model
    backend.model, backend.dtype, backend.device = model, dtype, device
    extractor = WhisperFeatureExtractor(feature_size=dims["num_mel_bins"])
    built = round(time.perf_counter() - t0, 2)
    name = "large-v3-turbo" if device == "cuda" else "toy"
    results.add("whisper_model", {"dims": name, "dtype": str(dtype), "weights_bytes": backend.weights_bytes(),
                                  "build_seconds": built})  # fmt: skip
    new_tokens = 32  # a sentence's transcript; random weights would otherwise run to the length limit
    rng = np.random.default_rng(0)
    for batch in batches:
        clips = [rng.normal(0, 0.1, int(CLIP_SECONDS * 16000)).astype(np.float32) for _ in range(batch)]
        feats = extractor(clips, sampling_rate=16000, return_tensors="pt").input_features.to(device, dtype)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            model.generate(feats, min_new_tokens=new_tokens, max_new_tokens=new_tokens)  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.generate(feats, min_new_tokens=new_tokens, max_new_tokens=new_tokens)
            if device == "cuda":
                torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
        results.add(
            f"whisper_batch_{batch}",
            {
                "seconds": round(seconds, 4),
                "audio_seconds_per_second": round(batch * CLIP_SECONDS / seconds, 1),
                "peak_bytes": peak,
                "reserved_by_backend": backend.weights_bytes() + backend.batch_bytes(batch),
            },
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--random-weights", action="store_true", help="Whisper at real size with random weights")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--batches", default="1,8,16,32", help="Whisper batch sizes")
    ap.add_argument("--default-search", action="store_true", help="pocketsphinx's default decoder settings")
    ap.add_argument("--overlap", action="store_true", help="verification off / serial / overlapped, paired")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --overlap")
    ap.add_argument("--threads", default="", help="--overlap: engine thread counts (default: every core)")
    args = ap.parse_args()
    stem = "asr-cpu-default-search" if args.default_search else "asr-cpu-overlap" if args.overlap else ""
    results = Results(args.out, args.device, stem)
    if args.overlap:
        for threads in [int(t) for t in args.threads.split(",") if t] or [os.cpu_count() or 1]:
            overlap_cost(results, args.rounds, threads)
    elif args.random_weights:
        whisper_random(results, args.device, [int(b) for b in args.batches.split(",")])
    else:
        cpu_cost(results, {} if args.default_search else None)


if __name__ == "__main__":
    main()
