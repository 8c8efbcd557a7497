"""The optional wav2vec 2.0 audio encoder (torch backend): loads a local checkpoint folder and
matches the reference implementation, in both layer-norm layouts."""

import json

import numpy as np
import pytest
import torch

from model_runtime.audio import Track
from model_runtime.backends import TorchBackend
from model_runtime.config import DualTalkConfig
from model_runtime.inference import Predictor
from model_runtime.model_file import save_checkpoint
from model_runtime.net import DualTalk
from model_runtime.net.wav2vec2 import load_wav2vec2
from tests.conftest import speechlike

transformers = pytest.importorskip("transformers", reason="reference wav2vec 2.0 (transformers) not installed")


def tiny_checkpoint(folder, stable):
    cfg = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                                      num_conv_pos_embedding_groups=4, do_stable_layer_norm=stable,
                                      feat_extract_norm="layer" if stable else "group", conv_bias=stable)
    torch.manual_seed(0)
    ref = transformers.Wav2Vec2Model(cfg).eval()
    ref.save_pretrained(folder, safe_serialization=False)
    return ref


@pytest.mark.parametrize("stable", [False, True])
def test_matches_the_reference_implementation(tmp_path, stable):
    ref = tiny_checkpoint(tmp_path, stable)
    ours = load_wav2vec2(tmp_path)
    wave = torch.from_numpy(speechlike(1.0)[None])
    with torch.no_grad():
        expect = ref(wave).last_hidden_state
        got = ours(wave)
    assert got.shape == expect.shape == (1, 49, 32)
    assert (got - expect).abs().max() < 1e-4


def test_torch_backend_predicts_with_wav2vec2(tmp_path):
    tiny_checkpoint(tmp_path / "w2v", stable=False)
    cfg = DualTalkConfig(audio_encoder="wav2vec2", wav2vec2_checkpoint=str(tmp_path / "w2v"))
    save_checkpoint(tmp_path / "m.pt", DualTalk(cfg).eval(), trained=False)
    pred = Predictor(TorchBackend(tmp_path / "m.pt", "cpu"))
    res = pred.predict(Track(speechlike(9.0), "a.wav"), Track(speechlike(9.0, seed=3), "b.wav"), None, 24.0)
    assert res.weights.shape == (216, 55) and np.isfinite(res.weights).all()
    assert json.loads(cfg.to_json())["audio_encoder"] == "wav2vec2"
