"""Attention: in a cast, listeners turn head and eyes toward whoever holds the floor.

Who is attended comes from voice activity: a speaking stretch long enough to be a turn (not a
"mm hmm") takes the floor, and each listener follows it after a seeded reaction delay; in a
silence everyone keeps looking at the last speaker. The speaker looks at its listeners, moving
to another one at phrase boundaries. The angle to the attended character comes from the scene's
positions per frame; the head covers a share of it and the eyes the rest, so the eyes lead (a
saccade) while the head follows on a second-order response, and the eyes re-centre as it arrives.
A slow seeded drift keeps a held look from freezing; the eyes counter it, like the real reflex.

`attend` gives per-character angles; `apply_attention` adds them to one character's (T, 55)
curves (head channels, and the eyeLook* pairs). Plain numpy (and scipy's lfilter); seeded: the
same inputs and seed give the same take.
"""

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter, lfilter_zi

from .channels import CHANNELS, HEAD_NAMES, index_of

HEAD = index_of(HEAD_NAMES)
EYE = {name: CHANNELS.index(name) for name in CHANNELS if name.startswith("eyeLook")}
# Independent of the liveliness draws that use the same seed + k.
_STREAM = 0xA77E


@dataclass(frozen=True)
class AttentionConfig:
    # Backchannels ("mm hmm", "yeah") last well under a second and do not take the floor.
    min_turn_s: float = 0.6
    # Listeners' gaze reaches a new speaker a few hundred ms after the turn starts (seeded per
    # listener per turn). The runtime sees the whole take, so it may come before min_turn_s has
    # passed: listeners anticipate turns rather than wait to hear that one is long.
    reaction_s: tuple = (0.2, 0.45)
    # Speakers look from listener to listener at phrase boundaries (a pause this long) ...
    phrase_pause_s: float = 0.25
    # ... or every few seconds in a long phrase, but never sooner than a dwell after the last shift.
    speaker_hold_s: tuple = (3.0, 6.0)
    speaker_min_dwell_s: float = 1.2
    # The head covers roughly a third to two thirds of a gaze shift, the eyes the rest; seeded per
    # character within +-spread so a cast does not turn in lockstep.
    head_share: float = 0.45
    head_share_spread: float = 0.05
    # Comfortable head turn without moving the torso (~40 deg yaw, ~20 deg pitch).
    head_yaw_max_rad: float = 0.7
    head_pitch_max_rad: float = 0.35
    # The eyes rarely sit more than ~30 deg (yaw) / ~20 deg (pitch) off the head in conversation:
    # the range they take, and the angle an eyeLook* weight of 1 means (ARKit: 1 = full range).
    eye_yaw_max_rad: float = 0.5
    eye_pitch_max_rad: float = 0.35
    # A saccade takes 50-80 ms.
    saccade_s: float = 0.06
    # Head: second-order response, ~0.3 s to get most of the way, ~0.5 s to settle; a touch
    # under critical damping gives the small overshoot real head turns show.
    head_omega: float = 10.0  # natural frequency, rad/s
    head_damping: float = 0.8
    # Slow drift of the held head (radians std yaw/pitch, time scale): a living head never
    # holds still; the eyes counter it and stay on the target.
    drift_rad: tuple = (0.015, 0.01)
    drift_s: float = 2.5


def circle_positions(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) positions on a circle of radius 1 m at head height 1.6 m, and (n, 3) forwards facing
    its centre: the default seating when no positions are given. Character 0 sits at +Y facing -Y
    (the default facing); with two they face each other, so nobody turns."""
    if n < 1:
        raise ValueError(f"a cast has at least one character, got {n}")
    phi = np.pi / 2 + 2 * np.pi * np.arange(n) / n
    pos = np.stack([np.cos(phi), np.sin(phi), np.full(n, 1.6)], 1)
    fwd = np.stack([-np.cos(phi), -np.sin(phi), np.zeros(n)], 1)
    pos[np.abs(pos) < 1e-12] = 0.0  # exact zeros, not 6e-17: a shown seating reads cleanly
    fwd[np.abs(fwd) < 1e-12] = 0.0
    return pos, fwd


def _runs(mask):
    """(starts, ends) of the True runs of a 1-D bool array (ends exclusive)."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def floor_changes(speaking, fps, cfg=AttentionConfig()):
    """Who holds the floor: (frames, holders) int arrays, the holder from each frame on (-1 before
    anyone has taken a turn). A stretch of at least min_turn_s takes the floor when it starts; of
    several overlapping turns the latest started holds it; in a silence the last holder keeps it."""
    speaking = np.asarray(speaking, bool)
    events = []  # (frame, 0 = end / 1 = start, character, start frame)
    for k, row in enumerate(speaking):
        for s, e in zip(*_runs(row)):
            if (e - s) / fps >= cfg.min_turn_s - 1e-9:
                events += [(int(s), 1, k, int(s)), (int(e), 0, k, int(s))]
    events.sort()
    active, frames, holders, holder = {}, [], [], -1
    i = 0
    while i < len(events):
        f = events[i][0]
        while i < len(events) and events[i][0] == f:  # ends before starts at the same frame
            _, kind, k, s = events[i]
            if kind:
                active[k] = s
            else:
                active.pop(k, None)
            i += 1
        if active:
            new = max(active, key=lambda c: (active[c], -c))
            if new != holder:
                holder = new
                frames.append(f)
                holders.append(holder)
    return np.array(frames, np.int64), np.array(holders, np.int64)


def floor_holder(speaking, fps, cfg=AttentionConfig()):
    """(T,) int: the floor holder at each frame (-1 before the first turn)."""
    n = np.asarray(speaking).shape[1]
    frames, holders = floor_changes(speaking, fps, cfg)
    return _fill(frames, holders, n)


def _fill(frames, values, n):
    """Per-frame values of a step function given its change frames (sorted), -1 before the first."""
    values = np.concatenate([[-1], np.asarray(values, np.int64)])
    return values[np.searchsorted(frames, np.arange(n), side="right")]


def _targets(i, n_chars, n_frames, frames, holders, speaking_i, fps, rng, cfg):
    """(T,) whom character i looks at (-1: ahead), following the floor as listener or speaker."""
    others = [c for c in range(n_chars) if c != i]
    ch_f, ch_t = [], []
    delays = rng.uniform(*cfg.reaction_s, size=len(frames)) * fps
    pause_starts, pause_ends = _runs(~speaking_i)
    pause_starts = pause_starts[(pause_ends - pause_starts) / fps >= cfg.phrase_pause_s - 1e-9]
    dwell = cfg.speaker_min_dwell_s * fps
    for m, (f, h) in enumerate(zip(frames, holders)):
        end = frames[m + 1] if m + 1 < len(frames) else n_frames
        if h != i:  # listener: follows the floor after its reaction delay
            ch_f.append(int(round(f + delays[m])))
            ch_t.append(int(h))
            continue
        if not others:
            ch_f.append(int(f))
            ch_t.append(-1)
            continue
        # Speaker: first the one who spoke before (answering them), then listener to listener.
        prev = int(holders[m - 1]) if m else -1
        cur = prev if prev in others else int(others[rng.integers(len(others))])
        ch_f.append(int(f))
        ch_t.append(cur)
        if len(others) == 1:  # one listener: keep looking at it
            continue
        pauses = iter(pause_starts[(pause_starts > f) & (pause_starts < end)])
        t, nxt_pause = float(f), next(pauses, np.inf)
        hold_end = t + max(1.0, rng.uniform(*cfg.speaker_hold_s) * fps)
        while True:
            while nxt_pause < t + dwell:  # too soon after the last shift
                nxt_pause = next(pauses, np.inf)
            t = min(hold_end, nxt_pause)
            if t >= end:
                break
            if t == nxt_pause:
                nxt_pause = next(pauses, np.inf)
            choices = [c for c in others if c != cur]
            cur = int(choices[rng.integers(len(choices))])
            ch_f.append(int(round(t)))
            ch_t.append(cur)
            hold_end = t + max(1.0, rng.uniform(*cfg.speaker_hold_s) * fps)
    ch_f, ch_t = np.array(ch_f, np.int64), np.array(ch_t, np.int64)
    # A reaction that would land after the next change never happens (that turn was too short).
    later_min = np.minimum.accumulate(np.append(ch_f, np.iinfo(np.int64).max)[::-1])[::-1][1:]
    keep = ch_f < later_min
    return _fill(ch_f[keep], ch_t[keep], n_frames)


def _per_frame(a, n_chars, n_frames, name):
    a = np.asarray(a, np.float64)
    if a.shape == (n_chars, 3):
        a = a[:, None, :]
    if a.ndim != 3 or a.shape[0] != n_chars or a.shape[2] != 3 or a.shape[1] not in (1, n_frames):
        raise ValueError(f"{name}: expected ({n_chars}, {n_frames}, 3) or ({n_chars}, 3), got {a.shape}")
    return np.broadcast_to(a, (n_chars, n_frames, 3))


def _second_order(x, fps, omega, zeta):
    """Second-order low-pass (unit gain, natural frequency omega, damping zeta) along the last axis,
    starting at rest on the first value."""
    dt = 1.0 / fps
    root = np.sqrt(complex(zeta * zeta - 1.0))
    p1, p2 = np.exp(dt * omega * (-zeta + root)), np.exp(dt * omega * (-zeta - root))
    a = np.array([1.0, -(p1 + p2).real, (p1 * p2).real])
    b = np.array([a.sum()])
    zi = lfilter_zi(b, a)[None, :] * x[:, :1]
    return lfilter(b, a, x, axis=-1, zi=zi)[0]


def _smoothed_noise(rng, shape, frames):
    """Unit-std noise smoothed over `frames` (a Hann window), shape (..., T)."""
    k = max(1, int(frames))
    kernel = np.hanning(2 * k + 1)
    kernel /= np.sqrt((kernel ** 2).sum())
    noise = rng.standard_normal((*shape[:-1], shape[-1] + 2 * k))
    return np.stack([np.convolve(row, kernel, mode="valid")[: shape[-1]] for row in noise])


def attend(positions, forwards, speaking, fps, seed=0, cfg=AttentionConfig()) -> np.ndarray:
    """positions (N, T, 3), forwards (N, T, 3) (rest facing in world space, any length; (N, 3) for a
    still cast), speaking (N, T) bool (voice activity per character, frame i at time i / fps)
    -> (N, T, 5) float32: per character head yaw, pitch, roll offsets (radians, + yaw = own left,
    + pitch = chin down) and eye yaw, pitch (radians, relative to the head; + = own left, + = up).

    Before anyone has taken a turn everyone looks ahead (no turn): the rest pose the scene set.
    Character k draws its take (reaction delays, speaker gaze, share, drift) from seed + k."""
    speaking = np.asarray(speaking, bool)
    if speaking.ndim != 2:
        raise ValueError(f"speaking: expected (N, T), got {speaking.shape}")
    n, t_len = speaking.shape
    pos = _per_frame(positions, n, t_len, "positions")
    fwd = _per_frame(forwards, n, t_len, "forwards")
    out = np.zeros((n, t_len, 5), np.float32)
    if n == 0 or t_len == 0:
        return out
    rngs = [np.random.default_rng([seed + k, _STREAM]) for k in range(n)]

    frames, holders = floor_changes(speaking, fps, cfg)
    target = np.stack([_targets(i, n, t_len, frames, holders, speaking[i], fps, rngs[i], cfg)
                       for i in range(n)])

    # Angles to the target in each character's own frame (forward on the floor, up +Z).
    f = fwd[..., :2]
    f_len = np.hypot(f[..., 0], f[..., 1])
    flat = f_len < 1e-9  # a forward straight up/down: fall back to the default -Y
    fx = np.where(flat, 0.0, f[..., 0] / np.where(flat, 1.0, f_len))
    fy = np.where(flat, -1.0, f[..., 1] / np.where(flat, 1.0, f_len))
    d = pos[np.maximum(target, 0), np.arange(t_len)[None, :]] - pos
    horiz = np.hypot(d[..., 0], d[..., 1])
    yaw = np.arctan2(d[..., 0] * -fy + d[..., 1] * fx, d[..., 0] * fx + d[..., 1] * fy)
    pitch = -np.arctan2(d[..., 2], horiz)
    valid = (target >= 0) & (horiz + np.abs(d[..., 2]) > 1e-9)
    angle = np.stack([np.where(valid, yaw, 0.0), np.where(valid, pitch, 0.0)], 1)  # (N, 2, T)

    lim_head = np.array([cfg.head_yaw_max_rad, cfg.head_pitch_max_rad])[None, :, None]
    lim_eye = np.array([cfg.eye_yaw_max_rad, cfg.eye_pitch_max_rad])[None, :, None]
    share = np.array([cfg.head_share + r.uniform(-1, 1) * cfg.head_share_spread for r in rngs])
    drift = np.stack([_smoothed_noise(r, (2, t_len), cfg.drift_s * fps) for r in rngs])
    drift *= np.array(cfg.drift_rad)[None, :, None]

    # The head takes its share, or more where the eyes could not cover the rest, up to its limit.
    mag = np.abs(angle)
    goal = np.sign(angle) * np.minimum(np.maximum(share[:, None, None] * mag, mag - lim_eye), lim_head)
    head = _second_order((goal + drift).reshape(2 * n, t_len), fps, cfg.head_omega, cfg.head_damping)
    head = np.clip(head.reshape(n, 2, t_len), -lim_head, lim_head)

    # The eyes: a saccade (a short ramp) to the target, whatever the head has not covered yet.
    ramp = max(1, int(round(cfg.saccade_s * fps)))
    padded = np.concatenate([np.repeat(angle[..., :1], ramp, -1), angle], -1)
    c = np.cumsum(padded, -1)
    gaze = (c[..., ramp:] - c[..., :-ramp]) / ramp
    eye = np.clip(gaze - head, -lim_eye, lim_eye)

    out[..., 0] = head[:, 0]
    out[..., 1] = head[:, 1]
    out[..., 3] = eye[:, 0]
    out[..., 4] = -eye[:, 1]  # eye pitch is + up; the angles above are + down like the head
    return out


def apply_attention(weights, turn, cfg=AttentionConfig()) -> np.ndarray:
    """weights (T, 55) (network + liveliness), turn (T, 5) from attend -> (T, 55): head offsets
    added to the head channels; the eye angles added to the gaze already in the eyeLook* channels
    (re-split into non-negative In/Out/Up/Down pairs, clipped to [0, 1])."""
    out = np.array(weights, dtype=np.float32, copy=True)
    turn = np.asarray(turn, np.float32)
    if out.ndim != 2 or out.shape[1] != len(CHANNELS) or turn.shape != (out.shape[0], 5):
        raise ValueError(f"expected weights (T, {len(CHANNELS)}) and turn (T, 5), got {out.shape}, {turn.shape}")
    out[:, HEAD] += turn[:, :3]
    yaw = turn[:, 3] / cfg.eye_yaw_max_rad  # + = own left, in eyeLook* weight
    up = turn[:, 4] / cfg.eye_pitch_max_rad
    for side, toward_left, away_left in (("Left", "Out", "In"), ("Right", "In", "Out")):
        a, b = EYE["eyeLook" + toward_left + side], EYE["eyeLook" + away_left + side]
        left = out[:, a] - out[:, b] + yaw
        out[:, a], out[:, b] = np.clip(left, 0, 1), np.clip(-left, 0, 1)
        u, d = EYE["eyeLookUp" + side], EYE["eyeLookDown" + side]
        vert = out[:, u] - out[:, d] + up
        out[:, u], out[:, d] = np.clip(vert, 0, 1), np.clip(-vert, 0, 1)
    return out
