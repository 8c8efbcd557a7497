"""Dual-speaker interaction module: a transformer encoder over [own audio || enhanced partner]."""

import torch
from torch import nn

from .layers import ConvPosition, EncoderBlock


class DualSpeakerInteraction(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = 2 * cfg.width
        self.position = ConvPosition(d, cfg.pos_kernel)
        self.blocks = nn.ModuleList(EncoderBlock(d, cfg.heads, cfg.time_slopes, cfg.ff_mult, cfg.dropout)
                                    for _ in range(cfg.interaction_layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, own_audio, partner):
        # (B, T, W), (B, T, W) -> (B, T, 2W)
        x = self.position(torch.cat([own_audio, partner], dim=-1))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
