"""Audio in: any file soundfile reads, any rate, mono or multichannel -> 16 kHz mono float32.

Problems the user can fix raise BadInput with one line naming the file; a silent track is valid.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from .errors import BadInput
from .timebase import SAMPLE_RATE

_BLOCK = 1 << 18  # frames read at a time: keeps a long multichannel file from being held twice


@dataclass
class Track:
    samples: np.ndarray  # (N,) float32 at SAMPLE_RATE
    path: str
    notes: list = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def silent_track(duration_s: float, path: str = "(silence)") -> Track:
    return Track(np.zeros(int(round(duration_s * SAMPLE_RATE)), np.float32), path)


def _bad(path, problem):
    return BadInput(path, problem, code="bad_audio")


def load_audio(path: str | os.PathLike) -> Track:
    """16 kHz mono float32 from any file soundfile reads; BadInput (code bad_audio) naming the file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise _bad(path, "audio file not found")
    if os.path.isdir(path):
        raise _bad(path, "is a folder, not an audio file")
    if os.path.getsize(path) == 0:
        raise _bad(path, "audio file is empty (0 bytes)")
    try:
        info = sf.info(path)
    except Exception as exc:  # libsndfile's errors vary by version; all mean "cannot decode"
        raise _bad(path, f"not a readable audio file ({_short(exc)})")
    if info.frames == 0:
        raise _bad(path, "audio file holds no samples")
    sr = int(info.samplerate)
    notes = []
    mono = np.empty(info.frames if info.frames > 0 else 0, dtype=np.float32)
    n = 0
    try:
        for block in sf.blocks(path, blocksize=_BLOCK, dtype="float32", always_2d=True):
            m = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
            if n + len(m) > len(mono):  # some formats (MP3) report an estimated length
                mono = np.resize(mono, n + len(m))
            mono[n:n + len(m)] = m
            n += len(m)
    except Exception as exc:
        raise _bad(path, f"audio data is corrupt ({_short(exc)})")
    mono = mono[:n]
    if n == 0:
        raise _bad(path, "audio file holds no samples")
    finite = np.isfinite(mono)
    if not finite.any():
        raise _bad(path, "every sample is NaN or infinite")
    if not finite.all():
        bad = int((~finite).sum())
        notes.append(f"{path}: {bad} NaN/infinite samples replaced by silence")
        mono[~finite] = 0.0
    if info.channels > 1:
        notes.append(f"{path}: {info.channels} channels downmixed to mono")
    if sr != SAMPLE_RATE:
        mono = resample(mono, sr, SAMPLE_RATE)
        notes.append(f"{path}: resampled {sr} Hz -> {SAMPLE_RATE} Hz")
    return Track(np.ascontiguousarray(mono, dtype=np.float32), path, notes)


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling (anti-aliased), not sample dropping."""
    ratio = Fraction(int(dst_rate), int(src_rate)).limit_denominator(1000)
    out = resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)
    want = int(round(len(x) * dst_rate / src_rate))
    return out[:want] if len(out) >= want else np.pad(out, (0, want - len(out)))


def pad_to_same_length(a: Track, b: Track) -> list[str]:
    """Pad the shorter track with silence (design: tracks of different lengths), with a note."""
    n = max(len(a.samples), len(b.samples))
    notes = []
    for t in (a, b):
        if len(t.samples) < n:
            missing = (n - len(t.samples)) / SAMPLE_RATE
            notes.append(f"{t.path}: {missing:.2f} s shorter than the other track, padded with silence")
            t.samples = np.pad(t.samples, (0, n - len(t.samples)))
    return notes


def _short(exc):
    text = str(exc).strip().splitlines()
    msg = text[-1] if text else type(exc).__name__
    return msg if len(msg) < 160 else msg[:157] + "..."


def db_to_gain(db: float) -> float:
    return math.pow(10.0, db / 20.0)
