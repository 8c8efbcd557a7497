"""Per-track level normalisation of the log-mel (features.level_offset, DualTalkConfig.level_norm)."""

import numpy as np
import pytest

from model_runtime.features import LogMel, MelConfig, level_offset, speech_level_db
from model_runtime.timebase import SAMPLE_RATE


def _speechy(seconds=6.0, seed=0):
    """Syllable-rate bursts of band noise with pauses: level changes like speech, a quiet room between."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.3 * t) > -0.3)
    x = rng.standard_normal(n) * env * 0.3 + rng.standard_normal(n) * 1e-3
    return x.astype(np.float32)


def test_the_same_take_at_any_level_reads_the_same():
    x = _speechy()
    mel = LogMel()
    ref = mel(x, level_offset(x, len(x)))
    for db in (-10, -20, -40):
        y = x * 10 ** (db / 20)
        out = mel(y, level_offset(y, len(y)))
        assert np.abs(out - ref).max() < 0.01, db  # 0.04 dB; 9.2 (40 dB) without it
        assert np.abs(mel(y) - mel(x)).max() > 1.0  # without it the network would read the level


def test_speech_is_brought_to_the_reference_and_silence_stays_silence():
    cfg = MelConfig()
    x = _speechy() * 0.01
    level = speech_level_db(x, len(x))
    assert level == pytest.approx(speech_level_db(x * 10, len(x)) - 20, abs=0.05)
    assert level_offset(x, len(x)) == pytest.approx((cfg.reference_db - level) / 10 * np.log(10))
    silent = np.zeros(SAMPLE_RATE * 5, np.float32)
    hiss = (np.random.default_rng(1).standard_normal(SAMPLE_RATE * 5) * 1e-5).astype(np.float32)  # -100 dBFS
    blip = silent.copy()
    blip[:SAMPLE_RATE // 2] = 0.1  # half a second of sound: less than min_active_s
    for track in (silent, hiss, blip):
        assert speech_level_db(track, len(track)) is None and level_offset(track, len(track)) == 0.0
    assert np.all(LogMel()(silent, 5.0) == np.float32(np.log(cfg.floor)))


def test_a_dc_offset_is_not_speech():
    x = _speechy()
    assert speech_level_db(x + 0.2, len(x)) == pytest.approx(speech_level_db(x, len(x)), abs=0.5)
