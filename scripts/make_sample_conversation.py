"""Build the shipped sample conversation: assets/sample/{a,b}.wav, timeline.json, README.md.

    .venv/bin/python scripts/make_sample_conversation.py [--out assets/sample] [--check]

Two scripted voices (offline TTS: festival and flite) mixed as two microphones record them, by
the training-data pipeline (training/sample.py). Deterministic: the same engines give
the same bits. --check prints each turn's level and what pocketsphinx recognises in it.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.sample import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
