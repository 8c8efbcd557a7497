"""The model card's required comparisons and head note follow the scores they are given."""

import pytest

from training.report import COLUMNS, write_card
from training.train import TrainConfig

ROWS = ("full", "full, network only (no liveliness layer)", "speaker-only ablation", "energy baseline",
        "targets (animator)")


def _table(full_head_rpcc):
    table = {name: {key: 0.5 for key, _, _ in COLUMNS} for name in ROWS}
    table["full"].update(sid_mouth_jaw_listen=0.9, leakage=0.1, rpcc_mouth_jaw=0.1, lipsync=0.8,
                         rpcc_head=full_head_rpcc)
    table["full, network only (no liveliness layer)"]["sid_head_listen"] = 0.077
    table["speaker-only ablation"].update(sid_mouth_jaw_listen=0.4, leakage=0.2, rpcc_mouth_jaw=0.2,
                                          rpcc_head=0.41)
    table["energy baseline"]["lipsync"] = 0.6
    table["targets (animator)"]["sid_head_listen"] = 1.487
    return table


@pytest.mark.parametrize("head_rpcc, met", [(0.2, True), (0.42, False)])
def test_card_reports_each_comparison_and_explains_an_unlearned_head(tmp_path, head_rpcc, met):
    onnx = tmp_path / "duet_dualtalk.onnx"
    onnx.write_bytes(b"\0" * 1000)
    summary = {"hours": 1.0, "tts_voices": ["flite/rms"], "real_speakers": 3, "test_voices": ["flite/awb"],
               "conversations": 10}
    card = tmp_path / "MODEL_CARD.md"
    write_card(card, _table(head_rpcc), summary, {"steps": 5}, TrainConfig(), onnx)
    text = card.read_text()
    assert text.count("— **met**") == 4 + met and text.count("**NOT met**") == (not met)
    assert "0.420 vs 0.410" in text or met
    unlearned = "has not learned the targets' head motion" in text
    assert unlearned == (not met)
    if unlearned:
        assert "SID head 0.077 vs the targets' 1.487 bits" in text
    assert ("follow it more closely than a person would" in text) == met


def test_card_carries_the_real_speech_report_with_its_verdicts(tmp_path):
    onnx = tmp_path / "duet_dualtalk.onnx"
    onnx.write_bytes(b"\0" * 1000)
    summary = {"hours": 1.0, "tts_voices": ["flite/rms"], "real_speakers": 3, "test_voices": ["flite/awb"],
               "conversations": 10}
    f = {"spread": {"jawOpen": 0.95, "mouthClose": 0.2}, "r": {"jawOpen": 0.8, "mouthClose": 0.7},
         "closure_rate_net": 0.0, "closure_rate_animator": 1.0, "bilabials": 40, "aperture_net": 0.5,
         "aperture_animator": 0.1, "head_speak_net": 0.02, "head_speak_animator": 0.06, "head_speak_ratio": 1 / 3,
         "head_listen_net": 0.03, "head_listen_animator": 0.03, "head_listen_ratio": 1.0,
         "leakage": 0.12, "leakage_animator": 0.08}
    rep = {"conversations": 2, "minutes": 1.5, "voices": ["libri/1"], "as_recorded": f, "network_only": f,
           "conditions": {"0 dB": {"lipsync": 0.8, "leakage": 0.1}, "-40 dB": {"lipsync": 0.2, "leakage": 0.9}}}
    card = tmp_path / "MODEL_CARD.md"
    write_card(card, _table(0.2), summary, {"steps": 5}, TrainConfig(), onnx, fidelity=rep)
    text = card.read_text()
    assert "## Real speech: held-out LibriSpeech speakers" in text
    assert "| spread jawOpen | 0.95 | 0.8-1.25x | met |" in text
    assert "| spread mouthClose | 0.20 | 0.8-1.25x | NOT met |" in text
    assert "| r mouthClose | 0.70 | >= 0.6 | met |" in text
    assert "| head spread listening (net / animator) | 1.00 | 0.8-1.25x | met |" in text
    assert "| -40 dB | 0.200 | 0.900 | NOT met |" in text
    assert "leakage (the listener's mean jaw over the speaker's): network 0.120, animator 0.080" in text
