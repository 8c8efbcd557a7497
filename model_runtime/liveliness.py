"""Liveliness: the stochastic part of a face that no regression model can predict from audio.

Blinks and small gaze shifts happen at human rates but at random moments; a network trained
to minimise squared error averages them away and the eyes freeze. Production tools add them
as a procedural layer after the network (Audio2Face does the same); so does Duet, here, in the
runtime, seeded and documented, and it can be switched off (`--liveliness off`). Idle head sway
keeps a listener from freezing between the network's nods.

Everything runs at the network's internal rate on (T, 55) curves, before fps resampling.
"""

from dataclasses import dataclass

import numpy as np

from .channels import CHANNELS
from .timebase import SAMPLE_RATE

CH = {name: i for i, name in enumerate(CHANNELS)}


@dataclass(frozen=True)
class LivelinessConfig:
    # Spontaneous blinks ~26/min in conversation, fewer while speaking (Bentivoglio et al. 1997).
    blink_rate_listen: float = 26.0
    blink_rate_speak: float = 18.0
    blink_duration_s: tuple = (0.15, 0.35)
    blink_refractory_s: float = 0.6
    # Gaze shifts: small saccades around the partner's face, wider while speaking (looking away).
    gaze_rate_listen: float = 20.0  # per minute
    gaze_rate_speak: float = 35.0
    gaze_amplitude_listen: float = 0.10  # eyeLook* weight
    gaze_amplitude_speak: float = 0.25
    # Idle head sway (radians, std), faded out where the network already moves the head.
    head_sway_rad: float = 0.012
    head_sway_seconds: float = 3.0  # time scale of the sway
    # Voice activity from frame loudness: who is speaking.
    vad_floor_db: float = -45.0
    vad_margin_db: float = 6.0


def voice_activity(self_samples, partner_samples, n_frames, samples_per_frame, cfg=LivelinessConfig()):
    """(T,) bool: the character's own voice dominates its track at frame i (partner bleed is
    quieter than the partner's own microphone, hence the margin)."""
    own, other = (frame_level_db(x, n_frames, samples_per_frame) for x in (self_samples, partner_samples))
    return _speaking(own, other, samples_per_frame, cfg)


def cast_voice_activity(tracks, n_frames, samples_per_frame, cfg=LivelinessConfig()):
    """(N, T) bool for N tracks: voice_activity's rule with the partner's level replaced by the loudest
    other track's at that frame (each track read once). For two tracks, row k is exactly
    voice_activity(track k, the other)."""
    levels = [frame_level_db(x, n_frames, samples_per_frame) for x in tracks]
    silent = frame_level_db(np.zeros(0, np.float32), n_frames, samples_per_frame)  # no others: silence
    out = np.zeros((len(levels), n_frames), bool)
    for k, own in enumerate(levels):
        others = [lv for j, lv in enumerate(levels) if j != k]
        loudest = np.maximum.reduce(others) if others else silent
        out[k] = _speaking(own, loudest, samples_per_frame, cfg)
    return out


def frame_level_db(x, n_frames, samples_per_frame):
    """(n_frames,) frame level in dB (RMS re full scale; silence about -180)."""
    return 20 * np.log10(frame_rms(x, n_frames, samples_per_frame) + 1e-9)


def _speaking(own_db, other_db, samples_per_frame, cfg):
    active = (own_db > cfg.vad_floor_db) & (own_db > other_db - cfg.vad_margin_db)
    # Fill syllable gaps shorter than ~0.3 s: speaking is a phrase-level state.
    frames_per_second = SAMPLE_RATE / samples_per_frame
    return _close_gaps(active, max(1, int(round(0.3 * frames_per_second))))


def frame_rms(x, n_frames, samples_per_frame, chunk=4096):
    """(n_frames,) RMS per frame, in chunks: an hour of audio is never copied or widened whole. `x` is
    an array or anything that slices into one (audio.Samples: a long track read from its file)."""
    out = np.zeros(n_frames, np.float64)
    for a in range(0, n_frames, chunk):
        b = min(n_frames, a + chunk)
        seg = np.asarray(x[a * samples_per_frame:b * samples_per_frame], np.float64)
        seg = np.pad(seg, (0, (b - a) * samples_per_frame - len(seg)))
        out[a:b] = np.sqrt((seg.reshape(b - a, samples_per_frame) ** 2).mean(1))
    return out


def _close_gaps(mask, max_gap):
    out = mask.copy()
    idx = np.flatnonzero(mask)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= max_gap:
            out[a:b] = True
    return out


def _poisson_times(rng, rate_per_frame, refractory):
    """Event frames at `rate_per_frame` on average, none closer than `refractory` frames.

    The dead time would lower the rate to r / (1 + r * refractory); draw at r / (1 - r * refractory)
    so the events still come at the asked rate."""
    rate_per_frame = np.asarray(rate_per_frame, np.float64)
    rate_per_frame = rate_per_frame / np.maximum(1.0 - rate_per_frame * refractory, 0.2)
    times, last = [], -10 ** 9
    u = rng.random(len(rate_per_frame))
    for i, r in enumerate(rate_per_frame):
        if i - last >= refractory and u[i] < r:
            times.append(i)
            last = i
    return times


def _blink_shape(frames):
    """Closing fast (a third of the blink), opening slower; peak 1."""
    close = max(1, frames // 3)
    up = np.linspace(0, 1, close + 1)[1:]
    down = np.linspace(1, 0, frames - close + 1)[1:]
    return np.concatenate([up, down])


def add_liveliness(weights, speaking, fps, seed=0, cfg=LivelinessConfig()):
    """(T, 55) network output -> (T, 55) with blinks, gaze shifts and idle sway added."""
    out = np.array(weights, dtype=np.float32, copy=True)
    n = len(out)
    if n < 2:
        return out
    rng = np.random.default_rng(seed)
    speaking = np.asarray(speaking, bool)
    per_frame = lambda per_min: per_min / 60.0 / fps

    # Blinks: skip moments where the network already blinks (it learned turn-boundary blinks).
    net_blink = out[:, [CH["eyeBlinkLeft"], CH["eyeBlinkRight"]]].mean(1)
    rate = np.where(speaking, per_frame(cfg.blink_rate_speak), per_frame(cfg.blink_rate_listen))
    refractory = int(cfg.blink_refractory_s * fps)
    for t in _poisson_times(rng, rate, refractory):
        lo, hi = max(0, t - refractory), min(n, t + refractory)
        if net_blink[lo:hi].max() > 0.5:
            continue
        length = max(3, int(round(rng.uniform(*cfg.blink_duration_s) * fps)))
        shape = _blink_shape(length)[: n - t]
        seg = slice(t, t + len(shape))
        asym = rng.uniform(0.93, 1.0)  # real blinks are not perfectly symmetric
        out[seg, CH["eyeBlinkLeft"]] = np.maximum(out[seg, CH["eyeBlinkLeft"]], shape)
        out[seg, CH["eyeBlinkRight"]] = np.maximum(out[seg, CH["eyeBlinkRight"]], shape * asym)
        for side in ("Left", "Right"):  # the lids pull the gaze down a little
            out[seg, CH["eyeLookDown" + side]] += 0.15 * shape

    # Gaze: piecewise-constant offsets, stepping at saccade times (a saccade takes < 1 frame).
    gaze = np.zeros((n, 2), np.float32)  # (yaw to the character's left, pitch up), eyeLook* units
    rate = np.where(speaking, per_frame(cfg.gaze_rate_speak), per_frame(cfg.gaze_rate_listen))
    shifts = _poisson_times(rng, rate, int(0.25 * fps))
    for t, t_next in zip(shifts, shifts[1:] + [n]):
        amp = cfg.gaze_amplitude_speak if speaking[t] else cfg.gaze_amplitude_listen
        gaze[t:t_next] = (rng.uniform(-amp, amp), rng.uniform(-amp, amp) * 0.6)
    left, up = gaze[:, 0], gaze[:, 1]
    out[:, CH["eyeLookOutLeft"]] += np.clip(left, 0, None)
    out[:, CH["eyeLookInRight"]] += np.clip(left, 0, None)
    out[:, CH["eyeLookInLeft"]] += np.clip(-left, 0, None)
    out[:, CH["eyeLookOutRight"]] += np.clip(-left, 0, None)
    for side in ("Left", "Right"):
        out[:, CH["eyeLookUp" + side]] += np.clip(up, 0, None)
        out[:, CH["eyeLookDown" + side]] += np.clip(-up, 0, None)

    # Idle head sway: smoothed noise, faded where the network's own head motion is lively.
    k = max(1, int(cfg.head_sway_seconds * fps))
    kernel = np.hanning(2 * k + 1)
    kernel /= np.sqrt((kernel ** 2).sum())
    heads = [CH["headYaw"], CH["headPitch"], CH["headRoll"]]
    noise = rng.standard_normal((n + 2 * k, 3))
    sway = np.stack([np.convolve(noise[:, j], kernel, mode="valid")[:n] for j in range(3)], 1)
    net_motion = np.abs(np.diff(out[:, heads], axis=0, prepend=out[:1, heads])).sum(1)
    fade = 1.0 / (1.0 + (net_motion / 0.004) ** 2)  # ~0.004 rad/frame: the network is nodding
    out[:, heads] += (sway * cfg.head_sway_rad * np.array([1.0, 0.7, 0.5]) * fade[:, None]).astype(np.float32)

    np.clip(out[:, :52], 0.0, 1.0, out=out[:, :52])
    return out
