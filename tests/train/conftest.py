"""Shared fixtures for the training-data tests: small, real generation (no mocks)."""

import shutil

import pytest
from train_helpers import small_config

from training.voices import engine_available


def pytest_terminal_summary(terminalreporter):
    """One line at the end when TTS engines are absent (macOS, Windows, a fresh Linux): the tests
    that synthesise speech skipped, everything else ran."""
    missing = [e for e in ("flite", "festival", "espeak") if not engine_available(e)]
    if missing:
        terminalreporter.write_line(f"tests/train: TTS engine(s) {', '.join(missing)} not installed, so the tests "
                                    "that synthesise speech skipped (`make setup-train` installs them, Debian/Ubuntu)")


@pytest.fixture(scope="session")
def tts_conversation():
    """One short flite-only conversation, built without the on-disk cache."""
    if shutil.which("flite") is None:
        pytest.skip("flite not installed (make setup-train installs it)")
    from training.conversation import build, conversation_rng

    return build(conversation_rng("train", 123, 0), small_config(), "train")
