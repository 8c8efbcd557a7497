"""The real-speech fidelity measures (training/fidelity.py) on curves and signals whose answer is known."""

import numpy as np
import pytest

from model_runtime.channels import index_of
from model_runtime.timebase import SAMPLE_RATE
from training import fidelity as F
from training.dataset import IGNORE, PHONE_INDEX, phone_labels

FPS = F.FPS


def _curves(n=100):
    return np.zeros((n, 55), np.float32)


def test_closure_rate_counts_bilabials_whose_lips_meet():
    c = _curves()
    close, press = index_of(("mouthClose",))[0], index_of(("mouthPressLeft", "mouthPressRight"))
    phones = [(0.4, 0.48, "M"), (1.2, 1.28, "B"), (2.0, 2.08, "P"), (3.0, 3.2, "AA")]
    c[10:12, close] = 0.3  # the M closes
    c[30:32][:, press] = 0.15  # the B only half: 0.15 < threshold 0.2
    assert F.closure_rate(c, phones) == (1, 3)
    c[30:32][:, press] = 0.3
    assert F.closure_rate(c, phones) == (2, 3)


def test_aperture_ratio_is_small_when_lips_seal_and_one_when_they_do_not():
    c = _curves()
    jaw, close = index_of(("jawOpen", "mouthClose"))
    phones = [(0.4, 0.48, "M"), (1.0, 1.2, "AA")]
    c[:, jaw] = 0.4
    assert F.aperture_ratio(c, phones) == pytest.approx(1.0)
    c[10:13, close] = 0.4
    assert F.aperture_ratio(c, phones) == pytest.approx(0.0)


def test_head_spread_is_the_root_of_summed_axis_variances():
    rng = np.random.default_rng(0)
    c = _curves(2000)
    c[:, index_of(F.HEAD)] = rng.normal(0, [0.03, 0.04, 0.0], (2000, 3))
    mask = np.ones(2000, bool)
    assert F.head_spread(c, mask) == pytest.approx(0.05, rel=0.05)
    assert np.isnan(F.head_spread(c, np.zeros(2000, bool)))


def test_closure_and_jaw_score_only_speaking_frames():
    """The seen-vs-held-out gap's measure: mean r of the five closure channels and jaw r with the
    animator, over the frames where the character speaks."""
    rng = np.random.default_rng(1)
    n = 400
    targets = rng.random((n, 55)).astype(np.float32)
    speaking = np.arange(n) < 300
    role = F.Role(None, None, targets, speaking, ~speaking, [])
    pred = targets.copy()
    pred[300:] = rng.random((100, 55))  # listening frames are not scored
    assert F._closure_and_jaw([pred], [role]) == pytest.approx({"closure_r": 1.0, "jaw_r": 1.0})
    pred[:300, index_of(F.CLOSURE)] = rng.random((300, 5))  # the lips no longer follow, the jaw does
    got = F._closure_and_jaw([pred], [role])
    assert abs(got["closure_r"]) < 0.2 and got["jaw_r"] == pytest.approx(1.0)


def test_levels_and_microphones_change_what_they_should():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(SAMPLE_RATE * 2) * 0.1).astype(np.float32)
    for db in (0, -20, -40):
        assert 20 * np.log10(np.abs(F.at_peak(x, db)).max()) == pytest.approx(db, abs=1e-3)
    spec = lambda y: np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    tel = spec(F.telephone(x))
    assert tel[freqs > 4500].mean() < 0.01 * spec(x)[freqs > 4500].mean()  # nothing above the phone band
    y = F.mp3(x)
    assert len(y) == len(x) and not np.allclose(y, x, atol=1e-4)
    assert np.corrcoef(x, y)[0, 1] > 0.5  # the codec's start-up delay is removed, as players do
    assert F.dc_hum(x).mean() == pytest.approx(x.mean() + 0.05, abs=1e-3)
    r = F.reverb(x)
    assert len(r) == len(x) and np.abs(r).max() == pytest.approx(np.abs(x).max(), rel=1e-4)


def test_condition_rows_flag_lip_sync_lost_at_a_level():
    cond = {"0 dB": {"lipsync": 0.8, "leakage": 0.1}, "-20 dB": {"lipsync": 0.79, "leakage": 0.102},
            "-40 dB": {"lipsync": 0.5, "leakage": 0.1}}
    assert [ok for *_, ok in F.condition_rows(cond)] == [True, True, False]


def test_targets_check_says_met_only_inside_the_bands():
    f = {"spread": {"mouthClose": 1.0, "mouthPucker": 0.3}, "r": {"mouthClose": 0.7, "mouthPressLeft": 0.1},
         "closure_rate_net": 0.85, "closure_rate_animator": 0.9, "head_speak_ratio": 0.9, "head_listen_ratio": 0.3}
    met = {label: ok for label, _, _, ok in F.targets_check(f)}
    assert met["spread mouthClose"] and not met["spread mouthPucker"]
    assert met["r mouthClose"] and not met["r mouthPressLeft"]
    assert met["bilabial closure rate (net / animator)"]  # 0.85 / 0.9 = 0.944: within 10 %
    assert met["head spread speaking (net / animator)"] and not met["head spread listening (net / animator)"]


def test_phone_labels_cover_each_phone_on_the_frame_grid():
    labels = phone_labels([(0.0, 0.2, "HH"), (0.2, 0.4, "AH"), (0.4, 0.48, "M")], 20, FPS)
    assert labels[0] == PHONE_INDEX["HH"] and labels[5] == PHONE_INDEX["AH"] and labels[10] == PHONE_INDEX["M"]
    assert labels[12] == PHONE_INDEX["SIL"] and IGNORE < 0


def test_training_rooms_and_mains_degrade_and_level_norm_follows():
    """recording.degrade: a room smears, the mains add hum and DC; the window's level offset moves by
    what the degradation does to the speech level, as the runtime's whole-track level would."""
    from model_runtime.features import LogMel, level_offset
    from training.dataset import window_mel
    from training.recording import degrade

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 6) / 16000
    x = (np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0) * 0.3).astype(np.float32)
    assert degrade(rng, x, 0.0, 0.0) is x
    hum = degrade(np.random.default_rng(1), x, 0.0, 1.0)
    assert abs(hum.mean() - x.mean()) > 1e-3  # DC
    room = degrade(np.random.default_rng(1), x, 1.0, 0.0)
    assert np.corrcoef(room, x)[0, 1] < 0.99
    noise = (rng.standard_normal(len(x)) * 0.1).astype(np.float32)
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    spec = lambda y: np.abs(np.fft.rfft(y))
    for seed in range(3):  # each draw cuts the bass below 400 Hz at most and the treble above 3 kHz at least
        band = degrade(np.random.default_rng(seed), noise, 0.0, 0.0, band_prob=1.0)
        assert spec(band)[freqs > 7800].mean() < 0.1 * spec(noise)[freqs > 7800].mean()
        assert spec(band)[freqs < 20].mean() < 0.1 * spec(noise)[freqs < 20].mean()
        mid = (freqs > 800) & (freqs < 2500)
        assert spec(band)[mid].mean() == pytest.approx(spec(noise)[mid].mean(), rel=0.2)
    mel = LogMel()
    off = level_offset(x, len(x))
    loud = lambda y: level_offset(y, len(y))
    louder = lambda y: (2 * y).astype(np.float32)
    a = window_mel(mel, x, 0, 100, 640, off, 0.0, louder)
    b = window_mel(mel, louder(x), 0, 100, 640, loud(louder(x)))
    assert np.abs(a - b).max() < 1e-3  # 6 dB louder through degrade reads as the louder take does
