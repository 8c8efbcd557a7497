"""Seeded head sway: the part of a talking head's motion that no audio determines.

People sway their heads slowly and endlessly while they talk and listen; the voice sets how
much (louder, more animated speech sways more) but not which way. A network trained with squared
error on such motion learns its average, which is a still head. Duet's model is therefore given
the sway's random part as an input: z(t), three axes (yaw, pitch, roll) of unit-variance noise
band-limited to SWAY_BAND_HZ. It predicts the head as mu(voice) + sigma(voice) * z (see
net/synthesis.py). The training animator draws its sway from this very function, so in training
z is the teacher's own noise and the target is exact; at run time z comes from the job's seed: the
same seed gives the same take, another seed another take with the same size and rhythm.

numpy only: the runtime, the training code and the add-on's tests may all import it.
"""

import numpy as np

SWAY_BAND_HZ = (0.1, 0.8)  # slow drift; nods and beats (faster) are the network's own, from the voice
SWAY_AXES = 3  # yaw, pitch, roll, in the channel order of channels.HEAD
_STREAM = 0x5_3AA7  # keeps this seed's stream apart from the liveliness layer's (same job seed)
_ORDER = 2  # Butterworth band-pass order, applied forward and backward (zero phase)


def _band_gain(n, fps, band):
    """Power gain of an order-2 Butterworth band-pass run forwards and backwards, on rfft bins."""
    f = np.fft.rfftfreq(n, 1.0 / fps)
    lo, hi = band
    f0, width = np.sqrt(lo * hi), hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (f ** 2 - f0 ** 2) / (f * width)
    gain = 1.0 / (1.0 + x ** (2 * _ORDER))
    gain[0] = 0.0  # no constant offset: a head's rest pose is the mu part
    return gain


def sway_noise(seed, n_frames, fps, band=SWAY_BAND_HZ):
    """(n_frames, 3) float32: unit-std band-limited noise, a pure function of (seed, n_frames, fps).

    Made by filtering white noise in the frequency domain over the whole track with ~20 s of
    padding on each side, so a window cut anywhere sees the same values as the whole track."""
    n_frames = int(n_frames)
    out = np.zeros((max(n_frames, 0), SWAY_AXES), np.float32)
    if n_frames < 2:
        return out
    pad = int(round(20.0 * fps))
    n = n_frames + 2 * pad
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _STREAM]))
    white = rng.standard_normal((n, SWAY_AXES))
    x = np.fft.irfft(np.fft.rfft(white, axis=0) * _band_gain(n, fps, band)[:, None], n=n, axis=0)
    x = x[pad:pad + n_frames]
    x -= x.mean(0)
    out[:] = x / (x.std(0) + 1e-9)
    return out


def resample_sway(z, fps, t):
    """Sway sampled at times `t` (seconds) by linear interpolation: the animator's own curve rate."""
    frame_t = np.arange(len(z)) / fps
    return np.stack([np.interp(t, frame_t, z[:, j]) for j in range(z.shape[1])], 1)
