import re

import numpy as np
import pytest

from model_runtime.channels import CHANNELS, LLF_HEADER
from model_runtime.errors import BadInput
from model_runtime.motion_io import format_timecode, read_motion, write_llf_csv, write_npz


def random_curves(n, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.random((n, len(CHANNELS)), dtype=np.float32)
    w[:, 52:] = (w[:, 52:] - 0.5) * 0.8  # head angles in radians, signed
    return w


def test_real_live_link_face_capture(shared_dir):
    m = read_motion(shared_dir / "data/livelinkface/alex_rom_3.csv")
    assert m.weights.shape == (4030, 55) and m.missing == []
    # 30 rows per second carried by a 60-fps timecode (hh:mm:ss:ff.sss)
    assert m.fps == pytest.approx(30.0, rel=1e-3)
    assert m.times[-1] == pytest.approx(134.38, abs=0.02)
    jaw = m.weights[:, CHANNELS.index("jawOpen")]
    assert 0.0 <= jaw.min() and jaw.max() > 0.3  # a range-of-motion take opens the jaw wide


@pytest.mark.parametrize("fps", [23.976, 24.0, 30.0, 60.0])
def test_csv_round_trip_gives_the_same_curves(tmp_path, fps):
    w = random_curves(97)
    write_llf_csv(tmp_path / "m.csv", w, fps)
    m = read_motion(tmp_path / "m.csv")
    np.testing.assert_allclose(m.weights, w, atol=1e-9)
    assert m.fps == pytest.approx(fps, rel=1e-3)
    np.testing.assert_allclose(m.times, np.arange(97) / fps, atol=1e-3)


def test_written_csv_has_the_real_header_and_timecode(tmp_path, shared_dir):
    write_llf_csv(tmp_path / "m.csv", random_curves(5), 60.0)
    lines = (tmp_path / "m.csv").read_text().splitlines()
    real_header = (shared_dir / "data/livelinkface/alex_rom_3.csv").read_text().splitlines()[0]
    assert lines[0] == real_header == ",".join(LLF_HEADER)
    for line in lines[1:]:
        cells = line.split(",")
        assert len(cells) == 63 and cells[1] == "61"
        assert re.fullmatch(r"\d\d:\d\d:\d\d:\d\d\.\d\d\d", cells[0])
    assert format_timecode(3725.5) == "01:02:05:30.000"


def test_names_match_case_insensitively_and_missing_are_reported(tmp_path):
    (tmp_path / "few.csv").write_text("timecode,JAWOPEN,mouthsmileleft\n00:00:00:00.000,0.5,0.25\n"
                                      "00:00:00:02.000,0.7,0.125\n")
    m = read_motion(tmp_path / "few.csv")
    assert m.weights[1, CHANNELS.index("jawOpen")] == pytest.approx(0.7)
    assert m.weights[0, CHANNELS.index("mouthSmileLeft")] == pytest.approx(0.25)
    assert len(m.missing) == 53 and "eyeBlinkLeft" in m.missing and "jawOpen" not in m.missing


def test_npz_motion_in_any_order(tmp_path):
    w = random_curves(10)
    order = np.random.default_rng(1).permutation(55)
    write_npz(tmp_path / "m.npz", w[:, order], 24.0, names=[CHANNELS[i] for i in order])
    m = read_motion(tmp_path / "m.npz")
    np.testing.assert_allclose(m.weights, w)
    assert m.fps == 24.0


def test_resampled_motion_follows_timestamps(tmp_path):
    w = np.zeros((31, 55), np.float32)
    w[:, CHANNELS.index("jawOpen")] = np.linspace(0, 1, 31)  # 0 -> 1 over 1 s at 30 fps
    write_llf_csv(tmp_path / "r.csv", w, 30.0)
    r = read_motion(tmp_path / "r.csv").resampled(25.0, 26)
    np.testing.assert_allclose(r[:, CHANNELS.index("jawOpen")], np.linspace(0, 1, 26), atol=1e-4)


@pytest.mark.parametrize("content,problem", [("a,b\n1,2\n", "no ARKit channel"),
                                             ("JawOpen\nnot-a-number\n", "non-numeric"),
                                             ("JawOpen\n", "no frames")])
def test_bad_motion_files(tmp_path, content, problem):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(BadInput, match=problem) as info:
        read_motion(tmp_path / "bad.csv")
    assert "bad.csv" in str(info.value) and info.value.code == "bad_motion"
