"""Shared fixtures for the training-data tests: small, real generation (no mocks)."""

import shutil

import pytest
from train_helpers import small_config


@pytest.fixture(scope="session")
def tts_conversation():
    """One short flite-only conversation, built without the on-disk cache."""
    if shutil.which("flite") is None:
        pytest.skip("flite not installed (make setup-train installs it)")
    from model_runtime.train.conversation import build, conversation_rng

    return build(conversation_rng("train", 123, 0), small_config(), "train")
