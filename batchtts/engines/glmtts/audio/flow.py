"""GLM-TTS's flow matching (speech tokens -> 80-band mel at 50 frames a second), many sentences per forward.

Written from a reading of the official `flow/flow.py` (none of it copied). Per row, as the official
`Flow.inference_with_cache` does one sentence at a time: the voice's prompt tokens before the decoded
tokens, a mel length of tokens / input_frame_rate * mel_framerate frames, the prompt mel as the
condition over the first frames, the L2-normalised CAM++ embedding through adaLN, Gaussian noise, then
10 Euler steps on a cosine time schedule with classifier-free guidance (rate 0.7; the unconditional
pass zeroes the mel condition and the speaker, keeping the tokens, as `speech_token_cfg: False` says).
The prompt's frames are cut from the result.

Batched: rows are padded to the longest mel under masks (dit.py), the conditional and unconditional
passes run as one forward of 2B rows, and the token embedding (which does not change between steps) is
computed once per batch instead of twenty times. Each row's noise comes from its own generator seeded
by its chunk, drawn in the official shape, so a row's mel depends only on its own inputs and seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
import yaml
from torch import nn

from batchtts.engines.glmtts.audio.dit import DiT, dit_sizes

CFG_RATE = 0.7  # the official Flow.inference_cfg_rate
STEPS = 10  # the official n_timesteps of token2wav_with_cache
SPEAKER_DIM = 192  # CAM++

# The official Flow's constructor defaults; config.yaml overrides some of them.
FLOW_DEFAULTS = {
    "input_frame_rate": 12.5,
    "mel_framerate": 86,
    "mel_dim": 80,
    "spk_embed_dim": 80,
    "spkr_emb_adaLN": False,
    "speech_token_cfg": True,
    "remove_spkr_concat_condition": False,
    "t_scheduler": "cosine",
}


class _TagLoader(yaml.SafeLoader):
    """Reads hyperpyyaml's `!new:module.Class` nodes as plain mappings (nothing is imported or built)."""


_TagLoader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_mapping(node, deep=True))


def parse_flow_config(text: str, where: str = "config.yaml") -> dict:
    """The official Flow's settings from its hyperpyyaml config, over the constructor's defaults."""
    doc = yaml.load(text, Loader=_TagLoader) or {}  # noqa: S506 - a SafeLoader subclass
    flow = doc.get("flow") if isinstance(doc, dict) else None
    if not isinstance(flow, dict):
        raise ValueError(f"{where}: no `flow:` mapping")
    return {**FLOW_DEFAULTS, **{k: v for k, v in flow.items() if k in FLOW_DEFAULTS}}


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A published checkpoint as a plain tensor dict (the official loader also accepts {"model": state}),
    through assets.load_state_dict: a refused pickle or unreadable file is an EnvironmentProblem naming it."""
    from batchtts.engines.glmtts.assets import load_state_dict

    return load_state_dict(path)


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """`model.load_state_dict(state, strict=True)`; a missing, unexpected or mis-shaped tensor is an
    EnvironmentProblem naming the file, in one line."""
    from batchtts.errors import EnvironmentProblem

    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
        detail = "; ".join(lines[1:3]) or lines[0]
        raise EnvironmentProblem(f"{path}: does not match the model it is published for: {detail[:300]}") from None


class FlowModel(nn.Module):
    """The official `Flow`'s parameters under their names (`estimator.*`, `spk_embed_affine_layer.*`)."""

    def __init__(self, config: dict, sizes: dict[str, int]):
        super().__init__()
        self.config = config
        self.input_frame_rate = config["input_frame_rate"]
        self.mel_framerate = config["mel_framerate"]
        self.mel_dim = config["mel_dim"]
        if not config["remove_spkr_concat_condition"]:
            self.spk_embed_affine_layer = nn.Linear(SPEAKER_DIM, config["spk_embed_dim"])
        self.estimator = DiT(**sizes)

    @classmethod
    def from_files(cls, folder: Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> FlowModel:
        """`folder/config.yaml` and `folder/flow.pt`, as published (the DiT's sizes from the weights' shapes)."""
        state = load_state(folder / "flow.pt")
        path = folder / "config.yaml"
        try:
            sizes = dit_sizes(state)
        except (KeyError, IndexError, AttributeError) as exc:
            from batchtts.errors import EnvironmentProblem

            raise EnvironmentProblem(f"{folder / 'flow.pt'}: no DiT tensor {exc} (not a GLM-TTS flow)") from None
        model = cls(parse_flow_config(path.read_text(encoding="utf-8"), str(path)), sizes)
        load_into(model, state, folder / "flow.pt")
        inv_freq = model.estimator.rotary_embed.inv_freq.clone()
        model = model.to(device=device, dtype=dtype).eval()
        model.estimator.rotary_embed.inv_freq = inv_freq.to(device)  # rotary angles stay fp32 in a bf16 model
        return model

    def frames(self, n_tokens: int) -> int:
        """Mel frames for prompt + decoded tokens, with the official float arithmetic."""
        return int(n_tokens / self.input_frame_rate * self.mel_framerate)

    def noise(self, n_tokens: int, seed: int, device) -> torch.Tensor:
        """A row's starting noise: the official draw (randn of (1, frames, mel)) from the row's own generator."""
        gen = torch.Generator(device=device).manual_seed(seed)
        return torch.randn((1, self.frames(n_tokens), self.mel_dim), generator=gen, device=device)[0]

    @torch.inference_mode()
    def sample(
        self,
        tokens: list[torch.Tensor],
        prompt_mels: list[torch.Tensor],
        embeddings: torch.Tensor,
        noises: list[torch.Tensor],
        steps: int = STEPS,
    ) -> list[torch.Tensor]:
        """Mels (mel_dim, frames) after each row's prompt frames. tokens: per row the prompt's speech tokens
        then the decoded ones; prompt_mels: (frames, mel_dim) per row; embeddings (B, 192); noises from
        `noise`."""
        device = self.estimator.proj_out.weight.device
        dtype = self.estimator.proj_out.weight.dtype
        lens = [self.frames(len(t)) for t in tokens]
        b, width = len(tokens), max(lens)
        mask = torch.arange(width, device=device)[None] < torch.tensor(lens, device=device)[:, None]
        x = torch.zeros(b, width, self.mel_dim, device=device)
        cond = torch.zeros_like(x)
        ids = torch.zeros(b, width, dtype=torch.long, device=device)
        for i, (tok, mel, noise, n) in enumerate(zip(tokens, prompt_mels, noises, lens, strict=True)):
            keep = min(mel.shape[0], n)
            if keep:
                cond[i, :keep] = mel[mel.shape[0] - keep :].to(device)
            x[i, :n] = noise
            # Tokens stretched to the mel length by nearest neighbour, as the official embedding does.
            ids[i, :n] = F.interpolate(tok.to(device)[None, None].float(), size=n, mode="nearest")[0, 0].long()
        spk = F.normalize(embeddings.to(device=device, dtype=torch.float32), dim=1)
        if hasattr(self, "spk_embed_affine_layer"):
            extra = self.spk_embed_affine_layer(spk.to(dtype)).float()
            cond = torch.cat([cond, extra[:, None].expand(-1, width, -1)], dim=-1)
        adaln = spk if self.config["spkr_emb_adaLN"] else spk[:, :0]
        m2 = torch.cat([mask, mask])
        text = self.estimator.text_emb_layer(ids, mask)
        text_u = self.estimator.text_emb_layer(torch.zeros_like(ids), mask) if self.config["speech_token_cfg"] else text
        text2 = torch.cat([text, text_u]).to(dtype)
        cond2 = torch.cat([cond, torch.zeros_like(cond)]).to(dtype)
        spk2 = torch.cat([adaln, torch.zeros_like(adaln)]).to(dtype)

        t_span = torch.linspace(0, 1, steps + 1, device=device)
        if self.config["t_scheduler"] == "cosine":
            t_span = 1 - torch.cos(t_span * 0.5 * math.pi)
        t, dt = t_span[0], t_span[1] - t_span[0]
        for step in range(1, steps + 1):
            x2 = torch.cat([x, x]).to(dtype)
            out = self.estimator(x2, cond2, text2, t, m2, spk2).float()
            v, v_u = out[:b], out[b:]
            x = x + dt * ((1.0 + CFG_RATE) * v - CFG_RATE * v_u)
            x = x.masked_fill(~mask[..., None], 0.0)  # padded frames stay zero (they never reach a real one)
            t = t + dt
            if step < steps:
                dt = t_span[step + 1] - t
        return [x[i, mel.shape[0] : n].T.contiguous() for i, (mel, n) in enumerate(zip(prompt_mels, lens, strict=True))]
