"""Speech sources: phone timings must match the audio they came with."""

import numpy as np
import pytest
from train_helpers import engine_mark, needs_flite, needs_pocketsphinx, needs_shared, rms_db

from training import voices as V

TEXT = "Maybe we could see the old bridge on Monday, if you want."


def test_phone_normalisation():
    assert V.normalize_phone("pau") == "SIL"
    assert V.normalize_phone("ax") == "AH"
    assert V.normalize_phone("AH0") == "AH"
    assert V.normalize_phone("+NSN+") == "SIL"
    assert V.ipa_to_arpabet("ˈaʊ") == ["AW"]
    assert V.ipa_to_arpabet("ɑːɹ") == ["AA", "R"]
    assert V.ipa_to_arpabet("tʃ") == ["CH"]


def _check_timings(u, margin_db=20):
    """Phones are contiguous, cover the audio, and vowels are louder than pauses."""
    assert u.phones and all(e > s for s, e, _ in u.phones)
    assert all(abs(u.phones[k][1] - u.phones[k + 1][0]) < 1e-6 for k in range(len(u.phones) - 1))
    assert abs(u.phones[-1][1] - u.duration) < 0.15
    sr = V.SR
    vow = np.concatenate([u.audio[int(s * sr): int(e * sr)] for s, e, p in u.phones if p in V.ARPABET_VOWELS])
    sil = [u.audio[int(s * sr): int(e * sr)] for s, e, p in u.phones if p == "SIL" and e - s > 0.05]
    assert len(vow) > sr * 0.3
    if sil:
        assert rms_db(vow) - rms_db(np.concatenate(sil)) > margin_db


@pytest.mark.parametrize("engine,voice", [
    pytest.param("flite", "slt", marks=engine_mark("flite")),
    pytest.param("flite", "kal16", marks=engine_mark("flite")),
    pytest.param("festival", "cmu_us_slt_arctic_hts", marks=engine_mark("festival")),
    pytest.param("festival", "kal_diphone", marks=engine_mark("festival")),
    pytest.param("espeak", "en-us+f3", marks=engine_mark("espeak")),
])
def test_tts_timings_match_audio(engine, voice):
    u = V.synthesize(V.Voice(engine, voice), TEXT, V.Prosody(1.1, 0.3), cache=False)
    assert u.audio.dtype == np.float32
    _check_timings(u)


@engine_mark("espeak")
def test_espeak_first_sound_at_first_phone():
    u = V.synthesize(V.Voice("espeak", "en-us"), "Mama made a map.", cache=False)
    first = next(s for s, e, p in u.phones if p != "SIL")
    env = np.abs(u.audio) > 0.02
    onset = np.argmax(env) / V.SR
    assert abs(onset - first) < 0.05


@needs_flite
@needs_pocketsphinx
def test_pocketsphinx_agrees_with_flite_timings():
    """Forced alignment of TTS speech against the engine's own timings (measured: ~9 ms)."""
    u = V.synthesize(V.Voice("flite", "slt"), TEXT, cache=False)
    rec = V.align_audio(u.audio, text=TEXT.lower().replace(",", "").replace(".", ""))
    assert rec["ok"]
    ours = [s for s, e, p in u.phones if p != "SIL"]
    theirs = [s for s, e, p in rec["phones"] if p not in ("SIL",)]
    errs = [min(abs(a - b) for b in theirs) for a in ours]
    assert np.median(errs) < 0.03


def test_augment_scales_timings_with_speed():
    sr = V.SR
    audio = np.zeros(sr * 2, np.float32)
    audio[sr: sr + 1600] = np.sin(np.arange(1600) * 0.3)  # a burst at 1.0-1.1 s
    u = V.Utterance(audio, [(0.0, 1.0, "SIL"), (1.0, 1.1, "AA"), (1.1, 2.0, "SIL")], "x")
    cfg = V.AugmentConfig(speed=(1.08, 1.08), eq_prob=0.0, reverb_prob=0.0, noise_db=(-120, -120))
    a = V.augment(u, np.random.default_rng(0), cfg)
    s, e, _ = a.phones[1]
    assert s == pytest.approx(1.0 / 1.08) and e == pytest.approx(1.1 / 1.08)
    loud = np.flatnonzero(np.abs(a.audio) > 0.5 * np.abs(a.audio).max())
    assert abs(loud[0] / sr - s) < 0.01 and abs(loud[-1] / sr - e) < 0.01


@needs_shared
@needs_pocketsphinx
def test_real_speaker_alignment():
    files = V.librispeech_files()
    assert len(files) > 200  # ~260 real speakers
    spk = sorted(files)[0]
    u = V.align_real(files[spk][0])
    assert u is not None and u.voice == f"libri/{spk}"
    _check_timings(u, margin_db=10)  # real rooms: pauses hold breaths and noise
    phrases = V.split_phrases(u)
    assert phrases and all(p.speech_bounds() is not None for p in phrases)


@engine_mark("flite")
def test_backchannels_are_short_not_spelled_out():
    for text in V.BACKCHANNELS:
        u = V.synthesize(V.Voice("flite", "slt"), text, cache=False)
        s, e = u.speech_bounds()
        assert e - s < 1.0, f"{text!r} takes {e - s:.2f} s: spelled letter by letter?"


@needs_shared
def test_alignment_store_covers_the_shared_excerpt():
    """Every shared utterance has its committed alignment, made from the same file: a changed or
    added file in ../shared would otherwise be aligned afresh on every new machine (24-36 core-minutes)."""
    files = [f for fs in V.librispeech_files().values() for f in fs]
    missing = [f.name for f in files if V.stored_alignment(f) is None]
    assert not missing, f"{len(missing)} utterances lack a stored alignment (first {missing[:3]}): " \
        "python -m training.voices --jobs 2 --write-store"


@needs_shared
@needs_pocketsphinx
def test_stored_alignment_is_what_pocketsphinx_gives():
    """The committed alignment is reproducible: the shortest stored utterance, recognised and
    aligned afresh, gives the same text and phone timings."""
    import soundfile as sf

    files = [f for fs in V.librispeech_files().values() for f in fs]
    stored = [(sf.info(f).duration, f) for f in files if (V.stored_alignment(f) or {}).get("ok")]
    assert stored, "no stored alignment to check"
    _, path = min(stored)
    audio, rate = sf.read(path, dtype="float32")
    assert rate == V.SR
    fresh, kept = V.align_audio(audio), V.stored_alignment(path)
    assert fresh["ok"] and fresh["text"] == kept["text"]
    assert [p for *_, p in fresh["phones"]] == [p for *_, p in kept["phones"]]
    assert np.allclose([t[:2] for t in fresh["phones"]], [t[:2] for t in kept["phones"]], atol=1e-6)
