"""Audio encoders: speech -> one feature vector per animation frame (25 fps).

LogMelEncoder is the default (light, learned from scratch). Wav2Vec2Encoder is the paper's
choice, loaded from a local checkpoint; it runs in the torch backend only.
"""

import torch
from torch import nn


class ResidualConv(nn.Module):
    """x + pointwise(gelu(conv_k3(x))) over (B, W, T). The pointwise layer starts at zero, so a block
    added to trained weights starts as the identity and fine-tuning begins where the model was."""

    def __init__(self, width, dilation, expand=2):
        super().__init__()
        self.conv = nn.Conv1d(width, expand * width, 3, padding=dilation, dilation=dilation)
        self.point = nn.Conv1d(expand * width, width, 1)
        nn.init.zeros_(self.point.weight)
        nn.init.zeros_(self.point.bias)

    def forward(self, x):
        return x + self.point(torch.nn.functional.gelu(self.conv(x)))


class LogMelEncoder(nn.Module):
    """(B, 4T, n_mels) log-mel -> (B, T, W). Two stride-2 convs bring 100 Hz to 25 Hz, then
    cfg.audio_blocks residual conv blocks (dilations 1, 2, 4, ...) add depth per frame."""

    def __init__(self, cfg):
        super().__init__()
        w = cfg.width
        assert cfg.mel_frames_per_frame == 4, "two stride-2 convs assume 4 mel frames per frame"
        self.mean, self.std = cfg.mel_mean, cfg.mel_std
        self.convs = nn.Sequential(
            nn.Conv1d(cfg.n_mels, w, 3, padding=1), nn.GELU(),
            nn.Conv1d(w, w, 4, stride=2, padding=1), nn.GELU(),  # 100 -> 50 Hz
            nn.Conv1d(w, w, 4, stride=2, padding=1), nn.GELU(),  # 50 -> 25 Hz
        )
        self.blocks = nn.Sequential(*(ResidualConv(w, 2 ** i) for i in range(cfg.audio_blocks)))
        self.context = nn.Conv1d(w, w, 5, padding=2)  # +-80 ms of context per frame
        self.norm = nn.LayerNorm(w)

    def forward(self, mel):
        x = ((mel - self.mean) / self.std).transpose(1, 2)  # (B, n_mels, 4T)
        x = self.blocks(self.convs(x))  # (B, W, T)
        x = x + torch.nn.functional.gelu(self.context(x))
        return self.norm(x.transpose(1, 2))  # (B, T, W)


class Wav2Vec2Encoder(nn.Module):
    """(B, N) 16 kHz waveform -> (B, T, W) through wav2vec 2.0 from a local checkpoint folder.

    Its 50 Hz hidden states are resampled to the animation rate by linear interpolation, as
    DualTalk does. The backbone is fine-tuned with the rest unless frozen by the trainer.
    """

    def __init__(self, cfg, checkpoint):
        super().__init__()
        from .wav2vec2 import load_wav2vec2

        if not checkpoint:
            raise FileNotFoundError("audio_encoder='wav2vec2' needs wav2vec2_checkpoint: a local folder")
        self.backbone = load_wav2vec2(checkpoint)
        self.proj = nn.Linear(self.backbone.config["hidden_size"], cfg.width)
        self.norm = nn.LayerNorm(cfg.width)
        self.samples_per_frame = cfg.samples_per_frame

    def forward(self, wave):
        # Per-window zero-mean unit-variance input, as wav2vec 2.0's feature extractor expects.
        wave = (wave - wave.mean(dim=1, keepdim=True)) / (wave.std(dim=1, keepdim=True) + 1e-5)
        hidden = self.backbone(wave)  # (B, S, H) at 50 Hz
        frames = wave.shape[1] // self.samples_per_frame
        hidden = torch.nn.functional.interpolate(hidden.transpose(1, 2), size=frames, mode="linear",
                                                 align_corners=True).transpose(1, 2)
        return self.norm(self.proj(hidden))
