import numpy as np
import pytest
import soundfile as sf

from model_runtime.audio import load_audio, pad_to_same_length
from model_runtime.errors import BadInput
from model_runtime.timebase import SAMPLE_RATE
from tests.conftest import run_runtime, speechlike


def tone(freq, seconds, sr, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def level_at(x, freq, sr=SAMPLE_RATE):
    """Amplitude of the `freq` component: a Hann-windowed DFT at exactly that frequency."""
    w = np.hanning(len(x))
    phasor = np.exp(-2j * np.pi * freq * np.arange(len(x)) / sr)
    return 2 * abs(np.sum(w * x * phasor)) / w.sum()


@pytest.mark.parametrize("fmt,subtype,ext", [("WAV", "FLOAT", "wav"), ("WAV", "PCM_16", "wav"),
                                             ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"),
                                             ("MP3", "MPEG_LAYER_III", "mp3")])
def test_reads_common_formats(tmp_path, fmt, subtype, ext):
    path = tmp_path / f"voice.{ext}"
    sf.write(path, tone(300, 1.5, 16000), 16000, format=fmt, subtype=subtype)
    track = load_audio(path)
    assert track.samples.dtype == np.float32
    assert abs(track.duration - 1.5) < 0.06  # lossy codecs pad a few ms
    assert level_at(track.samples[2000:20000], 300) == pytest.approx(0.5, rel=0.1)


def test_float_wav_keeps_values_beyond_16_bit_precision(tmp_path):
    x = (tone(200, 0.5, 16000) * 1e-4).astype(np.float32)  # below one 16-bit step
    sf.write(tmp_path / "quiet.wav", x, 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "quiet.wav").samples, x, atol=1e-9)


def test_resampling_is_band_limited_not_sample_dropping(tmp_path):
    # 1 kHz must survive 48k -> 16k; 11 kHz (above the new Nyquist) must be removed, where
    # dropping samples would fold it to 5 kHz at full strength.
    sr = 48000
    sf.write(tmp_path / "mix.wav", tone(1000, 2.0, sr, 0.3) + tone(11000, 2.0, sr, 0.3), sr,
             subtype="FLOAT")
    track = load_audio(tmp_path / "mix.wav")
    assert len(track.samples) == 2 * SAMPLE_RATE
    assert level_at(track.samples, 1000) == pytest.approx(0.3, rel=0.05)
    assert level_at(track.samples, 5000) < 0.003
    assert any("resampled 48000 Hz" in n for n in track.notes)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 96000])
def test_any_rate_gives_the_right_length(tmp_path, sr):
    sf.write(tmp_path / "x.wav", tone(220, 1.25, sr), sr)
    assert len(load_audio(tmp_path / "x.wav").samples) == int(1.25 * SAMPLE_RATE)


def test_stereo_is_downmixed(tmp_path):
    left, right = tone(300, 1.0, 16000, 0.4), np.zeros(16000, np.float32)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    track = load_audio(tmp_path / "st.wav")
    np.testing.assert_allclose(track.samples, left / 2, atol=1e-6)
    assert any("downmixed" in n for n in track.notes)


def test_shorter_track_is_padded_with_a_note(tmp_path):
    sf.write(tmp_path / "a.wav", tone(300, 3.0, 16000), 16000)
    sf.write(tmp_path / "b.wav", tone(300, 1.0, 16000), 16000)
    a, b = load_audio(tmp_path / "a.wav"), load_audio(tmp_path / "b.wav")
    notes = pad_to_same_length(a, b)
    assert len(a.samples) == len(b.samples) == 3 * 16000
    assert not b.samples[16000:].any()
    assert len(notes) == 1 and "b.wav" in notes[0] and "2.00 s shorter" in notes[0]


def test_silent_track_is_valid(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    assert not load_audio(tmp_path / "silence.wav").samples.any()


def test_some_nans_become_silence_with_a_note(tmp_path):
    x = tone(300, 1.0, 16000)
    x[100:200] = np.nan
    sf.write(tmp_path / "n.wav", x, 16000, subtype="FLOAT")
    track = load_audio(tmp_path / "n.wav")
    assert np.isfinite(track.samples).all() and "100 NaN" in track.notes[0]


def _bad_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    (tmp_path / "notes.txt").write_text("this is not audio\n" * 20)
    sf.write(tmp_path / "nan.wav", np.full(800, np.nan, np.float32), 16000, subtype="FLOAT")
    return {"missing.wav": "not found", "empty.wav": "empty", "corrupt.wav": "not a readable audio",
            "notes.txt": "not a readable audio", "nan.wav": "NaN"}


def test_bad_audio_raises_one_line_naming_the_file(tmp_path):
    for name, problem in _bad_files(tmp_path).items():
        with pytest.raises(BadInput) as info:
            load_audio(tmp_path / name)
        msg = str(info.value)
        assert name in msg and problem in msg and "\n" not in msg
        assert info.value.code == "bad_audio"


def test_predict_exits_2_on_bad_audio_with_one_line(tmp_path, random_model):
    good = tmp_path / "good.wav"
    sf.write(good, speechlike(1.0), 16000)
    for name in _bad_files(tmp_path):
        r = run_runtime("predict", "--self", good, "--partner", tmp_path / name, "--model", random_model,
                        "--out", tmp_path / "o.npz")
        assert r.returncode == 2, (name, r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and name in errors[0] and "Traceback" not in r.stderr
        assert not (tmp_path / "o.npz").exists()
