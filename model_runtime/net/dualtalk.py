"""DualTalk assembled: joint encoder -> temporal enhancer -> interaction -> expressive synthesis."""

from torch import nn

from .interaction import DualSpeakerInteraction
from .joint_encoder import DualSpeakerJointEncoder
from .synthesis import ExpressiveSynthesis
from .temporal_enhancer import CrossModalTemporalEnhancer


class DualTalk(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.joint_encoder = DualSpeakerJointEncoder(cfg)
        self.temporal_enhancer = CrossModalTemporalEnhancer(cfg)
        self.interaction = DualSpeakerInteraction(cfg)
        self.synthesis = ExpressiveSynthesis(cfg)

    def forward(self, self_audio, partner_audio, partner_motion, motion_known, head_noise):
        """self_audio, partner_audio: (B, 4T, n_mels) log-mel (or (B, N) wave for wav2vec2);
        partner_motion: (B, T, 55); motion_known: (B, T, 1) 1 where the partner's face is known;
        head_noise: (B, T, 3) seeded sway noise (head_sway.sway_noise; zeros: the mean take).
        Returns (B, T, 55)."""
        a_self, a_partner, m_partner = self.joint_encoder(self_audio, partner_audio, partner_motion,
                                                          motion_known)
        partner = self.temporal_enhancer(a_partner, m_partner)
        context = self.interaction(a_self, partner)
        return self.synthesis(a_self, context, head_noise)
