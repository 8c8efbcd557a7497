"""The procedural animator: lip sync follows phone timings, listeners rest, blinks at human rates."""

import numpy as np
import pytest

from model_runtime.channels import CHANNELS
from training.animator import AnimatorConfig, Person, animate, speaking_flags
from training.voices import ARPABET_VOWELS

FPS = 25.0
CH = {n: i for i, n in enumerate(CHANNELS)}


def _syllables(t0, n, vowel="AA", cons="M", dv=0.2, dc=0.1):
    """C V C V ... starting at t0: known vowel intervals."""
    phones, t = [], t0
    for _ in range(n):
        phones += [(t, t + dc, cons), (t + dc, t + dc + dv, vowel)]
        t += dc + dv
    return phones


def _local_max(x, min_height):
    i = np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:]) & (x[1:-1] > min_height)) + 1
    return i


def test_jaw_peaks_inside_vowels_and_lips_close_on_bilabials():
    phones = _syllables(1.0, 12)
    y = animate(Person(phones), Person([]), int(6 * FPS), np.random.default_rng(0))
    jaw, close = y[:, CH["jawOpen"]], y[:, CH["mouthClose"]]
    vowels = [(s, e) for s, e, p in phones if p in ARPABET_VOWELS]
    bil = [(s, e) for s, e, p in phones if p == "M"]
    peaks = _local_max(jaw, 0.2)
    assert len(peaks) >= 10
    tol = 0.5 / FPS  # half a frame
    for i in peaks:
        assert any(s - tol <= i / FPS <= e + tol for s, e in vowels), f"jaw peak at {i / FPS:.2f}s not in a vowel"
    for i in _local_max(close, 0.05):
        assert any(s - 2 * tol <= i / FPS <= e + 2 * tol for s, e in bil)
    assert jaw[: int(0.5 * FPS)].max() < 0.05  # at rest before speech (and before preparation)


def test_coarticulation_anticipates_rounding_and_is_not_a_step():
    # "S IY S UW": pucker must start rising during the consonant before UW.
    phones = [(1.0, 1.1, "S"), (1.1, 1.3, "IY"), (1.3, 1.45, "S"), (1.45, 1.7, "UW"), (1.7, 2.5, "SIL")]
    cfg = AnimatorConfig(rate=200.0)
    y = animate(Person(phones), Person([]), int(3 * FPS), np.random.default_rng(0), cfg)
    pucker = y[:, CH["mouthPucker"]]
    peak = pucker.max()
    assert peak > 0.3
    i_start = int(round(1.45 * FPS))
    assert pucker[i_start - 2] > 0.15 * peak  # anticipation: 80 ms before UW begins
    assert pucker[int(round(1.7 * FPS)) + 1] > 0.1 * peak  # carry-over after it ends
    assert np.abs(np.diff(pucker)).max() < 0.8 * peak  # no step to the target in one frame


def test_listener_mouth_rests_while_partner_speaks():
    partner = Person(_syllables(0.5, 40, vowel="AA", cons="B"), turn_starts=[0.5])
    y = animate(Person([]), partner, int(14 * FPS), np.random.default_rng(1))
    mouth = [CH[n] for n in CHANNELS if n.startswith(("jaw", "mouthClose", "mouthFunnel", "mouthPucker",
                                                      "mouthLowerDown", "mouthRoll", "mouthPress"))]
    assert y[:, CH["jawOpen"]].max() < 0.05
    assert np.abs(y[:, mouth]).max() < 0.06
    # Yet the listener is alive: head moves, eyes blink.
    assert y[:, CH["headPitch"]].std() > 0.005
    assert y[:, CH["eyeBlinkLeft"]].max() > 0.8


def test_listener_nods_after_partner_phrase_ends():
    cfg = AnimatorConfig(nod_phrase_prob=1.0, listen_sway=(0.0, 0.0, 0.0), listen_brow_prob=0.0)
    phrases = []
    ends = []
    for k in range(4):
        p = _syllables(1.0 + 3 * k, 5)
        phrases += p
        ends.append(p[-1][1])
    y = animate(Person([]), Person(phrases), int(14 * FPS), np.random.default_rng(2), cfg)
    pitch = y[:, CH["headPitch"]] - np.median(y[:, CH["headPitch"]])
    for e in ends:
        seg = pitch[int(e * FPS): int((e + 0.9) * FPS)]
        assert seg.max() > 0.03, f"no nod after the phrase ending at {e:.2f}s"


def test_preparation_before_turn():
    phones = _syllables(3.0, 6)
    y = animate(Person(phones, turn_starts=[3.0]), Person([]), int(6 * FPS), np.random.default_rng(3))
    jaw = y[:, CH["jawOpen"]]
    assert jaw[int(2.9 * FPS)] > jaw[int(1.5 * FPS)] + 0.03  # lips part before the first sound


def test_blink_rate_and_duration_are_human():
    minutes = 4
    n = int(minutes * 60 * FPS)
    rates = []
    for seed in range(3):
        y = animate(Person([]), Person([]), n, np.random.default_rng(seed))
        b = y[:, CH["eyeBlinkLeft"]]
        closed = b > 0.5
        onsets = np.flatnonzero(closed[1:] & ~closed[:-1])
        rates.append(len(onsets) / minutes)
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, closed.astype(int), 0])))[::2]
        assert runs.max() <= 0.4 * FPS  # no blink held longer than 400 ms
    assert 15 <= np.mean(rates) <= 35  # people blink ~26/min in conversation


def test_deterministic_from_seed_and_bounded():
    phones = _syllables(0.5, 10, vowel="OW", cons="P")
    a = animate(Person(phones), Person(_syllables(4.0, 5)), 200, np.random.default_rng(9))
    b = animate(Person(phones), Person(_syllables(4.0, 5)), 200, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (200, 55) and a.dtype == np.float32
    assert a[:, :52].min() >= 0 and a[:, :52].max() <= 1
    assert np.abs(a[:, 52:]).max() <= 0.6


def test_speaking_flags():
    f = speaking_flags([(0.0, 1.0, "SIL"), (1.0, 1.5, "AA"), (1.6, 2.0, "M")], 75, FPS)
    assert not f[: 25].any() and f[25:50].all() and not f[50:].any()


@pytest.mark.parametrize("rate", [100.0, 200.0])
def test_frame_times_follow_timebase(rate):
    # A single long vowel from 1.0 s to 1.4 s: jaw is open at frame 30 (1.2 s), whatever the rate.
    y = animate(Person([(1.0, 1.4, "AA")]), Person([]), 60, np.random.default_rng(0), AnimatorConfig(rate=rate))
    assert y[30, CH["jawOpen"]] > 0.3 and y[10, CH["jawOpen"]] < 0.05


def test_listener_echoes_partner_smile_later_but_not_while_speaking():
    from training.animator import mimic

    T = 200
    a = np.zeros((T, 55), np.float32)
    b = np.zeros((T, 55), np.float32)
    b[50:75, CH["mouthSmileLeft"]] = 0.8
    cfg = AnimatorConfig(mimic_delay_s=(0.4, 0.4), mimic_smile=(0.5, 0.5))
    a2, b2 = mimic(a, b, np.zeros(T, bool), np.ones(T, bool), np.random.default_rng(0), cfg)
    smile = a2[:, CH["mouthSmileLeft"]]
    assert smile[:55].max() == 0 and smile[60:85].min() > 0.3  # 10 frames (0.4 s) later
    np.testing.assert_array_equal(b2, b)  # the partner (speaking all along) echoes nothing
    a3, _ = mimic(a, b, np.ones(T, bool), np.ones(T, bool), np.random.default_rng(0), cfg)
    assert a3[:, CH["mouthSmileLeft"]].max() < 0.01  # a speaker does not echo


def test_listener_mirrors_partner_head_posture_closely():
    """A listener follows the speaker's slow head drift (what head rPCC measures), not its jiggle."""
    from model_runtime.head_sway import sway_noise
    from training.animator import mimic

    T, fps = 1500, 25.0
    a = np.zeros((T, 55), np.float32)
    b = np.zeros((T, 55), np.float32)
    for j, k in enumerate(("headYaw", "headPitch", "headRoll")):
        b[:, CH[k]] = sway_noise(1, T, fps)[:, j] * 0.05
    a2, _ = mimic(a, b, np.zeros(T, bool), np.ones(T, bool), np.random.default_rng(0))
    for k in ("headYaw", "headPitch", "headRoll"):
        x, y = a2[:, CH[k]], b[:, CH[k]]
        assert np.corrcoef(x, y)[0, 1] > 0.4, k
        assert x.std() > 0.3 * y.std(), k  # a visible echo, not a token one
        # smoothed: relative to its size, the echo is calmer frame to frame than its source
        assert np.abs(np.diff(x)).mean() / x.std() < 0.8 * np.abs(np.diff(y)).mean() / y.std(), k


def test_head_sway_is_the_given_noise_scaled_by_the_voice():
    """The network is given the sway noise the targets were made with: flipping it flips the sway,
    larger while speaking, and touches nothing but the head."""
    from model_runtime.head_sway import sway_noise

    n = int(12 * FPS)
    me = Person(_syllables(0.5, 18), turn_starts=[0.5])  # speaks 0.5-5.9 s, then listens
    z = sway_noise(5, n, FPS)
    a = animate(me, Person([]), n, np.random.default_rng(4), sway=z)
    b = animate(me, Person([]), n, np.random.default_rng(4), sway=-z)
    head = [CH["headYaw"], CH["headPitch"], CH["headRoll"]]
    np.testing.assert_array_equal(a[:, :52], b[:, :52])
    diff = (a - b)[:, head] / 2  # the sway part alone
    assert (diff * z >= -1e-7).all()  # the noise times a non-negative envelope the voice sets
    for j in range(3):
        assert np.corrcoef(diff[:, j], z[:, j])[0, 1] > 0.8
    speaking, listening = slice(int(1 * FPS), int(5 * FPS)), slice(int(8 * FPS), n)
    assert np.abs(diff[speaking]).mean() > 2 * np.abs(diff[listening]).mean()
