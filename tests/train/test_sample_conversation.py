"""The shipped sample conversations (assets/sample: two people; assets/sample_cast: three): one
microphone track per person and their timeline."""

import json

import numpy as np
import pytest
import soundfile as sf

from model_runtime.timebase import SAMPLE_RATE as SR
from training import sample as samples

SAMPLES = [pytest.param(s, id=k) for k, s in samples.SAMPLES.items()]


@pytest.fixture(scope="module", params=SAMPLES)
def sample(request):
    return request.param


@pytest.fixture(scope="module")
def timeline(sample):
    return json.loads((sample.folder / "timeline.json").read_text())


@pytest.fixture(scope="module")
def tracks(sample):
    return {t.name: sf.read(sample.folder / f"{t.name}.wav", dtype="int16")[0] for t in sample.tracks}


@pytest.fixture(scope="module")
def speech(tracks, timeline):
    """{track: per-sample bool, its person speaking (turns and backchannels)}."""
    n = len(next(iter(tracks.values())))
    tl = timeline["tracks"]
    return {k: _mask(n, tl[k]["segments"] + tl[k]["backchannels"]) for k in tracks}


def _others_speak(speech, own):
    """Per sample: anyone but `own` speaking."""
    return np.any([m for k, m in speech.items() if k != own], axis=0)


def _mask(n, spans):
    m = np.zeros(n, bool)
    for s, e, *_ in spans:
        m[int(s * SR): int(e * SR)] = True
    return m


def _db(x):
    x = np.asarray(x, np.float64) / 32767
    return 10 * np.log10(np.mean(x ** 2) + 1e-12)


def test_shipped_files(sample):
    for name in sample.files:
        assert (sample.folder / name).is_file(), f"{name} missing: run scripts/make_sample_conversation.py"
    infos = [sf.info(sample.folder / f"{t.name}.wav") for t in sample.tracks]
    for info in infos:
        assert info.samplerate == SR and info.channels == 1 and info.subtype == "PCM_16"
        assert 20.0 <= info.duration <= 40.0
    assert len({info.frames for info in infos}) == 1
    for t in sample.tracks:
        assert (sample.folder / f"{t.name}.wav").stat().st_size < 1.3e6


def test_levels(tracks, timeline, speech):
    """No clipping, no silent turn, and each track's own voice is well above the others' bleed."""
    n = len(next(iter(tracks.values())))
    assert abs(timeline["duration_s"] - n / SR) < 1e-2
    for k, x in tracks.items():
        assert np.abs(x.astype(np.int32)).max() < 32767, f"{k}.wav clips"
    for t in timeline["turns"]:
        seg = tracks[t["track"]][int(t["start"] * SR): int(t["end"] * SR)]
        assert _db(seg) > -40, f"turn {t['text']!r} is (nearly) silent"
    anyone = np.any(list(speech.values()), axis=0)
    silence = ~anyone
    for own, x in tracks.items():
        others = anyone & ~speech[own]
        own_only = speech[own] & ~_others_speak(speech, own)
        assert own_only.sum() > 5 * SR and others.sum() > 5 * SR
        own_db, bleed_db, floor_db = _db(x[own_only]), _db(x[others]), _db(x[silence])
        assert own_db > bleed_db + 10, f"{own}.wav: own voice {own_db:.1f} dB, bleed {bleed_db:.1f} dB"
        assert bleed_db > floor_db + 3, f"{own}.wav: no audible bleed of the others' voices"
        assert floor_db > -90, f"{own}.wav: digital silence, no room noise"


def test_own_voice_is_loudest_in_its_turns(tracks, timeline, speech):
    """In every turn, where nobody else speaks, the speaker's own microphone is the loudest track."""
    n = len(next(iter(tracks.values())))
    for t in timeline["turns"]:
        own = t["track"]
        span = _mask(n, [(t["start"], t["end"])]) & ~_others_speak(speech, own)
        assert span.sum() > 0.5 * SR, t
        levels = {k: _db(x[span]) for k, x in tracks.items()}
        loudest_other = max(v for k, v in levels.items() if k != own)
        assert levels[own] > loudest_other + 10, (t["text"], levels)


def test_turn_taking(sample, timeline):
    """8-12 turns among everyone, the turn passing from each person to each other one at least
    once in a cast, >= 1 overlap between turns, >= 2 backchannels on listeners' own tracks."""
    turns = timeline["turns"]
    names = [t.name for t in sample.tracks]
    assert 8 <= len(turns) <= 12
    assert {t["track"] for t in turns} == set(names)
    assert all(a["track"] != b["track"] for a, b in zip(turns, turns[1:])), "a person follows themself"
    passes = {(a["track"], b["track"]) for a, b in zip(turns, turns[1:])}
    if len(names) > 2:  # in a cast, the floor passes both ways between every two people
        assert passes == {(x, y) for x in names for y in names if x != y}, sorted(passes)
    tl = timeline["tracks"]
    overlaps = [(s1, e1, s2, e2) for i, x in enumerate(names) for y in names[i + 1:]
                for s1, e1 in tl[x]["segments"] for s2, e2 in tl[y]["segments"] if min(e1, e2) > max(s1, s2)]
    assert len(overlaps) >= 1 and len(timeline["overlaps"]) == len(overlaps)
    bcs = timeline["backchannels"]
    assert len(bcs) >= 2
    assert sum(len(tl[k]["backchannels"]) for k in names) == len(bcs)
    if len(names) > 2:
        assert len({b["track"] for b in bcs}) == len(names), "every listener backchannels at least once"
    for b in bcs:
        # Said while someone else holds the turn, on the listener's own track, not in its own turn.
        assert any(t["track"] != b["track"] and t["start"] <= b["start"] < t["end"] for t in turns), b
        assert not any(s < b["end"] and b["start"] < e for s, e in tl[b["track"]]["segments"]), b
        assert b["end"] - b["start"] < 1.0


def test_rebuild_is_bit_identical(tmp_path, sample, timeline):
    missing = samples.missing_voices(sample)
    if missing:
        pytest.skip(f"cannot rebuild the sample here: {missing} (make setup-train installs them)")
    if samples.engine_versions(sample) != timeline["engines"]:
        pytest.skip(f"TTS engines differ from the ones the sample was built with ({timeline['engines']}): "
                    "their audio differs by design")
    samples.write(tmp_path, sample)
    for name in sample.files:
        assert (tmp_path / name).read_bytes() == (sample.folder / name).read_bytes(), f"{name} differs on rebuild"
