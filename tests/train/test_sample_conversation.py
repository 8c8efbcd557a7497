"""The shipped sample conversation (assets/sample): two microphone tracks and their timeline."""

import json

import numpy as np
import pytest
import soundfile as sf

from model_runtime.paths import SAMPLE_DIR as SAMPLE
from model_runtime.timebase import SAMPLE_RATE as SR

FILES = ("a.wav", "b.wav", "timeline.json", "README.md")


@pytest.fixture(scope="module")
def timeline():
    return json.loads((SAMPLE / "timeline.json").read_text())


@pytest.fixture(scope="module")
def tracks():
    return {k: sf.read(SAMPLE / f"{k}.wav", dtype="int16")[0] for k in ("a", "b")}


def _mask(n, spans):
    m = np.zeros(n, bool)
    for s, e, *_ in spans:
        m[int(s * SR): int(e * SR)] = True
    return m


def _db(x):
    x = np.asarray(x, np.float64) / 32767
    return 10 * np.log10(np.mean(x ** 2) + 1e-12)


def test_shipped_files():
    for name in FILES:
        assert (SAMPLE / name).is_file(), f"{name} missing: run scripts/make_sample_conversation.py"
    infos = [sf.info(SAMPLE / f"{k}.wav") for k in ("a", "b")]
    for info in infos:
        assert info.samplerate == SR and info.channels == 1 and info.subtype == "PCM_16"
        assert 20.0 <= info.duration <= 40.0
    assert infos[0].frames == infos[1].frames
    for k in ("a", "b"):
        assert (SAMPLE / f"{k}.wav").stat().st_size < 1.3e6


def test_levels(tracks, timeline):
    """No clipping, no silent turn, and each track's own voice is well above the partner's bleed."""
    n = len(tracks["a"])
    assert abs(timeline["duration_s"] - n / SR) < 1e-2
    for k, x in tracks.items():
        assert np.abs(x.astype(np.int32)).max() < 32767, f"{k}.wav clips"
    for t in timeline["turns"]:
        seg = tracks[t["track"]][int(t["start"] * SR): int(t["end"] * SR)]
        assert _db(seg) > -40, f"turn {t['text']!r} is (nearly) silent"
    tl = timeline["tracks"]
    speech = {k: _mask(n, tl[k]["segments"] + tl[k]["backchannels"]) for k in ("a", "b")}
    for own, other in (("a", "b"), ("b", "a")):
        x = tracks[own]
        own_only = speech[own] & ~speech[other]
        other_only = speech[other] & ~speech[own]
        silence = ~speech[own] & ~speech[other]
        assert own_only.sum() > 5 * SR and other_only.sum() > 5 * SR
        own_db, bleed_db, floor_db = _db(x[own_only]), _db(x[other_only]), _db(x[silence])
        assert own_db > bleed_db + 10, f"{own}.wav: own voice {own_db:.1f} dB, bleed {bleed_db:.1f} dB"
        assert bleed_db > floor_db + 3, f"{own}.wav: no audible bleed of the partner's voice"
        assert floor_db > -90, f"{own}.wav: digital silence, no room noise"


def test_turn_taking(timeline):
    """8-12 turns alternating, >= 1 overlap between turns, >= 2 backchannels on the listener's track."""
    turns = timeline["turns"]
    assert 8 <= len(turns) <= 12
    assert {t["track"] for t in turns} == {"a", "b"}
    tl = timeline["tracks"]
    overlaps = [(s1, e1, s2, e2) for s1, e1 in tl["a"]["segments"] for s2, e2 in tl["b"]["segments"]
                if min(e1, e2) > max(s1, s2)]
    assert len(overlaps) >= 1 and len(timeline["overlaps"]) == len(overlaps)
    bcs = timeline["backchannels"]
    assert len(bcs) >= 2
    assert sum(len(tl[k]["backchannels"]) for k in ("a", "b")) == len(bcs)
    for b in bcs:
        # Said while the partner holds the turn, on the listener's own track, not in its own turn.
        assert any(t["track"] != b["track"] and t["start"] <= b["start"] < t["end"] for t in turns), b
        assert not any(s < b["end"] and b["start"] < e for s, e in tl[b["track"]]["segments"]), b
        assert b["end"] - b["start"] < 1.0


def test_rebuild_is_bit_identical(tmp_path, timeline):
    from training import sample

    missing = sample.missing_voices()
    if missing:
        pytest.skip(f"cannot rebuild the sample here: {missing} (make setup-train installs them)")
    if sample.engine_versions() != timeline["engines"]:
        pytest.skip(f"TTS engines differ from the ones the sample was built with ({timeline['engines']}): "
                    "their audio differs by design")
    sample.write(tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), f"{name} differs on rebuild"
