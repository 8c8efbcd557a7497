"""Skip marks and helpers for tests/train (imported by the test modules)."""

import shutil

import numpy as np
import pytest

from training import LIBRISPEECH_DIR
from training.conversation import SHORT_TTS, ConversationConfig
from training.voices import engine_available, pocketsphinx_available

needs_flite = pytest.mark.skipif(shutil.which("flite") is None,
                                 reason="flite not installed (make setup-train installs it)")
needs_shared = pytest.mark.skipif(not LIBRISPEECH_DIR.is_dir(),
                                  reason=f"shared LibriSpeech not found at {LIBRISPEECH_DIR}")
needs_pocketsphinx = pytest.mark.skipif(not pocketsphinx_available(),
                                        reason="pocketsphinx not installed (pip install -r requirements-train.txt)")


def engine_mark(engine):
    return pytest.mark.skipif(not engine_available(engine), reason=f"TTS engine {engine} not installed "
                              "(make setup-train installs flite, festival, espeak-ng)")


def small_config(**kw):
    """A short conversation (10-14 s) so tests stay fast."""
    base = dict(SHORT_TTS)
    base.update(kw)
    return ConversationConfig(**base)


def rms_db(x):
    return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-12)
