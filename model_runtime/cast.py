"""A cast: any number of characters, one voice track each -> one result file per animated member.

Each member is predicted like one character of a conversation: its own voice, the others' voices
summed as its partner's audio, and as its partner's face the face of whoever holds the floor (the
same floor that attention.py turns the listeners' heads to). Faces come from the network itself,
so the passes are planned (`plan`): one full pass per animated member, the last member first, each
seeing the final faces of those already done; faces not made yet are drafted only where they will
be seen and as far as the speed budget goes (PASS_BUDGET), else unknown to the network. For two
members this is conversation mode exactly: A alone, B given A, A given B.

The request (request.py) is already validated; here come what only files tell (output folders,
the positions file, the audio), all before any network work. Every result goes to a temp file
and all of them are renamed only once every member has succeeded: a failed, cancelled or stopped
cast writes nothing.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import BadInput, Cancelled
from .request import CastRequest
from .rows import LazyRows

if TYPE_CHECKING:
    from .inference import Predictor
    from .predict import CancelCheck, Progress

# Up to this much, a cast keeps every track's mel power (19 MB per track per 10 minutes) so each
# track's spectrum is made once instead of once as a voice and again in every other member's partner
# mix (MelInputs); a bigger cast mixes the samples and makes each log-mel as it is read.
MEL_CACHE_MB = 600.0
FACE_FADE_S = 0.2  # partner faces cross-fade over this at a change of floor: no one-frame jump
POSITIONS_VERSION = 1


# -- positions file --------------------------------------------------------------------------------

@dataclass
class Seating:
    """Where each member sits and faces, per key time (None: one static pose)."""

    times: np.ndarray | None  # (K,) seconds, increasing
    position: np.ndarray  # (N, K or 1, 3)
    forward: np.ndarray  # (N, K or 1, 3)

    def at(self, n_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
        """(N, T, 3) positions and forwards at frame times i / fps: linearly interpolated, held before
        the first key and after the last."""
        out = []
        for arr in (self.position, self.forward):
            if arr.shape[1] == 1 or self.times is None:
                out.append(np.broadcast_to(arr[:, :1], (arr.shape[0], n_frames, 3)).astype(np.float64))
                continue
            t = np.arange(n_frames) / fps
            res = np.empty((arr.shape[0], n_frames, 3))
            for n in range(arr.shape[0]):
                for c in range(3):
                    res[n, :, c] = np.interp(t, self.times, arr[n, :, c])
            out.append(res)
        return out[0], out[1]


def _bad_positions(path, problem):
    return BadInput(path, problem, code="bad_request")


def _vectors(path, where, value, n_times):
    """One [x, y, z] or one per key time -> (K, 3) float64."""
    def vec(v):
        if not isinstance(v, list) or len(v) != 3 or not all(_finite(x) for x in v):
            raise _bad_positions(path, f"{where}: must be [x, y, z] (three finite numbers) or one per time, "
                                       f"got {_short(v)}")
        return [float(x) for x in v]

    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        rows = [vec(v) for v in value]
        if n_times is None:
            if len(rows) != 1:
                raise _bad_positions(path, f"{where}: {len(rows)} vectors but no 'times' to place them")
        elif len(rows) not in (1, n_times):
            raise _bad_positions(path, f"{where}: {len(rows)} vectors for {n_times} times")
        return np.array(rows)
    return np.array([vec(value)])


def _finite(x):
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


def _short(value, limit=80):
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def read_positions(path: str, names: list[str]) -> Seating:
    """The positions file (JSON) for a cast of `names`; BadInput (code bad_request) naming the file
    and the problem in one line. Extra names are ignored; every member must be there."""
    if not os.path.exists(path):
        raise _bad_positions(path, "positions file not found")
    if os.path.isdir(path):
        raise _bad_positions(path, "is a folder, not a positions file")
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise _bad_positions(path, "not a positions file (not UTF-8 text)") from None
    except RecursionError:
        raise _bad_positions(path, "not a positions file (JSON nested too deeply)") from None
    except ValueError as exc:
        why = f"{exc.msg} at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else str(exc)[:80]
        raise _bad_positions(path, f"not a positions file (not JSON: {why})") from None
    except OSError as exc:
        raise _bad_positions(path, f"cannot read the positions file ({exc.strerror or exc})") from None
    if not isinstance(doc, dict):
        raise _bad_positions(path, f"must be a JSON object with 'version' and 'characters', got {type(doc).__name__}")
    if doc.get("version") != POSITIONS_VERSION or isinstance(doc.get("version"), bool):
        raise _bad_positions(path, f"version: must be {POSITIONS_VERSION}, got {_short(doc.get('version'))}")
    chars = doc.get("characters")
    if not isinstance(chars, dict):
        raise _bad_positions(path, f"characters: must be an object of name -> pose, got {_short(chars)}")
    entries = []
    for name in names:
        entry = chars.get(name)
        where = f"characters[{name!r}]"
        if entry is None:
            raise _bad_positions(path, f"characters: no entry for cast member {name!r}")
        if not isinstance(entry, dict):
            raise _bad_positions(path, f"{where}: must be an object with position and forward, got {_short(entry)}")
        times = entry.get("times")
        if times is not None:
            if not isinstance(times, list) or not times or not all(_finite(t) for t in times):
                raise _bad_positions(path, f"{where}.times: must be a list of seconds, got {_short(times)}")
            times = np.array(times, np.float64)
            if np.any(np.diff(times) <= 0):
                raise _bad_positions(path, f"{where}.times: must increase, got {_short(times.tolist())}")
        for key in ("position", "forward"):
            if key not in entry:
                raise _bad_positions(path, f"{where}.{key}: missing")
        pos = _vectors(path, f"{where}.position", entry["position"], None if times is None else len(times))
        fwd = _vectors(path, f"{where}.forward", entry["forward"], None if times is None else len(times))
        if np.any(np.linalg.norm(fwd, axis=1) < 1e-9):
            raise _bad_positions(path, f"{where}.forward: must not be the zero vector")
        entries.append((times, pos, fwd))
    return _seating(entries)


def _seating(entries) -> Seating:
    """Members' own key times merged onto one time axis (each interpolated onto it)."""
    all_times = [t for t, p, f in entries if t is not None and (len(p) > 1 or len(f) > 1)]
    if not all_times:
        return Seating(None, np.stack([p[:1] for _, p, _ in entries]), np.stack([f[:1] for _, _, f in entries]))
    times = np.unique(np.concatenate(all_times))

    def on_axis(t, v):
        if len(v) == 1:
            return np.repeat(v, len(times), 0)
        return np.stack([np.interp(times, t, v[:, c]) for c in range(3)], 1)

    return Seating(times, np.stack([on_axis(t, p) for t, p, _ in entries]),
                   np.stack([on_axis(t, f) for t, _, f in entries]))


# -- partner audio and faces -----------------------------------------------------------------------

class SumOf(LazyRows):
    """Several tracks' samples summed, read a slice at a time: a partner's audio in a cast, never
    held whole (each track keeps its own level)."""

    dtype = np.dtype(np.float32)
    ndim = 1

    def __init__(self, samples: list):
        self.parts = list(samples)
        self.length = max(len(s) for s in self.parts)

    def __len__(self):
        return self.length

    @property
    def shape(self):
        return (self.length,)

    def read(self, a, b):
        from .audio import read_span

        out = read_span(self.parts[0], a, b).copy()
        for s in self.parts[1:]:
            out += read_span(s, a, b)
        return out


def partner_audio(samples: list, i: int):
    """Member i's partner track: the one other member's samples as they are, or a lazy sum."""
    others = [s for j, s in enumerate(samples) if j != i]
    if not others:
        return None
    return others[0] if len(others) == 1 else SumOf(others)


def partner_holders(floor: np.ndarray, i: int, fallback: int) -> np.ndarray:
    """(T,) whose face listener i sees: the floor holder when it is another member; while nobody
    else holds it (i itself speaking, or before anyone took a turn), the last other holder, or before
    that the first. `fallback` (-1: none) where no other member ever takes the floor."""
    p = np.where(floor == i, -1, floor)
    idx = np.flatnonzero(p >= 0)
    if not len(idx):
        return np.full(len(floor), fallback, np.int64)
    last = np.maximum.accumulate(np.where(p >= 0, np.arange(len(p)), -1))
    return np.where(last >= 0, p[np.maximum(last, 0)], p[idx[0]]).astype(np.int64)


def face_weights(holders: np.ndarray, fade: int) -> dict[int, np.ndarray]:
    """{member: (T,) weight}: each member's share of the partner face, the holder changes cross-faded
    over `fade` frames (a centred moving average of who holds it). Shares sum to 1 where known."""
    out = {}
    n = len(holders)
    for j in np.unique(holders[holders >= 0]):
        ind = (holders == j).astype(np.float64)
        if fade > 1:
            lo, hi = fade // 2, fade - 1 - fade // 2
            c = np.concatenate([[0.0], np.cumsum(np.pad(ind, (lo, hi), mode="edge"))])
            ind = (c[fade:] - c[:-fade]) / fade
        out[int(j)] = ind.astype(np.float32)[:n]
    return out


def compose_face(weights: dict[int, np.ndarray], faces: dict, n_frames: int, channels: int):
    """The partner face (T, channels) and its motion_known (T, 1) from the members' faces: faces[j] is
    (curves, where they are known or None for everywhere). Where a share's face is not known the
    others' shares are scaled up; where none is, motion_known is 0 and the face 0."""
    motion = np.zeros((n_frames, channels), np.float32)
    have = np.zeros(n_frames, np.float32)
    for j, w in weights.items():
        if j not in faces:
            continue
        curves, known = faces[j]
        w = w if known is None else w * known
        at = np.flatnonzero(w > 0)
        motion[at] += w[at, None] * curves[at]
        have[at] += w[at]
    at = np.flatnonzero((have > 0) & (np.abs(have - 1) > 1e-6))
    motion[at] /= have[at, None]
    return motion, (have > 0).astype(np.float32)[:, None]


# -- the pass plan -------------------------------------------------------------------------------

# The network work of a whole cast, in full passes: at most this or one pass per animated member,
# whichever is more. Finals take one pass each; drafts get what is left. 4 is the speed target (a
# cast of four 10-minute tracks within four single predicts), and it leaves a cast of two its full
# draft: conversation mode's three passes.
PASS_BUDGET = 4


@dataclass
class Plan:
    drafts: dict  # member -> window starts of its draft, where the budget allows one
    finals: list  # members with an out, in the order their full passes run
    weights: list  # per member: {other member: (T,) share of its partner face}
    full: int  # windows of one full pass

    @property
    def windows(self):
        return sum(len(s) for s in self.drafts.values()) + len(self.finals) * self.full


def plan(predictor: Predictor, speaking: np.ndarray, animated: list[bool], fade: int,
         budget: float = PASS_BUDGET) -> Plan:
    """Which passes run where. Finals run the last member first (for two: A alone, B given A, A given
    B); each sees the finals already made. A face whose final comes later (or never: a muted member)
    is drafted, network with the partner face unknown, only in the windows where an earlier final
    sees it, the windows with the most such frames first, as far as the budget goes; beyond it that
    face is unknown to the network (motion_known 0), the state it was trained for."""
    from .attention import floor_holder

    n, n_frames = speaking.shape
    floor = floor_holder(speaking, predictor.cfg.fps)
    talk = speaking.sum(1)
    weights = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        fallback = max(others, key=lambda j: (talk[j], -j)) if others else -1
        weights.append(face_weights(partner_holders(floor, i, fallback), fade))
    finals = [k for k in reversed(range(n)) if animated[k]]
    rank = {k: r for r, k in enumerate(finals)}
    need = {}
    for i in finals:
        for j, w in weights[i].items():
            if rank.get(j, len(finals)) > rank[i]:  # j's final comes later, or never
                need[j] = need.get(j, np.zeros(n_frames, bool)) | (w > 0)
    full = len(predictor.windows(n_frames))
    left = int(max(budget, len(finals)) * full) - len(finals) * full
    hits = {j: np.concatenate([[0], np.cumsum(m, dtype=np.int64)]) for j, m in need.items()}
    length = min(predictor.cfg.window_frames, n_frames)
    candidates = sorted(((hits[j][s + length] - hits[j][s], j, s) for j, m in need.items()
                         for s in predictor.windows(n_frames, m)), key=lambda c: (-c[0], c[1], c[2]))
    drafts = {}
    for _, j, s in candidates[:max(0, left)]:
        drafts.setdefault(j, []).append(s)
    return Plan({j: sorted(v) for j, v in sorted(drafts.items())}, finals, weights, full)


# -- running it ----------------------------------------------------------------------------------

def run_cast(predictor: Predictor, request: CastRequest, progress: Progress | None = None,
             cancel: CancelCheck | None = None) -> dict:
    """Run one cast; every out is written to a temp file and renamed only once all succeeded.
    Returns the protocol's `done` fields (outs: {name: path})."""
    from .audio import load_audio, pad_to_same_length
    from .liveliness import add_liveliness, cast_voice_activity
    from .motion_io import write_motion
    from .predict import check_output, remove_temp, temp_path
    from .timebase import SAMPLE_RATE, frame_count, samples_per_frame

    members = request.members
    names = [m.name for m in members]
    for m in members:
        if m.out is not None:
            check_output(m.out)
    seating = read_positions(request.positions, names) if request.positions else None
    t0 = time.perf_counter()
    cfg = predictor.cfg
    fps_in = cfg.fps
    if progress:
        progress("audio", 0.0)
    tracks, temps = [], []
    try:
        for k, m in enumerate(members):
            step = (lambda base: (lambda f: progress("audio", (base + f) / len(members)))) if progress else None
            tracks.append(load_audio(m.voice, cancel, step(k) if step else None))
        notes = []
        for t in tracks:
            notes += [note for note in t.notes if note not in notes]
        longest = max(tracks, key=lambda t: len(t.samples))
        for t in tracks:  # shorter tracks padded with silence (costs no memory)
            notes += [note.replace("than the other track", "than the longest track")
                      for note in pad_to_same_length(longest, t)]
        duration = len(longest.samples) / SAMPLE_RATE
        n_frames = frame_count(duration, fps_in)
        samples = [t.samples for t in tracks]
        speaking = cast_voice_activity(samples, n_frames, samples_per_frame(fps_in))
        fade = max(1, int(round(FACE_FADE_S * fps_in)))
        the_plan = plan(predictor, speaking, [m.out is not None for m in members], fade)
        total = max(1, the_plan.windows)
        done_windows = 0

        inputs = MelInputs(predictor, samples, n_frames, cancel) \
            if MelInputs.fits(predictor, len(samples), n_frames) else None

        sways = {}

        def network(k, motion, known, starts):
            nonlocal done_windows
            base = done_windows
            step = (lambda stage, f: progress("network", min(1.0, (base + f * len(starts)) / total))) \
                if progress else None
            if k not in sways:  # member k's take, shared by its draft and final passes
                sways[k] = predictor.sway_for(request.seed + k, n_frames)
            sway = sways[k]
            if inputs is not None:
                own_in, partner_in = inputs.rows(k)
                out = predictor.run_frames(own_in, partner_in, inputs.r, motion, known, n_frames, step, cancel,
                                           starts=starts, sway=sway)
            else:
                out = predictor.network(samples[k], _partner(samples, k), motion, known, n_frames,
                                        step, cancel, starts=starts, sway=sway)
            done_windows += len(starts)
            return out

        def face(k, internal):
            """What the others see of member k: the network with its liveliness, no attention turns (a
            head turned toward the speaker is seating, not expression a listener should mirror)."""
            if request.liveliness:
                return add_liveliness(internal, speaking[k], fps_in, request.seed + k)
            return internal

        if progress:
            progress("network", 0.0)
        unknown = (np.zeros((n_frames, cfg.num_channels), np.float32), np.zeros((n_frames, 1), np.float32))
        faces = {}
        for k, starts in the_plan.drafts.items():
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            faces[k] = (face(k, network(k, *unknown, starts)), predictor.covered(n_frames, starts))
        turns = None
        if request.attention:
            from .attention import attend, circle_positions

            if seating is not None:
                pos, fwd = seating.at(n_frames, fps_in)
            else:
                pos, fwd = circle_positions(len(members))
            turns = attend(pos, fwd, speaking, fps_in, request.seed)
        for k in the_plan.finals:
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            motion, known = compose_face(the_plan.weights[k], faces, n_frames, cfg.num_channels)
            own = face(k, network(k, motion, known, predictor.windows(n_frames)))
            del motion, known
            faces[k] = (own, None)  # later finals see this one's final face instead of its draft
            later = the_plan.finals[the_plan.finals.index(k) + 1:]
            for j in [j for j in faces if not any(j in the_plan.weights[i] for i in later)]:
                del faces[j]  # seen by no final still to run: memory back
            weights = predictor.finish(own, None, duration, request.fps, False, 0,
                                       None if turns is None else turns[k])
            out = members[k].out
            tmp = temp_path(out)
            temps.append(tmp)
            try:
                write_motion(tmp, weights, request.fps)
            except OSError as exc:
                raise BadInput(out, f"cannot write the result ({exc.strerror or exc})", code="bad_request") from None
            frames = len(weights)
            del weights
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        _rename_all([(temp_path(members[k].out), members[k].out) for k in the_plan.finals])
        temps = []
    finally:
        for t in tracks:  # long tracks live in temporary files: deleted whatever happened
            t.close()
        for tmp in temps:
            remove_temp(tmp)
    outs = {m.name: os.fspath(m.out) for m in members if m.out is not None}
    return {"outs": outs, "frames": int(frames), "fps": request.fps, "duration": duration,
            "seconds": round(time.perf_counter() - t0, 4), "notes": notes}


class MelInputs:
    """Every member's network inputs from one spectrum per track: its own log-mel, and its partner's
    as the log of the other tracks' summed mel power. Powers of independent voices add, so this is
    the mix's spectrum without the cross terms that depend on the voices' relative phase (which two
    microphones never share anyway); for two members the partner's input is the other track's own
    log-mel, bit for bit what predict computes. With level normalisation each input gets the offset
    of its own track, or of the mixed samples for the partner."""

    def __init__(self, predictor, samples, n_frames, cancel=None):
        from .features import level_offset

        self.mel = predictor.mel
        self.r = predictor.cfg.mel_frames_per_frame
        self.n_rows = n_frames * self.r
        n = self.n_rows * self.mel.cfg.hop_length
        self.power = []
        for x in samples:  # about a second for four 10-minute tracks: cancel is checked between them
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            self.power.append(self.mel.power(x, n, self.n_rows))
        norm = predictor.cfg.level_norm
        self.own_offset = [level_offset(x, min(n, len(x)), self.mel.cfg) if norm else 0.0 for x in samples]
        self.partner_offset = [level_offset(p, min(n, len(p)), self.mel.cfg) if norm else 0.0
                               for p in (_partner(samples, k) for k in range(len(samples)))]

    @staticmethod
    def fits(predictor, n_members, n_frames):
        mb = n_members * n_frames * predictor.cfg.mel_frames_per_frame * predictor.cfg.n_mels * 4 / 1e6
        return predictor.cfg.audio_encoder == "logmel" and mb <= MEL_CACHE_MB

    def rows(self, k):
        """(own rows, partner rows) of member k, log-mel made as the windows read them."""
        from .rows import RowsOf

        others = [self.power[j] for j in range(len(self.power)) if j != k]

        def partner(a, b):
            if not others:  # a cast of one: a silent partner
                return self.mel.log(np.zeros((b - a, self.mel.cfg.n_mels), np.float32))
            total = others[0][a:b].copy()
            for p in others[1:]:
                total += p[a:b]
            return self.mel.log(total, self.partner_offset[k])

        own = RowsOf(self.n_rows, lambda a, b: self.mel.log(self.power[k][a:b], self.own_offset[k]))
        return own, RowsOf(self.n_rows, partner)


def _partner(samples, k):
    from .audio import Samples

    p = partner_audio(samples, k)
    return p if p is not None else Samples(len(samples[k]))  # a cast of one: a silent partner


def _rename_all(pairs):
    """Rename every temp file over its out. A signal arriving between two renames waits until the
    last one is done, so a stopped cast leaves all its new outs or (before the first) none."""
    stopped = None
    for tmp, out in pairs:
        while True:
            try:
                if os.path.lexists(tmp):  # gone: renamed just before a signal interrupted this loop
                    os.replace(tmp, out)
                break
            except OSError as exc:
                raise BadInput(out, f"cannot write the result ({exc.strerror or exc})", code="bad_request") from None
            except BaseException as exc:  # a signal: re-raised once the renames are done
                stopped = stopped or exc
    if stopped is not None:
        raise stopped
