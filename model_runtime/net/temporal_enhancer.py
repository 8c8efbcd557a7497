"""Cross-modal temporal enhancer: partner audio attends to partner motion, then a BiLSTM."""

from torch import nn

from .layers import MultiHeadAttention


class CrossModalTemporalEnhancer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        w = cfg.width
        self.norm_q, self.norm_kv = nn.LayerNorm(w), nn.LayerNorm(w)
        self.cross_attn = MultiHeadAttention(w, cfg.heads, cfg.time_slopes, dropout=cfg.dropout)
        self.lstm = nn.LSTM(w, w // 2, num_layers=cfg.lstm_layers, batch_first=True,
                            bidirectional=True)
        self.norm_out = nn.LayerNorm(w)

    def forward(self, partner_audio, partner_motion):
        # (B, T, W), (B, T, W) -> (B, T, W)
        x = partner_audio + self.cross_attn(self.norm_q(partner_audio), self.norm_kv(partner_motion))
        y, _ = self.lstm(x)
        return self.norm_out(x + y)
