"""Training windows: shapes the network takes, exact log-mel slicing, partner drops."""

import numpy as np
import pytest
import torch
from train_helpers import needs_flite, small_config

from model_runtime.config import DualTalkConfig
from model_runtime.features import LogMel
from model_runtime.net import DualTalk
from training import conversation as C
from training.dataset import ConversationWindows, WindowConfig, window_mel


@pytest.mark.parametrize("f0", [0, 3, 57])
def test_window_mel_equals_slice_of_full_track(f0):
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(16000 * 5) * 0.1).astype(np.float32)
    lm = LogMel()
    full = lm(audio)
    w = window_mel(lm, audio, f0, 50, 640)
    want = full[f0 * 4: f0 * 4 + 200]
    np.testing.assert_allclose(w[: len(want)], want, rtol=1e-5, atol=1e-5)
    assert w.shape == (200, 80)


@needs_flite
def test_windows_feed_dualtalk(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "CACHE_DIR", tmp_path)
    cfg = small_config()
    ds = ConversationWindows("train", 2, seed=0, conv_cfg=cfg, win_cfg=WindowConfig(frames=100))
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["self_mel"].shape == (2, 400, 80) and batch["partner_motion"].shape == (2, 100, 55)
    assert batch["motion_known"].shape == (2, 100, 1) and batch["target"].shape == (2, 100, 55)
    net = DualTalk(DualTalkConfig()).eval()
    with torch.no_grad():
        out = net(batch["self_mel"], batch["partner_mel"], batch["partner_motion"], batch["motion_known"],
                  batch["sway"])
    assert out.shape == (2, 100, 55)
    # Deterministic for a given epoch, different across epochs.
    a, b = ds[0], ds[0]
    assert torch.equal(a["self_mel"], b["self_mel"]) and torch.equal(a["target"], b["target"])


@needs_flite
def test_partner_drops_and_eval_windows(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "CACHE_DIR", tmp_path)
    cfg = small_config()
    # A dropped partner track is digital silence even where every track also gets a room, mains
    # hum with DC and a narrow band: those would give a silent track energy.
    wc = WindowConfig(frames=100, drop_motion_prob=1.0, drop_partner_audio_prob=1.0, level_norm=True,
                      room_prob=1.0, mains_prob=1.0, band_prob=1.0)
    item = ConversationWindows("train", 1, conv_cfg=cfg, win_cfg=wc)[0]
    assert item["motion_known"].sum() == 0 and item["partner_motion"].abs().sum() == 0
    assert torch.allclose(item["partner_mel"], torch.full_like(item["partner_mel"], float(np.log(1e-5))))
    assert item["self_mel"].std() > 1.0  # the own track is still heard
    ev = ConversationWindows("train", 1, conv_cfg=cfg, win_cfg=WindowConfig(frames=100, eval_hop_frames=50),
                             train=False)
    items = [ev[k] for k in range(len(ev))]
    assert len(items) >= 4 and all(it["motion_known"].min() == 1 for it in items)
    conv = C.generate("train", 0, 0, cfg)
    np.testing.assert_array_equal(items[0]["target"].numpy(), conv.targets_a[:100])
