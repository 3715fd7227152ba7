"""GLM-TTS from a hub download: the hub layout, batchtts's own speech tokenizer, the CAM++ model's path, and the
cost model of the published config."""

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.engines.glmtts import GlmttsEngine, llm_cost
from batchtts.engines.glmtts.assets import git_blob_id
from batchtts.engines.glmtts.voice.speech_tokenizer import SpeechTokenizer
from tests.conftest import HANG_GUARD_S, ROOT, write_jobs
from tests.hubserver import FakeHub
from tests.tiny_glmtts import LLM_CONFIG, N_SPEECH, build_campplus, build_hub_files


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory) -> Path:
    return build_hub_files(tmp_path_factory.mktemp("hub") / "ckpt")


def _clip(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    noise = np.random.default_rng(seed).normal(0, 0.05, t.size)
    return (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.3 * np.sin(t))) + noise).astype(np.float32)


def test_own_speech_tokenizer_loads_the_official_layout_and_gives_25_tokens_a_second(hub_files):
    tok = SpeechTokenizer.load(hub_files / "speech_tokenizer", "cpu")
    ids = tok(_clip(4.0))
    assert len(ids) == 100 and all(0 <= i < N_SPEECH for i in ids) and len(set(ids)) > 3
    assert tok(_clip(4.0)) == ids  # deterministic
    long = tok(_clip(35.0, seed=1))  # cut into 30 s + 5 s, as the official tokenizer does
    assert len(long) == 750 + 125
    assert next(tok.model.parameters()).device.type == "cpu"
    assert len(tok.model.layers) == 2  # layers past quantize_position, the final norm and the decoder: skipped


def test_published_config_costs_56_kib_per_token_and_1_55_b_parameters(tmp_path):
    (tmp_path / "m" / "llm").mkdir(parents=True)
    shutil.copy(LLM_CONFIG, tmp_path / "m" / "llm" / "config.json")
    config = json.loads(LLM_CONFIG.read_text())
    assert llm_cost(config, 4).weights_bytes == 6_208_036_864  # the index's total_size: fp32, tied embeddings
    proc = subprocess.run(
        [sys.executable, "-m", "batchtts", "plan", str(ROOT / "jobs" / "book.jsonl"), "--engine", "glmtts"],
        cwd=ROOT,
        env={**os.environ, "GLMTTS_MODEL_DIR": str(tmp_path / "m")},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,  # a hang guard only
    )
    assert proc.returncode == 0, proc.stderr
    assert "56.0 KiB per token" in proc.stdout
    plan = subprocess.run(  # continuous batching's outlook: slots of the KV budget, fewer steps than one at a time
        [sys.executable, "-m", "batchtts", "plan", str(ROOT / "jobs" / "book.jsonl"), "--engine", "glmtts"]
        + ["--json", "--all", "--kv-budget", "10GiB", "--device", "cuda"],
        cwd=ROOT,
        env={**os.environ, "GLMTTS_MODEL_DIR": str(tmp_path / "m")},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,  # a hang guard only
    )
    [decode] = [p["decode"] for p in json.loads(plan.stdout)]
    assert decode["slots"] * decode["slot_tokens"] * 57344 == decode["kv_bytes"] <= 10 * 2**30
    assert decode["decode_steps"] < json.loads(plan.stdout)[0]["sequential_decode_steps"] and decode["seconds"] > 0


@pytest.mark.slow
def test_download_from_the_hub_stand_in_then_run_glmtts_end_to_end(hub_files, tmp_path, voice_wav):
    files = {str(p.relative_to(hub_files)): p.read_bytes() for p in hub_files.rglob("*") if p.is_file()}
    build_campplus(tmp_path / "campplus.onnx")
    campplus = (tmp_path / "campplus.onnx").read_bytes()
    with FakeHub("zai-org/GLM-TTS", files, raw={"campplus.onnx": campplus}) as hub:
        got = CliRunner().invoke(
            main,
            ["download", "--endpoint", hub.url, "--local-dir", str(tmp_path / "m")]
            + ["--campplus-url", f"{hub.url}/raw/campplus.onnx"],
        )
    assert got.exit_code == 0, got.output
    model = tmp_path / "m"
    assert (model / "llm" / "config.json").is_file() and not (model / "ckpt").exists()  # the hub layout
    assert git_blob_id((model / "frontend" / "campplus.onnx").read_bytes()) == git_blob_id(campplus)
    jobs = write_jobs(
        tmp_path / "book.jsonl",
        [
            {
                "id": "one",
                "text": "It was 1921. The keeper climbed 3 flights of stairs at 6:45 p.m. and lit the lamp.",
                "output": "one.wav",
                "engine": "glmtts",
                "voice": {"prompt_audio": str(voice_wav), "prompt_text": "The prompt text, 4 seconds."},
            }
        ],
    )
    env = {**os.environ, "GLMTTS_MODEL_DIR": str(model)}
    for name in ("GLMTTS_CAMPPLUS", "GLMTTS_HOME"):  # the download alone is enough: no checkout, no other copy
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "batchtts", "run", str(jobs)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "one.json").read_text())
    assert (tmp_path / "out" / "one.wav").stat().st_size > 10_000 and manifest


def test_a_missing_speaker_model_names_where_to_get_it(hub_files, tmp_path, monkeypatch):
    from batchtts.engines.glmtts.assets import campplus_path
    from batchtts.errors import EnvironmentProblem

    monkeypatch.delenv("GLMTTS_CAMPPLUS", raising=False)
    monkeypatch.delenv("GLMTTS_HOME", raising=False)
    with pytest.raises(EnvironmentProblem, match="not in the GLM-TTS hub repository"):
        campplus_path(hub_files)
    build_campplus(tmp_path / "elsewhere.onnx")
    monkeypatch.setenv("GLMTTS_CAMPPLUS", str(tmp_path / "elsewhere.onnx"))
    assert campplus_path(hub_files) == tmp_path / "elsewhere.onnx"
    assert GlmttsEngine.speakable_text("At 4:45.", "en") == "at four forty five."


def _official_encoder(home: Path, folder: Path):
    """The official WhisperVQEncoder, loaded as its load_quantize_encoder does but on the CPU. transformers 5
    lacks one module it imports (for the decoder only): a stand-in satisfies the import."""
    sys.modules.setdefault(
        "transformers.modeling_attn_mask_utils",
        types.SimpleNamespace(AttentionMaskConverter=type("AttentionMaskConverter", (), {})),
    )
    from safetensors import safe_open

    shadow = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "utils" or k.startswith("utils.")}
    sys.path.insert(0, str(home))  # another test may have imported a stub checkout's `utils` already
    try:
        from utils.whisper_models.configuration_whisper import WhisperVQConfig
        from utils.whisper_models.modeling_whisper import WhisperVQEncoder
    finally:
        sys.path.remove(str(home))
        for k in [k for k in sys.modules if k == "utils" or k.startswith("utils.")]:
            del sys.modules[k]
        sys.modules.update(shadow)

    config = WhisperVQConfig.from_pretrained(str(folder))
    config.quantize_encoder_only = True
    config._attn_implementation = "eager"
    model = WhisperVQEncoder(config)
    state = {}
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        for key in f.keys():
            name = key[len("model.encoder.") :]
            if not key.startswith("model.encoder.") or name.startswith("layer_norm"):
                continue
            if name.startswith("layers") and int(name.split(".")[1]) >= config.quantize_position:
                continue
            state[name] = f.get_tensor(key)
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.official
@pytest.mark.skipif(not os.environ.get("GLMTTS_HOME"), reason="needs a GLM-TTS checkout in GLMTTS_HOME")
def test_our_speech_tokenizer_matches_the_official_one_on_the_same_weights(hub_files):
    home = Path(os.environ["GLMTTS_HOME"])
    if not (home / "utils" / "whisper_models" / "modeling_whisper.py").is_file():
        pytest.skip(f"{home} is not a GLM-TTS checkout")
    folder = hub_files / "speech_tokenizer"
    ours = SpeechTokenizer.load(folder, "cpu")
    official = _official_encoder(home, folder)
    clips = [_clip(4.0, seed=3), _clip(7.3, seed=4), _clip(31.0, seed=5)]
    for clip in clips:  # the official SpeechTokenizer.extract_speech_token, minus its .cuda() calls
        pieces = [clip[s : s + 30 * 16000] for s in range(0, len(clip), 30 * 16000)]
        feats = ours.features(
            pieces, sampling_rate=16000, return_attention_mask=True, return_tensors="pt", padding="longest",
            pad_to_multiple_of=640,
        )  # fmt: skip
        with torch.no_grad():
            out = official(**feats)
        mask = feats["attention_mask"][:, ::2][:, ::2].bool()
        want = [t for row in range(len(pieces)) for t in out.quantized_token_ids[row][mask[row]].tolist()]
        assert ours(clip) == want


def test_pt_state_dicts_load_with_torch_safe_loader_in_both_official_forms(tmp_path):
    from collections import OrderedDict

    from batchtts.engines.glmtts.assets import load_state_dict
    from batchtts.errors import EnvironmentProblem

    sd = OrderedDict(w=torch.ones(2, 3), b=torch.zeros(3))
    torch.save(sd, tmp_path / "plain.pt")  # hift.pt's form
    torch.save({"model": sd, "epoch": 3}, tmp_path / "wrapped.pt")  # flow.pt may be either (load_flow_model)
    for name in ("plain.pt", "wrapped.pt"):
        got = load_state_dict(tmp_path / name)
        assert set(got) == {"w", "b"} and torch.equal(got["w"], sd["w"])
    torch.save({"model": sd, "cfg": Path("x")}, tmp_path / "pickled.pt")  # an arbitrary class: never unpickled
    with pytest.raises(EnvironmentProblem, match="refusing to unpickle"):
        load_state_dict(tmp_path / "pickled.pt")
