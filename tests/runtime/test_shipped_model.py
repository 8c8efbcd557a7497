"""The shipped model (assets/): loads by default, is marked trained, is small, and on real voices
moves the mouth with the character's own speech and rests it while the partner talks."""

import json

import numpy as np
import pytest
import soundfile as sf

from model_runtime.audio import load_audio
from model_runtime.channels import CHANNELS
from model_runtime.model_file import SHIPPED_MODEL
from tests.conftest import run_runtime

pytestmark = pytest.mark.skipif(not SHIPPED_MODEL.exists(), reason="no trained model shipped in assets/ yet")


def test_shipped_model_is_the_default_and_is_trained():
    info = json.loads(run_runtime("info").stdout)
    assert info["trained"] is True and info["model"].endswith(SHIPPED_MODEL.name)
    assert SHIPPED_MODEL.stat().st_size < 30e6
    card = (SHIPPED_MODEL.parent / "MODEL_CARD.md").read_text()
    assert "synthetic conversations" in card and "speaker-only ablation" in card


def test_real_voices_turn_taking(tmp_path, shared_dir):
    """A speaks 0-8 s, B speaks 8-16 s: A's mouth moves in the first half and rests in the second."""
    files = sorted((shared_dir / "data/librispeech/librispeech_test-other").rglob("*.flac"))
    a, b = load_audio(files[0]).samples[:8 * 16000], load_audio(files[12]).samples[:8 * 16000]
    a, b = np.pad(a, (0, 8 * 16000 - len(a))), np.pad(b, (0, 8 * 16000 - len(b)))
    silence = np.zeros(8 * 16000, np.float32)
    self_track = np.concatenate([a, silence + 0.05 * b])  # the partner bleeds into A's microphone
    partner_track = np.concatenate([0.05 * a, b])
    sf.write(tmp_path / "a.wav", self_track, 16000)
    sf.write(tmp_path / "b.wav", partner_track, 16000)
    r = run_runtime("predict", "--self", tmp_path / "a.wav", "--partner", tmp_path / "b.wav", "--fps", 25,
                    "--out", tmp_path / "a.npz")
    assert r.returncode == 0, r.stderr
    w = np.load(tmp_path / "a.npz")["weights"]
    jaw = w[:, CHANNELS.index("jawOpen")]
    speaking, listening = jaw[25:175].mean(), jaw[225:375].mean()
    assert speaking > 2.5 * listening, (speaking, listening)
    assert jaw[25:175].std() > 0.03  # the mouth moves with the syllables, not a held pose
    for lo in range(0, 375, 125):  # head and eyes never freeze for 5 s
        assert w[lo:lo + 125, 52:].std(0).max() > 1e-3


@pytest.fixture(scope="module")
def real_take(shared_dir):
    """16 s of one held-out real speaker (two utterances) and silence as the partner."""
    files = sorted((shared_dir / "data/librispeech/librispeech_test-other").rglob("*.flac"))
    x = np.concatenate([load_audio(f).samples for f in files[3:5]])[:16 * 16000]
    return x / np.abs(x).max() * 10 ** (-6 / 20)  # -6 dBFS peak


def _predict(x, seed=0, liveliness=False):
    from model_runtime.audio import Track
    from model_runtime.backends import OnnxBackend
    from model_runtime.inference import Predictor

    pred = Predictor(OnnxBackend(SHIPPED_MODEL, "cpu"))
    return pred.predict(Track(x.astype(np.float32), "take"), None, None, 25.0, liveliness=liveliness, seed=seed).weights


def test_a_quiet_take_moves_the_mouth_as_the_loud_one(real_take):
    """Each track is read at its own speech level: 30 dB quieter (v4 lost its lip sync there) gives the
    same mouth, while pure silence stays still."""
    loud, quiet = _predict(real_take), _predict(real_take * 10 ** (-30 / 20))
    jaw = CHANNELS.index("jawOpen")
    assert np.corrcoef(loud[:, jaw], quiet[:, jaw])[0, 1] > 0.95
    assert abs(quiet[:, jaw].std() / loud[:, jaw].std() - 1) < 0.1
    silent = _predict(np.zeros_like(real_take))
    assert silent[:, jaw].max() < 0.5 * loud[:, jaw].std() + loud[:, jaw].min()


def test_the_seed_gives_another_head_of_the_same_size_and_the_same_mouth(real_take):
    a, b = _predict(real_take, seed=0), _predict(real_take, seed=1)
    np.testing.assert_allclose(a[:, :52], b[:, :52], atol=1e-5)
    head = slice(52, 55)
    spread = lambda w: float(np.sqrt(w[:, head].var(0).sum()))
    assert spread(a) > 0.03 and spread(b) > 0.03  # v4's speaking head: 0.014 rad (the animator's 0.06)
    assert 0.67 < spread(a) / spread(b) < 1.5
    r = np.mean([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(52, 55)])
    assert r < 0.8  # another take, not the same one
