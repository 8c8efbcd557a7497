"""Audio read a block at a time: the same samples as reading the whole file, cancel between blocks,
long tracks in temporary files that never outlive the job, and a note when a downmix cancels out.

Blocks and the in-memory limit are made small here, so short files cross many block boundaries and
take the temporary-file path."""

import os
import time

import numpy as np
import pytest
import soundfile as sf

from model_runtime import audio
from model_runtime.audio import Samples, Track, load_audio, pad_to_same_length, resample
from model_runtime.errors import BadInput, Cancelled
from model_runtime.features import LogMel
from model_runtime.predict import load_predictor, run_predict
from model_runtime.request import PredictRequest
from model_runtime.timebase import SAMPLE_RATE
from tests.conftest import speechlike


class _Made(list):
    folder = None


@pytest.fixture
def temp_files(monkeypatch, tmp_path):
    """Every temporary file the audio reader opens (in a folder of the test's own), kept to check it
    was closed; tracks longer than 1 s go to one."""
    made = _Made()
    folder = tmp_path / "tmp"
    folder.mkdir()
    real = audio._temp_file

    def recording():
        f = real()
        made.append(f)
        return f

    monkeypatch.setattr(audio, "_temp_file", recording)
    monkeypatch.setattr(audio, "IN_MEMORY_SECONDS", 1.0)
    monkeypatch.setattr(audio.tempfile, "tempdir", str(folder))
    made.folder = folder
    return made


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(audio, "_BLOCK", 10007)  # a prime: blocks fall on no phase of any ratio


def signal(seconds, sr, channels, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = np.stack([0.3 * np.sin(2 * np.pi * (180 + 90 * c) * t) + 0.05 * rng.standard_normal(n)
                  for c in range(channels)], axis=1)
    return x.astype(np.float32)


@pytest.mark.parametrize("sr", [44100, 48000, 22050, 8000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("where", ["memory", "file"])
def test_blockwise_resampling_equals_whole_file_resampling(tmp_path, monkeypatch, small_blocks, sr, channels,
                                                           where):
    if where == "file":
        monkeypatch.setattr(audio, "IN_MEMORY_SECONDS", 0.5)
    x = signal(2.3, sr, channels)
    sf.write(tmp_path / "x.wav", x, sr, subtype="FLOAT")
    with load_audio(tmp_path / "x.wav") as track:
        assert isinstance(track.samples, Samples) == (where == "file")
        got = track.samples[0:len(track.samples)]
    whole = resample(x.mean(axis=1) if channels > 1 else x[:, 0], sr, SAMPLE_RATE)
    assert len(got) == len(whole) and abs(len(got) - 2.3 * SAMPLE_RATE) <= 1
    assert np.abs(got - whole).max() <= 1e-5


def test_a_16_khz_file_comes_back_sample_for_sample(tmp_path, monkeypatch, small_blocks):
    monkeypatch.setattr(audio, "IN_MEMORY_SECONDS", 0.5)
    x = signal(2.0, 16000, 1)[:, 0]
    sf.write(tmp_path / "x.wav", x, 16000, subtype="FLOAT")
    with load_audio(tmp_path / "x.wav") as track:
        np.testing.assert_array_equal(track.samples[0:len(x)], x)
        np.testing.assert_array_equal(track.samples[12345:23456], x[12345:23456])
        np.testing.assert_array_equal(np.asarray(track.samples), x)


@pytest.mark.parametrize("right,cancels", [(-1.0, True), (-0.97, True), (-0.5, False), (0.0, False),
                                           (0.6, False)])
def test_channels_that_cancel_in_the_downmix_get_a_note(tmp_path, small_blocks, right, cancels):
    left = speechlike(2.0, sr=44100)
    sf.write(tmp_path / "st.wav", np.stack([left, right * left], axis=1), 44100, subtype="FLOAT")
    notes = load_audio(tmp_path / "st.wav").notes
    cancel_notes = [n for n in notes if "channels cancel" in n]
    assert len(cancel_notes) == int(cancels), notes
    if cancels:
        assert "st.wav" in cancel_notes[0] and "\n" not in cancel_notes[0]


def test_silent_stereo_gets_no_cancel_note(tmp_path):
    sf.write(tmp_path / "s.wav", np.zeros((16000, 2), np.float32), 16000)
    assert not [n for n in load_audio(tmp_path / "s.wav").notes if "channels cancel" in n]


def test_cancel_during_loading_stops_at_the_next_block(tmp_path, temp_files):
    sr = 48000
    x = np.tile(signal(2.0, sr, 2), (15, 1))  # 30 s of 48 kHz stereo: 11 blocks
    sf.write(tmp_path / "long.wav", x, sr, subtype="PCM_16")
    asked = []

    def cancel():
        asked.append(time.perf_counter())
        return len(asked) >= 4  # after three blocks, past the in-memory limit

    with pytest.raises(Cancelled):
        load_audio(tmp_path / "long.wav", cancel)
    stopped = time.perf_counter()
    assert len(asked) == 4
    assert stopped - asked[-1] < 0.5
    assert temp_files and all(f.closed for f in temp_files)


def _files(tmp_path, seconds=3.0):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, np.stack([speechlike(seconds, sr=44100), speechlike(seconds, sr=44100, seed=2)], 1), 44100)
    sf.write(b, speechlike(seconds, seed=3, f0=210.0), 16000)
    return a, b


@pytest.fixture(scope="module")
def predictor(random_model):
    return load_predictor(str(random_model), "onnx", "cpu")


def test_temporary_files_are_gone_after_success(tmp_path, temp_files, predictor):
    a, b = _files(tmp_path)
    run_predict(predictor, PredictRequest(str(a), str(tmp_path / "o.npz"), partner=str(b)))
    assert (tmp_path / "o.npz").exists()
    assert len(temp_files) == 2 and all(f.closed for f in temp_files)
    assert not os.listdir(temp_files.folder)


def test_temporary_files_are_gone_after_bad_input(tmp_path, temp_files, predictor):
    a, _ = _files(tmp_path)
    with pytest.raises(BadInput):  # the own track is in its temporary file when the partner fails
        run_predict(predictor, PredictRequest(str(a), str(tmp_path / "o.npz"), partner=str(tmp_path / "no.wav")))
    nan = np.full((3 * 16000, 1), np.nan, np.float32)
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    with pytest.raises(BadInput, match="NaN"):  # found bad only once all of it has been stored
        load_audio(tmp_path / "nan.wav")
    assert len(temp_files) == 2 and all(f.closed for f in temp_files)
    assert not os.listdir(temp_files.folder) and not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("when", ["loading", "network"])
def test_temporary_files_are_gone_after_cancel(tmp_path, temp_files, predictor, small_blocks, when):
    a, b = _files(tmp_path)
    stages = []

    def cancel():  # loading: once the own track is in its file; network: before the first batch
        return bool(temp_files) if when == "loading" else "features" in stages

    with pytest.raises(Cancelled):
        run_predict(predictor, PredictRequest(str(a), str(tmp_path / "o.npz"), partner=str(b)),
                    lambda stage, value: stages.append(stage), cancel)
    assert len(temp_files) == (1 if when == "loading" else 2) and all(f.closed for f in temp_files)
    assert not os.listdir(temp_files.folder) and not (tmp_path / "o.npz").exists()


def test_temporary_files_are_never_visible_in_the_folder(tmp_path, temp_files, small_blocks):
    if os.name != "posix":
        pytest.skip("POSIX unlinks an anonymous temporary file at once; Windows deletes it on close")
    sf.write(tmp_path / "x.wav", signal(3.0, 16000, 1), 16000)
    seen = []

    def cancel():
        seen.append(os.listdir(temp_files.folder))
        return len(temp_files) > 0  # the file exists from here on

    with pytest.raises(Cancelled):
        load_audio(tmp_path / "x.wav", cancel)
    assert temp_files and seen == [[]] * len(seen)  # so a killed runtime leaves nothing behind


def test_long_tracks_predict_the_same_curves_as_tracks_in_memory(tmp_path, monkeypatch, predictor):
    a, b = _files(tmp_path, seconds=9.0)
    want = predictor.predict(load_audio(a), load_audio(b), None, 30.0).weights
    monkeypatch.setattr(audio, "IN_MEMORY_SECONDS", 0.5)
    with load_audio(a) as ta, load_audio(b) as tb:
        assert isinstance(ta.samples, Samples) and isinstance(tb.samples, Samples)
        got = predictor.predict(ta, tb, None, 30.0).weights
        alone = predictor.predict(ta, None, None, 30.0).weights
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(alone, predictor.predict(load_audio(a), None, None, 30.0).weights)


def test_a_short_track_beside_a_long_one_is_padded_without_an_array_of_zeros(monkeypatch):
    monkeypatch.setattr(audio, "IN_MEMORY_SECONDS", 2.0)
    short, long_ = Track(np.ones(16000, np.float32), "s.wav"), Track(Samples(5 * 16000), "l.wav")
    notes = pad_to_same_length(short, long_)
    assert isinstance(short.samples, Samples) and len(short.samples) == 5 * 16000
    assert short.samples[15990:16010].tolist() == [1.0] * 10 + [0.0] * 10
    assert "s.wav" in notes[0] and "4.00 s shorter" in notes[0]


def test_log_mel_rows_equal_the_whole_log_mel(monkeypatch):
    monkeypatch.setattr(LogMel, "_CHUNK", 97)  # many chunks, cut across windows
    mel = LogMel()
    x = speechlike(7.77)
    whole = mel(x)
    rows = mel.rows(x, len(x), len(whole) + 30)
    rng = np.random.default_rng(0)
    for a in list(rng.integers(0, len(whole), 40)) + [0, len(whole) - 5]:
        b = min(len(rows), a + int(rng.integers(1, 900)))
        got = rows[a:b]
        np.testing.assert_array_equal(got[:max(0, len(whole) - a)], whole[a:b])
        assert (got[max(0, len(whole) - a):] == np.float32(np.log(mel.cfg.floor))).all()


def test_loading_reports_its_progress_block_by_block(tmp_path, small_blocks, predictor):
    """A long load moves the bar: the own track fills the first half of the audio stage, the partner's the second."""
    a, b = _files(tmp_path)
    seen = []
    run_predict(predictor, PredictRequest(str(a), str(tmp_path / "o.npz"), partner=str(b)),
                progress=lambda stage, value: seen.append(value) if stage == "audio" else None)
    assert len(seen) > 10 and seen == sorted(seen), seen
    assert seen[0] == 0.0 and 0.5 in seen and seen[-1] == 1.0
