"""wav2vec 2.0, written out to load a local Hugging Face-format checkpoint without transformers.

A checkpoint is a folder with config.json and pytorch_model.bin (or model.safetensors when the
safetensors package is installed), as `save_pretrained` writes it, e.g. facebook/wav2vec2-base-960h
copied to the studio's disk. Both layouts are covered: post-norm ("base") and the stable
pre-norm layout of the large models. Nothing is ever downloaded.
"""

import json
import math
import os

import torch
from torch import nn
from torch.nn import functional as F


class FeatureEncoder(nn.Module):
    """(B, N) wave -> (B, S, C) at 50 Hz: seven strided convs."""

    def __init__(self, c):
        super().__init__()
        dims = [1] + list(c["conv_dim"])
        self.conv_layers = nn.ModuleList()
        self.layer_mode = c.get("feat_extract_norm", "group") == "layer"
        for i, (k, s) in enumerate(zip(c["conv_kernel"], c["conv_stride"])):
            layer = nn.Module()
            layer.conv = nn.Conv1d(dims[i], dims[i + 1], k, stride=s, bias=c.get("conv_bias", False))
            if self.layer_mode:
                layer.layer_norm = nn.LayerNorm(dims[i + 1])
            elif i == 0:
                layer.layer_norm = nn.GroupNorm(dims[1], dims[1])
            self.conv_layers.append(layer)

    def forward(self, wave):
        x = wave[:, None]
        for i, layer in enumerate(self.conv_layers):
            x = layer.conv(x)
            if self.layer_mode:
                x = layer.layer_norm(x.transpose(1, 2)).transpose(1, 2)
            elif i == 0:
                x = layer.layer_norm(x)
            x = F.gelu(x)
        return x.transpose(1, 2)


class EncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c.get("layer_norm_eps", 1e-5)
        self.heads = c["num_attention_heads"]
        self.attention = nn.Module()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.attention, name, nn.Linear(d, d))
        self.layer_norm = nn.LayerNorm(d, eps=eps)
        self.feed_forward = nn.Module()
        self.feed_forward.intermediate_dense = nn.Linear(d, c["intermediate_size"])
        self.feed_forward.output_dense = nn.Linear(c["intermediate_size"], d)
        self.final_layer_norm = nn.LayerNorm(d, eps=eps)
        self.pre_norm = bool(c.get("do_stable_layer_norm", False))

    def attend(self, x):
        a, (b, t, d) = self.attention, x.shape
        split = lambda y: y.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(a.q_proj(x)), split(a.k_proj(x)), split(a.v_proj(x))
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
        return a.out_proj((w @ v).transpose(1, 2).reshape(b, t, d))

    def ff(self, x):
        return self.feed_forward.output_dense(F.gelu(self.feed_forward.intermediate_dense(x)))

    def forward(self, x):
        if self.pre_norm:
            x = x + self.attend(self.layer_norm(x))
            return x + self.ff(self.final_layer_norm(x))
        x = self.layer_norm(x + self.attend(x))
        return self.final_layer_norm(x + self.ff(x))


class Wav2Vec2(nn.Module):
    """(B, N) 16 kHz wave -> (B, S, hidden) last hidden state, 50 Hz."""

    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c.get("layer_norm_eps", 1e-5)
        self.config = c
        self.feature_extractor = FeatureEncoder(c)
        self.feature_projection = nn.Module()
        self.feature_projection.layer_norm = nn.LayerNorm(c["conv_dim"][-1], eps=eps)
        self.feature_projection.projection = nn.Linear(c["conv_dim"][-1], d)
        self.encoder = nn.Module()
        k = c["num_conv_pos_embeddings"]
        self.encoder.pos_conv_embed = nn.Module()
        self.encoder.pos_conv_embed.conv = nn.Conv1d(d, d, k, padding=k // 2,
                                                     groups=c["num_conv_pos_embedding_groups"])
        self.encoder.layer_norm = nn.LayerNorm(d, eps=eps)
        self.encoder.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c["num_hidden_layers"]))
        self.pre_norm = bool(c.get("do_stable_layer_norm", False))
        self.even_kernel = k % 2 == 0

    def forward(self, wave):
        x = self.feature_projection.projection(self.feature_projection.layer_norm(self.feature_extractor(wave)))
        pos = self.encoder.pos_conv_embed.conv(x.transpose(1, 2))
        if self.even_kernel:  # "same" padding for an even kernel drops the last frame
            pos = pos[:, :, :-1]
        x = x + F.gelu(pos).transpose(1, 2)
        if not self.pre_norm:
            x = self.encoder.layer_norm(x)
        for layer in self.encoder.layers:
            x = layer(x)
        return self.encoder.layer_norm(x) if self.pre_norm else x


def _state_dict(folder):
    st = os.path.join(folder, "model.safetensors")
    if os.path.exists(st):
        from safetensors.torch import load_file

        return load_file(st)
    return torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu", weights_only=True)


def load_wav2vec2(folder):
    """A Wav2Vec2 from a local checkpoint folder (config.json + weights)."""
    folder = os.fspath(folder)
    with open(os.path.join(folder, "config.json")) as fh:
        model = Wav2Vec2(json.load(fh))
    sd = {}
    for key, value in _state_dict(folder).items():
        key = key.removeprefix("wav2vec2.")  # CTC checkpoints wrap the encoder
        # Weight-normalised positional conv, in both of the layouts torch has used.
        key = (key.replace("conv.parametrizations.weight.original0", "conv.weight_g")
                  .replace("conv.parametrizations.weight.original1", "conv.weight_v"))
        sd[key] = value
    if "encoder.pos_conv_embed.conv.weight_g" in sd:
        g, v = sd.pop("encoder.pos_conv_embed.conv.weight_g"), sd.pop("encoder.pos_conv_embed.conv.weight_v")
        sd["encoder.pos_conv_embed.conv.weight"] = torch._weight_norm(v, g, 2)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    if missing:
        raise ValueError(f"{folder}: not a wav2vec 2.0 checkpoint (missing {missing[:3]})")
    model.load_state_dict({k: sd[k] for k in own})
    return model.eval()
