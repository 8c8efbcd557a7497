"""Audio in: any file soundfile reads, any rate, mono or multichannel -> 16 kHz mono float32.

Problems the user can fix raise BadInput with one line naming the file; a silent track is valid.

The file is read, downmixed and resampled a block at a time, so memory does not grow with its length
or format: a track up to IN_MEMORY_SECONDS stays an array, a longer one goes to an anonymous temporary
file (`Samples`) that inference and the voice-activity pass read a window at a time.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from .errors import BadInput, Cancelled
from .rows import LazyRows
from .timebase import SAMPLE_RATE

_BLOCK = 1 << 17  # frames read at a time (2.7 s at 48 kHz): bounds memory and the time between cancel checks
IN_MEMORY_SECONDS = 600.0  # up to 38 MB a track stays in memory; longer tracks go to a temporary file
DOWNMIX_LOSS_DB = 20.0  # a mono mix this far below its loudest channel: the channels cancel


class Samples(LazyRows):
    """A long track's 16 kHz float32 samples, read a slice at a time (`x[a:b]` is an ndarray).

    Held in an anonymous temporary file (the OS deletes it when it is closed, or when the process
    dies) or in an array; zeros past what is held, so padding a track costs nothing. Whole-file
    np.memmap is not used on purpose: mapped pages that have been read count in the process's memory.
    """

    dtype = np.dtype(np.float32)
    ndim = 1

    def __init__(self, length: int, file=None, stored: int = 0, array: np.ndarray | None = None):
        self.length = int(length)
        self._file = file
        self._array = array
        self._stored = len(array) if array is not None else int(stored)

    def __len__(self):
        return self.length

    @property
    def shape(self):
        return (self.length,)

    def read(self, a: int, b: int) -> np.ndarray:
        """Samples [a, b) as a new float32 array."""
        out = np.zeros(b - a, np.float32)
        hi = min(b, self._stored)
        if hi > a:
            if self._array is not None:
                out[:hi - a] = self._array[a:hi]
            else:
                if self._file is None or self._file.closed:
                    raise ValueError("audio samples read after the track was closed")
                self._file.seek(a * 4)
                self._file.readinto(memoryview(out[:hi - a]).cast("B"))
        return out

    def close(self):
        if self._file is not None:
            self._file.close()


@dataclass
class Track:
    samples: np.ndarray | Samples  # (N,) float32 at SAMPLE_RATE; slicing gives an ndarray either way
    path: str
    notes: list = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def close(self):
        """Delete the temporary file a long track is kept in (a no-op for tracks in memory)."""
        if isinstance(self.samples, Samples):
            self.samples.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def silent_track(duration_s: float, path: str = "(silence)") -> Track:
    return Track(Samples(int(round(duration_s * SAMPLE_RATE))), path)


def read_span(samples, a: int, b: int) -> np.ndarray:
    """samples[a:b] of an array or Samples as float32, zeros past its end."""
    x = np.asarray(samples[a:b], np.float32)
    return x if len(x) == b - a else np.pad(x, (0, b - a - len(x)))


def _bad(path, problem):
    return BadInput(path, problem, code="bad_audio")


def load_audio(path: str | os.PathLike, cancel=None, progress=None) -> Track:
    """16 kHz mono float32 from any file soundfile reads; BadInput (code bad_audio) naming the file.

    cancel() is checked between blocks (Cancelled); progress(fraction read) is called after each
    block, so loading an hour of audio shows movement. A track longer than IN_MEMORY_SECONDS is kept in a
    temporary file: close the Track (or use it as a context manager) to delete it at once."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise _bad(path, "audio file not found")
    if os.path.isdir(path):
        raise _bad(path, "is a folder, not an audio file")
    if os.path.getsize(path) == 0:
        raise _bad(path, "audio file is empty (0 bytes)")
    try:
        info = sf.info(path)
    except Exception as exc:  # libsndfile's errors vary by version; all mean "cannot decode"
        raise _bad(path, f"not a readable audio file ({_short(exc)})")
    if info.frames == 0:
        raise _bad(path, "audio file holds no samples")
    sr, channels = int(info.samplerate), int(info.channels)
    resampler = _BlockResampler(sr, SAMPLE_RATE) if sr != SAMPLE_RATE else None
    sink = _Sink()
    n = n_bad = 0
    channel_energy, mono_energy = np.zeros(channels), 0.0
    blocks = sf.blocks(path, blocksize=_BLOCK, dtype="float32", always_2d=True)
    try:
        while True:
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            try:
                block = next(blocks)
            except StopIteration:
                break
            except Exception as exc:
                raise _bad(path, f"audio data is corrupt ({_short(exc)})")
            m = _downmix(block)
            finite = np.isfinite(m)
            if not finite.all():
                n_bad += int((~finite).sum())
                m[~finite] = 0.0
                block = block[finite]
            if channels > 1:  # for the cancellation check, over the finite frames only
                for c in range(channels):
                    x = block[:, c].astype(np.float64)
                    channel_energy[c] += x @ x
                x = m.astype(np.float64)
                mono_energy += x @ x
            n += len(m)
            sink.add(resampler.push(m) if resampler else m)
            if progress is not None:
                progress(min(1.0, n / info.frames))
        if n == 0:
            raise _bad(path, "audio file holds no samples")
        if n_bad == n:
            raise _bad(path, "every sample is NaN or infinite")
        if resampler:
            sink.add(resampler.finish())
        samples = sink.finish(resampler.length if resampler else None)
    except BaseException:
        sink.close()  # a cancelled or failed load leaves no temporary file behind
        raise
    finally:
        blocks.close()
    notes = []
    if n_bad:
        notes.append(f"{path}: {n_bad} NaN/infinite samples replaced by silence")
    if channels > 1:
        notes.append(f"{path}: {channels} channels downmixed to mono")
        loss = _downmix_loss_db(channel_energy, mono_energy)
        if loss > DOWNMIX_LOSS_DB:
            how = "silent" if loss >= 120 else f"{loss:.0f} dB below the loudest channel"
            notes.append(f"{path}: its channels cancel when downmixed to mono (the mix is {how}; is one "
                         "channel phase-inverted?): the voice is mostly lost; give one channel on its own")
    if sr != SAMPLE_RATE:
        notes.append(f"{path}: resampled {sr} Hz -> {SAMPLE_RATE} Hz")
    return Track(samples, path, notes)


def _downmix(block):
    """(N, C) -> (N,) mean of the channels: channel by channel, the same sums as block.mean(axis=1) for
    fewer than 8 channels, and far faster than numpy's reduction over such a short axis."""
    if block.shape[1] == 1:
        return block[:, 0]
    m = block[:, 0] + block[:, 1]
    for c in range(2, block.shape[1]):
        m += block[:, c]
    m /= np.float32(block.shape[1])
    return m


def _downmix_loss_db(channel_energy, mono_energy):
    """How far (dB) the mono mix's level is below the loudest channel's; 0 for a silent file."""
    loudest = float(channel_energy.max())
    if loudest <= 0.0:
        return 0.0
    return 10.0 * math.log10(loudest / max(mono_energy, loudest * 1e-30))


def _temp_file():
    """An anonymous temporary file: unlinked at once on POSIX, deleted on close on Windows, so not even
    a killed process leaves it behind."""
    return tempfile.TemporaryFile(prefix="duet-audio-", suffix=".f32")


class _Sink:
    """A track's 16 kHz samples as they come: in memory up to IN_MEMORY_SECONDS, then in an anonymous
    temporary file (the data written so far moves there), so a long track never sits in memory whole."""

    def __init__(self):
        self.limit = int(IN_MEMORY_SECONDS * SAMPLE_RATE)
        self.parts, self.n, self.file = [], 0, None

    def add(self, x):
        x = np.ascontiguousarray(x, np.float32)
        if self.file is None and self.n + len(x) > self.limit:
            self.file = _temp_file()
            for part in self.parts:
                self.file.write(part.data)
            self.parts = []
        if self.file is not None:
            self.file.write(x.data)
        else:
            self.parts.append(x)
        self.n += len(x)

    def finish(self, length=None):
        """The samples, cut or padded with zeros to `length` (default: as many as were added)."""
        length = self.n if length is None else length
        if self.file is None:
            x = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
            return x[:length] if len(x) >= length else np.pad(x, (0, length - len(x)))
        self.file.flush()
        return Samples(length, self.file, self.n)

    def close(self):
        self.parts = []
        if self.file is not None:
            self.file.close()


class _BlockResampler:
    """resample() of a signal that arrives in blocks, with the same result as resample() of the whole.

    Each stretch of output is resample_poly of its input plus `pad` samples of context on each side
    (more than the filter's half-length), cut where the polyphase phases line up (input indices that
    are multiples of `down`), so every output sample is the same sum of the same products."""

    def __init__(self, src_rate, dst_rate):
        self.src, self.dst = int(src_rate), int(dst_rate)
        self.up, self.down = _ratio(self.src, self.dst)
        half_len = 10 * max(self.up, self.down)  # resample_poly's filter reaches half_len upsampled samples
        pad = -(-half_len // self.up) + 1
        self.pad = -(-pad // self.down) * self.down
        self.buf = np.zeros(0, np.float32)
        self.buf_start = 0  # input index of buf[0]
        self.done = 0  # input samples whose output has been given out (a multiple of down until finish)
        self.n_in = 0
        self.length = None  # output samples in all, known once finish() is called

    def push(self, x):
        self.buf = np.concatenate([self.buf, np.asarray(x, np.float32)])
        self.n_in += len(x)
        stop = (self.n_in - self.pad) // self.down * self.down
        return self._emit(stop) if stop > self.done else np.zeros(0, np.float32)

    def finish(self):
        """The rest of the output. resample() then cuts or pads the whole to `length` samples (they differ
        where the rate ratio had to be approximated), which the caller does with what it stored."""
        self.length = _resampled_length(self.n_in, self.src, self.dst)
        return self._emit(self.n_in) if self.n_in > self.done else np.zeros(0, np.float32)

    def _emit(self, stop):
        s0 = max(0, self.done - self.pad)
        seg = self.buf[s0 - self.buf_start:min(stop + self.pad, self.n_in) - self.buf_start]
        y = resample_poly(seg, self.up, self.down).astype(np.float32, copy=False)
        k0 = (self.done - s0) * self.up // self.down
        k1 = len(y) if stop == self.n_in else (stop - s0) * self.up // self.down
        y = y[k0:k1]
        self.done = stop
        keep = max(0, stop - self.pad) - self.buf_start  # context the next stretch needs
        if keep > 0:
            self.buf, self.buf_start = self.buf[keep:].copy(), self.buf_start + keep
        return y


def _ratio(src_rate, dst_rate):
    """(up, down) of the polyphase resampler; rates with no small ratio are approximated."""
    ratio = Fraction(int(dst_rate), int(src_rate)).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


def _resampled_length(n, src_rate, dst_rate):
    return int(round(n * dst_rate / src_rate))


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling (anti-aliased), not sample dropping."""
    out = resample_poly(x, *_ratio(src_rate, dst_rate)).astype(np.float32)
    want = _resampled_length(len(x), src_rate, dst_rate)
    return out[:want] if len(out) >= want else np.pad(out, (0, want - len(out)))


def pad_to_same_length(a: Track, b: Track) -> list[str]:
    """Pad the shorter track with silence (design: tracks of different lengths), with a note."""
    n = max(len(a.samples), len(b.samples))
    notes = []
    for t in (a, b):
        if len(t.samples) < n:
            missing = (n - len(t.samples)) / SAMPLE_RATE
            notes.append(f"{t.path}: {missing:.2f} s shorter than the other track, padded with silence")
            if isinstance(t.samples, Samples):
                t.samples.length = n
            elif n <= IN_MEMORY_SECONDS * SAMPLE_RATE:
                t.samples = np.pad(t.samples, (0, n - len(t.samples)))
            else:  # a short track beside a long one: padded without a long array of zeros
                t.samples = Samples(n, array=t.samples)
    return notes


def _short(exc):
    text = str(exc).strip().splitlines()
    msg = text[-1] if text else type(exc).__name__
    return msg if len(msg) < 160 else msg[:157] + "..."


def db_to_gain(db: float) -> float:
    return math.pow(10.0, db / 20.0)
