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
