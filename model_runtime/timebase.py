"""Time conventions, in one place: the audio sample rate, frame times, frame counts, and
resampling curves between frame rates (numpy only, so the add-on imports it too).

Convention: frame i of a track at `fps` samples time i / fps. A clip of `duration` seconds has
ceil(duration * fps) frames, so every frame lies inside the audio and the last sound is covered.
"""

import math

import numpy as np

SAMPLE_RATE = 16000  # the network's audio rate (DualTalk and wav2vec 2.0 use 16 kHz)

# Rounding guard: 10 s at 29.97 fps is 299.7 frames, but 4 s at 25 fps must be 100, not 101.
_EPS = 1e-6


def frame_count(duration_s, fps):
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return max(1, math.ceil(duration_s * fps - _EPS))


def samples_per_frame(fps):
    """Audio samples per animation frame at SAMPLE_RATE (640 at the network's 25 fps)."""
    return int(round(SAMPLE_RATE / fps))


def resample_curves(values, src_fps, dst_fps, n_out=None):
    """Linearly resample (T, C) curves sampled at src_fps onto frames of dst_fps.

    Frames past the source's end hold its last value. Returns float32 (n_out, C).
    """
    values = np.asarray(values, dtype=np.float32)
    n_src = values.shape[0]
    if n_out is None:
        n_out = frame_count(n_src / src_fps, dst_fps)
    return resample_at_times(values, np.arange(n_src) / src_fps, np.arange(n_out) / dst_fps)


def resample_at_times(values, src_times, dst_times):
    """Linear interpolation of (T, C) curves from (possibly irregular) src_times to dst_times."""
    values = np.asarray(values, dtype=np.float32)
    out = np.empty((len(dst_times), values.shape[1]), dtype=np.float32)
    if values.shape[0] == 0:
        out[:] = 0.0
        return out
    for c in range(values.shape[1]):
        out[:, c] = np.interp(dst_times, src_times, values[:, c])
    return out


def mask_from_segments(segments, times):
    """(len(times),) bool: inside one of the [start, end) segments (seconds)."""
    m = np.zeros(len(times), bool)
    for s, e in segments:
        m |= (times >= s) & (times < e)
    return m
