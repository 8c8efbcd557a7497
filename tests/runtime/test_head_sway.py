"""The seeded head sway (model_runtime/head_sway.py) and the network's mu + sigma * z head."""

import numpy as np
import pytest

from model_runtime.channels import HEAD, index_of
from model_runtime.head_sway import SWAY_BAND_HZ, sway_noise


def test_sway_is_a_pure_function_of_the_seed_with_unit_size():
    a, b, c = sway_noise(3, 3000, 25.0), sway_noise(3, 3000, 25.0), sway_noise(4, 3000, 25.0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3000, 3) and a.dtype == np.float32
    assert np.abs(a - c).mean() > 0.5  # another seed, another take
    np.testing.assert_allclose(a.std(0), 1.0, atol=1e-4)
    np.testing.assert_allclose(a.mean(0), 0.0, atol=1e-4)
    assert np.abs(np.corrcoef(a.T)[np.triu_indices(3, 1)]).max() < 0.2  # the axes move independently


def test_sway_power_lies_in_its_band():
    z = sway_noise(0, 25 * 600, 25.0)[:, 0]
    f = np.fft.rfftfreq(len(z), 1 / 25.0)
    p = np.abs(np.fft.rfft(z)) ** 2
    lo, hi = SWAY_BAND_HZ
    inside = p[(f >= lo / 2) & (f <= hi * 2)].sum() / p.sum()
    assert inside > 0.95
    assert p[f > 3.0].sum() / p.sum() < 1e-3  # no jitter: nods and beats are the network's own


@pytest.mark.parametrize("n", [0, 1, 2, 7])
def test_short_tracks(n):
    z = sway_noise(0, n, 25.0)
    assert z.shape == (n, 3) and np.isfinite(z).all()


def test_the_seed_moves_the_head_and_never_the_mouth(random_model):
    """Through the real predictor: z enters the head output only."""
    from model_runtime.audio import Track
    from model_runtime.backends import OnnxBackend
    from model_runtime.channels import NUM_ARKIT
    from model_runtime.inference import Predictor

    pred = Predictor(OnnxBackend(random_model, "cpu"))
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(16000 * 12) * 0.1).astype(np.float32)
    y = (rng.standard_normal(16000 * 12) * 0.1).astype(np.float32)
    run = lambda seed: pred.predict(Track(x, "a"), Track(y, "b"), None, 25.0, liveliness=False, seed=seed).weights
    a, a2, b = run(0), run(0), run(1)
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_allclose(a[:, :NUM_ARKIT], b[:, :NUM_ARKIT], atol=1e-6)
    head = index_of(HEAD)
    assert np.abs(a[:, head] - b[:, head]).max() > 1e-4
    # The windows see slices of one track-long noise: no seams where windows cross-fade.
    steps = np.abs(np.diff(a[:, head], axis=0)).max()
    assert steps < 0.05
