"""Two-track conversations: targets aligned to audio, listeners at rest, determinism, held-out voices."""

import numpy as np
import pytest
from train_helpers import needs_flite, needs_pocketsphinx, needs_shared, rms_db, small_config

from model_runtime.channels import CHANNELS
from model_runtime.timebase import frame_count
from training import conversation as C
from training.voices import ARPABET_VOWELS, SR, TEST_TTS_VOICES

JAW = CHANNELS.index("jawOpen")


def _only(c):
    return c.speaking_a & ~c.speaking_b, c.speaking_b & ~c.speaking_a


def test_shapes_and_lengths(tts_conversation):
    c = tts_conversation
    T = frame_count(len(c.audio_a) / SR, 25.0)
    assert c.targets_a.shape == (T, 55) and c.targets_b.shape == (T, 55)
    assert c.audio_a.dtype == np.float32 and len(c.audio_a) == len(c.audio_b)
    assert c.speaking_a.shape == (T,) and c.speaking_a.any() and c.speaking_b.any()
    assert np.abs(c.audio_a).max() <= 1.0


def test_jaw_peaks_fall_in_own_vowels(tts_conversation):
    c = tts_conversation
    for targets, phones in ((c.targets_a, c.meta["phones_a"]), (c.targets_b, c.meta["phones_b"])):
        jaw = targets[:, JAW]
        peaks = np.flatnonzero((jaw[1:-1] > jaw[:-2]) & (jaw[1:-1] >= jaw[2:]) & (jaw[1:-1] > 0.25)) + 1
        vowels = np.array([(s, e) for s, e, p in phones if p in ARPABET_VOWELS])
        assert len(peaks) > 5
        t = peaks / 25.0
        inside = [((vowels[:, 0] - 0.03 <= x) & (x <= vowels[:, 1] + 0.03)).any() for x in t]
        assert np.mean(inside) > 0.9


def test_mouth_rests_while_only_partner_speaks(tts_conversation):
    c = tts_conversation
    only_a, only_b = _only(c)
    assert only_a.sum() > 10 and only_b.sum() > 10  # enough frames for a mean
    # A's mouth while only B talks vs while A talks (the leakage metric of the issue).
    assert c.targets_a[only_b, JAW].mean() < 0.15 * c.targets_a[only_a, JAW].mean()
    assert c.targets_b[only_a, JAW].mean() < 0.15 * c.targets_b[only_b, JAW].mean()


def test_each_track_is_own_voice_plus_quieter_bleed(tts_conversation):
    c = tts_conversation
    only_a, only_b = _only(c)
    spf = SR // 25

    def frames(x, m):
        return np.concatenate([x[i * spf:(i + 1) * spf] for i in np.flatnonzero(m)])

    own = rms_db(frames(c.audio_a, only_a))
    bleed = rms_db(frames(c.audio_a, only_b))
    assert own - bleed > 8  # the partner is audible in A's mic, but well below A


@needs_flite
def test_deterministic_from_seed(tmp_path, monkeypatch):
    """Same seed, two empty caches (TTS synthesised afresh each time): identical conversations."""
    from training import voices as V

    cfg = small_config()
    monkeypatch.setattr(V, "CACHE_DIR", tmp_path / "one")
    a = C.build(C.conversation_rng("train", 5, 3), cfg, "train")
    monkeypatch.setattr(V, "CACHE_DIR", tmp_path / "two")
    b = C.build(C.conversation_rng("train", 5, 3), cfg, "train")
    assert list((tmp_path / "two").rglob("*.npz"))  # really synthesised again
    monkeypatch.setattr(V, "CACHE_DIR", tmp_path / "one")
    warm = C.build(C.conversation_rng("train", 5, 3), cfg, "train")  # TTS from the cache this time
    d = C.build(C.conversation_rng("train", 5, 4), cfg, "train")
    for k in ("audio_a", "audio_b", "targets_a", "targets_b", "speaking_a", "speaking_b"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
        np.testing.assert_array_equal(getattr(a, k), getattr(warm, k))
    assert len(d.audio_a) != len(a.audio_a) or not np.array_equal(d.audio_a, a.audio_a)


@needs_flite
def test_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "CACHE_DIR", tmp_path)
    cfg = small_config()
    c1 = C.generate("val", 0, seed=1, cfg=cfg)
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1
    c2 = C.generate("val", 0, seed=1, cfg=cfg)
    np.testing.assert_array_equal(c1.targets_a, c2.targets_a)
    np.testing.assert_array_equal(c1.audio_b, c2.audio_b)
    assert c2.meta["voices"] == c1.meta["voices"]


def test_held_out_voices_never_in_training():
    cfg = C.ConversationConfig()
    train_tts, train_real = C.voice_pool("train", cfg)
    test_tts, test_real = C.voice_pool("test", cfg)
    assert not {v.id for v in train_tts} & {v.id for v in test_tts}
    assert not {v.id for v in train_tts} & set(TEST_TTS_VOICES)
    assert not set(train_real) & set(test_real)
    val_tts, val_real = C.voice_pool("val", cfg)
    assert {v.id for v in val_tts} == {v.id for v in train_tts} and set(val_real) == set(train_real)


@needs_flite
def test_test_split_uses_only_held_out_voices():
    c = C.build(C.conversation_rng("test", 0, 0), small_config(), "test")
    assert set(c.meta["voices"]) <= set(TEST_TTS_VOICES)


@needs_shared
@needs_pocketsphinx
def test_real_speaker_conversation():
    """Real LibriSpeech voices on both sides (alignments cached after the first run)."""
    cfg = small_config(real_prob=1.0, engines=())
    c = C.build(C.conversation_rng("train", 0, 1), cfg, "train")
    assert all(v.startswith("libri/") for v in c.meta["voices"])
    only_a, only_b = _only(c)
    assert c.targets_a[only_b, JAW].mean() < 0.15 * c.targets_a[only_a, JAW].mean()
    _, test_real = C.voice_pool("test", cfg)
    assert not {v.split("/")[1] for v in c.meta["voices"]} & set(test_real)


@pytest.mark.parametrize("split", ["bogus"])
def test_bad_split(split):
    with pytest.raises(ValueError):
        C.generate(split, 0)


@needs_flite
def test_overlaps_and_interruptions_happen():
    cfg = small_config(overlap_prob=0.5, interrupt_prob=0.5, duration_s=(20.0, 24.0), sentences_per_turn=(2, 3))
    c = C.build(C.conversation_rng("train", 9, 0), cfg, "train")
    assert (c.speaking_a & c.speaking_b).sum() > 5  # frames where both talk


def _jaw_energy_lag(audio, targets, partner_speaking):
    """Lag (frames) maximising corr(jawOpen, loudness of the own track) where the partner is
    silent (their bleed would dominate a quiet track), loudness centred on each frame's time
    i / 25 like the targets; and that correlation."""
    T = len(targets)
    x = np.pad(audio, (320, T * 640))[: T * 640].reshape(T, 640)
    e = 10 * np.log10((x.astype(np.float64) ** 2).mean(1) + 1e-10)
    j = targets[:, JAW]
    m = ~partner_speaking
    m[:10] = m[-10:] = False
    cc = [np.corrcoef(np.roll(j, k)[m], e[m])[0, 1] for k in range(-4, 5)]
    return int(np.argmax(cc)) - 4, max(cc)


def test_targets_in_step_with_audio(tts_conversation):
    """Cross-correlation of jawOpen with the track's own loudness peaks at lag 0 (not a frame off)."""
    c = tts_conversation
    for audio, targets, other in ((c.audio_a, c.targets_a, c.speaking_b), (c.audio_b, c.targets_b, c.speaking_a)):
        lag, r = _jaw_energy_lag(audio, targets, other)
        assert lag == 0 and r > 0.5, (lag, r)


@needs_shared
@needs_pocketsphinx
def test_real_speech_targets_in_step_with_audio():
    cfg = small_config(real_prob=1.0, engines=(), duration_s=(16.0, 20.0))
    # Index 3 draws two one-utterance speakers: a few seconds to align on a fresh machine.
    c = C.build(C.conversation_rng("train", 0, 3), cfg, "train")
    for audio, targets, other in ((c.audio_a, c.targets_a, c.speaking_b), (c.audio_b, c.targets_b, c.speaking_a)):
        lag, r = _jaw_energy_lag(audio, targets, other)
        # Within a frame: the jaw may lead the sound (anticipation), never trail it.
        assert lag in (0, 1) and r > 0.4, (lag, r)
