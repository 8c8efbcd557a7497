"""Windowed inference: two voice tracks (+ optional partner motion) -> 55 curves at any fps.

The network attends over a whole window, so long conversations are cut into overlapping
windows of cfg.window_frames, run in batches, and cross-faded over cfg.overlap_frames:
memory stays bounded and cost grows linearly with length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .audio import Track, pad_to_same_length, read_span, silent_track
from .channels import NUM_ARKIT
from .errors import Cancelled
from .features import LogMel, MelConfig, level_offset
from .head_sway import SWAY_AXES, sway_noise
from .liveliness import add_liveliness, voice_activity
from .motion_io import Motion
from .request import DEFAULT_FPS, DEFAULT_LIVELINESS, DEFAULT_SEED
from .rows import RowsOf
from .timebase import SAMPLE_RATE, frame_count, resample_curves, samples_per_frame


@dataclass
class Result:
    weights: np.ndarray  # (n_frames, 55) float32 at fps
    fps: float
    duration: float
    notes: list = field(default_factory=list)


def window_starts(n_frames, window, overlap):
    """Start frames of windows covering [0, n_frames); the last one ends exactly at n_frames."""
    if n_frames <= window:
        return [0]
    hop = window - overlap
    starts = list(range(0, n_frames - window, hop))
    starts.append(n_frames - window)
    return starts


def crossfade_weights(length, overlap, fade_in, fade_out):
    """(length,) blend weights: linear ramps over `overlap` frames on the sides that overlap."""
    w = np.ones(length, np.float32)
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    if fade_in:
        w[:overlap] = ramp
    if fade_out:
        w[length - overlap:] = np.minimum(w[length - overlap:], ramp[::-1])
    return w


class Predictor:
    def __init__(self, backend):
        self.backend = backend
        self.cfg = backend.cfg
        self.mel = LogMel(MelConfig(n_mels=self.cfg.n_mels))

    def _frame_rows(self, samples, n_frames):
        """Per-track network input laid out so frames [s, e) are rows [s*r, e*r), made as run_frames
        slices it one window at a time: a long track's input never exists whole."""
        cfg = self.cfg
        if cfg.audio_encoder == "wav2vec2":
            need = n_frames * cfg.samples_per_frame
            return RowsOf(need, lambda a, b: read_span(samples, a, b)), cfg.samples_per_frame
        r = cfg.mel_frames_per_frame
        # Audio that ends inside the last frame is padded with silence.
        n = n_frames * r * self.mel.cfg.hop_length
        offset = level_offset(samples, min(n, len(samples)), self.mel.cfg) if cfg.level_norm else 0.0
        return self.mel.rows(samples, n, n_frames * r, offset), r

    def _frame_inputs(self, samples, n_frames):
        """_frame_rows as one array."""
        rows, r = self._frame_rows(samples, n_frames)
        return rows[0:len(rows)], r

    def windows(self, n_frames, mask=None):
        """Start frames of the windows a pass over n_frames runs: the whole grid, or only the windows
        that overlap `mask` ((n_frames,) bool). The grid never moves, so a masked pass gives exactly
        the full pass's output wherever every window covering a frame was run."""
        cfg = self.cfg
        starts = window_starts(n_frames, cfg.window_frames, min(cfg.overlap_frames, cfg.window_frames // 2))
        if mask is None:
            return starts
        length = min(cfg.window_frames, n_frames)
        hits = np.concatenate([[0], np.cumsum(np.asarray(mask, bool), dtype=np.int64)])
        return [s for s in starts if hits[s + length] > hits[s]]

    def covered(self, n_frames, starts):
        """(n_frames,) bool: the frames the windows at `starts` cover."""
        out = np.zeros(n_frames, bool)
        length = min(self.cfg.window_frames, n_frames)
        for s in starts:
            out[s:s + length] = True
        return out

    def run_frames(self, self_in, partner_in, rows_per_frame, motion, known, n_frames,
                   progress=None, cancel=None, window=None, overlap=None, starts=None, sway=None):
        """Windowed network pass at the internal rate -> (n_frames, 55). `starts`: run only these
        windows of the grid (Predictor.windows); frames none of them covers come back 0. sway:
        (n_frames, 3) head-sway noise for the whole track (sway_for); None: zeros, the mean take."""
        cfg = self.cfg
        window = window or cfg.window_frames
        overlap = min(overlap or cfg.overlap_frames, window // 2)
        if starts is None:
            starts = window_starts(n_frames, window, overlap)
        length = min(window, n_frames)
        r = rows_per_frame
        if sway is None:
            sway = np.zeros((n_frames, SWAY_AXES), np.float32)
        out = np.zeros((n_frames, cfg.num_channels), np.float32)
        wsum = np.zeros((n_frames, 1), np.float32)
        for b0 in range(0, len(starts), cfg.batch_windows):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            batch = starts[b0:b0 + cfg.batch_windows]
            y = self.backend.run(
                np.stack([self_in[s * r:(s + length) * r] for s in batch]),
                np.stack([partner_in[s * r:(s + length) * r] for s in batch]),
                np.stack([motion[s:s + length] for s in batch]),
                np.stack([known[s:s + length] for s in batch]),
                np.stack([sway[s:s + length] for s in batch]))
            for s, ys in zip(batch, y):
                w = crossfade_weights(length, overlap, s > 0, s + length < n_frames)[:, None]
                out[s:s + length] += ys * w
                wsum[s:s + length] += w
            if progress:
                progress("network", min(1.0, (b0 + len(batch)) / len(starts)))
        out /= np.maximum(wsum, 1e-8)
        return out

    def sway_for(self, seed, n_frames):
        """The head-sway noise of a take: (n_frames, 3) at the internal rate, a function of the seed."""
        return sway_noise(seed, n_frames, self.cfg.fps)

    def network(self, self_samples, partner_samples, motion, known, n_frames, progress=None, cancel=None,
                starts=None, sway=None):
        """One network pass at the internal rate over two tracks' samples (arrays, or anything that
        slices into one): the inputs are made window by window as the pass reads them."""
        self_in, r = self._frame_rows(self_samples, n_frames)
        partner_in, _ = self._frame_rows(partner_samples, n_frames)
        return self.run_frames(self_in, partner_in, r, motion, known, n_frames, progress, cancel,
                               starts=starts, sway=sway)

    def finish(self, internal, speaking, duration, fps, liveliness, seed, turn=None):
        """Network curves at the internal rate -> the result's curves at `fps`: liveliness (seeded),
        then attention's head and eye turns when given ((T, 5), attention.attend), then resampled
        and the weights clipped to [0, 1]."""
        cfg = self.cfg
        if liveliness:
            internal = add_liveliness(internal, speaking, cfg.fps, seed)
        if turn is not None:
            from .attention import apply_attention

            internal = apply_attention(internal, turn)
        weights = resample_curves(internal, cfg.fps, fps, frame_count(duration, fps))
        np.clip(weights[:, :NUM_ARKIT], 0.0, 1.0, out=weights[:, :NUM_ARKIT])
        return weights

    def predict(self, self_track: Track, partner_track: Track | None = None, partner_motion: Motion | None = None,
                fps: float = DEFAULT_FPS, progress: Callable[[str, float], None] | None = None,
                cancel: Callable[[], bool] | None = None, liveliness: bool = DEFAULT_LIVELINESS,
                seed: int = DEFAULT_SEED) -> Result:
        """Curves (n, 55) at `fps` for the own voice, given the partner's voice (None: silent) and
        face (None: unknown). progress(stage, 0..1) is called as it goes; cancel() is checked between
        batches. liveliness: add seeded blinks, gaze shifts and idle head sway (liveliness.py)."""
        cfg = self.cfg
        notes = list(self_track.notes)
        if partner_track is None:
            partner_track = silent_track(self_track.duration, "(no partner track)")
            notes.append("no partner track: the partner is treated as silent")
        else:
            notes += partner_track.notes
            notes += pad_to_same_length(self_track, partner_track)
        duration = len(self_track.samples) / SAMPLE_RATE
        n_frames = frame_count(duration, cfg.fps)
        if progress:
            progress("features", 0.0)
        if partner_motion is not None:
            motion = partner_motion.resampled(cfg.fps, n_frames)
            known = np.ones((n_frames, 1), np.float32)
            if partner_motion.missing:
                notes.append(f"partner motion lacks {len(partner_motion.missing)} channels, "
                             f"filled with 0: {', '.join(partner_motion.missing[:6])}"
                             + (" ..." if len(partner_motion.missing) > 6 else ""))
            if partner_motion.duration + 1.0 / partner_motion.fps < duration - 0.5:
                notes.append(f"partner motion ({partner_motion.duration:.1f} s) is shorter than the "
                             f"audio ({duration:.1f} s); its last frame is held")
        else:
            # The network was trained for this case: a mask, not zeros posing as a still face.
            motion = np.zeros((n_frames, cfg.num_channels), np.float32)
            known = np.zeros((n_frames, 1), np.float32)
        if progress:
            progress("features", 1.0)
        internal = self.network(self_track.samples, partner_track.samples, motion, known, n_frames,
                                progress, cancel, sway=self.sway_for(seed, n_frames))
        speaking = None
        if liveliness:
            speaking = voice_activity(self_track.samples, partner_track.samples, n_frames,
                                      samples_per_frame(cfg.fps))
        return Result(self.finish(internal, speaking, duration, fps, liveliness, seed), float(fps), duration, notes)
