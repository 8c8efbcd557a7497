"""Reading and writing motion: Live Link Face CSV and Duet's .npz (numpy only).

A motion is (names, weights (T, C) float32, fps). Names are matched case-insensitively to
Duet's 55 channels; positions never matter (exporters order columns differently).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .channels import CHANNELS, LLF_BLENDSHAPES, LLF_HEADER, canonical_name
from .errors import BadInput, clip
from .timebase import resample_at_times

# Live Link Face stamps frames with a timecode at this nominal rate (hh:mm:ss:ff.sss), whatever
# rate the rows come at (the real capture in shared/ has 30 rows/s with 60-fps timecode).
LLF_TIMECODE_RATES = (24, 25, 30, 48, 50, 60, 120)
LLF_DEFAULT_TIMECODE_RATE = 60


@dataclass
class Motion:
    weights: np.ndarray  # (T, 55) float32, Duet's channel order
    fps: float
    missing: list = field(default_factory=list)  # channels absent from the source, filled with 0
    times: np.ndarray = None  # (T,) seconds of each row when the source was irregular
    notes: list = field(default_factory=list)  # what reading changed or assumed, one line each

    @property
    def duration(self) -> float:
        return len(self.weights) / self.fps

    def resampled(self, fps: float, n_frames: int) -> np.ndarray:
        """(n_frames, 55) float32 at fps, interpolated from this motion's own timestamps."""
        src_t = self.times if self.times is not None else np.arange(len(self.weights)) / self.fps
        return resample_at_times(self.weights, src_t, np.arange(n_frames) / fps)


def _to_channels(names, data, path):
    """Scatter source columns into Duet's 55-channel order -> (weights, missing channels, notes).

    Empty, NaN or infinite cells become 0, with a note saying how many and in which channels:
    a partner face that silently drops to neutral would read as a real expression.
    """
    out = np.zeros((data.shape[0], len(CHANNELS)), dtype=np.float32)
    found = []
    for j, name in enumerate(names):
        canon = canonical_name(str(name))
        if canon is not None:
            out[:, CHANNELS.index(canon)] = data[:, j]
            if canon not in found:
                found.append(canon)
    if not found:
        raise BadInput(path, "no ARKit channel names found (expected e.g. 'jawOpen' or 'JawOpen')",
                       code="bad_motion")
    cols = [CHANNELS.index(c) for c in found]
    bad = ~np.isfinite(out[:, cols])
    if bad.all():
        raise BadInput(path, "every value is empty, NaN or infinite", code="bad_motion")
    notes = []
    if bad.any():
        per_channel = bad.sum(axis=0)
        named = [f"{found[k]}: {int(n)}" for k, n in enumerate(per_channel) if n]
        notes.append(f"{clip(path)}: {int(bad.sum())} empty, NaN or infinite values set to 0 "
                     f"({', '.join(named[:6])}{', ...' if len(named) > 6 else ''})")
        out[~np.isfinite(out)] = 0.0
    return out, [c for c in CHANNELS if c not in found], notes


def parse_timecode(text: str, rate: float) -> float:
    """'13:13:04:31.652' (hh:mm:ss:frame.subframe at `rate`) -> seconds."""
    h, m, s, f = text.strip().split(":")
    return int(h) * 3600 + int(m) * 60 + int(s) + float(f) / rate


def _guess_timecode_rate(frame_fields):
    top = max(frame_fields) + 1 if frame_fields else 0
    for rate in LLF_TIMECODE_RATES:
        if top <= rate and top > rate * 0.5:
            return rate
    return LLF_DEFAULT_TIMECODE_RATE if top <= LLF_DEFAULT_TIMECODE_RATE else LLF_TIMECODE_RATES[-1]


def _number(cell):
    cell = cell.strip()
    return float(cell) if cell else np.nan


def read_llf_csv(path: str | os.PathLike) -> Motion:
    """A Live Link Face CSV (timecoded rows, any column order); BadInput (code bad_motion) when unreadable."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise BadInput(path, "is a folder, not a motion file", code="bad_motion")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise BadInput(path, f"cannot read motion file ({exc.strerror or exc})", code="bad_motion")
    except (UnicodeDecodeError, csv.Error):
        raise BadInput(path, "not a text CSV file", code="bad_motion")
    if len(rows) < 2:
        raise BadInput(path, "no frames in motion CSV", code="bad_motion")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    numbered = [(i, r) for i, r in enumerate(rows[1:], start=2) if r and any(c.strip() for c in r)]
    if not numbered:
        raise BadInput(path, "no frames in motion CSV", code="bad_motion")
    body = [r for _, r in numbered]
    value_cols = [j for j, h in enumerate(lower) if h not in ("timecode", "blendshapecount")]
    data = np.empty((len(body), len(value_cols)), dtype=np.float32)
    for k, (line, r) in enumerate(numbered):
        try:
            data[k] = [_number(r[j]) for j in value_cols]
        except (ValueError, IndexError):
            raise BadInput(path, f"line {line}: a missing or non-numeric value", code="bad_motion")
    weights, missing, notes = _to_channels([header[j] for j in value_cols], data, path)
    if "timecode" not in lower:
        notes.append(f"{clip(path)}: no Timecode column; rows taken as {LLF_DEFAULT_TIMECODE_RATE} per second")
        return Motion(weights, float(LLF_DEFAULT_TIMECODE_RATE), missing, None, notes)
    tc_col = lower.index("timecode")
    try:
        frames = [int(r[tc_col].split(":")[3].split(".")[0]) for r in body]
        rate = _guess_timecode_rate(frames)
        times = np.array([parse_timecode(r[tc_col], rate) for r in body], dtype=np.float64)
    except (ValueError, IndexError):
        raise BadInput(path, "unreadable Timecode (expected hh:mm:ss:ff.sss)", code="bad_motion")
    # Timecodes may wrap at midnight; unwrap so time only grows.
    times = times + 86400.0 * np.cumsum(np.diff(times, prepend=times[0]) < -43200)
    times -= times[0]
    if len(times) == 1:  # one frame: a still face, its rate does not matter
        return Motion(weights, float(LLF_DEFAULT_TIMECODE_RATE), missing, None, notes)
    # Timing is the point of a partner face: a guessed rate would move every nod, so a file whose
    # timecodes do not run forward is refused rather than read at a default rate.
    later = times[1:] > np.maximum.accumulate(times)[:-1]
    if not later.any():
        how = "all the same" if np.all(times == times[0]) else "running backwards"
        raise BadInput(path, f"Timecode does not advance ({how}); the frame timing cannot be known",
                       code="bad_motion")
    if not later.all():  # a few repeated or backward stamps: drop those rows, keep the timeline
        keep = np.concatenate([[True], later])
        notes.append(f"{clip(path)}: {int((~keep).sum())} rows whose Timecode does not advance were skipped")
        weights, times = weights[keep], times[keep]
    fps = float(1.0 / np.median(np.diff(times)))
    return Motion(weights, fps, missing, times, notes)


def _npz_arrays(z, path):
    """(names, weights, fps) of an opened .npz, each read once; BadInput saying what is wrong."""
    absent = [k for k in ("names", "weights", "fps") if k not in z.files]
    if absent:
        raise BadInput(path, f"no {', '.join(absent)} (a Duet motion .npz holds names, weights and fps)",
                       code="bad_motion")
    names, weights, fps = z["names"], z["weights"], z["fps"]
    problem = None
    if names.ndim != 1 or names.dtype.kind not in "US":
        problem = f"names must be a list of channel names, got {names.dtype} of shape {names.shape}"
    elif weights.dtype.kind not in "iuf":
        problem = f"weights must be numbers, got {weights.dtype}"
    elif weights.ndim != 2 or weights.shape[1] != len(names):
        problem = f"weights shape {weights.shape} does not match {len(names)} names (frames, names)"
    elif weights.shape[0] == 0:
        problem = "weights hold no frames"
    elif fps.size != 1 or fps.dtype.kind not in "iuf":
        problem = f"fps must be one number, got {fps.dtype} of shape {fps.shape}"
    elif not (float(fps.flat[0]) > 0 and math.isfinite(float(fps.flat[0]))):
        problem = f"fps must be a positive number, got {float(fps.flat[0])}"
    if problem:
        raise BadInput(path, problem, code="bad_motion")
    names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    return names, np.asarray(weights, dtype=np.float32), float(fps.flat[0])


def read_npz_motion(path: str | os.PathLike) -> Motion:
    """A Duet .npz (names, weights, fps); BadInput (code bad_motion) when it is not one."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise BadInput(path, "is a folder, not a motion file", code="bad_motion")
    try:
        with open(path, "rb") as fh:
            z = np.load(fh, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):  # a .npy (one array) named .npz
                raise BadInput(path, "not a .npz archive (a single .npy array?); a Duet motion .npz holds "
                                     "names, weights and fps", code="bad_motion")
            with z:
                names, data, fps = _npz_arrays(z, path)
    except BadInput:
        raise
    except OSError as exc:
        raise BadInput(path, f"cannot read motion file ({exc.strerror or type(exc).__name__})",
                       code="bad_motion")
    except Exception as exc:  # numpy and zipfile raise many kinds for a damaged or foreign file
        raise BadInput(path, f"not a readable .npz file ({_short(exc)})", code="bad_motion")
    weights, missing, notes = _to_channels(names, data, path)
    return Motion(weights, fps, missing, None, notes)


def _short(exc):
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def read_motion(path: str | os.PathLike) -> Motion:
    """Partner motion from a Live Link Face CSV or a Duet .npz."""
    if not os.path.exists(path):
        raise BadInput(path, "motion file not found", code="bad_motion")
    if str(path).lower().endswith(".npz"):
        return read_npz_motion(path)
    return read_llf_csv(path)


def write_npz(path: str | os.PathLike, weights: np.ndarray, fps: float, names: Sequence[str] = CHANNELS) -> None:
    # Through an open file: np.savez given a name not ending in lower-case .npz appends ".npz".
    with open(path, "wb") as fh:
        np.savez(fh, names=np.array(names), weights=np.asarray(weights, dtype=np.float32),
                 fps=np.float64(fps))


def format_timecode(seconds: float, rate: float = LLF_DEFAULT_TIMECODE_RATE) -> str:
    total_frames = seconds * rate
    whole_s = int(math.floor(total_frames / rate + 1e-9))
    frame = total_frames - whole_s * rate
    h, rem = divmod(whole_s, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{frame:06.3f}"


def write_llf_csv(path: str | os.PathLike, weights: np.ndarray, fps: float,
                  names: Sequence[str] = CHANNELS) -> None:
    """Write curves as a Live Link Face CSV (61 columns, same header and Timecode format).

    Eye yaw/pitch/roll are not in Duet's channel set and are written as 0.
    """
    weights = np.asarray(weights, dtype=np.float32)
    by_name = {canonical_name(n): j for j, n in enumerate(names)}
    cols = [by_name.get(canonical_name(n)) for n in LLF_BLENDSHAPES]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(LLF_HEADER)
        for i, row in enumerate(weights):
            vals = [f"{row[j]:.10f}" if j is not None else "0.0000000000" for j in cols]
            w.writerow([format_timecode(i / fps), len(LLF_BLENDSHAPES), *vals])


def write_motion(path: str | os.PathLike, weights: np.ndarray, fps: float,
                 names: Sequence[str] = CHANNELS) -> None:
    """.csv: Live Link Face; anything else: Duet .npz."""
    if str(path).lower().endswith(".csv"):
        write_llf_csv(path, weights, fps, names)
    else:
        write_npz(path, weights, fps, names)
