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


def _csv_lines(tmp_path, n=10, fps=30.0):
    write_llf_csv(tmp_path / "m.csv", random_curves(n), fps)
    return (tmp_path / "m.csv").read_text().splitlines()


def _with_timecodes(lines, stamps):
    return "\n".join([lines[0], *[",".join([t, *ln.split(",")[1:]]) for t, ln in zip(stamps, lines[1:])]]) + "\n"


def test_a_timecode_that_does_not_advance_is_refused_not_read_at_a_default_rate(tmp_path):
    """The partner face's timing is what the network listens to: a guessed rate would move every nod."""
    lines = _csv_lines(tmp_path)
    stamps = [ln.split(",")[0] for ln in lines[1:]]
    for name, order, how in (("reversed", stamps[::-1], "running backwards"),
                             ("same", [stamps[3]] * len(stamps), "all the same")):
        (tmp_path / f"{name}.csv").write_text(_with_timecodes(lines, order))
        with pytest.raises(BadInput, match=rf"{name}\.csv: Timecode does not advance \({how}\)"):
            read_motion(tmp_path / f"{name}.csv")


def test_a_few_rows_whose_timecode_does_not_advance_are_skipped_with_a_note(tmp_path):
    lines = _csv_lines(tmp_path, n=40)  # over a second: the timecode's own rate is known from its frame field
    stamps = [ln.split(",")[0] for ln in lines[1:]]
    stamps[7] = stamps[6]  # a repeated stamp, as a dropped frame duplicated
    (tmp_path / "dup.csv").write_text(_with_timecodes(lines, stamps))
    m = read_motion(tmp_path / "dup.csv")
    assert len(m.weights) == 39 and m.fps == pytest.approx(30.0, rel=1e-3)
    assert m.notes == [f"{tmp_path / 'dup.csv'}: 1 rows whose Timecode does not advance were skipped"]


def test_a_csv_without_timecode_says_which_rate_it_assumed(tmp_path):
    (tmp_path / "plain.csv").write_text("JawOpen\n0.1\n0.2\n")
    m = read_motion(tmp_path / "plain.csv")
    assert m.fps == 60.0 and m.notes == [f"{tmp_path / 'plain.csv'}: no Timecode column; rows taken as 60 per second"]


def test_empty_and_nan_cells_become_zero_with_a_note_naming_the_channels(tmp_path):
    (tmp_path / "holes.csv").write_text("JawOpen,MouthClose,EyeBlinkLeft\n0.5,,0.1\nnan,0.2,0.1\n,inf,0.1\n")
    m = read_motion(tmp_path / "holes.csv")
    assert m.weights[:, CHANNELS.index("jawOpen")].tolist() == [0.5, 0.0, 0.0]
    assert m.weights[:, CHANNELS.index("mouthClose")].tolist() == [0.0, pytest.approx(0.2), 0.0]
    assert f"{tmp_path / 'holes.csv'}: 4 empty, NaN or infinite values set to 0 (jawOpen: 2, mouthClose: 2)" \
        in m.notes


@pytest.mark.parametrize("arrays,problem", [
    ({"names": np.array(CHANNELS), "weights": random_curves(4), "fps": np.array([30.0, 30.0])},
     "fps must be one number"),
    ({"names": np.array("jawOpen"), "weights": random_curves(4), "fps": np.float64(30)}, "names must be a list"),
    ({"names": np.array(CHANNELS), "weights": random_curves(4)}, "no fps"),
    (None, "not a .npz archive"),
])
def test_npz_files_that_are_not_duet_motion_are_refused_in_one_line(tmp_path, arrays, problem):
    path = tmp_path / "odd.npz"
    with open(path, "wb") as fh:
        if arrays is None:
            np.save(fh, random_curves(4))  # a .npy named .npz
        else:
            np.savez(fh, **arrays)
    with pytest.raises(BadInput, match=problem) as info:
        read_motion(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert info.value.code == "bad_motion"


def test_npz_written_under_an_upper_case_name_keeps_that_name(tmp_path):
    write_npz(tmp_path / "m.NPZ", random_curves(3), 24.0)
    assert [p.name for p in tmp_path.iterdir()] == ["m.NPZ"]
    assert read_motion(tmp_path / "m.NPZ").fps == 24.0
