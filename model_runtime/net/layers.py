"""Small building blocks written out by hand so the ONNX export has a dynamic time axis.

(torch.nn.TransformerEncoder bakes window shapes into the legacy ONNX graph.)
Shapes: B batch, T frames, D width.
"""

import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    """Attention between two streams of the same frames, with a time-distance bias per head.

    Content alone cannot tell frame t from frame t+50 (the keys carry no position), so without
    the bias a nod of the partner's at one moment reaches every frame alike and the timing of
    listening behaviour is lost. Each head subtracts slope * |t - s| (frames) from its logits
    (ALiBi, non-causal): steep heads look at the moment, a zero slope looks at the whole window.
    Relative, so windows cut anywhere in a conversation see the same network."""

    def __init__(self, dim, heads, time_slopes, dropout=0.0):
        super().__init__()
        assert dim % heads == 0 and len(time_slopes) == heads
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.register_buffer("time_slopes", torch.tensor(time_slopes, dtype=torch.float32).reshape(heads, 1, 1),
                             persistent=False)

    def forward(self, x, context=None):
        # x (B, T, D), context (B, T, D) frame-aligned with x -> (B, T, D); non-causal, no
        # padding masks (full windows)
        context = x if context is None else context
        b, t = x.shape[0], x.shape[1]
        q = self.q(x).reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(context).reshape(b, t, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        frame = torch.cumsum(torch.ones_like(x[0, :, 0]), 0)  # (T,): 1..T, dynamic in the ONNX graph
        distance = (frame[:, None] - frame[None, :]).abs()  # (T, T)
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) - self.time_slopes * distance
        att = torch.softmax(logits, dim=-1)  # (B, H, T, T)
        y = (self.drop(att) @ v).transpose(1, 2).reshape(b, t, self.heads * self.head_dim)
        return self.out(y)


class FeedForward(nn.Sequential):
    def __init__(self, dim, mult, dropout):
        super().__init__(nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(dim * mult, dim))


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder layer."""

    def __init__(self, dim, heads, time_slopes, ff_mult, dropout):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, time_slopes, dropout=dropout)
        self.ff = FeedForward(dim, ff_mult, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.ff(self.norm2(x)))


class DecoderBlock(nn.Module):
    """Pre-norm transformer decoder layer: self-attention, cross-attention to memory, FF."""

    def __init__(self, dim, heads, time_slopes, ff_mult, dropout):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = MultiHeadAttention(dim, heads, time_slopes, dropout=dropout)
        self.cross_attn = MultiHeadAttention(dim, heads, time_slopes, dropout=dropout)
        self.ff = FeedForward(dim, ff_mult, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, memory):
        x = x + self.drop(self.self_attn(self.norm1(x)))
        x = x + self.drop(self.cross_attn(self.norm2(x), memory))
        return x + self.drop(self.ff(self.norm3(x)))


class ConvPosition(nn.Module):
    """Relative position by a depthwise conv over time (as wav2vec 2.0 does): (B, T, D) -> same."""

    def __init__(self, dim, kernel):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)

    def forward(self, x):
        return x + torch.nn.functional.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)
