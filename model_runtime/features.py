"""Log-mel features for the light audio encoder (numpy, shared by both backends).

Computed outside the network so the ONNX path needs no torch and both backends see the
same input, which makes their parity testable.
"""

from dataclasses import dataclass

import numpy as np
import scipy.fft

from .rows import LazyRows
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
    # Per-track level normalisation (DualTalkConfig.level_norm): each track's speech is brought to
    # reference_db before the log floor, so a take recorded at -40 dBFS reads like one at -6.
    reference_db: float = -28.0  # speech level after it (dBFS, 95th percentile of 10 ms frames): the
    # training conversations' median, so a normalised track reads like a typical one of them
    active_floor_db: float = -75.0  # 10 ms frames under this are silence at any recording level
    speech_range_db: float = 40.0  # frames this far under the loudest still count as the voice
    min_active_s: float = 1.0  # less speech than this above the floor: a silent track, left as it is
    max_gain_db: float = 50.0

    @property
    def frames_per_second(self):
        return SAMPLE_RATE / self.hop_length


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def speech_level_db(samples, n_samples, cfg: MelConfig = MelConfig(), chunk=1 << 20):
    """The track's speech level in dBFS over the whole track (one pass, a chunk at a time): the 95th
    percentile of its 10 ms frame levels within cfg.speech_range_db of its loudest (99.5th percentile)
    frames, so the same take at any recording level gives the same level minus the gain. None for a
    silent track: under cfg.active_floor_db, or less than cfg.min_active_s of sound."""
    hop = cfg.hop_length
    levels = []
    for a in range(0, n_samples - hop + 1, chunk):
        seg = np.asarray(samples[a:min(n_samples, a + chunk)], np.float64)
        seg = seg[:len(seg) // hop * hop].reshape(-1, hop)
        seg = seg - seg.mean(1, keepdims=True)  # a DC offset (or a step of it) is not speech
        levels.append(10 * np.log10((seg ** 2).mean(1) + 1e-20))
    if not levels:
        return None
    db = np.concatenate(levels)
    top = np.percentile(db, 99.5)
    active = db[db > max(top - cfg.speech_range_db, cfg.active_floor_db)]
    if len(active) * hop < cfg.min_active_s * SAMPLE_RATE:
        return None
    return float(np.percentile(active, 95))


def level_offset(samples, n_samples, cfg: MelConfig = MelConfig()):
    """What to add to the track's log-mel (natural-log power) to bring its speech to cfg.reference_db;
    0 for a silent track (silence is never raised to speech level)."""
    level = speech_level_db(samples, n_samples, cfg)
    if level is None:
        return 0.0
    gain_db = min(cfg.reference_db - level, cfg.max_gain_db)
    return float(gain_db / 10.0 * np.log(10.0))


def mel_edges_hz(cfg: MelConfig):
    """(n_mels + 2,) the filters' corner frequencies: filter i rises from [i], peaks at [i + 1] (its
    centre) and falls to [i + 2]; equally spaced on the mel scale."""
    return _mel_to_hz(np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2))


def mel_filterbank(cfg: MelConfig):
    """(n_fft//2+1, n_mels) triangular filters, Slaney-style area normalised."""
    n_bins = cfg.n_fft // 2 + 1
    freqs = np.linspace(0, SAMPLE_RATE / 2, n_bins)
    hz = mel_edges_hz(cfg)
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

    def __call__(self, samples, offset=0.0):
        samples = np.asarray(samples, np.float32)
        out = np.empty((self.n_frames(len(samples)), self.cfg.n_mels), dtype=np.float32)
        # Chunked so a long track is never copied whole: memory stays bounded for hour-long conversations.
        for s in range(0, len(out), self._CHUNK):
            e = min(len(out), s + self._CHUNK)
            out[s:e] = self.chunk(samples, s, e, len(samples), offset)
        return out

    def chunk(self, samples, s, e, n_samples, offset=0.0):
        """Frames [s, e) of self(samples[:n_samples]), reading only the samples they need. `samples` may
        be anything that slices into an array (audio.Samples). On __call__'s chunk grid it gives the same
        bits as __call__."""
        return self.log(self.power_chunk(samples, s, e, n_samples), offset)

    def log(self, mel_power, offset=0.0):
        """Mel power -> log-mel: the floor, or with a level offset the offset first, then the floor."""
        cfg = self.cfg
        if not offset:
            return np.log(np.maximum(mel_power, cfg.floor))
        # Normalised: the offset first, then the floor, so quiet speech is raised, not clipped to it.
        return np.maximum(np.log(np.maximum(mel_power, 1e-30)) + np.float32(offset),
                          np.float32(np.log(cfg.floor)))

    def power_chunk(self, samples, s, e, n_samples):
        """chunk's mel power (before the log): powers add where tracks are mixed (cast.MelInputs)."""
        cfg = self.cfg
        half = cfg.win_length // 2
        # Frame k is centred on sample k * hop (zeros beyond the ends).
        lo, hi = s * cfg.hop_length - half, (e - 1) * cfg.hop_length + half
        seg = np.asarray(samples[max(lo, 0):min(hi, n_samples)], np.float32)
        seg = np.pad(seg, (max(0, -lo), max(0, hi - n_samples)))
        frames = np.lib.stride_tricks.sliding_window_view(seg, cfg.win_length)[::cfg.hop_length]
        spec = scipy.fft.rfft(frames[:e - s] * self.window, n=cfg.n_fft, axis=1, workers=-1)
        power = spec.real ** 2 + spec.imag ** 2  # complex64 in -> float32 out
        return power @ self.fb

    def power(self, samples, n_samples, n_rows):
        """(n_rows, n_mels) float32 mel power of samples[:n_samples] on __call__'s chunk grid (so its log
        is LogMelRows' bits), zeros (silence) past the audio's end."""
        out = np.zeros((n_rows, self.cfg.n_mels), np.float32)
        n_samples = min(int(n_samples), len(samples))
        audio_rows = min(self.n_frames(n_samples), n_rows)
        for s in range(0, audio_rows, self._CHUNK):
            e = min(self.n_frames(n_samples), s + self._CHUNK)
            out[s:min(e, n_rows)] = self.power_chunk(samples, s, e, n_samples)[:min(e, n_rows) - s]
        return out

    def rows(self, samples, n_samples, n_rows, offset=0.0):
        """LogMelRows: self(samples[:n_samples], offset) padded with silence to n_rows, made as it is sliced."""
        return LogMelRows(self, samples, n_samples, n_rows, offset)


class LogMelRows(LazyRows):
    """The log-mel of a whole track as windowed inference reads it: `x[a:b]` computes (or takes from a
    small cache) the chunks of LogMel's grid that rows [a, b) fall in, so the same bits as the whole
    array without ever holding it (3 hours of one track's log-mel would be 345 MB). Rows past the
    audio's end are silence (the log floor)."""

    _CACHED = 4  # chunks kept: a batch of windows spans at most three, and the last window steps back

    def __init__(self, logmel: LogMel, samples, n_samples, n_rows, offset=0.0):
        self.logmel, self.samples, self.offset = logmel, samples, offset
        self.n_samples = min(int(n_samples), len(samples))
        self.n_audio_rows = logmel.n_frames(self.n_samples)
        self.n_rows = int(n_rows)
        self._cache = {}

    def __len__(self):
        return self.n_rows

    @property
    def shape(self):
        return (self.n_rows, self.logmel.cfg.n_mels)

    def read(self, a, b):
        cfg, size = self.logmel.cfg, self.logmel._CHUNK
        out = np.full((b - a, cfg.n_mels), np.log(cfg.floor), np.float32)
        for c in range(a // size, -(-min(b, self.n_audio_rows) // size)):
            s = c * size
            rows = self._chunk(c)
            lo, hi = max(a, s), min(b, s + len(rows))
            out[lo - a:hi - a] = rows[lo - s:hi - s]
        return out

    def _chunk(self, c):
        if c not in self._cache:
            if len(self._cache) >= self._CACHED:
                self._cache.pop(next(iter(self._cache)))
            size = self.logmel._CHUNK
            e = min(self.n_audio_rows, (c + 1) * size)
            self._cache[c] = self.logmel.chunk(self.samples, c * size, e, self.n_samples, self.offset)
        return self._cache[c]
