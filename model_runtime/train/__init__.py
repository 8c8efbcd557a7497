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

# Generated data lives here (git-ignored); DUET_TRAIN_CACHE moves it.
_REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("DUET_TRAIN_CACHE", _REPO / ".cache" / "duet-train"))
# Read in place, never copied into the repository: ../shared beside the checkout (design.md), or a
# shared/ inside it where a machine mounts it there.
_SHARED_CANDIDATES = [_REPO.parent / "shared", _REPO / "shared"]
SHARED_DIR = Path(os.environ.get("DUET_SHARED") or next((p for p in _SHARED_CANDIDATES if p.is_dir()),
                                                         _SHARED_CANDIDATES[0]))
LIBRISPEECH_DIR = SHARED_DIR / "data" / "librispeech"
