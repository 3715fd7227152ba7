"""Voice features GLM-TTS needs from a reference clip, computed in batchtts: the prompt mel (the flow's
conditioning) and the CAM++ speaker embedding (its ONNX model on Kaldi fbank features)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

MEL_SETTINGS = {24000: (1920, 480), 32000: (2560, 640)}  # n_fft (= window), hop: 50 frames a second


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_part = f >= 1000.0
    mel[log_part] = 15.0 + np.log(f[log_part] / 1000.0) / (math.log(6.4) / 27.0)
    return mel


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f = m * (200.0 / 3)
    log_part = m >= 15.0
    f[log_part] = 1000.0 * np.exp((math.log(6.4) / 27.0) * (m[log_part] - 15.0))
    return f


def mel_filterbank(rate: int, n_fft: int, n_mels: int = 80, fmin: float = 0.0, fmax: float = 8000.0) -> np.ndarray:
    """Triangular filters with Slaney area normalisation, shape (n_mels, 1 + n_fft // 2)."""
    freqs = np.linspace(0, rate / 2, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return (weights * (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]).astype(np.float32)


def prompt_mel(audio: np.ndarray, rate: int) -> np.ndarray:
    """Log-mel frames (T, 80) at 50 frames a second, as GLM-TTS's flow was trained on."""
    n_fft, hop = MEL_SETTINGS[rate]
    x = torch.from_numpy(np.asarray(audio, np.float32))[None]
    pad = (n_fft - hop) // 2
    x = torch.nn.functional.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(
        x, n_fft, hop_length=hop, win_length=n_fft, window=torch.hann_window(n_fft), center=False, return_complex=True
    )
    mag = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    mel = torch.from_numpy(mel_filterbank(rate, n_fft)) @ mag[0]
    return torch.log(torch.clamp(mel, min=1e-5)).T.numpy()


class SpeakerEncoder:
    """CAM++ (`campplus.onnx`): 80-bin Kaldi fbank at 16 kHz, mean-normalised, to a 192-d embedding."""

    def __init__(self, onnx_path: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, audio16k: np.ndarray) -> np.ndarray:
        import kaldi_native_fbank as knf

        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = 16000
        opts.frame_opts.dither = 0.0
        opts.mel_opts.num_bins = 80
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(16000, np.asarray(audio16k, np.float32).tolist())
        fbank.input_finished()
        feats = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).astype(np.float32)
        feats -= feats.mean(axis=0, keepdims=True)
        name = self.session.get_inputs()[0].name
        return self.session.run(None, {name: feats[None]})[0].reshape(-1).astype(np.float32)
