"""Recording conditions: what real microphones, rooms and codecs do to a voice track.

One home for them, used twice: the fidelity report's conditions table measures the network under
each (fixed settings), and training degrades some windows with randomised versions of the room and
the mains (dataset.WindowConfig), so the network has heard them before an artist's take arrives.
"""

import io

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from model_runtime.timebase import SAMPLE_RATE


def at_peak(x, db):
    peak = np.abs(x).max()
    return (x * (10 ** (db / 20) / peak)).astype(np.float32) if peak > 0 else x


def band_limit(x, low_hz, high_hz):
    """Only low_hz..high_hz kept (4th-order Butterworth band-pass): a small microphone's bass roll-off
    and a codec's or a line's treble cut-off."""
    sos = butter(4, [low_hz, min(high_hz, 0.45 * SAMPLE_RATE)], "bandpass", fs=SAMPLE_RATE, output="sos")
    return sosfilt(sos, x).astype(np.float32)


def telephone(x):
    """8 kHz narrowband: 300-3400 Hz, down to 8 kHz and back (what a phone line or a cheap headset keeps)."""
    y = resample_poly(resample_poly(band_limit(x, 300, 3400), 1, 2), 2, 1)
    return y[:len(x)].astype(np.float32)


def mp3(x, kbps=64):
    """A 64 kbit/s MP3 round trip (libsndfile's LAME encoder through soundfile)."""
    buf = io.BytesIO()
    # libsndfile maps compression_level 0..1 onto the MP3 bit rate range; constant bit rate.
    level = float(np.clip(1 - (kbps - 32) / (320 - 32), 0, 1))
    sf.write(buf, x, SAMPLE_RATE, format="MP3", compression_level=level, bitrate_mode="CONSTANT")
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    # libsndfile's decoder keeps the encoder's start-up delay (1105 samples with LAME); players and
    # ffmpeg remove it (gapless playback), so it is removed here too, found by cross-correlation.
    y = y[_codec_delay(x, y):][:len(x)]
    return np.pad(y, (0, len(x) - len(y))) if len(y) < len(x) else y


def _codec_delay(x, y, max_lag=4096, span=SAMPLE_RATE * 5):
    a, b = x[:span], y[:span + max_lag]
    if len(a) == 0 or len(b) < len(a):
        return 0
    r = fftconvolve(b, a[::-1], mode="valid")  # r[k] = sum b[k + i] a[i]
    return int(np.argmax(r[:max_lag + 1]))


def reverb(x, rt60=0.6, seed=0):
    """A room: exponentially decaying noise tail (RT60 0.6 s, a living room) under the direct sound."""
    rng = np.random.default_rng(seed)
    n = int(rt60 * SAMPLE_RATE)
    tail = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)  # -60 dB at rt60
    tail[: int(0.003 * SAMPLE_RATE)] = 0  # the first reflections come a few ms after the direct sound
    ir = np.concatenate([[1.0], 0.5 * tail / np.sqrt((tail ** 2).sum())])
    y = fftconvolve(x, ir)[:len(x)]
    return (y * np.abs(x).max() / max(np.abs(y).max(), 1e-9)).astype(np.float32)


def dc_hum(x, dc=0.05, hum_db=-30.0, mains=50.0):
    """A DC offset and mains hum (fundamental + 2 harmonics) at hum_db below the track's peak."""
    t = np.arange(len(x)) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * mains * h * t) / h for h in (1, 2, 3))
    return (x + dc + np.abs(x).max() * 10 ** (hum_db / 20) * hum / 1.83).astype(np.float32)


def degrade(rng, x, room_prob, mains_prob, band_prob=0.0, rt60_s=(0.2, 1.0), hum_db=(-45.0, -25.0),
            dc=(-0.1, 0.1), low_hz=(50.0, 400.0), high_hz=(3000.0, 7500.0)):
    """A randomly degraded copy of `x` for training, in signal order: a room (probability room_prob,
    RT60 drawn from rt60_s), mains trouble (probability mains_prob: 50 or 60 Hz hum at hum_db below
    the peak and a DC offset drawn from dc), then a narrow band (probability band_prob: band_limit
    with edges drawn from low_hz and high_hz; a phone line keeps 300-3400 Hz, a 64 kbit/s MP3 of 16 kHz
    speech cuts near 7 kHz). The fixed versions are conditions the report measures."""
    if room_prob > 0 and rng.random() < room_prob:
        x = reverb(x, rt60=rng.uniform(*rt60_s), seed=int(rng.integers(1 << 31)))
    if mains_prob > 0 and rng.random() < mains_prob:
        x = dc_hum(x, dc=rng.uniform(*dc), hum_db=rng.uniform(*hum_db), mains=float(rng.choice((50.0, 60.0))))
    if band_prob > 0 and rng.random() < band_prob:
        x = band_limit(x, rng.uniform(*low_hz), rng.uniform(*high_hz))
    return x
