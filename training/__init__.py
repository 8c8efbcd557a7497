"""Training data and metrics for Duet's DualTalk model (never imports bpy; left out of the zip).

Start here:
- voices.py: speech with exact phoneme timings (flite, festival, espeak-ng, real LibriSpeech
  speakers aligned with pocketsphinx) and voice augmentation.
- animator.py: procedural ARKit targets from phoneme timings and conversational events.
- conversation.py: two-track conversations (turns, overlaps, backchannels, bleed, noise),
  splits with held-out voices, deterministic generation and the on-disk cache.
- metrics.py: DualTalk's metrics per channel group plus lip sync, leakage and blink rate.
- dataset.py: 8-second training windows for model_runtime.net.DualTalk.
- plots.py (dev only, matplotlib): look at a generated conversation's curves.

Setup and data: `make setup-train` (TTS engines, pocketsphinx), `make test-train`,
`make train-data` (aligns LibriSpeech once, then caches conversations under .cache/duet-train).
"""

import os
from pathlib import Path

from model_runtime.paths import ROOT
from model_runtime.paths import SHARED as SHARED_DIR

# Generated data lives here (git-ignored); DUET_TRAIN_CACHE moves it.
CACHE_DIR = Path(os.environ.get("DUET_TRAIN_CACHE", ROOT / ".cache" / "duet-train"))

LIBRISPEECH_DIR = SHARED_DIR / "data" / "librispeech"
__all__ = ["CACHE_DIR", "LIBRISPEECH_DIR", "SHARED_DIR"]
