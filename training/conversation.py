"""Two-track conversations as a recording of two people gives them, with targets for both faces.

A conversation: turns separated by pauses, sometimes overlapping or interrupted; the listener's
short backchannels ("mm hmm", "yeah", or a short word from a real speaker's own recording);
each speaker's voice bleeding into the other's microphone at a lower level, a little later and
duller; background noise and different gains per track. Each speaker's targets come from the
animator and are also the other speaker's partner-motion input.

Splits hold out voices: TEST_TTS_VOICES and a hashed ~15% of the real LibriSpeech speakers are
only ever used by the "test" split. "val" uses training voices with its own seeds. Generation is
deterministic from (split, seed, index) and cached under CACHE_DIR/conv.
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.signal import butter, sosfilt

from model_runtime.head_sway import sway_noise
from model_runtime.timebase import frame_count

from . import CACHE_DIR
from .animator import AnimatorConfig, Person, animate, mimic, speaking_flags
from .voices import (
    BACKCHANNELS,
    SR,
    TEST_TTS_VOICES,
    AugmentConfig,
    Prosody,
    Utterance,
    align_real,
    alignments_cached,
    augment,
    cut,
    engine_available,
    librispeech_files,
    phrase_spans,
    pocketsphinx_available,
    random_text,
    synthesize,
    tts_voices,
)

SPLITS = ("train", "val", "test")
# Part of every cache key with the config: bump it when generation code changes (tables, logic)
# so stale conversations are never reused.
DATA_VERSION = 11  # 11: head sway from model_runtime.head_sway, stored with the targets


# Short flite-only conversations with no real speech: a whole conversation in a second or two, for
# tests and the tiny training preset.
SHORT_TTS = dict(duration_s=(10.0, 14.0), engines=("flite",), real_prob=0.0)


@dataclass(frozen=True)
class ConversationConfig:
    duration_s: tuple = (30.0, 60.0)
    real_prob: float = 0.6  # chance each speaker is a real LibriSpeech speaker (real voices matter most)
    engines: tuple = ("flite", "festival", "espeak")
    test_real_fraction: float = 0.15  # share of real speakers held out for "test"
    sentences_per_turn: tuple = (1, 3)
    real_phrases_per_turn: tuple = (1, 3)
    tts_stretch: tuple = (0.85, 1.2)
    tts_pitch: tuple = (-1.0, 1.0)
    lead_in_s: tuple = (0.3, 1.5)
    gap_median_s: float = 0.35  # pause between turns: lognormal around this
    gap_sigma: float = 0.6
    gap_max_s: float = 2.0
    overlap_prob: float = 0.15  # next turn starts before this one ends
    overlap_s: tuple = (0.1, 0.6)
    interrupt_prob: float = 0.1  # the partner cuts in and this speaker trails off
    trail_s: tuple = (0.25, 0.7)
    same_speaker_prob: float = 0.1  # the same person goes on after a pause
    backchannel_prob: float = 0.55  # per pause inside a partner's turn
    backchannel_min_pause_s: float = 0.15
    backchannel_overlap_per_s: float = 0.06  # over the partner's running speech, per second of it
    max_backchannels_per_turn: int = 3
    gain_db: tuple = (-16.0, 2.0)  # real recordings come at very different levels
    bleed_db: tuple = (-32.0, -12.0)  # partner's voice in this mic, relative to its own level
    bleed_delay_ms: tuple = (0.5, 10.0)
    bleed_lowpass_hz: tuple = (2500.0, 7000.0)
    snr_db: tuple = (12.0, 50.0)  # own speech over background noise, whatever the track's gain
    noise_tilt: tuple = (0.0, 2.0)  # 0 white .. 1 pink .. 2 brown
    hum_prob: float = 0.2
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    animator: AnimatorConfig = field(default_factory=AnimatorConfig)

    def key(self):
        text = json.dumps([DATA_VERSION, asdict(self)], sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


@dataclass
class Conversation:
    audio_a: np.ndarray  # (N,) float32 16 kHz: A's microphone (A loud, B bleeding in, noise)
    audio_b: np.ndarray
    targets_a: np.ndarray  # (T, 55) float32 at 25 fps
    targets_b: np.ndarray
    speaking_a: np.ndarray  # (T,) bool: A's own voice is active at frame i
    speaking_b: np.ndarray
    sway_a: np.ndarray  # (T, 3) float32: the head-sway noise A's targets were made with (head_sway.py)
    sway_b: np.ndarray
    meta: dict = field(default_factory=dict)
    fps: float = 25.0

    @property
    def n_frames(self):
        return len(self.targets_a)

    def save(self, path):
        tmp = f"{path}.{os.getpid()}.tmp.npz"  # loader workers may write the same one at once
        # Audio as 16-bit PCM: half the disk of float32, quantisation noise far below the noise floor.
        np.savez(tmp, audio_a=to_i16(self.audio_a), audio_b=to_i16(self.audio_b), targets_a=self.targets_a,
                 targets_b=self.targets_b, speaking_a=self.speaking_a, speaking_b=self.speaking_b,
                 sway_a=self.sway_a, sway_b=self.sway_b, meta=json.dumps(self.meta), fps=self.fps)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path):
        z = np.load(path, allow_pickle=False)
        return cls(from_i16(z["audio_a"]), from_i16(z["audio_b"]), z["targets_a"], z["targets_b"], z["speaking_a"],
                   z["speaking_b"], z["sway_a"], z["sway_b"], json.loads(str(z["meta"])), float(z["fps"]))


def to_i16(x):
    return np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


def from_i16(x):
    return x.astype(np.float32) / 32767 if x.dtype == np.int16 else x


# --------------------------------------------------------------------------------------------
# Voice pools per split

def _is_test_speaker(spk, fraction):
    return int(hashlib.sha1(f"duet-speaker-{spk}".encode()).hexdigest()[:8], 16) % 1000 < fraction * 1000


def voice_pool(split, cfg: ConversationConfig = ConversationConfig(), real=True):
    """(tts voices, {real speaker: [flac]}) usable in `split`; held-out voices only in "test"."""
    test = split == "test"
    tts = [v for v in tts_voices() if v.engine in cfg.engines and engine_available(v.engine)
           and ((v.id in TEST_TTS_VOICES) == test)]
    speakers = {}
    if real and cfg.real_prob > 0 and engine_available("libri") and (pocketsphinx_available()
                                                                      or alignments_cached()):
        speakers = {s: f for s, f in librispeech_files().items()
                    if _is_test_speaker(s, cfg.test_real_fraction) == test}
    return tts, speakers


class _Speaker:
    """One side of a conversation: turns and backchannels in one voice."""

    def __init__(self, rng, cfg, tts_voice=None, real_files=None):
        self.rng, self.cfg = rng, cfg
        self.voice = tts_voice
        self.phrases = []  # real: (Utterance, [(a, b) phrase spans])
        if real_files is not None:
            for f in real_files:
                u = align_real(f)
                if u is not None:
                    spans = phrase_spans(u)
                    if spans:
                        self.phrases.append((u, spans))
        self.used = set()  # (utterance, phrase) already said: a reader's material is short
        # A TTS voice keeps one speaking style through the conversation, as a person does.
        self.stretch = rng.uniform(*cfg.tts_stretch)
        self.pitch = rng.uniform(*cfg.tts_pitch)
        self.aug_seed = int(rng.integers(1 << 31))

    @property
    def real(self):
        return bool(self.phrases)

    @property
    def id(self):
        return self.phrases[0][0].voice if self.real else self.voice.id

    def turn(self):
        rng = self.rng
        if self.real:
            fresh = [(j, i) for j, (_, sp) in enumerate(self.phrases) for i in range(len(sp))
                     if (j, i) not in self.used]
            if not fresh:  # everything said once: repeat, as little as possible
                self.used.clear()
                fresh = [(j, i) for j, (_, sp) in enumerate(self.phrases) for i in range(len(sp))]
            j, i = fresh[rng.integers(len(fresh))]
            u, spans = self.phrases[j]
            k = int(rng.integers(*self.cfg.real_phrases_per_turn, endpoint=True))
            self.used.update((j, x) for x in range(i, min(i + k, len(spans))))
            # Consecutive phrases with the reader's own pauses between them (room to backchannel).
            utt = cut(u, spans[i][0], spans[min(i + k, len(spans)) - 1][1])
        else:
            n = int(rng.integers(*self.cfg.sentences_per_turn, endpoint=True))
            text = random_text(rng, n)
            utt = synthesize(self.voice, text, Prosody(self.stretch * rng.uniform(0.95, 1.05), self.pitch))
        return _same_room(utt, self)

    def backchannel(self):
        rng = self.rng
        if self.real:
            words = [(u, w) for u, _ in self.phrases for w in u.words if 0.15 <= w[1] - w[0] <= 0.6]
            # A reader's own "yes", "oh", "well" sound most like a backchannel; else any short word.
            like = [x for x in words if x[1][2].lower() in _BACKCHANNEL_WORDS]
            if like and rng.random() < 0.7:
                words = like
            if words:
                u, (s, e, _w) = words[rng.integers(len(words))]
                return _same_room(cut(u, s - 0.03, e + 0.05), self)
        if self.voice is None:
            return None
        text = BACKCHANNELS[rng.integers(len(BACKCHANNELS))]
        return _same_room(synthesize(self.voice, text, Prosody(self.stretch, self.pitch)), self)


_BACKCHANNEL_WORDS = {"yes", "yeah", "no", "oh", "ah", "well", "right", "so", "sure", "true", "indeed",
                      "okay", "ok", "really", "good", "fine", "exactly", "hm", "mm", "uh", "um"}


def _same_room(utt, spk):
    """Augment with this speaker's fixed voice transform, microphone and room; level varies."""
    return augment(utt, spk.rng, spk.cfg.augment, room_rng=np.random.default_rng(spk.aug_seed))


# --------------------------------------------------------------------------------------------
# Assembly

@dataclass
class Placed:
    start: float  # where the utterance's first sample lands on the timeline
    utt: Utterance
    kind: str  # turn | backchannel


def speech_pauses(utt, min_pause):
    """Internal pauses (start, end) of an utterance, relative to it."""
    b = utt.speech_bounds()
    return [(s, e) for s, e, p in utt.phones
            if p == "SIL" and e - s >= min_pause and b and b[0] < s and e < b[1]]


def _truncate(utt, t_end):
    """Speaker trails off at t_end (relative): cut with a 60 ms fade."""
    c = cut(utt, 0.0, t_end)
    n = min(len(c.audio), int(0.06 * SR))
    if n:
        c.audio[-n:] *= np.linspace(1, 0, n, dtype=np.float32)
    return c


def plan(rng, spk, duration, cfg):
    """Place turns and backchannels for speakers 0 and 1 on a timeline of `duration` seconds."""
    placed = ([], [])
    turn_starts = ([], [])
    who = int(rng.integers(2))
    t = rng.uniform(*cfg.lead_in_s)  # speech onset of the next turn
    while t < duration - 1.0:
        utt = spk[who].turn()
        sb = utt.speech_bounds()
        if sb is None:
            break
        start = t - sb[0]
        end = start + sb[1]
        r = rng.random()
        interrupted = r < cfg.interrupt_prob and sb[1] - sb[0] > 2.0
        if interrupted:  # partner cuts in; this speaker trails off a little later
            cut_at = t + rng.uniform(1.0, sb[1] - sb[0] - 0.5)
            trail = rng.uniform(*cfg.trail_s)
            utt = _truncate(utt, cut_at + trail - start)
            end = start + (utt.speech_bounds() or (0, cut_at + trail - start))[1]
            nxt = cut_at
        elif r < cfg.interrupt_prob + cfg.overlap_prob:
            nxt = end - rng.uniform(*cfg.overlap_s)
        else:
            nxt = end + min(cfg.gap_max_s, rng.lognormal(np.log(cfg.gap_median_s), cfg.gap_sigma))
        placed[who].append(Placed(start, utt, "turn"))
        turn_starts[who].append(t)
        # The listener backchannels in some of the speaker's pauses (never over the next turn).
        other = 1 - who
        n_bc = 0
        slots = [(ps, rng.random() < cfg.backchannel_prob)
                 for ps, _pe in speech_pauses(utt, cfg.backchannel_min_pause_s)]
        # Some backchannels land on running speech, as they do in real conversations.
        n_over = rng.poisson(cfg.backchannel_overlap_per_s * (sb[1] - sb[0]))
        slots += [(rng.uniform(sb[0] + 0.5, max(sb[0] + 0.5, sb[1] - 0.5)), True) for _ in range(n_over)]
        for ps, take in sorted(slots):
            if n_bc >= cfg.max_backchannels_per_turn or start + ps > min(end, nxt) - 0.5:
                break
            if take:
                bc = spk[other].backchannel()
                if bc is not None and bc.speech_bounds() is not None:
                    on = start + ps + rng.uniform(0.05, 0.3)
                    placed[other].append(Placed(on - bc.speech_bounds()[0], bc, "backchannel"))
                    n_bc += 1
        if rng.random() >= cfg.same_speaker_prob or interrupted:
            who = other
        else:
            nxt = max(nxt, end + 0.4)
        t = max(nxt, t + 0.5)
    return placed, turn_starts


def render_track(items, n, fade_s=0.01):
    audio = np.zeros(n, np.float32)
    phones = []
    for it in items:
        i0 = int(round(it.start * SR))
        a = it.utt.audio.copy()
        k = min(int(fade_s * SR), len(a) // 2)  # cut real recordings would click at their edges
        if k:
            ramp = np.linspace(0, 1, k, dtype=np.float32)
            a[:k] *= ramp
            a[-k:] *= ramp[::-1]
        lo, hi = max(0, i0), min(n, i0 + len(a))
        if hi > lo:
            audio[lo:hi] += a[lo - i0: hi - i0]
        phones += [(s + it.start, e + it.start, p) for s, e, p in it.utt.phones
                   if s + it.start < n / SR and e + it.start > 0]
    return audio, phones


def _colored_noise(rng, n, tilt):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec = spec / np.maximum(f, 20.0) ** (tilt / 2)  # 1/f^tilt power
    x = np.fft.irfft(spec, n)
    return (x / (x.std() + 1e-12)).astype(np.float32)


def microphone(rng, own, partner, cfg):
    """One microphone: own voice at its gain, the partner bleeding in, background noise."""
    n = len(own)
    gain = 10 ** (rng.uniform(*cfg.gain_db) / 20)
    d = int(rng.uniform(*cfg.bleed_delay_ms) / 1000 * SR)
    bleed = np.concatenate([np.zeros(d, np.float32), partner[: n - d]])
    sos = butter(2, rng.uniform(*cfg.bleed_lowpass_hz), "lowpass", fs=SR, output="sos")
    bleed = sosfilt(sos, bleed).astype(np.float32) * 10 ** (rng.uniform(*cfg.bleed_db) / 20)
    noise_db = 20 * np.log10(gain) + cfg.augment.rms_dbfs - rng.uniform(*cfg.snr_db)
    noise = _colored_noise(rng, n, rng.uniform(*cfg.noise_tilt)) * 10 ** (noise_db / 20)
    if rng.random() < cfg.hum_prob:
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        tt = np.arange(n) / SR
        hum = sum(np.sin(2 * np.pi * f0 * h * tt + rng.uniform(0, 6.3)) / h for h in (1, 2, 3))
        noise += (hum * 10 ** (rng.uniform(-60, -40) / 20)).astype(np.float32)
    # Stored as 16-bit PCM (Conversation.save): quantise here so a cached conversation and a
    # freshly built one are the same bits.
    return from_i16(to_i16(gain * (own + bleed) + noise))


def build(rng, cfg: ConversationConfig, split="train"):
    """Generate one conversation from `rng` (deterministic for a given rng state and caches)."""
    tts, speakers = voice_pool(split, cfg)
    if not tts and not speakers:
        raise RuntimeError(f"no voices available for split {split!r}: install flite/festival/espeak-ng "
                           "(make setup-train) or provide ../shared/data/librispeech")
    spk = []
    used = set()
    for _ in range(2):
        s = None
        if speakers and (not tts or rng.random() < cfg.real_prob):
            names = sorted(k for k in speakers if k not in used)
            for _try in range(5):  # a speaker whose alignment failed has no phrases: pick another
                name = names[rng.integers(len(names))]
                s = _Speaker(rng, cfg, real_files=speakers[name])
                if s.real:
                    used.add(name)
                    break
                s = None
        if s is None:
            if not tts:
                raise RuntimeError(f"no usable voice for split {split!r}")
            s = _Speaker(rng, cfg, tts_voice=tts[rng.integers(len(tts))])
        spk.append(s)
    duration = rng.uniform(*cfg.duration_s)
    placed, turn_starts = plan(rng, spk, duration, cfg)
    end = max(it.start + it.utt.duration for side in placed for it in side)
    duration = max(duration, end) + 0.3
    n = int(np.ceil(duration * SR))
    (clean_a, ph_a), (clean_b, ph_b) = render_track(placed[0], n), render_track(placed[1], n)
    audio_a = microphone(rng, clean_a, clean_b, cfg)
    audio_b = microphone(rng, clean_b, clean_a, cfg)
    T = frame_count(n / SR, cfg.animator.fps)
    bc = [[(it.start + it.utt.speech_bounds()[0], it.start + it.utt.speech_bounds()[1])
           for it in side if it.kind == "backchannel"] for side in placed]
    pa = Person(ph_a, clean_a, turn_starts[0], bc[0])
    pb = Person(ph_b, clean_b, turn_starts[1], bc[1])
    anim_rng = np.random.default_rng(rng.integers(1 << 63, size=2))
    sway_a, sway_b = (sway_noise(int(anim_rng.integers(1 << 31)), T, cfg.animator.fps) for _ in range(2))
    targets_a = animate(pa, pb, T, anim_rng, cfg.animator, sway_a)
    targets_b = animate(pb, pa, T, anim_rng, cfg.animator, sway_b)
    gap = cfg.animator.speech_merge_gap_s
    targets_a, targets_b = mimic(targets_a, targets_b, speaking_flags(ph_a, T, cfg.animator.fps, gap),
                                 speaking_flags(ph_b, T, cfg.animator.fps, gap), anim_rng, cfg.animator)
    meta = {"voices": [s.id for s in spk], "real": [s.real for s in spk], "split": split,
            "duration_s": n / SR, "turn_starts": [list(map(float, x)) for x in turn_starts],
            "backchannels": bc, "phones_a": ph_a, "phones_b": ph_b}
    fps = cfg.animator.fps
    return Conversation(audio_a, audio_b, targets_a, targets_b, speaking_flags(ph_a, T, fps, gap),
                        speaking_flags(ph_b, T, fps, gap), sway_a, sway_b, meta, fps)


def conversation_rng(split, seed, index):
    return np.random.default_rng([seed, SPLITS.index(split), index])


def generate(split, index, seed=0, cfg: ConversationConfig = ConversationConfig(), cache=True):
    """Conversation `index` of `split`: from the cache, or built and cached."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    path = CACHE_DIR / "conv" / cfg.key() / f"{split}-s{seed}-{index:05d}.npz"
    if cache and path.exists():
        return Conversation.load(path)
    conv = build(conversation_rng(split, seed, index), cfg, split)
    conv.meta.update(seed=seed, index=index)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        conv.save(path)
    return conv


def _generate_summary(job):
    split, i, seed = job
    c = generate(split, i, seed)
    return i, c.meta["duration_s"], c.meta["voices"]


def main(argv=None):
    """python -m training.conversation --split train --count 100 [--seed 0] [--jobs 4]

    Fills the cache; each conversation depends only on (split, seed, index), so --jobs changes
    nothing but the time it takes."""
    import argparse
    import multiprocessing
    import time

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--split", default="train", choices=SPLITS)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    t0, total = time.time(), 0.0
    jobs = [(args.split, i, args.seed) for i in range(args.start, args.start + args.count)]
    if args.jobs > 1:  # spawn: espeak-ng's library state must not be forked mid-use
        pool = multiprocessing.get_context("spawn").Pool(args.jobs)
        results = pool.imap(_generate_summary, jobs)
    else:
        pool, results = None, map(_generate_summary, jobs)
    for i, dur, voices in results:
        total += dur
        print(f"{args.split} {i}: {dur:.1f} s voices={voices}", flush=True)
    if pool is not None:
        pool.close()
        pool.join()
    dt = time.time() - t0
    print(f"{args.count} conversations, {total / 60:.1f} min of audio in {dt:.1f} s "
          f"({dt / max(total / 60, 1e-9):.2f} s per minute of conversation)", flush=True)


if __name__ == "__main__":
    main()
