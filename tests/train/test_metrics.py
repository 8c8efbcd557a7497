"""Metrics on inputs whose answers are known in closed form."""

import math

import numpy as np
import pytest

from model_runtime.channels import CHANNELS
from training import metrics as M

JAW = CHANNELS.index("jawOpen")


def test_mse_known():
    assert M.mse(np.zeros((4, 3)), np.full((4, 3), 2.0)) == pytest.approx(4.0)


def test_frechet_identical_is_zero_and_mean_shift_is_squared_distance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 3))
    assert M.frechet(x, x) == pytest.approx(0.0, abs=1e-6)
    # Same covariance, means 0.5 apart in each of 3 dims -> 3 * 0.25.
    assert M.frechet(x + 0.5, x) == pytest.approx(0.75, abs=1e-6)


def test_frechet_1d_gaussians_is_squared_std_difference():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((20000, 1))
    z = (z - z.mean()) / z.std(ddof=1)
    # N(0, 1) vs N(0, 9): (sigma1 - sigma2)^2 = 4.
    assert M.frechet(z, 3 * z) == pytest.approx(4.0, rel=1e-6)


def test_pearson_and_rpcc():
    t = np.linspace(0, 10, 500)
    a = np.sin(t)[:, None]
    assert M.pearson(a[:, 0], 2 * a[:, 0] + 1) == pytest.approx(1.0)
    assert M.pearson(a[:, 0], -a[:, 0]) == pytest.approx(-1.0)
    assert M.pearson(a[:, 0], np.ones(500)) == 0.0  # constant: no linear relation
    partner = a
    assert M.rpcc(a, a, partner) == pytest.approx(0.0)
    # gt correlates +1 with the partner, pred -1: residual 2.
    assert M.rpcc(-a, a, partner) == pytest.approx(2.0)
    # A frozen prediction has correlation 0: residual = |corr(gt, partner)| = 1.
    assert M.rpcc(np.zeros_like(a), a, partner) == pytest.approx(1.0)


def test_sid_zero_for_static_and_log2k_for_uniform_clusters():
    rng = np.random.default_rng(2)
    k = 8
    centres_true = np.eye(k) * 10
    ref = np.repeat(centres_true, 50, axis=0) + rng.normal(0, 0.1, (k * 50, k))
    centres = M.kmeans(ref, k, seed=0)
    assert M.sid(ref, centres) == pytest.approx(math.log2(k), abs=1e-9)
    assert M.sid(np.repeat(ref[:1], 100, axis=0), centres) == 0.0
    # Two clusters used equally: exactly one bit.
    two = np.concatenate([np.repeat(centres_true[:1], 30, 0), np.repeat(centres_true[1:2], 30, 0)])
    assert M.sid(two, centres) == pytest.approx(1.0)


def test_kmeans_is_deterministic():
    x = np.random.default_rng(3).standard_normal((300, 4))
    np.testing.assert_array_equal(M.kmeans(x, 5, seed=7), M.kmeans(x, 5, seed=7))


def test_lipsync_leakage_and_blink_rate_known_values():
    T = 1500  # 60 s at 25 fps
    speaking = np.zeros(T, bool)
    speaking[:500] = True
    partner = np.zeros(T, bool)
    partner[500:1000] = True
    m = np.zeros((T, 55), np.float32)
    m[:500, JAW] = 0.5
    m[500:1000, JAW] = 0.1
    assert M.leakage(m, speaking, partner) == pytest.approx(0.2)
    gt = m.copy()
    gt[:500, JAW] = np.abs(np.sin(np.arange(500) / 5))
    assert M.lipsync(gt, gt, speaking) == pytest.approx(1.0)
    assert M.lipsync(-gt, gt, speaking) == pytest.approx(-1.0)
    # 20 blinks of 5 frames in 60 s -> 20 per minute; a 3-frame dip below 0.5 is not a blink.
    b = np.zeros((T, 55), np.float32)
    for k in range(20):
        b[k * 70 + 10: k * 70 + 15, M.BLINK] = 0.9
    b[1450:1453, M.BLINK] = 0.4
    assert M.blink_count(b) == 20
    assert M.blink_rate(b, 25.0) == pytest.approx(20.0)


def test_evaluate_perfect_prediction(tts_conversation):
    c = tts_conversation
    ref = c.targets_a[c.speaking_b & ~c.speaking_a]
    centres = M.fit_sid_centres(np.concatenate([ref, c.targets_b]), seed=0)
    r = M.evaluate(c.targets_a, c.targets_a, c.targets_b, c.speaking_a, c.speaking_b, sid_centres=centres)
    assert r["mse_mouth_jaw_all"] == 0.0 and r["mse_head_all"] == 0.0
    assert r["fd_mouth_jaw_all"] == pytest.approx(0.0, abs=1e-4)
    assert r["rpcc_mouth_jaw"] == pytest.approx(0.0, abs=1e-9)
    assert r["lipsync"] == pytest.approx(1.0)
    assert r["leakage"] < 0.2  # the animator's listener mouth rests
    assert "sid_mouth_jaw_listen" in r and r["sid_mouth_jaw_listen"] >= 0
    # A frozen prediction is punished on FD and lip sync.
    frozen = np.repeat(c.targets_a.mean(0, keepdims=True), len(c.targets_a), 0)
    r2 = M.evaluate(frozen, c.targets_a, c.targets_b, c.speaking_a, c.speaking_b)
    assert r2["fd_mouth_jaw_all"] > 0.01 and r2["lipsync"] == 0.0
    mean = M.mean_metrics([r, r2, {"lipsync": float("nan")}])
    assert mean["lipsync"] == pytest.approx(0.5)


def test_energy_baseline_opens_jaw_on_loud_frames():
    audio = np.zeros(16000 * 4, np.float32)
    audio[16000:32000] = 0.3 * np.sin(np.arange(16000) * 0.2)  # loud second 1..2
    audio += np.random.default_rng(0).normal(0, 1e-4, len(audio)).astype(np.float32)
    y = M.energy_baseline(audio, 100)
    assert y.shape == (100, 55)
    assert y[30:45, JAW].min() > 0.5 and y[:20, JAW].max() < 0.05 and y[60:, JAW].max() < 0.05
    assert np.abs(np.delete(y, JAW, axis=1)).max() == 0


def test_evaluate_conversations_ground_truth_vs_baseline(tts_conversation):
    c = tts_conversation
    gt = M.evaluate_conversations([c], lambda own, partner, pm, n: (c.targets_a if own is c.audio_a
                                                                     else c.targets_b))
    assert gt["lipsync"] == pytest.approx(1.0) and gt["mse_mouth_jaw_all"] == 0.0
    assert gt["rpcc_head"] == pytest.approx(0.0, abs=1e-9)
    base = M.evaluate_conversations([c], lambda own, partner, pm, n: M.energy_baseline(own, n))
    # The baseline follows loudness, so it lip-syncs somewhat but leaks the partner's bleed.
    assert 0.1 < base["lipsync"] < 1.0
    assert base["leakage"] > gt["leakage"]
    assert base["sid_eyes_brows_listen"] < 0.5  # frozen eyes while listening: no diversity
