"""GLM-TTS's 24 kHz HiFT vocoder (CosyVoice 2's neural-source-filter + iSTFT HiFi-GAN), over padded mel batches.

Written from a reading of the official `cosyvoice/hifigan_cosy2/` and `utils/hift_util.py` (none of it
copied), with the official sizes (upsampling 8 x 5 x 3, iSTFT n_fft 16 hop 4: 480 samples a mel frame,
9 harmonics, ResBlock kernels 3/7/11). Parameter names are the official ones; weight norm is folded into
plain weights at load (the same `_weight_norm` the official parametrisation computes every forward), and
both torch spellings of a weight-normed checkpoint load (`weight_g`/`weight_v` or
`parametrizations.weight.original0/1`). Channel widths come from the weights' shapes.

Batched: every convolution sees zeros past a row's end (what its own zero padding would add); F0 is
predicted per row (the source integrates it into a phase, so batched rounding would drift); the sine
source's phase is edge-extended past each row before its linear upsampling (the official clamps at the
row's last frame); the STFT of the source and the final iSTFT run per row on the row's own samples
(their reflection padding and window normalisation depend on where a row ends). The source's random
phases and noise come from each row's generator, in the official order and shapes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from scipy.signal import get_window
from torch import nn

SAMPLE_RATE = 24000
UPSAMPLE_RATES = (8, 5, 3)
UPSAMPLE_KERNELS = (16, 11, 7)
N_FFT, HOP = 16, 4
SAMPLES_PER_FRAME = int(np.prod(UPSAMPLE_RATES)) * HOP  # 480
RES_KERNELS = (3, 7, 11)
SOURCE_KERNELS = (7, 7, 11)
DILATIONS = (1, 3, 5)
SINE_AMP, NOISE_STD, VOICED_THRESHOLD = 0.1, 0.003, 10.0
AUDIO_LIMIT = 0.99
LRELU_SLOPE = 0.1


def _keep(x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """Zero, in place, the padded samples of (B, C, T) x; pad (B, 1, T) is True past a row's end (None: no padding)."""
    return x if pad is None else x.masked_fill_(pad, 0.0)  # callers pass fresh temporaries


def _pad_mask(lengths: torch.Tensor, width: int) -> torch.Tensor | None:
    pad = torch.arange(width, device=lengths.device)[None] >= lengths[:, None]
    return pad[:, None] if bool(pad.any()) else None


class Snake(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha[None, :, None]
        return x + (1.0 / (a + 1e-9)) * torch.sin(x * a).pow(2)


class ResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.convs1 = nn.ModuleList(
            [nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2) for d in DILATIONS]
        )
        self.convs2 = nn.ModuleList(
            [nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in DILATIONS]
        )
        self.activations1 = nn.ModuleList([Snake(channels) for _ in DILATIONS])
        self.activations2 = nn.ModuleList([Snake(channels) for _ in DILATIONS])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.activations1, self.activations2, strict=True):
            x = x + c2(_keep(a2(c1(_keep(a1(x), mask))), mask))
        return x


class F0Predictor(nn.Module):
    def __init__(self, mel: int, channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(5):
            layers += [nn.Conv1d(mel if i == 0 else channels, channels, 3, padding=1), nn.ELU()]
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.condnet(mel).transpose(1, 2)).squeeze(-1).abs()


class SourceModule(nn.Module):
    """Harmonic sine excitation from F0 (CosyVoice 2's SineGen2 at 24 kHz), merged to one channel."""

    def __init__(self, harmonics: int):
        super().__init__()
        self.harmonics = harmonics
        self.l_linear = nn.Linear(harmonics + 1, 1)

    def forward(self, f0: torch.Tensor, frames: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        """f0 (B, n) per frame -> (B, 1, n * 480); rows past `frames` are padding."""
        b, n = f0.shape
        dim = self.harmonics + 1
        up = F.interpolate(f0[:, None], scale_factor=SAMPLES_PER_FRAME, mode="nearest").transpose(1, 2)  # (B, T, 1)
        fn = up * torch.arange(1, dim + 1, device=f0.device, dtype=f0.dtype)
        rad = (fn / SAMPLE_RATE) % 1
        # The official draws: uniform initial phases (B, dim) then the noise (B, T, dim); each row from its own.
        rand_ini = torch.stack([torch.rand(1, dim, generator=g, device=f0.device)[0] for g in gens])
        # The official `randn_like` of the (B, T, dim) sines, which are a transposed view: torch fills such a
        # tensor element by element in memory order (not the vectorised fill of a contiguous one). Each row
        # draws the same way at its own length, so a padded row draws exactly what it draws alone.
        noise = torch.zeros(b, up.shape[1], dim, device=f0.device)
        for i, (g, n_i) in enumerate(zip(gens, frames.tolist(), strict=True)):
            view = torch.empty(1, dim, n_i * SAMPLES_PER_FRAME, device=f0.device).transpose(1, 2)
            noise[i, : n_i * SAMPLES_PER_FRAME] = view.normal_(generator=g)[0]
        rand_ini[:, 0] = 0
        rad[:, 0, :] = rad[:, 0, :] + rand_ini
        rad = F.interpolate(rad.transpose(1, 2), scale_factor=1 / SAMPLES_PER_FRAME, mode="linear")
        phase = torch.cumsum(rad, dim=-1) * 2 * np.pi  # (B, dim, n)
        # Past a row's end the official (alone) clamps to its last frame: extend that frame so that the
        # padded batch interpolates the same values.
        last = torch.minimum(torch.arange(n, device=f0.device)[None], frames[:, None] - 1)
        phase = phase.gather(2, last[:, None].expand(-1, dim, -1))
        phase = F.interpolate(phase * SAMPLES_PER_FRAME, scale_factor=SAMPLES_PER_FRAME, mode="linear")
        sines = torch.sin(phase.transpose(1, 2)) * SINE_AMP
        uv = (up > VOICED_THRESHOLD).float()
        amp = uv * NOISE_STD + (1 - uv) * SINE_AMP / 3
        waves = sines * uv + amp * noise
        return torch.tanh(self.l_linear(waves)).transpose(1, 2)


class HiFT(nn.Module):
    def __init__(self, mel: int = 80, base: int = 512, f0_channels: int = 512, harmonics: int = 8):
        super().__init__()
        self.m_source = SourceModule(harmonics)
        self.conv_pre = nn.Conv1d(mel, base, 7, padding=3)
        self.ups = nn.ModuleList(
            [
                nn.ConvTranspose1d(base >> i, base >> (i + 1), k, u, padding=(k - u) // 2)
                for i, (u, k) in enumerate(zip(UPSAMPLE_RATES, UPSAMPLE_KERNELS, strict=True))
            ]
        )
        self.source_downs = nn.ModuleList()
        self.source_resblocks = nn.ModuleList()
        down = np.cumprod((1, *UPSAMPLE_RATES[::-1][:-1]))[::-1]  # 15, 3, 1
        for i, (u, k) in enumerate(zip(down, SOURCE_KERNELS, strict=True)):
            ch = base >> (i + 1)
            u = int(u)
            conv = nn.Conv1d(N_FFT + 2, ch, 1) if u == 1 else nn.Conv1d(N_FFT + 2, ch, u * 2, u, padding=u // 2)
            self.source_downs.append(conv)
            self.source_resblocks.append(ResBlock(ch, k))
        self.resblocks = nn.ModuleList(
            [ResBlock(base >> (i + 1), k) for i in range(len(UPSAMPLE_RATES)) for k in RES_KERNELS]
        )
        self.conv_post = nn.Conv1d(base >> len(UPSAMPLE_RATES), N_FFT + 2, 7, padding=3)
        self.f0_predictor = F0Predictor(mel, f0_channels)
        window = torch.from_numpy(get_window("hann", N_FFT, fftbins=True).astype(np.float32))  # the official's
        self.register_buffer("window", window, persistent=False)

    @classmethod
    def from_file(cls, path, device: str = "cpu") -> HiFT:
        """The published `hift.pt` (a plain state dict), weight norm folded; sizes from its shapes."""
        from batchtts.engines.glmtts.assets import load_state_dict
        from batchtts.engines.glmtts.audio.flow import load_into
        from batchtts.errors import EnvironmentProblem

        state = fold_weight_norm(load_state_dict(path))
        try:
            model = cls(
                mel=state["conv_pre.weight"].shape[1],
                base=state["conv_pre.weight"].shape[0],
                f0_channels=state["f0_predictor.condnet.0.weight"].shape[0],
                harmonics=state["m_source.l_linear.weight"].shape[1] - 1,
            )
        except (KeyError, IndexError) as exc:
            raise EnvironmentProblem(f"{path}: no tensor {exc} (not a GLM-TTS HiFT vocoder)") from None
        load_into(model, state, path)
        return model.to(device).eval()

    @torch.inference_mode()
    def forward(self, mels: list[torch.Tensor], gens: list[torch.Generator]) -> list[torch.Tensor]:
        """Mels (mel, frames) per row -> waveforms (frames * 480,) per row, clamped to +-0.99."""
        device = self.conv_pre.weight.device
        frames = torch.tensor([m.shape[1] for m in mels], device=device)
        width = int(frames.max())
        mel = torch.zeros(len(mels), mels[0].shape[0], width, device=device)
        for i, m in enumerate(mels):
            mel[i, :, : m.shape[1]] = m
        m0 = _pad_mask(frames, width)
        # F0 is integrated into the source's phase over the whole sentence, so the rounding of a batched
        # convolution would grow into audible drift: it runs per row (about 5% of the vocoder's work), and a
        # row's excitation is then exactly what it is alone.
        f0 = torch.zeros(len(mels), width, device=device)
        for i, m in enumerate(mels):
            f0[i, : m.shape[1]] = self.f0_predictor(m[None].to(device))[0]
        source = self.m_source(f0, frames, gens)  # (B, 1, width * 480)
        hops = frames * (SAMPLES_PER_FRAME // HOP) + 1  # STFT frames of a row's source (centred)
        spec = torch.zeros(len(mels), N_FFT + 2, int(hops.max()), device=device)
        for i, n in enumerate(frames.tolist()):
            s = torch.stft(
                source[i, 0, : n * SAMPLES_PER_FRAME], N_FFT, HOP, N_FFT, window=self.window, return_complex=True
            )
            spec[i, :, : s.shape[1]] = torch.cat([s.real, s.imag])
        x = self.conv_pre(_keep(mel, m0))
        mask, length = m0, frames
        for i, up in enumerate(self.ups):
            x = up(_keep(F.leaky_relu(x, LRELU_SLOPE), mask))
            length = length * UPSAMPLE_RATES[i]
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")
                length = length + 1
            mask = _pad_mask(length, x.shape[-1])
            x = x + self.source_resblocks[i](self.source_downs[i](spec), mask)
            k = len(RES_KERNELS)
            x = sum(block(x, mask) for block in self.resblocks[i * k : (i + 1) * k]) / k
        x = self.conv_post(_keep(F.leaky_relu(x), mask))
        half = N_FFT // 2 + 1
        magnitude = torch.exp(x[:, :half]).clip(max=1e2)
        phase = torch.sin(x[:, half:])
        out = []
        for i, n in enumerate(hops.tolist()):
            mag, ph = magnitude[i, :, :n], phase[i, :, :n]
            wav = torch.istft(torch.complex(mag * torch.cos(ph), mag * torch.sin(ph)), N_FFT, HOP, N_FFT, self.window)
            out.append(wav.clamp(-AUDIO_LIMIT, AUDIO_LIMIT))
        return out


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weight-normed pairs (either torch spelling) -> `.weight`, as the official forward computes it."""
    out: dict[str, torch.Tensor] = {}
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        for g_name, v_name in (
            (".weight_g", ".weight_v"),
            (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
        ):
            if key.endswith(g_name):
                pairs.setdefault(key[: -len(g_name)], {})["g"] = value
                break
            if key.endswith(v_name):
                pairs.setdefault(key[: -len(v_name)], {})["v"] = value
                break
        else:
            out[key] = value
    for name, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            raise ValueError(f"hift.pt: weight norm of {name} lacks its {'g' if 'v' in pair else 'v'} half")
        out[name + ".weight"] = torch._weight_norm(pair["v"], pair["g"], 0)
    return out
