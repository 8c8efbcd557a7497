"""Shared fixtures: a random-weights model made by the real CLI, real audio files, ../shared.

The model is made in a subprocess so no test process has to import torch (the add-on tests
import bpy instead).
"""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from model_runtime.paths import ROOT as REPO
from model_runtime.paths import SHARED
from model_runtime.paths import runtime_pythonpath as runtime_env


def run_runtime(*args, timeout=300, **kw):
    """`python -m model_runtime ARGS` as other tools call it; returns CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "model_runtime", *map(str, args)], cwd=REPO,
                          env=runtime_env(), capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="session")
def random_model(tmp_path_factory):
    """Path of an untrained (random-weights) .onnx with its .pt sibling: never the shipped model."""
    d = tmp_path_factory.mktemp("model")
    pt, onnx = d / "random.pt", d / "random.onnx"
    for args in (("init", "--out", pt, "--seed", 0), ("export", "--checkpoint", pt, "--out", onnx)):
        r = run_runtime(*args)
        assert r.returncode == 0, r.stderr
    return onnx


@pytest.fixture(scope="session")
def shared_dir():
    if not (SHARED / "data").is_dir():
        pytest.skip(f"../shared is absent ({SHARED}): real data tests run in CI")
    return SHARED


def speechlike(seconds, sr=16000, seed=0, f0=140.0):
    """A voiced, syllable-rate-modulated signal with pauses: audio with the shape of speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None)
    phrases = (np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 6)) > -0.3).astype(float)
    return (0.2 * voice * syllables * phrases + 0.002 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture
def voice_pair(tmp_path):
    """Two real audio files: 12 s of 'speech' each, turns alternating."""
    a, b = tmp_path / "self.wav", tmp_path / "partner.wav"
    sf.write(a, speechlike(12.0, seed=1), 16000)
    sf.write(b, speechlike(12.0, seed=2, f0=210.0)[::-1].copy(), 16000)
    return a, b
