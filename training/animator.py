"""Procedural animator: phone timings + conversational events -> 55-channel targets at 25 fps.

This is the ceiling of what the model learns, so it models what faces do, not a lookup:
- Mouth: Cohen-Massaro-style coarticulation. Every phone pulls the lips toward its viseme with
  a dominance that decays before (anticipation) and after (carry-over) its interval; bilabials
  dominate strongly (the lips must close), alveolars and velars weakly (the lips take their
  neighbours' shape), rounding anticipates far. No step per phone.
- Jaw from vowel openness (its own, slower dominance blend), scaled by loudness.
- Speaking head: band-limited sway that grows with loudness, beats on accented syllables,
  brow raises on pitch accents.
- Blinks: a Poisson process at human rates (about 26/min in conversation, fewer while speaking
  hard, more at turn boundaries), each 100-400 ms, fast close and slower open.
- Listening: nods at the partner's phrase ends and with one's own backchannels, smiles, small
  gaze shifts, the mouth at rest (a listener never lip-syncs the partner), and preparation
  (inhale, jaw parting, brow lift, gaze aversion) just before taking the turn.

Internal curves run at 100 Hz and are sampled at frame times i / fps (model_runtime.timebase).
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from model_runtime.channels import CHANNELS, NUM_CHANNELS
from model_runtime.head_sway import resample_sway, sway_noise
from model_runtime.timebase import mask_from_segments

from .voices import ARPABET_VOWELS, SR

CH = {n: i for i, n in enumerate(CHANNELS)}

# Oculus visemes -> ARKit lip shapes (after the MIT-licensed table of the TalkingHead project, softened, with jawOpen
# removed: the jaw has its own track). "closure" is a pseudo channel: how much the lips must
# meet, turned into mouthClose = closure * jawOpen so lips seal whatever the jaw does.
VISEMES = {
    "sil": {},
    "PP": {"mouthRollLower": 0.35, "mouthRollUpper": 0.3, "mouthPressLeft": 0.45, "mouthPressRight": 0.45,
           "closure": 1.0},
    "FF": {"mouthRollLower": 0.55, "mouthUpperUpLeft": 0.2, "mouthUpperUpRight": 0.2,
           "mouthShrugUpper": 0.3, "mouthLowerDownLeft": 0.05, "mouthLowerDownRight": 0.05,
           "closure": 0.35},
    "TH": {"tongueOut": 0.35, "mouthLowerDownLeft": 0.15, "mouthLowerDownRight": 0.15},
    "DD": {"mouthStretchLeft": 0.12, "mouthStretchRight": 0.12, "mouthLowerDownLeft": 0.1,
           "mouthLowerDownRight": 0.1},
    "kk": {"mouthStretchLeft": 0.1, "mouthStretchRight": 0.1},
    "CH": {"mouthFunnel": 0.55, "mouthPucker": 0.2, "mouthUpperUpLeft": 0.2, "mouthUpperUpRight": 0.2,
           "mouthLowerDownLeft": 0.2, "mouthLowerDownRight": 0.2},
    "SS": {"mouthStretchLeft": 0.3, "mouthStretchRight": 0.3, "mouthPressLeft": 0.2,
           "mouthPressRight": 0.2, "mouthLowerDownLeft": 0.2, "mouthLowerDownRight": 0.2},
    "nn": {"mouthStretchLeft": 0.1, "mouthStretchRight": 0.1, "mouthLowerDownLeft": 0.1,
           "mouthLowerDownRight": 0.1},
    "RR": {"mouthPucker": 0.25, "mouthFunnel": 0.25},
    "aa": {"mouthLowerDownLeft": 0.35, "mouthLowerDownRight": 0.35, "mouthUpperUpLeft": 0.1,
           "mouthUpperUpRight": 0.1},
    "E": {"mouthStretchLeft": 0.35, "mouthStretchRight": 0.35, "mouthLowerDownLeft": 0.25,
          "mouthLowerDownRight": 0.25, "mouthDimpleLeft": 0.15, "mouthDimpleRight": 0.15},
    "I": {"mouthStretchLeft": 0.45, "mouthStretchRight": 0.45, "mouthSmileLeft": 0.12,
          "mouthSmileRight": 0.12, "mouthLowerDownLeft": 0.15, "mouthLowerDownRight": 0.15},
    "O": {"mouthFunnel": 0.45, "mouthPucker": 0.3, "jawForward": 0.1, "mouthLowerDownLeft": 0.15,
          "mouthLowerDownRight": 0.15},
    "U": {"mouthPucker": 0.55, "mouthFunnel": 0.35},
}
PHONE_VISEME = {
    "AA": "aa", "AE": "aa", "AH": "aa", "AY": "aa", "AW": "aa", "AO": "O", "OW": "O", "OY": "O",
    "UH": "U", "UW": "U", "W": "U", "EH": "E", "EY": "E", "ER": "RR", "IH": "I", "IY": "I", "Y": "I",
    "B": "PP", "P": "PP", "M": "PP", "F": "FF", "V": "FF", "TH": "TH", "DH": "TH",
    "D": "DD", "T": "DD", "L": "nn", "N": "nn", "K": "kk", "G": "kk", "NG": "kk", "HH": "kk",
    "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH", "S": "SS", "Z": "SS", "R": "RR", "SIL": "sil",
}
# Jaw opening per phone (0..1 before the loudness gain): open vowels open the jaw most.
JAW = {"AA": 0.75, "AE": 0.68, "AH": 0.55, "AO": 0.68, "AW": 0.68, "AY": 0.68, "EH": 0.5, "ER": 0.32,
       "EY": 0.45, "IH": 0.32, "IY": 0.2, "OW": 0.5, "OY": 0.55, "UH": 0.32, "UW": 0.2,
       "B": 0.06, "P": 0.06, "M": 0.05, "F": 0.1, "V": 0.1, "TH": 0.14, "DH": 0.14, "D": 0.15, "T": 0.15,
       "L": 0.18, "N": 0.14, "K": 0.18, "G": 0.18, "NG": 0.15, "HH": 0.25, "CH": 0.12, "JH": 0.12,
       "SH": 0.1, "ZH": 0.1, "S": 0.06, "Z": 0.06, "R": 0.15, "W": 0.12, "Y": 0.12, "SIL": 0.0}
_VOWELS = set(ARPABET_VOWELS)
_LIP_KEYS = sorted({k for v in VISEMES.values() for k in v})


@dataclass(frozen=True)
class AnimatorConfig:
    fps: float = 25.0
    rate: float = 100.0  # internal curve rate (Hz)
    # Coarticulation: dominance alpha per viseme class and decay time constants (s).
    alpha: dict = field(default_factory=lambda: {
        "PP": 3.0, "FF": 2.0, "TH": 0.8, "CH": 1.2, "SS": 0.6, "DD": 0.25, "kk": 0.15, "nn": 0.25,
        "RR": 0.8, "aa": 1.0, "E": 1.0, "I": 1.0, "O": 1.2, "U": 1.5, "sil": 1.0})
    tau_anticipate: float = 0.06
    tau_carry: float = 0.05
    tau_round_anticipate: float = 0.14  # lip rounding starts early, across consonants
    short_pause_s: float = 0.15  # silences shorter than this barely pull the mouth to rest
    short_pause_alpha: float = 0.08
    jaw_tau: float = 0.05
    lip_smooth_s: float = 0.012  # muscle low-pass on top of the blend
    loud_gain: tuple = (0.7, 1.15)  # jaw gain at quiet .. loud speech
    jaw_scale: float = 0.8  # conversational speech rarely opens the jaw past ~0.6 in ARKit captures
    rest_jaw: float = 0.015  # lips parted a hair at rest, not clamped shut
    # Head (radians); positive headPitch = chin down (a nod starts positive).
    speak_sway: tuple = (0.05, 0.04, 0.025)  # yaw, pitch, roll amplitude while speaking
    listen_sway: tuple = (0.012, 0.01, 0.006)  # a listener's own drift is small: it mostly mirrors
    beat_amp: tuple = (0.02, 0.05)  # head beat on accented syllables
    beat_min_gap_s: float = 0.35
    nod_amp: tuple = (0.05, 0.12)
    nod_hz: tuple = (1.8, 2.8)
    nod_phrase_prob: float = 0.55  # listener nods at a partner phrase end
    nod_backchannel_prob: float = 0.9
    # Brows.
    brow_accent_prob: float = 0.3
    brow_amp: tuple = (0.15, 0.45)
    brow_min_gap_s: float = 1.5  # brows flash on some accents, not on every one
    listen_brow_prob: float = 0.15  # at partner phrase ends
    # Blinks (per minute).
    blink_listen: float = 26.0
    blink_speak: float = 24.0
    blink_speak_hard: float = 14.0  # at full loudness
    blink_boundary_prob: float = 0.5  # extra blink when a turn starts or ends
    blink_dur: tuple = (0.12, 0.4)
    blink_refractory_s: float = 0.45
    # Smiles.
    # Listening smiles are mostly reactions (to the partner's phrase ends, echoing the partner's
    # smile) rather than random: a listener's face answers the partner, which is what the
    # partner inputs are for and what listening SID and rPCC measure.
    smile_rate_listen: float = 1.0  # per minute, unprompted
    smile_rate_speak: float = 2.5  # speakers smile too, and listeners echo it (mimic)
    listen_smile_phrase_prob: float = 0.3  # a smile answering the partner's phrase end
    smile_backchannel_prob: float = 0.35
    smile_amp: tuple = (0.2, 0.6)
    # Gaze (eyeLook* weights).
    saccade_rate_listen: float = 20.0  # per minute, small fixational shifts
    saccade_rate_speak: float = 30.0
    gaze_listen: float = 0.06
    gaze_speak: float = 0.15
    # Preparation before taking the turn.
    prep_s: tuple = (0.25, 0.6)
    prep_jaw: tuple = (0.06, 0.14)
    prep_brow: tuple = (0.05, 0.2)
    prep_head_lift: tuple = (0.01, 0.03)  # radians of chin-up
    # Couplings between channels (how faces move together).
    lower_lip_follow: tuple = (0.2, 0.4)  # mouthLowerDown per unit of jawOpen
    listen_brow_amp: tuple = (0.1, 0.3)
    brow_eye_wide: float = 0.3
    smile_cheek: float = 0.5  # cheekSquint per unit of smile
    smile_eye_squint: float = 0.3
    blink_look_down: float = 0.25  # eyelids and gaze drop together
    # Mimicry: a listener echoes the speaker's smile, brows and head a moment later (smiles are
    # contagious; listeners mirror posture). This ties the listener's face to the partner's face,
    # which is what the partner-motion input is for and what rPCC measures.
    mimic_delay_s: tuple = (0.25, 0.7)
    mimic_smile: tuple = (0.5, 0.9)
    mimic_brow: tuple = (0.25, 0.5)
    # Head mirroring is posture (interactional synchrony): the partner's slow head drift, followed
    # closely. Before it was weak, fast and late, so over a conversation a listener's head was
    # uncorrelated with (or even opposed to) the partner's and head rPCC measured only chance.
    mimic_head: tuple = (0.6, 0.9)
    mimic_head_smooth_s: float = 0.4  # mirror the slow posture, not each jiggle
    mimic_head_delay_s: tuple = (0.2, 0.45)
    # Per-character style: multipliers drawn once per character.
    style_range: tuple = (0.75, 1.3)
    articulation_range: tuple = (0.85, 1.15)  # how wide one person opens the mouth
    speech_merge_gap_s: float = 0.3  # gaps shorter than this stay inside one speaking stretch
    phrase_pause_s: float = 0.25  # partner silence that ends a phrase


@dataclass
class Person:
    """What the animator knows about one person on the conversation's timeline (seconds)."""

    phones: list  # [(start, end, ARPAbet)] absolute, all this person says (turns + backchannels)
    audio: np.ndarray = None  # own clean voice (16 kHz, same timeline) for loudness and pitch
    turn_starts: list = field(default_factory=list)  # onsets of own turns (not backchannels)
    backchannels: list = field(default_factory=list)  # (start, end) of own backchannels


# --------------------------------------------------------------------------------------------
# Timeline helpers

def speech_segments(phones, merge_gap=0.3):
    """Merged (start, end) stretches of non-silent phones."""
    segs = []
    for s, e, p in sorted(phones):
        if p == "SIL" or e <= s:
            continue
        if segs and s - segs[-1][1] <= merge_gap:
            segs[-1][1] = max(segs[-1][1], e)
        else:
            segs.append([s, e])
    return [tuple(x) for x in segs]


def speaking_flags(phones, n_frames, fps=25.0, merge_gap=0.3):
    """(T,) bool: the person is speaking at frame time i / fps."""
    return mask_from_segments(speech_segments(phones, merge_gap), np.arange(n_frames) / fps)


def fill_silence(phones, end):
    """Phones sorted, with every gap (and the lead-in and tail up to `end`) filled by SIL."""
    out, cur = [], 0.0
    for s, e, p in sorted(phones):
        if s > cur + 1e-6:
            out.append((cur, s, "SIL"))
        if e > max(s, cur):
            out.append((max(s, cur), e, p))
            cur = e
    if end > cur:
        out.append((cur, end, "SIL"))
    return out


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _pulse(t, t0, attack, hold, release):
    """0 -> 1 -> 0 envelope starting at t0 (smooth edges)."""
    up = _smoothstep((t - t0) / max(attack, 1e-3))
    down = 1 - _smoothstep((t - t0 - attack - hold) / max(release, 1e-3))
    return np.where(t < t0, 0.0, np.minimum(up, down))


# --------------------------------------------------------------------------------------------
# Prosody from the person's own clean voice

def prosody(audio, n, rate):
    """Loudness in [0,1] (per-person normalised) and F0 (Hz, 0 unvoiced) at `rate` Hz, n samples."""
    loud = np.zeros(n, np.float32)
    f0 = np.zeros(n, np.float32)
    if audio is None or len(audio) < SR // 10:
        return loud, f0
    hop, win = int(SR / rate), int(0.04 * SR)
    pad = np.pad(audio.astype(np.float32), (win // 2, win + hop * n))
    frames = np.lib.stride_tricks.sliding_window_view(pad, win)[::hop][:n]
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    voiced_db = db[db > db.max() - 50]
    lo, hi = np.percentile(voiced_db, 30), np.percentile(voiced_db, 98)
    loud[: len(db)] = np.clip((db - lo) / max(hi - lo, 1e-3), 0, 1)
    # F0 by normalised autocorrelation (70-400 Hz) on loud frames only: cheap and good enough
    # to place pitch accents.
    idx = np.flatnonzero(loud > 0.3)
    if len(idx):
        fr = frames[idx] - frames[idx].mean(axis=1, keepdims=True)
        spec = np.fft.rfft(fr * np.hanning(win), n=2 * win, axis=1)
        ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :win]
        ac = ac / (ac[:, :1] + 1e-9)
        lo_lag, hi_lag = SR // 400, SR // 70
        lag = lo_lag + np.argmax(ac[:, lo_lag:hi_lag], axis=1)
        peak = ac[np.arange(len(idx)), lag]
        f0[idx] = np.where(peak > 0.45, SR / lag, 0.0)
    return gaussian_filter1d(loud, 2.0), f0


# --------------------------------------------------------------------------------------------
# Mouth and jaw

def _dominance_blend(phones, t, targets, alphas, tau_a, tau_c, rest=0.05, chunk_s=10.0, reach_s=1.5):
    """Σ D_i(t) T_i / (Σ D_i(t) + rest), with D_i decaying exponentially outside phone i's core.

    `rest` is a constant pull toward the neutral face (target 0): far from any phone the mouth
    rests instead of holding the slowest-decaying viseme. Evaluated in time chunks with only
    the phones within reach_s: memory stays bounded for long conversations."""
    out = np.zeros((len(t), targets.shape[1]))
    if not phones:
        return out
    s = np.array([p[0] for p in phones])
    e = np.array([p[1] for p in phones])
    c, half = (s + e) / 2, (e - s) / 4  # the middle half of a phone is its core...
    sil = np.array([p[2] == "SIL" for p in phones])
    half[sil] = np.maximum((e - s)[sil] / 2 - 0.06, (e - s)[sil] / 4)  # ...but a pause rests throughout
    for a in np.arange(t[0], t[-1] + chunk_s, chunk_s):
        ti = np.flatnonzero((t >= a) & (t < a + chunk_s))
        if not len(ti):
            continue
        pi = np.flatnonzero((e > a - reach_s) & (s < a + chunk_s + reach_s))
        if not len(pi):
            continue
        tt = t[ti][None, :]
        before = np.maximum(0.0, (c[pi] - half[pi])[:, None] - tt)
        after = np.maximum(0.0, tt - (c[pi] + half[pi])[:, None])
        dom = alphas[pi, None] * np.exp(-before / tau_a[pi, None] - after / tau_c[pi, None])
        out[ti] = (dom.T @ targets[pi]) / (dom.sum(axis=0)[:, None] + rest)
    return out


def mouth_curves(phones, t, cfg: AnimatorConfig, loud=None):
    """(len(t), 52 lip channels dict) lips + jaw from phones: coarticulated, not stepped."""
    if not phones:
        return {}, np.zeros(len(t))
    phones = fill_silence(phones, t[-1] + 1.0)
    lip_targets, alphas, tau_a, tau_c, jaw_t, jaw_alpha = [], [], [], [], [], []
    for s, e, p in phones:
        v = PHONE_VISEME.get(p, "sil")
        a = cfg.alpha[v]
        if p == "SIL" and e - s < cfg.short_pause_s:
            a = cfg.short_pause_alpha
        lip_targets.append([VISEMES[v].get(k, 0.0) for k in _LIP_KEYS])
        alphas.append(a)
        tau_a.append(cfg.tau_round_anticipate if v in ("O", "U", "RR", "CH") else cfg.tau_anticipate)
        tau_c.append(cfg.tau_carry)
        jaw_t.append(JAW.get(p, 0.0))
        # The jaw follows vowels; consonants dent it, bilabials close it part way.
        jaw_alpha.append(1.0 if p in _VOWELS else (a if p == "SIL" else 0.35))
    lip_targets = np.array(lip_targets, np.float64)
    lips = _dominance_blend(phones, t, lip_targets, np.array(alphas), np.array(tau_a), np.array(tau_c))
    jaw = _dominance_blend(phones, t, np.array(jaw_t)[:, None], np.array(jaw_alpha),
                           np.full(len(phones), cfg.jaw_tau), np.full(len(phones), cfg.jaw_tau))[:, 0]
    sig = cfg.lip_smooth_s * cfg.rate
    lips = gaussian_filter1d(lips, sig, axis=0)
    jaw = gaussian_filter1d(jaw, sig * 1.5)
    if loud is not None:
        g0, g1 = cfg.loud_gain
        jaw = jaw * (g0 + (g1 - g0) * loud)
    return {k: lips[:, i] for i, k in enumerate(_LIP_KEYS)}, jaw


# --------------------------------------------------------------------------------------------
# Stochastic behaviour

def _poisson_times(rng, rate_per_min, t, refractory=0.0):
    """Event times of an inhomogeneous Poisson process (rate array per minute) on grid t."""
    dt = t[1] - t[0] if len(t) > 1 else 0.01
    p = np.asarray(rate_per_min, float) / 60.0 * dt
    hits = np.flatnonzero(rng.random(len(t)) < p)
    out, last = [], -1e9
    for i in hits:
        if t[i] - last >= refractory:
            out.append(float(t[i]))
            last = t[i]
    return out


def blink_curve(times, t, rng, cfg):
    out = np.zeros(len(t))
    for t0 in times:
        d = float(np.clip(rng.lognormal(np.log(0.2), 0.3), *cfg.blink_dur))
        amp = rng.uniform(0.85, 1.0)
        out = np.maximum(out, amp * _pulse(t, t0, 0.3 * d, 0.15 * d, 0.55 * d))
    return out


def _nod(t, t0, amp, hz):
    """Damped nod: chin down first (positive pitch), one and a half cycles."""
    x = t - t0
    on = (x >= 0) & (x < 1.5 / hz)
    return np.where(on, amp * np.sin(2 * np.pi * hz * x) * np.exp(-x * hz * 0.8), 0.0)


def animate(me: Person, partner: Person, n_frames, rng, cfg: AnimatorConfig = AnimatorConfig(), sway=None):
    """(n_frames, 55) float32 targets for `me` in a conversation with `partner`.

    sway: (n_frames, 3) head-sway noise at cfg.fps (model_runtime.head_sway.sway_noise); the network
    is given the same noise as an input, so the random part of its head target is known to it.
    None: drawn from `rng`."""
    n = int(np.ceil(n_frames / cfg.fps * cfg.rate)) + 2
    t = np.arange(n) / cfg.rate
    out = np.zeros((n, NUM_CHANNELS))
    style = lambda: rng.uniform(*cfg.style_range)
    expressive, smiley, blinky = style(), style(), style()
    articulate = rng.uniform(*cfg.articulation_range)

    loud, f0 = prosody(me.audio, n, cfg.rate)
    my_segs = speech_segments(me.phones, cfg.speech_merge_gap_s)
    speaking = mask_from_segments(my_segs, t)
    # Listening is driven by the partner's phrase ends, never by a copy of their voice.
    p_segs = speech_segments(partner.phones, cfg.speech_merge_gap_s)

    # Mouth and jaw: own phones only, so the partner's voice never moves this mouth.
    lips, jaw = mouth_curves(me.phones, t, cfg, loud)
    jaw = np.clip(jaw * articulate * cfg.jaw_scale, 0, 1)
    for k, v in lips.items():
        if k != "closure":
            out[:, CH[k]] = v * articulate
    # Preparation: inhale and part the lips just before a turn (the jaw then hands over to speech).
    prep_brow = np.zeros(n)
    prep_head = np.zeros(n)
    for ts in me.turn_starts:
        d = rng.uniform(*cfg.prep_s)
        ramp = _smoothstep((t - (ts - d)) / d) * (t < ts + 0.05)
        jaw = np.maximum(jaw, rng.uniform(*cfg.prep_jaw) * ramp)
        prep_brow = np.maximum(prep_brow, rng.uniform(*cfg.prep_brow) * _pulse(t, ts - d, d, 0.2, 0.4))
        prep_head -= rng.uniform(*cfg.prep_head_lift) * _pulse(t, ts - d, d, 0.2, 0.6)
    jaw = np.maximum(jaw, cfg.rest_jaw)
    out[:, CH["jawOpen"]] = jaw
    closure = lips.get("closure", np.zeros(n))
    out[:, CH["mouthClose"]] = np.clip(closure, 0, 1) * jaw
    lower = rng.uniform(*cfg.lower_lip_follow)
    for side in ("Left", "Right"):
        out[:, CH["mouthLowerDown" + side]] += lower * jaw * (1 - closure)

    # Head: sway (bigger and louder while speaking), beats on accents, nods while listening.
    amp_env = np.where(speaking, 0.7 + 0.5 * loud, 0.0)
    sig = 0.3 * cfg.rate
    amp_env = gaussian_filter1d(amp_env, sig) + gaussian_filter1d((~speaking) * 1.0, sig)
    speak_w = gaussian_filter1d(speaking * 1.0, 0.3 * cfg.rate)
    if sway is None:
        sway = sway_noise(int(rng.integers(1 << 31)), n_frames, cfg.fps)
    sway = resample_sway(sway, cfg.fps, t)
    for j, name in enumerate(("headYaw", "headPitch", "headRoll")):
        a = (speak_w * cfg.speak_sway[j] + (1 - speak_w) * cfg.listen_sway[j]) * expressive
        out[:, CH[name]] = sway[:, j] * a * np.maximum(amp_env, 0.3)
        out[:, CH[name]] += rng.normal(0, 0.03)  # each person's resting pose differs a little
    out[:, CH["headPitch"]] += prep_head

    # Accents: local loudness peaks of voiced speech -> head beat; the highest pitch ones -> brows.
    brow = prep_brow.copy()
    peaks = _accent_peaks(loud, f0, speaking, cfg)
    f0_voiced = f0[f0 > 0]
    f0_hi = np.percentile(f0_voiced, 70) if len(f0_voiced) > 20 else np.inf
    last_brow = -1e9
    for i in peaks:
        t0 = t[i]
        beat = rng.uniform(*cfg.beat_amp) * expressive
        out[:, CH["headPitch"]] += beat * _pulse(t, t0 - 0.1, 0.12, 0.02, 0.2)
        win = f0[max(0, i - 10): i + 10]
        if (win.max(initial=0) >= f0_hi and t0 - last_brow >= cfg.brow_min_gap_s
                and rng.random() < cfg.brow_accent_prob):
            last_brow = t0
            amp = rng.uniform(*cfg.brow_amp) * expressive
            brow = np.maximum(brow, amp * _pulse(t, t0 - 0.15, 0.15, 0.15, 0.35))

    # Listening: nods at partner phrase ends and with own backchannels, occasional brow interest.
    phrase_ends = [e for k, (s, e) in enumerate(p_segs)
                   if k + 1 == len(p_segs) or p_segs[k + 1][0] - e >= cfg.phrase_pause_s]
    nods = []
    for e in phrase_ends:
        if e < t[-1] and not speaking[min(int(e * cfg.rate), n - 1)] and rng.random() < cfg.nod_phrase_prob:
            nods.append(e + rng.uniform(0.05, 0.35))
        if rng.random() < cfg.listen_brow_prob:
            brow = np.maximum(brow, rng.uniform(*cfg.listen_brow_amp) * _pulse(t, e - 0.3, 0.2, 0.2, 0.4))
    for s, _e in me.backchannels:
        if rng.random() < cfg.nod_backchannel_prob:
            nods.append(s + rng.uniform(-0.1, 0.1))
    for t0 in nods:
        amp = rng.uniform(*cfg.nod_amp) * expressive
        out[:, CH["headPitch"]] += _nod(t, t0, amp, rng.uniform(*cfg.nod_hz))
    out[:, CH["browInnerUp"]] += brow
    out[:, CH["browOuterUpLeft"]] += brow * rng.uniform(0.6, 1.0)
    out[:, CH["browOuterUpRight"]] += brow * rng.uniform(0.6, 1.0)
    out[:, CH["eyeWideLeft"]] += cfg.brow_eye_wide * brow
    out[:, CH["eyeWideRight"]] += cfg.brow_eye_wide * brow

    # Smiles: more while listening, and often with a backchannel.
    smile_rate = np.where(speaking, cfg.smile_rate_speak, cfg.smile_rate_listen) * smiley
    smile_times = _poisson_times(rng, smile_rate, t, refractory=2.0)
    smile_times += [s for s, _e in me.backchannels if rng.random() < cfg.smile_backchannel_prob]
    smile_times += [e + rng.uniform(0.1, 0.4) for e in phrase_ends
                    if e < t[-1] and not speaking[min(int(e * cfg.rate), n - 1)]
                    and rng.random() < cfg.listen_smile_phrase_prob]
    smile = np.zeros(n)
    for t0 in smile_times:
        smile = np.maximum(smile, rng.uniform(*cfg.smile_amp) * _pulse(
            t, t0, rng.uniform(0.2, 0.5), rng.uniform(0.6, 3.0), rng.uniform(0.4, 0.9)))
    asym = rng.uniform(-0.1, 0.1)
    out[:, CH["mouthSmileLeft"]] += smile * (1 + asym)
    out[:, CH["mouthSmileRight"]] += smile * (1 - asym)
    for k in ("cheekSquintLeft", "cheekSquintRight"):
        out[:, CH[k]] += cfg.smile_cheek * smile
    for k in ("eyeSquintLeft", "eyeSquintRight"):
        out[:, CH[k]] += cfg.smile_eye_squint * smile

    # Blinks: human rate, suppressed by effortful speech, extra at turn boundaries.
    blink_rate = np.where(speaking, cfg.blink_speak - (cfg.blink_speak - cfg.blink_speak_hard) * loud,
                          cfg.blink_listen) * blinky
    blink_t = _poisson_times(rng, blink_rate, t, cfg.blink_refractory_s)
    for s, e in my_segs:
        for b in (s, e):
            free = all(abs(b - x) > cfg.blink_refractory_s for x in blink_t)
            if free and rng.random() < cfg.blink_boundary_prob:
                blink_t.append(b + rng.uniform(-0.1, 0.15))
    blink = blink_curve(sorted(blink_t), t, rng, cfg)
    out[:, CH["eyeBlinkLeft"]] = np.maximum(out[:, CH["eyeBlinkLeft"]], blink)
    out[:, CH["eyeBlinkRight"]] = np.maximum(out[:, CH["eyeBlinkRight"]], blink * rng.uniform(0.93, 1.0))

    # Gaze: fixational shifts while listening, wider aversions while speaking and preparing.
    gx, gy = _gaze(rng, t, speaking, me.turn_starts, cfg)
    for side, sign in (("Left", 1), ("Right", -1)):
        x = gx * sign  # +x = look to own left: left eye looks out, right eye looks in
        out[:, CH["eyeLookOut" + side]] = np.clip(x, 0, 1)
        out[:, CH["eyeLookIn" + side]] = np.clip(-x, 0, 1)
        out[:, CH["eyeLookUp" + side]] = np.clip(gy, 0, 1)
        out[:, CH["eyeLookDown" + side]] = np.clip(-gy, 0, 1) + cfg.blink_look_down * blink

    # Sample at frame times i / fps.
    idx = np.round(np.arange(n_frames) / cfg.fps * cfg.rate).astype(int)
    res = out[np.clip(idx, 0, n - 1)]
    res[:, :52] = np.clip(res[:, :52], 0, 1)
    res[:, 52:] = np.clip(res[:, 52:], -0.6, 0.6)
    return res.astype(np.float32)


_MIMIC = {
    "smile": ("mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft", "cheekSquintRight", "eyeSquintLeft",
              "eyeSquintRight"),
    "brow": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    "head": ("headYaw", "headPitch", "headRoll"),
}


def mimic(a, b, speaking_a, speaking_b, rng, cfg: AnimatorConfig = AnimatorConfig()):
    """Each listener echoes the other's smile, brows and head motion, delayed; returns new (a, b).

    Both echo the other's face as it was before mimicry (no feedback loop). Only while the
    echoing person is not speaking, faded in and out over ~0.3 s."""
    out = []
    for me, other, speaking in ((a, b, speaking_a), (b, a, speaking_b)):
        me = me.copy()
        listen = gaussian_filter1d((~np.asarray(speaking, bool)).astype(np.float64), 0.3 * cfg.fps)
        delays = {"smile": cfg.mimic_delay_s, "brow": cfg.mimic_delay_s, "head": cfg.mimic_head_delay_s}
        for key, gain_range in (("smile", cfg.mimic_smile), ("brow", cfg.mimic_brow), ("head", cfg.mimic_head)):
            d = int(round(rng.uniform(*delays[key]) * cfg.fps))
            g = rng.uniform(*gain_range)
            idx = [CH[n] for n in _MIMIC[key]]
            src = other[:, idx].astype(np.float64)
            if key == "head":  # posture mirrors motion, not the partner's resting offset
                src = src - gaussian_filter1d(src, 3 * cfg.fps, axis=0)
                if cfg.mimic_head_smooth_s > 0:
                    src = gaussian_filter1d(src, cfg.mimic_head_smooth_s * cfg.fps, axis=0)
            delayed = np.concatenate([np.repeat(src[:1], d, 0), src[: len(src) - d]]) if d else src
            me[:, idx] += g * listen[:, None] * delayed
        me[:, :52] = np.clip(me[:, :52], 0, 1)
        me[:, 52:] = np.clip(me[:, 52:], -0.6, 0.6)
        out.append(me.astype(np.float32))
    return out[0], out[1]


def _accent_peaks(loud, f0, speaking, cfg):
    sm = gaussian_filter1d(loud, 3.0)
    cand = np.flatnonzero((sm[1:-1] > sm[:-2]) & (sm[1:-1] >= sm[2:]) & (sm[1:-1] > 0.55)) + 1
    cand = cand[speaking[cand] & (f0[cand] > 0)]
    out, last = [], -1e9
    gap = int(cfg.beat_min_gap_s * cfg.rate)
    for i in cand:
        if i - last >= gap:
            out.append(i)
            last = i
    return out


def _gaze(rng, t, speaking, turn_starts, cfg):
    n = len(t)
    gx, gy = np.zeros(n), np.zeros(n)
    rate = np.where(speaking, cfg.saccade_rate_speak, cfg.saccade_rate_listen)
    times = sorted(_poisson_times(rng, rate, t, 0.25) + [ts - 0.3 for ts in turn_starts])
    cur = np.zeros(2)
    for k, t0 in enumerate(times):
        i0 = max(0, int(t0 * cfg.rate))
        i1 = int(times[k + 1] * cfg.rate) if k + 1 < len(times) else n
        i1 = max(i0, min(i1, n))
        aversion = speaking[min(i0, n - 1)] or any(0 <= ts - t0 < 0.5 for ts in turn_starts)
        spread = cfg.gaze_speak if aversion else cfg.gaze_listen
        tgt = rng.normal(0, spread, 2) if rng.random() < 0.75 else np.zeros(2)  # often back to the partner
        tgt[1] *= 0.6
        # A saccade takes ~40 ms: a fast ramp, then a fixation.
        ramp = np.clip((t[i0:i1] - t0) / 0.04, 0, 1)[:, None]
        seg = cur + (tgt - cur) * ramp
        gx[i0:i1], gy[i0:i1] = seg[:, 0], seg[:, 1]
        cur = tgt
    return gx, gy
