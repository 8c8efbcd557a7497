"""Training windows: shapes the network takes, exact log-mel slicing, partner drops."""

import numpy as np
import pytest
import torch
from train_helpers import needs_flite, small_config

from model_runtime.config import DualTalkConfig
from model_runtime.features import LogMel, MelConfig, mel_edges_hz
from model_runtime.net import DualTalk
from training import conversation as C
from training.dataset import ConversationWindows, WindowConfig, warp_for, warp_mel, window_mel


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


@pytest.mark.parametrize("alpha", [0.9, 1.1])
def test_warp_mel_moves_formants_and_keeps_silence(alpha):
    """A tone's log-mel peak moves to the filter nearest alpha times its frequency; silence stays at
    the floor; alpha 1 is the identity."""
    cfg = MelConfig()
    t = np.arange(16000) / 16000
    tone = np.concatenate([0.3 * np.sin(2 * np.pi * 1000.0 * t), np.zeros(16000)]).astype(np.float32)
    mel = LogMel(cfg)(tone)
    centres = mel_edges_hz(cfg)[1:-1]
    warped = warp_mel(mel, alpha, cfg)
    assert warped.shape == mel.shape and warp_mel(mel, 1.0, cfg) is mel
    peak = centres[int(np.argmax(warped[50]))]
    spacing = np.diff(centres)[np.searchsorted(centres, 1000.0 * alpha)]  # about 55 Hz here
    assert abs(peak - 1000.0 * alpha) <= spacing, (peak, alpha)
    assert abs(centres[int(np.argmax(mel[50]))] - 1000.0) < abs(peak - 1000.0)  # it did move
    np.testing.assert_allclose(warped[-20:], np.log(cfg.floor), rtol=1e-6)


def test_warp_off_draws_nothing():
    """Off (the default), no random number is drawn, so the other augmentations' draws, and so a
    training run without it, are unchanged."""
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert warp_for(a, WindowConfig()) == 1.0 and warp_for(None, WindowConfig(warp=(0.9, 1.1))) == 1.0
    assert a.random() == b.random()
    assert 0.9 <= warp_for(a, WindowConfig(warp=(0.9, 1.1))) <= 1.1


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
