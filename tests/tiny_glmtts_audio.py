"""Tiny random flow and HiFT checkpoints in the published layout and naming, for the code that loads the real ones.

`build_audio_stages(ckpt_root)` writes `flow/flow.pt` + `flow/config.yaml` (the published config, with
its hyperpyyaml tag) and `hift/hift.pt` (weight norm stored as torch's parametrisation, g and v, as a
checkpoint saved by the official modules is). `ckpt_root` is the official `ckpt/` folder: the hub
download's root, or `<model>/ckpt` in the older layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from batchtts.engines.glmtts.audio.flow import FlowModel, parse_flow_config
from batchtts.engines.glmtts.audio.hift import HiFT

# The published flow/config.yaml (see shared/glmtts/flow-config.yaml beside the project).
FLOW_CONFIG = """flow: !new:flow.flow.Flow
    spkr_emb_adaLN: True
    speech_token_cfg: False
    remove_spkr_concat_condition: True
    mel_dim: 80
    mel_framerate: 50
    input_frame_rate: 25
"""
# Small DiT sizes (the published model: dim 768, depth 18, 12 heads, ff 1536, text 512 x 4 blocks, vocab 100001).
TINY_DIT = {
    "dim": 64,
    "depth": 2,
    "heads": 2,
    "ff_inner": 128,
    "extra": 192,
    "mel_dim": 80,
    "vocab": 1025,
    "text_dim": 32,
    "text_blocks": 2,
    "text_inner": 64,
    "cond_dim": 80,
}
TINY_HIFT = {"mel": 80, "base": 32, "f0_channels": 16, "harmonics": 8}
# Convolutions the official HiFT wraps in weight norm (source_downs, l_linear and the classifier are plain).
WEIGHT_NORMED = ("conv_pre.", "ups.", "resblocks.", "source_resblocks.", "conv_post.", "f0_predictor.condnet.")


def _randomise(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Default init leaves GRN and Snake at identities; give every parameter a random value of its scale."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith((".gamma", ".beta")):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".alpha"):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))


def tiny_flow(seed: int = 0, sizes: dict | None = None, config_text: str = FLOW_CONFIG) -> FlowModel:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = FlowModel(parse_flow_config(config_text), sizes or TINY_DIT)
    _randomise(model, gen)
    return model.eval()


def tiny_hift(seed: int = 0, sizes: dict | None = None) -> HiFT:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = HiFT(**(sizes or TINY_HIFT))
    _randomise(model, gen)
    with torch.no_grad():  # F0 mostly above the 10 Hz voicing threshold, some frames below it
        model.f0_predictor.classifier.bias.fill_(60.0)
        model.f0_predictor.classifier.weight.mul_(400.0)
    return model.eval()


def weight_normed_state(model: HiFT, spelling: str = "parametrizations") -> dict[str, torch.Tensor]:
    """The model's state dict with its weight-normed convolutions split into g and v, as the official saves."""
    gen = torch.Generator().manual_seed(1)
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith(".weight") and key.startswith(WEIGHT_NORMED) and value.dim() == 3:
            base = key[: -len(".weight")]
            scale = 0.5 + torch.rand((value.shape[0], 1, 1), generator=gen)
            v = value / scale  # any v with weight = g * v / |v|
            g = torch.linalg.vector_norm(v, dim=(1, 2), keepdim=True) * scale
            if spelling == "parametrizations":
                out[base + ".parametrizations.weight.original0"], out[base + ".parametrizations.weight.original1"] = (
                    g,
                    v,
                )
            else:
                out[base + ".weight_g"], out[base + ".weight_v"] = g, v
        else:
            out[key] = value
    return out


def build_audio_stages(ckpt_root: Path, seed: int = 0) -> Path:
    """ckpt_root/flow/{flow.pt,config.yaml} and ckpt_root/hift/hift.pt: tiny, random, official names."""
    (ckpt_root / "flow").mkdir(parents=True, exist_ok=True)
    (ckpt_root / "hift").mkdir(parents=True, exist_ok=True)
    (ckpt_root / "flow" / "config.yaml").write_text(FLOW_CONFIG)
    flow = tiny_flow(seed)
    torch.save(flow.state_dict(), ckpt_root / "flow" / "flow.pt")
    torch.save(weight_normed_state(tiny_hift(seed)), ckpt_root / "hift" / "hift.pt")
    return ckpt_root


def refresh_lock(model_root: Path) -> None:
    """Re-record file sizes in the download lock after files were added to a built checkpoint."""
    path = model_root / "batchtts-model.lock.json"
    lock = json.loads(path.read_text())
    lock["files"] = {str(p.relative_to(model_root)): p.stat().st_size for p in model_root.rglob("*") if p.is_file()}
    lock["files"].pop(path.name, None)
    path.write_text(json.dumps(lock))
