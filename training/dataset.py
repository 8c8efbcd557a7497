"""Training windows for DualTalk from cached conversations.

Each conversation gives two characters (A with B as partner, and B with A). A window is 8 s
(200 frames at 25 fps) with:
  self_mel (4T, 80), partner_mel (4T, 80)  log-mel of each microphone (model_runtime.features)
  partner_motion (T, 55), motion_known (T, 1)  the partner's targets, sometimes unknown
  target (T, 55), speaking (T,), partner_speaking (T,), valid (T,) (0 on padding)
  sway (T, 3)  the head-sway noise the own targets were made with (model_runtime.head_sway)
  phones (T,) int64: the own voice's phone at each frame (index in voices.ARPABET; -100 on padding),
    for the optional phone-classification loss (TrainConfig.phone_weight)
Training windows drop the partner's motion (whole window or a span) and sometimes the partner's
audio, so one model also serves "partner face unknown" and "no partner track".
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from model_runtime.features import LogMel, MelConfig, level_offset, mel_edges_hz
from model_runtime.head_sway import SWAY_AXES
from model_runtime.timebase import samples_per_frame

from .conversation import ConversationConfig, generate
from .recording import degrade
from .voices import ARPABET

PHONE_INDEX = {p: i for i, p in enumerate(ARPABET)}
SILENCE = PHONE_INDEX["SIL"]
IGNORE = -100  # torch's cross-entropy ignore_index: padding frames carry no phone
LN_PER_DB = np.log(10.0) / 10.0  # a gain in dB as level_offset's natural-log power: the offset cancels it


def phone_labels(phones, n_frames, fps):
    """(n_frames,) int64: the phone covering each frame's time (frame i at i / fps), SIL elsewhere."""
    out = np.full(n_frames, SILENCE, np.int64)
    for s, e, p in phones:
        a, b = int(np.ceil(s * fps)), int(np.ceil(e * fps))
        out[max(a, 0):min(b, n_frames)] = PHONE_INDEX.get(p, SILENCE)
    return out


@dataclass(frozen=True)
class WindowConfig:
    frames: int = 200  # 8 s at 25 fps (DualTalk's training window)
    mel_per_frame: int = 4  # 100 mel frames/s over 25 fps
    drop_motion_prob: float = 0.3  # the whole window's partner face unknown
    drop_motion_span_prob: float = 0.2  # a span of it unknown (a face that drops out mid-shot)
    drop_partner_audio_prob: float = 0.1  # no partner track: silence
    eval_hop_frames: int = 200
    level_norm: bool = False  # DualTalkConfig.level_norm: each track's log-mel at one speech level
    # Training windows: each track recorded this many dB quieter (uniform), as 16-bit audio: with
    # level_norm the gain cancels, the quantisation and noise floor of a quiet take do not.
    gain_db: tuple = (0.0, 0.0)
    # Training windows: each track through a random room / with mains hum and DC this often
    # (recording.degrade), so reverberant and humming takes are not new to the network.
    room_prob: float = 0.0
    mains_prob: float = 0.0
    band_prob: float = 0.0  # ... through a narrow band (a phone line, a codec, a small microphone)
    # Training windows: each track's log-mel as a vocal tract this many times shorter would give it
    # (uniform; warp_mel). (1, 1) = off.
    warp: tuple = (1.0, 1.0)
    mel: MelConfig = field(default_factory=MelConfig)


def room_for(rng, cfg: WindowConfig):
    """One track's random room and mains for one window (recording.degrade), or None: no rng (evaluation)
    or no degradation configured. Each call draws its own, so each microphone gets its own room."""
    if rng is None or (cfg.room_prob <= 0 and cfg.mains_prob <= 0 and cfg.band_prob <= 0):
        return None
    r = np.random.default_rng(rng.integers(1 << 63))
    return lambda x: degrade(r, x, cfg.room_prob, cfg.mains_prob, cfg.band_prob)


def warp_mel(mel, alpha, cfg: MelConfig):
    """Vocal-tract-length perturbation of log-mel frames (T, n_mels): the spectrum of the same speech
    with every formant alpha times higher, S'(f) = S(f / alpha), read off by linear interpolation
    between the filters' centres (held at the first and last filter). Formants are what tell one
    vowel or consonant from another and also what differs between voices, so a training voice read
    through many vocal tract lengths teaches the audio pathway the articulation rather than the voice.
    Timing, level and the silence floor are unchanged, so the window's targets stay true."""
    if alpha == 1.0:
        return mel
    centres = mel_edges_hz(cfg)[1:-1]
    src = np.interp(centres / alpha, centres, np.arange(cfg.n_mels, dtype=np.float64))
    lo = np.minimum(np.floor(src).astype(np.int64), cfg.n_mels - 2)
    w = (src - lo).astype(np.float32)
    return mel[:, lo] * (1 - w) + mel[:, lo + 1] * w


def warp_for(rng, cfg: WindowConfig):
    """One track's warp_mel factor for one window: 1 without an rng (evaluation) or with warp off.
    Draws nothing when off, so switching it on leaves every other draw of a window as it was."""
    if rng is None or cfg.warp == (1.0, 1.0):
        return 1.0
    return float(rng.uniform(*cfg.warp))


def silent_mel(logmel: LogMel, frames, mel_per_frame):
    """A window of silence as window_mel gives it with no room (the log floor), without a track of zeros."""
    return np.full((frames * mel_per_frame, logmel.cfg.n_mels), np.log(logmel.cfg.floor), np.float32)


def window_mel(logmel: LogMel, audio, f0, frames, samples_per_frame, offset=0.0, gain_db=0.0, room=None):
    """Log-mel frames of one window, identical to slicing the whole track's log-mel.

    Computed from the window's samples plus two hops of left context (LogMel centres frame k
    on sample k*hop and pads half a window), so long conversations never need a full-track mel.
    room: None, or a function of the window's samples (room_for); with level normalisation
    (offset != 0) the offset moves by what it does to the window's speech level, as the runtime's
    whole-track level of a degraded take would."""
    hop = logmel.cfg.hop_length
    per = samples_per_frame // hop
    ctx = 2 if f0 > 0 else 0
    a = f0 * samples_per_frame - ctx * hop
    b = (f0 + frames) * samples_per_frame + logmel.cfg.win_length
    chunk = audio[a:b]
    if room is not None:
        clean, chunk = chunk, room(chunk)
        if offset:
            before, after = (level_offset(x, len(x), logmel.cfg) for x in (clean, chunk))
            offset += (after - before) if before and after else 0.0
    if gain_db:  # a quieter 16-bit recording of the same take
        g = 10 ** (gain_db / 20)
        chunk = (np.round(np.clip(chunk * g, -1, 1) * 32767) / 32767 / g).astype(np.float32)
    want = frames * per
    mel = logmel(chunk, offset)[ctx: ctx + want]
    if len(mel) < want:  # past the end of the track: silence, as the runtime pads it
        pad = np.full((want - len(mel), mel.shape[1]), np.log(logmel.cfg.floor), np.float32)
        mel = np.concatenate([mel, pad])
    return mel


class ConversationWindows(torch.utils.data.Dataset):
    """Windows over conversations [0, count) of `split` (generated and cached on first use).

    train=True: random windows, roles and drops, deterministic from (seed, epoch, index);
    call set_epoch each epoch. train=False: every window at eval_hop_frames, nothing dropped."""

    def __init__(self, split, count, seed=0, conv_cfg: ConversationConfig = ConversationConfig(),
                 win_cfg: WindowConfig = WindowConfig(), train=True, windows_per_conversation=4):
        self.split, self.count, self.seed = split, count, seed
        self.conv_cfg, self.cfg, self.train = conv_cfg, win_cfg, train
        self.per_conv = windows_per_conversation
        self.logmel = LogMel(win_cfg.mel)
        self.spf = samples_per_frame(conv_cfg.animator.fps)
        self.epoch = 0
        # A few loaded conversations (windows of one conversation come in runs), each with its tracks'
        # phone labels and features.level_offset (0 without level_norm).
        self._recent = {}
        self._index = None if train else self._eval_index()

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def _conv(self, i):
        """(conversation, [phone labels of A, of B], [level offset of A, of B])."""
        if i not in self._recent:
            if len(self._recent) >= 4:
                self._recent.pop(next(iter(self._recent)))
            c = generate(self.split, i, self.seed, self.conv_cfg)
            self._recent[i] = (c, [phone_labels(c.meta[k], c.n_frames, c.fps) for k in ("phones_a", "phones_b")],
                               [level_offset(x, len(x), self.cfg.mel) if self.cfg.level_norm else 0.0
                                for x in (c.audio_a, c.audio_b)])
        return self._recent[i]

    def _eval_index(self):
        out = []
        for i in range(self.count):
            T = self._conv(i)[0].n_frames
            starts = range(0, max(1, T - self.cfg.frames + 1), self.cfg.eval_hop_frames)
            out += [(i, role, s) for role in (0, 1) for s in starts]
        return out

    def __len__(self):
        return self.count * self.per_conv if self.train else len(self._index)

    def __getitem__(self, k):
        cfg = self.cfg
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, k])
            i = k % self.count
            c, phone_tracks, offsets = self._conv(i)
            role = int(rng.integers(2))
            f0 = int(rng.integers(0, max(1, c.n_frames - cfg.frames + 1)))
        else:
            rng = None
            i, role, f0 = self._index[k]
            c, phone_tracks, offsets = self._conv(i)
        own, partner = (c.audio_a, c.audio_b) if role == 0 else (c.audio_b, c.audio_a)
        tgt, ptgt = (c.targets_a, c.targets_b) if role == 0 else (c.targets_b, c.targets_a)
        spk, pspk = (c.speaking_a, c.speaking_b) if role == 0 else (c.speaking_b, c.speaking_a)
        T = cfg.frames
        sl = slice(f0, f0 + T)
        n = len(tgt[sl])
        valid = np.zeros(T, np.float32)
        valid[:n] = 1.0

        def pad(x):
            x = np.asarray(x[sl], np.float32)
            return np.concatenate([x, np.repeat(x[-1:], T - n, 0)]) if n < T else x

        known = np.ones((T, 1), np.float32)
        partner_silent = False
        if rng is not None:
            r = rng.random()
            if r < cfg.drop_motion_prob:
                known[:] = 0
            elif r < cfg.drop_motion_prob + cfg.drop_motion_span_prob:
                a = int(rng.integers(T))
                known[a: a + int(rng.integers(T // 8, T // 2))] = 0
            # No partner track is digital silence: no room, hum or DC to give it energy.
            partner_silent = rng.random() < cfg.drop_partner_audio_prob
        phones = np.full(T, IGNORE, np.int64)
        phones[:n] = phone_tracks[role][sl]
        off, poff = offsets if role == 0 else offsets[::-1]
        gain, pgain = (rng.uniform(*cfg.gain_db, size=2) if rng is not None and cfg.gain_db != (0.0, 0.0)
                       else (0.0, 0.0))
        pm = pad(ptgt) * known  # unknown frames carry no motion at all, not a stale one
        room, proom = room_for(rng, cfg), room_for(rng, cfg)
        warp, pwarp = warp_for(rng, cfg), warp_for(rng, cfg)
        return {
            "self_mel": torch.from_numpy(warp_mel(window_mel(self.logmel, own, f0, T, self.spf, off - gain * LN_PER_DB,
                                                             gain, room), warp, cfg.mel)),
            "partner_mel": torch.from_numpy(silent_mel(self.logmel, T, cfg.mel_per_frame) if partner_silent else
                                            warp_mel(window_mel(self.logmel, partner, f0, T, self.spf,
                                                                poff - pgain * LN_PER_DB, pgain, proom), pwarp,
                                                     cfg.mel)),
            "sway": torch.from_numpy(pad(c.sway_a if role == 0 else c.sway_b)),
            "partner_motion": torch.from_numpy(pm),
            "motion_known": torch.from_numpy(known),
            "target": torch.from_numpy(pad(tgt)),
            "speaking": torch.from_numpy(pad(spk[:, None].astype(np.float32))[:, 0]),
            "partner_speaking": torch.from_numpy(pad(pspk[:, None].astype(np.float32))[:, 0]),
            "valid": torch.from_numpy(valid),
            "phones": torch.from_numpy(phones),
            "channels": torch.ones(len(tgt[0])),
        }


class FacegoodWindows(torch.utils.data.Dataset):
    """Random 8 s windows of FACEGOOD takes (facegood.py): real speech with its real mouth, in the
    conversation windows' format. Alone on its track: no partner audio or face, no head or phones
    (it is Chinese; no alignment); `channels` marks the mouth channels the take's rig drives, the
    only ones the loss compares. Level, room and mains augmentation as WindowConfig says."""

    def __init__(self, names, count, seed=0, win_cfg: WindowConfig = WindowConfig(), fps=25.0):
        from . import facegood

        self.names, self.count, self.seed, self.cfg = list(names), int(count), seed, win_cfg
        self.logmel = LogMel(win_cfg.mel)
        self.spf = samples_per_frame(fps)
        self.takes = []
        for name in self.names:
            audio, arkit, mask = facegood.load_take(name, per_take=True)
            offset = level_offset(audio, len(audio), win_cfg.mel) if win_cfg.level_norm else 0.0
            speaking = facegood.speaking_frames(audio, len(arkit))
            self.takes.append((audio, arkit.astype(np.float32), mask.astype(np.float32), offset, speaking))
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        return self.count

    def __getitem__(self, k):
        cfg, T = self.cfg, self.cfg.frames
        rng = np.random.default_rng([self.seed, self.epoch, k, 7])
        audio, arkit, mask, offset, speaking = self.takes[int(rng.integers(len(self.takes)))]
        f0 = int(rng.integers(0, max(1, len(arkit) - T + 1)))
        n = len(arkit[f0:f0 + T])
        valid = np.zeros(T, np.float32)
        valid[:n] = 1.0
        target = np.zeros((T, arkit.shape[1]), np.float32)
        target[:n] = arkit[f0:f0 + n]
        speak = np.zeros(T, np.float32)
        speak[:n] = speaking[f0:f0 + n]
        gain = rng.uniform(*cfg.gain_db) if cfg.gain_db != (0.0, 0.0) else 0.0
        room = room_for(rng, cfg)
        warp = warp_for(rng, cfg)
        return {
            "self_mel": torch.from_numpy(warp_mel(window_mel(self.logmel, audio, f0, T, self.spf,
                                                             offset - gain * LN_PER_DB, gain, room), warp, cfg.mel)),
            "partner_mel": torch.from_numpy(silent_mel(self.logmel, T, cfg.mel_per_frame)),
            "partner_motion": torch.zeros(T, arkit.shape[1]),
            "motion_known": torch.zeros(T, 1),
            "sway": torch.zeros(T, SWAY_AXES),
            "target": torch.from_numpy(target),
            "speaking": torch.from_numpy(speak),
            "partner_speaking": torch.zeros(T),
            "valid": torch.from_numpy(valid),
            "phones": torch.full((T,), IGNORE, dtype=torch.int64),
            "channels": torch.from_numpy(mask),
        }
