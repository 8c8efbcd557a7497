"""Checkpoint -> ONNX with dynamic batch and time axes, config and `trained` flag as metadata."""

import os
import warnings

import numpy as np

from .head_sway import SWAY_AXES
from .model_file import INPUT_NAMES, OUTPUT_NAMES, load_checkpoint, onnx_metadata

OPSET = 17


def export_onnx(checkpoint, out):
    import onnx
    import torch

    model, meta = load_checkpoint(checkpoint)
    cfg = meta["config"]
    if cfg.audio_encoder != "logmel":
        raise ValueError("only the log-mel audio encoder exports to ONNX (wav2vec2 is torch-only)")
    b, t = 2, 50  # example shapes; both axes are dynamic in the graph
    args = (torch.zeros(b, t * cfg.mel_frames_per_frame, cfg.n_mels),
            torch.zeros(b, t * cfg.mel_frames_per_frame, cfg.n_mels),
            torch.zeros(b, t, cfg.num_channels), torch.ones(b, t, 1), torch.zeros(b, t, SWAY_AXES))
    axes = {n: {0: "batch", 1: "mel_time"} for n in INPUT_NAMES[:2]}
    axes.update({n: {0: "batch", 1: "time"} for n in INPUT_NAMES[2:] + OUTPUT_NAMES})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and LSTM batch notes
        torch.onnx.export(model, args, os.fspath(out), dynamo=False, input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=axes, opset_version=OPSET)
    proto = onnx.load(os.fspath(out))
    for key, value in onnx_metadata(cfg, meta["trained"], meta["info"]).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, os.fspath(out))
    return out


def random_inputs(cfg, batch, frames, seed=0):
    """Random but well-formed network inputs (for parity checks and benchmarks)."""
    rng = np.random.default_rng(seed)
    mel = lambda: (cfg.mel_mean + cfg.mel_std * rng.standard_normal(
        (batch, frames * cfg.mel_frames_per_frame, cfg.n_mels))).astype(np.float32)
    return (mel(), mel(), rng.random((batch, frames, cfg.num_channels), dtype=np.float32),
            np.ones((batch, frames, 1), np.float32), rng.standard_normal((batch, frames, SWAY_AXES)).astype(np.float32))
