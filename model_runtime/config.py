"""The one config object of Duet's DualTalk network. Everything sized lives here.

Defaults are the shipped size, picked with the CPU benchmark in view (>= 200x real time with
ONNX on 2 cores): the paper's widths are 256 per stream and wav2vec 2.0 large encoders.
"""

import json
from dataclasses import asdict, dataclass, fields

from .channels import NUM_ARKIT, NUM_CHANNELS
from .timebase import samples_per_frame


@dataclass
class DualTalkConfig:
    fps: float = 25.0  # the network's internal frame rate (DualTalk outputs 25 fps)
    num_channels: int = NUM_CHANNELS  # 52 ARKit weights + head yaw/pitch/roll
    num_weights: int = NUM_ARKIT  # the first num_weights channels are sigmoid weights in [0, 1]
    max_head_angle: float = 0.6  # radians; head channels are tanh-bounded to +-this
    # Head angles are radians of about +-0.05, twenty times smaller than blendshape weights: the
    # network reads and writes them in this unit so the partner's head is not drowned out at
    # its input and a unit of its output is a typical head movement. (v3 left them in radians
    # and learned no head motion at all.) Inside the graph: the ONNX contract stays radians.
    head_unit_rad: float = 0.05

    # Audio encoder ("joint encoder" front end). logmel: light conv encoder over log-mel frames;
    # wav2vec2: a wav2vec 2.0 model loaded from a local checkpoint (torch backend only).
    audio_encoder: str = "logmel"
    wav2vec2_checkpoint: str = ""
    n_mels: int = 80
    mel_frames_per_frame: int = 4  # 100 mel frames/s over 25 fps
    # Residual conv blocks in each log-mel encoder after it reaches 25 Hz (none in v6 and before,
    # whose checkpoints load with 0): the three-conv front end confused M with N and B with V on
    # real speech, so the lips closed on N, V, T, L, D too (docs/experiments.md).
    audio_blocks: int = 3
    mel_mean: float = -6.0  # fixed normalisation of log-mel: keeps loudness (silence != speech)
    mel_std: float = 4.0
    # Each track's log-mel shifted so its own speech sits at one reference level (features.level_offset):
    # the network then reads the voice, not how loud it was recorded. Off in models trained without it.
    level_norm: bool = True

    width: int = 128  # per stream (paper: 256); 2*width after concatenation
    heads: int = 4
    # Per attention head, how fast attention fades with distance in frames (see MultiHeadAttention):
    # about 0.1 s, 0.6 s and 2.5 s of reach, and one head over the whole window.
    time_slopes: tuple = (0.5, 0.125, 0.03125, 0.0)
    lstm_layers: int = 2  # temporal enhancer BiLSTM, width/2 per direction
    interaction_layers: int = 3  # transformer encoder layers (paper: 3)
    synthesis_layers: int = 1  # transformer decoder layers (paper: 1)
    ff_mult: int = 2  # feed-forward width = ff_mult * model width
    pos_kernel: int = 15  # depthwise conv positional encoding: translation-invariant, so
    # windows cut anywhere in a long conversation see the same network
    dropout: float = 0.1
    modulation_alpha: float = 0.1  # expressive synthesis: x + alpha * sigmoid(x W + b)

    # Windowed inference for long conversations.
    window_frames: int = 200  # 8 s, the paper's training window
    overlap_frames: int = 40  # cross-faded between neighbouring windows
    batch_windows: int = 16  # windows run together: fewer calls, bounded memory

    @property
    def samples_per_frame(self):
        return samples_per_frame(self.fps)

    def to_json(self):
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}  # JSON lists
        d.setdefault("audio_blocks", 0)  # saved before the field existed: those networks had none
        return cls(**d)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))
