"""Log-mel features for the light audio encoder (numpy, shared by both backends).

Computed outside the network so the ONNX path needs no torch and both backends see the
same input, which makes their parity testable.
"""

from dataclasses import dataclass

import numpy as np
import scipy.fft

from .timebase import SAMPLE_RATE


@dataclass(frozen=True)
class MelConfig:
    n_mels: int = 80
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms -> 100 mel frames per second
    fmin: float = 40.0
    fmax: float = 7600.0
    floor: float = 1e-5  # log floor: silence maps to log(1e-5), not -inf

    @property
    def frames_per_second(self):
        return SAMPLE_RATE / self.hop_length


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(cfg: MelConfig):
    """(n_fft//2+1, n_mels) triangular filters, Slaney-style area normalised."""
    n_bins = cfg.n_fft // 2 + 1
    freqs = np.linspace(0, SAMPLE_RATE / 2, n_bins)
    mels = np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2)
    hz = _mel_to_hz(mels)
    fb = np.zeros((n_bins, cfg.n_mels), dtype=np.float64)
    for i in range(cfg.n_mels):
        lo, mid, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        fb[:, i] = np.maximum(0.0, np.minimum(up, down)) * (2.0 / (hi - lo))
    return fb.astype(np.float32)


class LogMel:
    """Callable: (N,) float32 samples -> (ceil(N / hop), n_mels) float32 log-mel frames."""

    _CHUNK = 8192  # frames per FFT batch: bounds the temporary complex buffer

    def __init__(self, cfg: MelConfig = MelConfig()):
        self.cfg = cfg
        self.fb = mel_filterbank(cfg)
        self.window = np.hanning(cfg.win_length + 1)[:-1].astype(np.float32)

    def n_frames(self, n_samples):
        return -(-n_samples // self.cfg.hop_length)

    def __call__(self, samples):
        cfg = self.cfg
        samples = np.asarray(samples, np.float32)
        n_out = self.n_frames(len(samples))
        half = cfg.win_length // 2
        out = np.empty((n_out, cfg.n_mels), dtype=np.float32)
        # Frame k is centred on sample k * hop (zeros beyond the ends). Chunked so a long track
        # is never copied whole: memory stays bounded for hour-long conversations.
        for s in range(0, n_out, self._CHUNK):
            e = min(n_out, s + self._CHUNK)
            lo, hi = s * cfg.hop_length - half, (e - 1) * cfg.hop_length + half
            seg = samples[max(lo, 0):min(hi, len(samples))]
            seg = np.pad(seg, (max(0, -lo), max(0, hi - len(samples))))
            frames = np.lib.stride_tricks.sliding_window_view(seg, cfg.win_length)[::cfg.hop_length]
            spec = scipy.fft.rfft(frames[:e - s] * self.window, n=cfg.n_fft, axis=1, workers=-1)
            power = spec.real ** 2 + spec.imag ** 2  # complex64 in -> float32 out
            out[s:e] = np.log(np.maximum(power @ self.fb, cfg.floor))
        return out
