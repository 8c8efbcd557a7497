"""Expressive synthesis module: transformer decoder, adaptive modulation, linear head.

The head angles are mu + sigma * z: mu and sigma from the decoder (the voice sets where the head
goes and how much it sways), z the seeded band-limited sway noise (model_runtime/head_sway.py).
A squared-error network given no z learns the mean of the sway, a still head; given z, the
training target is a function of its inputs again and the sway keeps its full size."""

import torch
from torch import nn

from ..head_sway import SWAY_AXES
from .layers import ConvPosition, DecoderBlock


class ExpressiveSynthesis(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = 2 * cfg.width
        # The speaker's own audio queries the dyadic context: lip sync stays tied to the own
        # voice while the memory carries listening and turn-taking.
        self.query = nn.Linear(cfg.width, d)
        self.position = ConvPosition(d, cfg.pos_kernel)
        self.blocks = nn.ModuleList(DecoderBlock(d, cfg.heads, cfg.time_slopes, cfg.ff_mult, cfg.dropout)
                                    for _ in range(cfg.synthesis_layers))
        self.norm = nn.LayerNorm(d)
        self.modulation = nn.Linear(d, d)
        self.alpha = cfg.modulation_alpha
        self.head = nn.Linear(d, cfg.num_channels)
        self.sway = nn.Linear(d, SWAY_AXES)  # sigma per head axis, in head units, before softplus
        self.num_weights, self.max_angle = cfg.num_weights, cfg.max_head_angle
        self.head_unit = cfg.head_unit_rad  # one unit of the linear head's output = this many radians

    def forward(self, own_audio, context, head_noise):
        # (B, T, W), (B, T, 2W), (B, T, 3) -> (B, T, 55): weights in [0, 1], head angles in radians
        x = self.position(self.query(own_audio))
        for block in self.blocks:
            x = block(x, context)
        x = self.norm(x)
        x = x + self.alpha * torch.sigmoid(self.modulation(x))  # adaptive modulation (paper)
        y = self.head(x)
        weights = torch.sigmoid(y[..., :self.num_weights])
        return torch.cat([weights, self.head_angles(x, y[..., self.num_weights:], head_noise)], dim=-1)

    def head_angles(self, x, mu, head_noise):
        """(B, T, 2W) features, (B, T, 3) mu in head units, (B, T, 3) z -> (B, T, 3) radians, bounded.
        Its own method so that training can rerun the head alone on features it holds fixed."""
        head = mu + torch.nn.functional.softplus(self.sway(x)) * head_noise  # head units
        return torch.tanh(head * (self.head_unit / self.max_angle)) * self.max_angle
