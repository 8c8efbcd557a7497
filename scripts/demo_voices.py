"""The demo's input: the voices, checked and copied next to the .blend, and who speaks when."""

import json
import os
from dataclasses import dataclass

import soundfile as sf
from demo_common import FPS, NAMES, PEOPLE, BadInputError

from model_runtime.audio import load_audio
from model_runtime.errors import BadInput
from model_runtime.liveliness import voice_activity
from model_runtime.paths import SAMPLE_CAST_DIR, SAMPLE_DIR
from model_runtime.timebase import SAMPLE_RATE, frame_count, samples_per_frame

# The shipped samples by number of people (training/sample.py builds both).
SAMPLE_DIRS = {2: SAMPLE_DIR, 3: SAMPLE_CAST_DIR}


@dataclass
class Voices:
    sample: bool      # a shipped sample conversation (else the user's --self/--partner)
    sources: list     # each person's file, as given
    paths: list       # the copies the .blend plays (audio/alex.wav, ...), trimmed
    samples: list     # as the runtime reads them (mono, SAMPLE_RATE), trimmed
    seconds: float
    names: tuple = NAMES  # who speaks them, in order

    @property
    def n_frames(self):
        return frame_count(self.seconds, FPS)

    @property
    def folder(self):
        """The shipped sample's folder for this many people (its timeline.json)."""
        return SAMPLE_DIRS[len(self.names)]


def prepare(self_audio, partner_audio, seconds, audio_dir, cast=0):
    """Check the voices with the runtime's own reader (the same errors as a generation) and copy
    them, trimmed to `seconds` (0: the longest one's length), into audio_dir. `cast`: the shipped
    sample with that many people (each its own track); else both of --self/--partner or the
    two-person sample."""
    if bool(self_audio) != bool(partner_audio):
        raise BadInputError("give both voices: --self A.wav (Alex) and --partner B.wav (Sam)")
    if cast and self_audio:
        raise BadInputError("--cast animates the shipped sample with that many people: leave out --self/--partner")
    sample = not self_audio
    names = PEOPLE[:cast] if cast else NAMES
    if sample:
        folder = SAMPLE_DIRS[len(names)]
        srcs = [str(folder / f"{chr(ord('a') + k)}.wav") for k in range(len(names))]  # a.wav, b.wav, ...
        for p in srcs + [str(folder / "timeline.json")]:
            if not os.path.isfile(p):
                how = " --cast" if len(names) > 2 else ""
                raise BadInputError(f"{p}: sample conversation not found "
                                    f"(rebuild it: .venv/bin/python scripts/make_sample_conversation.py{how})")
    else:
        srcs = [os.path.abspath(self_audio), os.path.abspath(partner_audio)]
    tracks = []
    for p in srcs:
        try:
            tracks.append(load_audio(p))
        except BadInput as exc:
            raise BadInputError(str(exc))
    full = max(t.duration for t in tracks)
    seconds = min(seconds, full) if seconds > 0 else full
    os.makedirs(audio_dir, exist_ok=True)
    paths = []
    for name, src in zip(names, srcs):
        info = sf.info(src)
        data, sr = sf.read(src, frames=int(round(seconds * info.samplerate)), dtype="float32", always_2d=True)
        dst = os.path.join(audio_dir, f"{name.lower()}.wav")
        sf.write(dst, data, sr, subtype="PCM_16")  # a copy the .blend can keep playing
        paths.append(dst)
    n = int(round(seconds * SAMPLE_RATE))
    return Voices(sample, srcs, paths, [t.samples[:n] for t in tracks], seconds, names)


def who_speaks(voices):
    """({name: [(start, end) s, ...]}, {(name, start): the line said}, where that came from):
    the sample's timeline.json, else the runtime's own voice-activity measure on each track."""
    if voices.sample:
        segments, lines = _timeline_segments(voices.folder, voices.names, voices.seconds)
        return segments, lines, f"assets/{voices.folder.name}/timeline.json"
    n, spf = voices.n_frames, samples_per_frame(FPS)
    a, b = voices.samples
    segments = {NAMES[0]: segments_from_mask(voice_activity(a, b, n, spf), FPS),
                NAMES[1]: segments_from_mask(voice_activity(b, a, n, spf), FPS)}
    return segments, {}, "energy voice activity of each track"


def _timeline_segments(folder, names, seconds):
    """Turns and backchannels per character from the sample's timeline.json (its tracks in order are
    the names'), and the turns' text."""
    with open(folder / "timeline.json", encoding="utf-8") as f:
        tl = json.load(f)
    out = {}
    who = dict(zip(tl["tracks"], names))
    for key, name in who.items():
        track = tl["tracks"][key]
        segs = [(float(s[0]), float(s[1])) for s in track.get("segments", [])]
        segs += [(float(b[0]), float(b[1])) for b in track.get("backchannels", [])]
        out[name] = sorted((a, min(b, seconds)) for a, b in segs if a < seconds)
    lines = {(who[t["track"]], round(float(t["start"]), 3)): t.get("text", "") for t in tl.get("turns", [])}
    return out, lines


def segments_from_mask(mask, fps):
    """[(start, end) s] of the runs of True in a per-frame mask."""
    segs, start = [], None
    for i, m in enumerate(list(mask) + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            segs.append((start / fps, i / fps))
            start = None
    return segs
