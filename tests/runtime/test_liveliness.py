import numpy as np
import pytest

from model_runtime.channels import CHANNELS
from model_runtime.liveliness import add_liveliness, voice_activity
from tests.conftest import run_runtime

FPS = 25.0
BLINK = [CHANNELS.index("eyeBlinkLeft"), CHANNELS.index("eyeBlinkRight")]
EYES = [i for i, c in enumerate(CHANNELS) if c.startswith("eyeLook")]
HEAD = [52, 53, 54]
MOUTH = [i for i, c in enumerate(CHANNELS) if c.startswith(("jaw", "mouth"))]


def blinks(curves):
    b, n, armed = curves[:, BLINK].mean(1), 0, True
    for v in b:
        if armed and v >= 0.5:
            n, armed = n + 1, False
        elif v < 0.25:
            armed = True
    return n


def flat(minutes):
    w = np.zeros((int(minutes * 60 * FPS), 55), np.float32)
    w[:, BLINK] = 0.05
    return w


@pytest.mark.parametrize("speaking,rate", [(False, 26.0), (True, 18.0)])
def test_blinks_at_human_rates(speaking, rate):
    minutes = 20
    out = add_liveliness(flat(minutes), np.full(int(minutes * 60 * FPS), speaking), FPS, seed=1)
    assert blinks(out) / minutes == pytest.approx(rate, rel=0.2)


def test_same_seed_same_face_other_seed_other_face():
    w, speaking = flat(1), np.zeros(1500, bool)
    a, b, c = (add_liveliness(w, speaking, FPS, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1


def test_the_networks_own_blinks_are_kept_not_doubled():
    w = flat(2)
    period = int(4 * FPS)  # the network already blinks every 4 s
    for t in range(10, len(w) - 10, period):
        w[t:t + 5, BLINK] = 1.0
    out = add_liveliness(w, np.zeros(len(w), bool), FPS, seed=0)
    added = np.flatnonzero((out[:, BLINK].mean(1) > 0.5) & (w[:, BLINK].mean(1) < 0.5))
    near = [min(abs(t - s) for s in range(10, len(w) - 10, period)) for t in added]
    assert all(d >= 0.6 * FPS - 5 for d in near)  # none inside a network blink's refractory time


def test_eyes_and_head_never_freeze_and_the_mouth_is_untouched():
    w = flat(1)
    w[:, MOUTH] = np.random.default_rng(0).random((len(w), len(MOUTH))) * 0.3
    out = add_liveliness(w, np.zeros(len(w), bool), FPS, seed=2)
    np.testing.assert_array_equal(out[:, MOUTH], w[:, MOUTH])
    assert 0.0 <= out[:, :52].min() and out[:, :52].max() <= 1.0
    gaze_steps = (np.abs(np.diff(out[:, EYES], axis=0)).max(1) > 0.01).sum()
    assert gaze_steps >= 10  # ~20 gaze shifts a minute while listening
    for s in range(0, len(w) - 250, 250):  # every 10 s of the head moves
        assert out[s:s + 250, HEAD].std(0).max() > 1e-3


def test_voice_activity_tells_own_voice_from_bleed():
    rng = np.random.default_rng(0)
    sr, spf = 16000, 640
    own = np.concatenate([0.2 * rng.standard_normal(sr * 2), 0.02 * rng.standard_normal(sr * 2)])
    partner = np.concatenate([0.02 * rng.standard_normal(sr * 2), 0.2 * rng.standard_normal(sr * 2)])
    vad = voice_activity(own.astype(np.float32), partner.astype(np.float32), 100, spf)
    assert vad[:48].all() and not vad[52:].any()


def test_cli_liveliness_switch(tmp_path, random_model, voice_pair):
    outs = {}
    for mode in ("on", "off"):
        out = tmp_path / f"{mode}.npz"
        r = run_runtime("predict", "--self", voice_pair[0], "--partner", voice_pair[1], "--model", random_model,
                        "--liveliness", mode, "--out", out)
        assert r.returncode == 0, r.stderr
        outs[mode] = np.load(out)["weights"]
    np.testing.assert_array_equal(outs["on"][:, MOUTH], outs["off"][:, MOUTH])
    assert np.abs(outs["on"][:, EYES + HEAD] - outs["off"][:, EYES + HEAD]).max() > 1e-3
