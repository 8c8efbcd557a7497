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
from .errors import BadInput
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

    @property
    def duration(self) -> float:
        return len(self.weights) / self.fps

    def resampled(self, fps: float, n_frames: int) -> np.ndarray:
        """(n_frames, 55) float32 at fps, interpolated from this motion's own timestamps."""
        src_t = self.times if self.times is not None else np.arange(len(self.weights)) / self.fps
        return resample_at_times(self.weights, src_t, np.arange(n_frames) / fps)


def _to_channels(names, data, path):
    """Scatter source columns into Duet's 55-channel order; report what was missing."""
    out = np.zeros((data.shape[0], len(CHANNELS)), dtype=np.float32)
    found = set()
    for j, name in enumerate(names):
        canon = canonical_name(str(name))
        if canon is not None:
            out[:, CHANNELS.index(canon)] = data[:, j]
            found.add(canon)
    if not found:
        raise BadInput(path, "no ARKit channel names found (expected e.g. 'jawOpen' or 'JawOpen')",
                       code="bad_motion")
    bad = ~np.isfinite(out)
    if bad.all():
        raise BadInput(path, "every value is NaN or infinite", code="bad_motion")
    out[bad] = 0.0
    return out, [c for c in CHANNELS if c not in found]


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


def read_llf_csv(path: str | os.PathLike) -> Motion:
    """A Live Link Face CSV (timecoded rows, any column order); BadInput (code bad_motion) when unreadable."""
    path = os.fspath(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise BadInput(path, f"cannot read motion file ({exc.strerror or exc})", code="bad_motion")
    except UnicodeDecodeError:
        raise BadInput(path, "not a text CSV file", code="bad_motion")
    if len(rows) < 2:
        raise BadInput(path, "no frames in motion CSV", code="bad_motion")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    body = [r for r in rows[1:] if r and any(c.strip() for c in r)]
    value_cols = [j for j, h in enumerate(lower) if h not in ("timecode", "blendshapecount")]
    try:
        data = np.array([[float(r[j]) if r[j].strip() else np.nan for j in value_cols] for r in body],
                        dtype=np.float32)
    except (ValueError, IndexError):
        raise BadInput(path, "a row has a missing or non-numeric value", code="bad_motion")
    weights, missing = _to_channels([header[j] for j in value_cols], data, path)
    times = None
    fps = LLF_DEFAULT_TIMECODE_RATE
    if "timecode" in lower:
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
        steps = np.diff(times)
        if len(steps) and np.median(steps) > 0:
            fps = float(1.0 / np.median(steps))
        else:
            times = None
    return Motion(weights, fps, missing, times)


def read_npz_motion(path: str | os.PathLike) -> Motion:
    """A Duet .npz (names, weights, fps); BadInput (code bad_motion) when it is not one."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            data = np.asarray(z["weights"], dtype=np.float32)
            fps = float(z["fps"])
    except (OSError, ValueError, KeyError) as exc:
        raise BadInput(path, f"not a Duet motion .npz with names, weights and fps ({exc})",
                       code="bad_motion")
    if data.ndim != 2 or data.shape[1] != len(names) or data.shape[0] == 0:
        raise BadInput(path, f"weights shape {data.shape} does not match {len(names)} names",
                       code="bad_motion")
    if not (fps > 0 and math.isfinite(fps)):
        raise BadInput(path, f"fps must be a positive number, got {fps}", code="bad_motion")
    weights, missing = _to_channels(names, data, path)
    return Motion(weights, fps, missing)


def read_motion(path: str | os.PathLike) -> Motion:
    """Partner motion from a Live Link Face CSV or a Duet .npz."""
    if not os.path.exists(path):
        raise BadInput(path, "motion file not found", code="bad_motion")
    if str(path).lower().endswith(".npz"):
        return read_npz_motion(path)
    return read_llf_csv(path)


def write_npz(path: str | os.PathLike, weights: np.ndarray, fps: float, names: Sequence[str] = CHANNELS) -> None:
    np.savez(path, names=np.array(names), weights=np.asarray(weights, dtype=np.float32),
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
