"""Dual-speaker joint encoder: one audio encoder per speaker, plus an MLP over partner motion."""

import torch
from torch import nn

from .audio_encoder import LogMelEncoder, Wav2Vec2Encoder


class DualSpeakerJointEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg.audio_encoder == "wav2vec2":
            self.self_audio = Wav2Vec2Encoder(cfg, cfg.wav2vec2_checkpoint)
            self.partner_audio = Wav2Vec2Encoder(cfg, cfg.wav2vec2_checkpoint)
        else:
            self.self_audio = LogMelEncoder(cfg)
            self.partner_audio = LogMelEncoder(cfg)
        w = cfg.width
        # Input: the partner's 55 channels and a per-frame "known" flag.
        self.motion_mlp = nn.Sequential(nn.Linear(cfg.num_channels + 1, w), nn.GELU(), nn.Linear(w, w))
        # "Partner face unknown" is its own learned state, never zeros pretending to be a still face.
        self.unknown_motion = nn.Parameter(torch.zeros(w))
        # Per-channel input scale: weights as they are, head angles in head units (see config).
        scale = torch.ones(cfg.num_channels)
        scale[cfg.num_weights:] = 1.0 / cfg.head_unit_rad
        self.register_buffer("motion_scale", scale, persistent=False)

    def forward(self, self_audio, partner_audio, partner_motion, motion_known):
        # audio (B, 4T, n_mels) or (B, N) wave; partner_motion (B, T, 55); motion_known (B, T, 1)
        a_self = self.self_audio(self_audio)  # (B, T, W)
        a_partner = self.partner_audio(partner_audio)  # (B, T, W)
        m = self.motion_mlp(torch.cat([partner_motion * self.motion_scale * motion_known, motion_known], dim=-1))
        m = m * motion_known + self.unknown_motion * (1.0 - motion_known)  # (B, T, W)
        return a_self, a_partner, m
