"""Build the shipped sample conversations: assets/sample/{a,b}.wav (two people) or, with --cast,
assets/sample_cast/{a,b,c}.wav (three), each with timeline.json and README.md.

    .venv/bin/python scripts/make_sample_conversation.py [--cast] [--out DIR] [--check]

Scripted voices (offline TTS: festival, flite and, for the cast, espeak-ng) mixed as one
microphone per person records them, by the training-data pipeline (training/sample.py).
Deterministic: the same engines give the same bits. --check prints each turn's level and what
pocketsphinx recognises in it.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.sample import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
