"""The command line exactly as other tools call it: a real subprocess each time."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model_runtime.channels import CHANNELS, LLF_HEADER
from model_runtime.model_file import SHIPPED_MODEL
from model_runtime.motion_io import read_motion, write_llf_csv
from model_runtime.request import PROTOCOL_VERSION, PredictRequest, RequestError
from model_runtime.timebase import frame_count
from tests.conftest import REPO, run_runtime, runtime_env, speechlike


@pytest.mark.parametrize("backend,fmt,fps", [("onnx", "npz", 24.0), ("torch", "npz", 29.97),
                                             ("onnx", "csv", 60.0), ("torch", "csv", 25.0)])
def test_predict_both_formats_both_backends(tmp_path, random_model, voice_pair, backend, fmt, fps):
    out = tmp_path / f"result.{fmt}"
    r = run_runtime("predict", "--self", voice_pair[0], "--partner", voice_pair[1], "--fps", fps,
                    "--backend", backend, "--model", random_model, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "untrained" in r.stderr  # a random network never passes for the model
    if fmt == "npz":
        with np.load(out) as z:
            assert list(z["names"]) == list(CHANNELS) and float(z["fps"]) == fps
            weights = z["weights"]
    else:
        weights = read_motion(out).weights
    assert weights.shape == (frame_count(12.0, fps), 55) and weights.dtype == np.float32
    assert 0.0 <= weights[:, :52].min() and weights[:, :52].max() <= 1.0


def test_backends_give_the_same_result_end_to_end(tmp_path, random_model, voice_pair):
    outs = []
    for backend in ("onnx", "torch"):
        outs.append(tmp_path / f"{backend}.npz")
        r = run_runtime("predict", "--self", voice_pair[0], "--partner", voice_pair[1], "--backend", backend,
                        "--model", random_model, "--out", outs[-1])
        assert r.returncode == 0, r.stderr
    a, b = (np.load(o)["weights"] for o in outs)
    assert np.abs(a - b).max() <= 1e-4


def test_partner_motion_and_omitted_partner(tmp_path, random_model, voice_pair):
    motion = tmp_path / "partner_face.csv"
    write_llf_csv(motion, np.full((300, 55), 0.2, np.float32), 30.0)
    lines = motion.read_text().splitlines()
    cells = lines[5].split(",")
    cells[LLF_HEADER.index("JawOpen")] = "nan"
    lines[5] = ",".join(cells)
    motion.write_text("\n".join(lines) + "\n")
    base = ("predict", "--self", voice_pair[0], "--model", random_model)
    r = run_runtime(*base, "--partner", voice_pair[1], "--partner-motion", motion, "--out", tmp_path / "m.npz")
    assert r.returncode == 0, r.stderr
    assert "shorter than the audio" in r.stderr  # 10 s of motion for 12 s of voice: held, noted
    assert f"note: {motion}: 1 empty, NaN or infinite values set to 0 (jawOpen: 1)" in r.stderr
    r2 = run_runtime(*base, "--out", tmp_path / "solo.npz")
    assert r2.returncode == 0 and "partner is treated as silent" in r2.stderr
    with_motion, solo = np.load(tmp_path / "m.npz")["weights"], np.load(tmp_path / "solo.npz")["weights"]
    assert with_motion.shape == solo.shape and np.abs(with_motion - solo).max() > 1e-4


@pytest.mark.parametrize("extra,needle", [(("--partner-motion", "nope.csv"), "nope.csv"),
                                          (("--out", "x.txt"), "out: must end in .npz or .csv, got 'x.txt'"),
                                          (("--model", "missing.onnx"), "missing.onnx"),
                                          (("--fps", "0"), "fps: must be a positive number"),
                                          (("--fps", "nan"), "fps: must be a positive number"),
                                          (("--seed", "-1"), "seed: must be a whole number >= 0, got -1")])
def test_bad_arguments_exit_2_with_one_line(tmp_path, random_model, voice_pair, extra, needle):
    args = {"--self": voice_pair[0], "--model": random_model, "--out": tmp_path / "o.npz"}
    args.update(dict(zip(extra[::2], extra[1::2])))
    r = run_runtime("predict", *[x for kv in args.items() for x in kv])
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in r.stderr


def test_the_command_line_and_the_server_refuse_by_one_rule(tmp_path, voice_pair):
    """The same request type validates both: the CLI's line is the server's bad_request message."""
    for option, value, field in (("--fps", 0.0, "fps"), ("--seed", -1, "seed"), ("--fps", "abc", "fps"),
                                 ("--seed", "abc", "seed"), ("--seed", 1.5, "seed")):
        r = run_runtime("predict", "--self", voice_pair[0], "--out", tmp_path / "o.npz", option, value)
        with pytest.raises(RequestError) as refused:
            PredictRequest.from_json({"id": 1, "self": str(voice_pair[0]), "out": str(tmp_path / "o.npz"),
                                      field: value})
        assert r.returncode == 2 and r.stderr.strip() == f"error: {refused.value}"


def test_the_request_module_needs_only_the_standard_library():
    """The add-on builds its requests with it inside Blender, where numpy may be all there is."""
    code = ("import sys, model_runtime.request\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'scipy', 'soundfile', 'torch'}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=runtime_env(), capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_a_long_path_is_echoed_bounded(tmp_path, random_model):
    long = str(tmp_path / ("a" * 100_000)) + ".wav"  # near the longest argument Linux passes
    r = run_runtime("predict", "--self", long, "--model", random_model, "--out", tmp_path / "o.npz")
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and "audio file not found" in line and "characters)" in line and len(line) < 400


def test_without_a_model_the_runtime_says_none_is_shipped(tmp_path, voice_pair):
    if SHIPPED_MODEL.exists():
        pytest.skip("a trained model is shipped in assets/")
    r = run_runtime("predict", "--self", voice_pair[0], "--out", tmp_path / "o.npz")
    assert r.returncode == 2 and "no trained model is shipped" in r.stderr
    info = json.loads(run_runtime("info").stdout)
    assert info["model"] is None and "no trained model" in info["model_error"]


def test_info_reports_backend_and_device(random_model):
    r = run_runtime("info", "--model", random_model)
    info = json.loads(r.stdout)
    assert info["protocol"] == PROTOCOL_VERSION and {"onnx", "torch"} <= set(info["backends"])
    assert info["backend"] == "onnx" and info["device"] in ("cpu", "cuda") and info["trained"] is False
    assert "CPUExecutionProvider" in info["onnx_providers"]


def test_an_upper_case_extension_writes_that_file_and_stale_temp_files_go(tmp_path, random_model, voice_pair):
    """o.NPZ / o.CSV are written as named. A temp file a killed run left (its pid is gone) is removed by
    the next run into the folder; one of a live process, and files not of Duet's pattern, are not."""
    from model_runtime.predict import temp_path

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in ("o.NPZ", "o.CSV"):
        folder = tmp_path / name.lower().replace(".", "_")
        folder.mkdir()
        stale, live = temp_path(folder / name, pid=dead.pid), temp_path(folder / name, pid=os.getpid())
        others = [folder / ".o.npz.tmp-1", folder / "notes.duet-tmp-1.txt"]
        for path in (stale, live, *others):
            Path(path).write_bytes(b"partial")
        r = run_runtime("predict", "--self", voice_pair[0], "--model", random_model, "--out", folder / name)
        assert r.returncode == 0, r.stderr
        weights = read_motion(folder / name).weights if name.endswith("CSV") else np.load(folder / name)["weights"]
        assert weights.shape == (frame_count(12.0, 30.0), 55)
        assert sorted(p.name for p in folder.iterdir()) == sorted([name, Path(live).name, *(p.name for p in others)])


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory):
    """Ten minutes of voice: a run long enough to be stopped in the middle."""
    path = tmp_path_factory.mktemp("long") / "ten_minutes.wav"
    sf.write(path, np.tile(speechlike(60.0, seed=3), 10), 16000, subtype="PCM_16")
    return path


def _stopped(proc, signum):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert err.splitlines() == [f"error: stopped by {signal.Signals(signum).name}"], err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_stops_it_and_leaves_nothing(tmp_path, random_model, ten_minutes, signum):
    out = tmp_path / "out" / "result.npz"
    out.parent.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "model_runtime", "predict", "--self", str(ten_minutes),
                             "--model", str(random_model), "--out", str(out)], cwd=REPO, env=runtime_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # until the model has begun to load
        if maps.exists() and "onnxruntime" in maps.read_text(errors="replace"):
            break
        time.sleep(0.05)
    time.sleep(1.0)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signum)
    _stopped(proc, signum)
    assert list(out.parent.iterdir()) == []


def test_sigterm_while_the_result_is_written_leaves_nothing(tmp_path, random_model, voice_pair):
    """Stopped while the temp file is being written: it is removed, and the output never appears."""
    out = tmp_path / "out" / "result.csv"
    out.parent.mkdir()
    # 12 s at 1000 fps: 12,000 CSV rows, long enough to be caught writing them
    proc = subprocess.Popen([sys.executable, "-m", "model_runtime", "predict", "--self", str(voice_pair[0]),
                             "--model", str(random_model), "--fps", "1000", "--out", str(out)], cwd=REPO,
                            env=runtime_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        temps = [p for p in out.parent.iterdir() if ".duet-tmp-" in p.name]
        try:
            if temps and temps[0].stat().st_size > 0:  # the empty one is the writability probe
                break
        except FileNotFoundError:  # the probe, removed between the listing and the stat
            pass
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before its result was caught being written"
    proc.send_signal(signal.SIGTERM)
    _stopped(proc, signal.SIGTERM)
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("command", ["init", "export"])
@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_init_and_export_refuse_an_unwritable_out_in_one_line(tmp_path, random_model, command, where):
    out = tmp_path / "gone" / "m.pt" if where == "missing folder" else tmp_path
    args = ["--out", out] + (["--checkpoint", random_model.with_suffix(".pt")] if command == "export" else [])
    r = run_runtime(command, *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: {out}"), r.stderr
    assert "Traceback" not in r.stderr and sorted(tmp_path.iterdir()) == []
