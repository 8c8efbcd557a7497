"""Bad input on the command line, case by case: audio, partner motion, model files, output paths and
option values. Every case must end with exit code 2, exactly one stderr line `error: ...` naming the
file, option or field, no traceback, and nothing written where the result would have gone.

A fresh interpreter per case would cost seconds each (numpy, scipy, ONNX Runtime, torch), so the
cases run in two worker processes that call `model_runtime.cli.main(argv)` once per case with file
descriptor 2 pointed at a file of its own: anything written to stderr, by Python or by a C library,
is seen. `test_the_workers_see_what_a_real_process_shows` holds that harness to separate processes.
"""

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import soundfile as sf

from model_runtime.channels import CHANNELS
from model_runtime.motion_io import write_llf_csv
from tests.conftest import REPO, run_runtime, runtime_env, speechlike

WORKER = textwrap.dedent("""
    import json, os, sys, tempfile, traceback, warnings
    warnings.simplefilter("always")  # a warning a fresh process would print must not hide as a repeat
    setup, cases, results_path = json.load(open(sys.argv[1]))
    exec(setup)
    from model_runtime.cli import main
    results, real_stderr = {}, os.dup(2)
    for cid, argv in cases:
        with tempfile.TemporaryFile() as log:
            sys.stderr.flush()
            os.dup2(log.fileno(), 2)
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code
            except BaseException:
                traceback.print_exc()
                rc = "escaped main()"
            finally:
                sys.stderr.flush()
                os.dup2(real_stderr, 2)
            log.seek(0)
            results[cid] = {"rc": rc, "stderr": log.read().decode("utf-8", "replace")}
    json.dump(results, open(results_path, "w"))
""")


def _wav(path, samples, sr=16000, subtype=None):
    sf.write(path, samples, sr, subtype=subtype)
    return path


def _npz(path, **arrays):
    with open(path, "wb") as fh:  # np.savez to a file: the name is kept as given
        np.savez(fh, **arrays)


def make_files(d):
    """Every bad file the cases name, and one good voice."""
    rng = np.random.default_rng(0)
    good = np.random.default_rng(1).random((20, 55), dtype=np.float32)
    names = np.array(CHANNELS)
    _wav(d / "good.wav", speechlike(2.0, seed=1))
    # audio
    (d / "empty.wav").write_bytes(b"")
    (d / "folder.wav").mkdir()
    (d / "text.wav").write_text("this is not audio\n")
    (d / "random.wav").write_bytes(rng.bytes(4096))
    (d / "header_only.wav").write_bytes((d / "good.wav").read_bytes()[:30])
    _wav(d / "all_nan.wav", np.full(16000, np.nan, np.float32), subtype="FLOAT")
    _wav(d / "no_samples.wav", np.zeros(0, np.float32))
    # motion: Duet .npz
    (d / "folder.npz").mkdir()
    (d / "empty.npz").write_bytes(b"")
    (d / "random.npz").write_bytes(rng.bytes(4096))
    np.save(d / "array.npy", good)
    os.replace(d / "array.npy", d / "array_named.npz")
    _npz(d / "fps_array.npz", names=names, weights=good, fps=np.array([30.0, 25.0]))
    _npz(d / "fps_text.npz", names=names, weights=good, fps=np.array("30"))
    _npz(d / "fps_zero.npz", names=names, weights=good, fps=np.float64(0))
    _npz(d / "fps_nan.npz", names=names, weights=good, fps=np.float64(np.nan))
    _npz(d / "names_0d.npz", names=np.array("jawOpen"), weights=good, fps=np.float64(30))
    _npz(d / "names_2d.npz", names=names.reshape(5, 11), weights=good, fps=np.float64(30))
    _npz(d / "no_weights.npz", names=names, fps=np.float64(30))
    _npz(d / "no_fps.npz", names=names, weights=good)
    _npz(d / "no_names.npz", weights=good, fps=np.float64(30))
    _npz(d / "weights_1d.npz", names=names, weights=good[:, 0], fps=np.float64(30))
    _npz(d / "weights_mismatch.npz", names=names, weights=good[:, :54], fps=np.float64(30))
    _npz(d / "weights_no_rows.npz", names=names, weights=good[:0], fps=np.float64(30))
    _npz(d / "weights_text.npz", names=names, weights=np.full((20, 55), "x"), fps=np.float64(30))
    _npz(d / "not_arkit.npz", names=np.array([f"c{i}" for i in range(55)]), weights=good, fps=np.float64(30))
    _npz(d / "all_nan.npz", names=names, weights=np.full((20, 55), np.nan, np.float32), fps=np.float64(30))
    np.savez(d / "pickled.npz", names=np.array(list(CHANNELS), dtype=object), weights=good, fps=np.float64(30))
    with zipfile.ZipFile(d / "foreign_zip.npz", "w") as z:
        z.writestr("readme.txt", "a zip, but not of arrays")
    # motion: Live Link Face .csv
    write_llf_csv(d / "good.csv", good, 30.0)
    lines = (d / "good.csv").read_text().splitlines()
    (d / "reversed.csv").write_text("\n".join([lines[0], *lines[:0:-1]]) + "\n")
    same = [lines[0]] + [",".join(["00:00:01:00.000", *ln.split(",")[1:]]) for ln in lines[1:]]
    (d / "same_time.csv").write_text("\n".join(same) + "\n")
    (d / "bad_timecode.csv").write_text("\n".join([lines[0], *["x" + ln for ln in lines[1:]]]) + "\n")
    (d / "header_only.csv").write_text(lines[0] + "\n")
    (d / "empty.csv").write_bytes(b"")
    (d / "binary.csv").write_bytes(b"\xff\xfe\x00" + rng.bytes(2048))
    (d / "not_arkit.csv").write_text("a,b\n1,2\n3,4\n")
    (d / "not_numbers.csv").write_text("JawOpen,MouthClose\n0.1,0.2\n0.3,high\n")
    (d / "all_nan.csv").write_text("JawOpen,MouthClose\nnan,\n,nan\n")
    # positions files of a cast
    (d / "positions_cut.json").write_text('{"version": 1, "characters": {"A": ')
    (d / "positions_no_b.json").write_text(json.dumps({"version": 1, "characters": {
        "A": {"position": [0, 1, 1.6], "forward": [0, -1, 0]}}}))
    # model files
    (d / "random.onnx").write_bytes(rng.bytes(4096))
    (d / "empty.onnx").write_bytes(b"")
    (d / "folder.onnx").mkdir()
    (d / "random.pt").write_bytes(rng.bytes(4096))
    (d / "text.pt").write_text("not a checkpoint\n")
    return d


def model_files(d, random_model):
    """Model files that need the real one: its pieces, and things beside it."""
    onnx = random_model.read_bytes()
    (d / "truncated.onnx").write_bytes(onnx[:len(onnx) // 3])
    (d / "beside").mkdir()
    (d / "beside" / "weights.onnx").write_bytes(onnx)  # a real model beside a file that is not one
    (d / "beside" / "weights.bin").write_bytes(b"\x00" * 64)
    (d / "lone").mkdir()
    (d / "lone" / "model.onnx").write_bytes(onnx)  # no .pt beside it
    (d / "ptonly").mkdir()
    (d / "ptonly" / "model.pt").write_bytes(random_model.with_suffix(".pt").read_bytes())


# Written by the model worker before its cases (it imports torch for them anyway): a checkpoint torch
# reads that is not Duet's, and a Duet checkpoint whose weights do not fit its config.
TORCH_SETUP = """
import torch
torch.save({"format": "something-else", "weights": torch.zeros(3)}, D + "/other.pt")
ckpt = torch.load(D + "/ptonly/model.pt", weights_only=True)
ckpt["state_dict"].pop(next(iter(ckpt["state_dict"])))
torch.save(ckpt, D + "/damaged.pt")
"""

# (case id, options replaced or added (None: left out), the text its one line must contain).
# Base: predict --self good.wav --model RANDOM --out OUT/o.npz. {d}: the files, {case}: the case's folder.
OPTIONS = [
    ("fps_text", {"--fps": "abc"}, "fps: must be a number"),
    ("fps_empty", {"--fps": ""}, "fps: must be a number"),
    ("fps_zero", {"--fps": "0"}, "fps: must be a positive number from 1 to 1000, got 0.0"),
    ("fps_negative", {"--fps": "-5"}, "fps: must be a positive number"),
    ("fps_nan", {"--fps": "nan"}, "fps: must be a positive number"),
    ("fps_inf", {"--fps": "inf"}, "fps: must be a positive number"),
    ("fps_huge", {"--fps": "1e9"}, "fps: must be a positive number"),
    ("fps_no_value", {"--fps": []}, "--fps: expected one argument"),
    ("seed_negative", {"--seed": "-1"}, "seed: must be a whole number >= 0, got -1"),
    ("seed_text", {"--seed": "abc"}, "seed: must be a whole number >= 0, got 'abc'"),
    ("seed_fraction", {"--seed": "1.5"}, "seed: must be a whole number >= 0, got 1.5"),
    ("device_unknown", {"--device": "tpu"}, "--device: invalid choice: 'tpu'"),
    ("backend_unknown", {"--backend": "tensorflow"}, "--backend: invalid choice: 'tensorflow'"),
    ("liveliness_unknown", {"--liveliness": "maybe"}, "--liveliness: invalid choice: 'maybe'"),
    ("liveliness_bool", {"--liveliness": "true"}, "--liveliness: invalid choice: 'true'"),
    ("option_unknown", {"--bogus": "1"}, "unrecognized arguments: --bogus"),
    ("self_left_out", {"--self": None}, "required: --self"),
    ("out_left_out", {"--out": None}, "required: --out"),
    ("self_empty", {"--self": ""}, "self: must be a non-empty path"),
    ("model_empty", {"--model": ""}, "model: an empty path"),
    ("command_unknown", "predicts", "command: invalid choice: 'predicts'"),
]
OUTPUTS = [
    ("out_suffix", {"--out": "{case}/o.txt"}, "out: must end in .npz or .csv"),
    ("out_empty", {"--out": ""}, "out: must be a non-empty path"),
    ("out_folder_missing", {"--out": "{case}/missing/o.npz"}, "o.npz: output folder does not exist"),
    ("out_is_a_folder", {"--out": "{case}/result.npz"}, "result.npz: is a folder"),
    ("out_folder_is_a_file", {"--out": "{d}/good.wav/o.npz"}, "o.npz: the output folder is a file"),
    ("out_not_writable", {"--out": "/sys/duet-result.npz"}, "duet-result.npz: cannot write in the output folder"),
]
AUDIO = [
    ("self_missing", {"--self": "{d}/missing.wav"}, "missing.wav: audio file not found"),
    ("self_empty_file", {"--self": "{d}/empty.wav"}, "empty.wav: audio file is empty"),
    ("self_folder", {"--self": "{d}/folder.wav"}, "folder.wav: is a folder"),
    ("self_text", {"--self": "{d}/text.wav"}, "text.wav: not a readable audio file"),
    ("self_random_bytes", {"--self": "{d}/random.wav"}, "random.wav: not a readable audio file"),
    ("self_header_only", {"--self": "{d}/header_only.wav"}, "header_only.wav: not a readable audio file"),
    ("self_all_nan", {"--self": "{d}/all_nan.wav"}, "all_nan.wav: every sample is NaN or infinite"),
    ("self_no_samples", {"--self": "{d}/no_samples.wav"}, "no_samples.wav: audio file holds no samples"),
    ("partner_missing", {"--partner": "{d}/missing.wav"}, "missing.wav: audio file not found"),
    ("partner_folder", {"--partner": "{d}/folder.wav"}, "folder.wav: is a folder"),
    ("partner_all_nan", {"--partner": "{d}/all_nan.wav"}, "all_nan.wav: every sample is NaN or infinite"),
]
MOTION = [(f"motion_{name.replace('.', '_')}", {"--partner-motion": "{d}/" + name}, f"{name}: {needle}")
          for name, needle in [
    ("missing.csv", "motion file not found"),
    ("folder.npz", "is a folder"),
    ("empty.npz", "not a readable .npz file"),
    ("random.npz", "not a readable .npz file"),
    ("array_named.npz", "not a .npz archive"),
    ("fps_array.npz", "fps must be one number"),
    ("fps_text.npz", "fps must be one number"),
    ("fps_zero.npz", "fps must be a positive number"),
    ("fps_nan.npz", "fps must be a positive number"),
    ("names_0d.npz", "names must be a list of channel names"),
    ("names_2d.npz", "names must be a list of channel names"),
    ("no_weights.npz", "no weights"),
    ("no_fps.npz", "no fps"),
    ("no_names.npz", "no names"),
    ("weights_1d.npz", "weights shape (20,) does not match 55 names"),
    ("weights_mismatch.npz", "weights shape (20, 54) does not match 55 names"),
    ("weights_no_rows.npz", "weights hold no frames"),
    ("weights_text.npz", "weights must be numbers"),
    ("not_arkit.npz", "no ARKit channel names"),
    ("all_nan.npz", "every value is empty, NaN or infinite"),
    ("pickled.npz", "not a readable .npz file"),
    ("foreign_zip.npz", "no names, weights, fps"),
    ("reversed.csv", "Timecode does not advance (running backwards)"),
    ("same_time.csv", "Timecode does not advance (all the same)"),
    ("bad_timecode.csv", "unreadable Timecode"),
    ("header_only.csv", "no frames"),
    ("empty.csv", "no frames"),
    ("binary.csv", "not a text CSV file"),
    ("not_arkit.csv", "no ARKit channel names"),
    ("not_numbers.csv", "line 3: a missing or non-numeric value"),
    ("all_nan.csv", "every value is empty, NaN or infinite"),
]]
MODELS = [
    ("model_missing", {"--model": "{d}/missing.onnx"}, "missing.onnx: model file not found"),
    ("model_random_onnx", {"--model": "{d}/random.onnx"}, "random.onnx: not a readable ONNX model"),
    ("model_truncated_onnx", {"--model": "{d}/truncated.onnx"}, "truncated.onnx: not a readable ONNX model"),
    ("model_empty_onnx", {"--model": "{d}/empty.onnx"}, "empty.onnx: model file is empty"),
    ("model_folder", {"--model": "{d}/folder.onnx"}, "folder.onnx: is a folder"),
    ("model_random_pt", {"--model": "{d}/random.pt", "--backend": "torch"}, "random.pt: not a readable PyTorch"),
    ("model_text_pt", {"--model": "{d}/text.pt", "--backend": "torch"}, "text.pt: not a readable PyTorch"),
    ("model_other_pt", {"--model": "{d}/other.pt"}, "other.pt: not a Duet model checkpoint"),
    ("model_damaged_pt", {"--model": "{d}/damaged.pt"}, "damaged.pt: a damaged Duet checkpoint"),
    ("model_not_a_model_name", {"--model": "{d}/beside/weights.bin"}, "weights.bin: not a model file name"),
    ("model_no_pt_for_torch", {"--model": "{d}/lone/model.onnx", "--backend": "torch"},
     "needs a .pt checkpoint and there is none at"),
    ("model_no_onnx_for_onnx", {"--model": "{d}/ptonly/model.pt", "--backend": "onnx"},
     "model.pt: no .onnx file beside it"),
]
# cast: (case id, the whole command line, the text its one line must contain). {model}: the random model.
CAST = "cast --voice A={d}/good.wav --voice B={d}/good.wav --model {model} --out {case}".split()
CAST_OPTIONS = [
    ("cast_voice_no_name", ["cast", "--voice", "{d}/good.wav", "--out", "{case}"], "--voice: expected NAME=PATH"),
    ("cast_voice_left_out", ["cast", "--out", "{case}"], "required: --voice"),
    ("cast_out_left_out", CAST[:-2], "required: --out"),
    ("cast_name_twice", CAST[:4] + ["A={d}/good.wav"] + CAST[5:], "members[1].name: 'A' is also members[0]'s name"),
    ("cast_name_empty", CAST[:4] + ["={d}/good.wav"] + CAST[5:], "members[1].name: must be a non-empty string"),
    ("cast_name_separator", CAST[:4] + ["x/y={d}/good.wav"] + CAST[5:], "members[1].name: must not contain a path"),
    ("cast_names_one_file", CAST[:4] + ["a={d}/good.wav"] + CAST[5:], "'A' and 'a' would be one file"),
    ("cast_voice_empty", CAST[:4] + ["B="] + CAST[5:], "members[1].voice: must be a non-empty path"),
    ("cast_fps_zero", CAST + ["--fps", "0"], "fps: must be a positive number"),
    ("cast_seed_negative", CAST + ["--seed", "-1"], "seed: must be a whole number >= 0"),
    ("cast_attention_unknown", CAST + ["--attention", "maybe"], "--attention: invalid choice: 'maybe'"),
    ("cast_format_unknown", CAST + ["--format", "wav"], "--format: invalid choice: 'wav'"),
    ("cast_out_missing", CAST[:-1] + ["{case}/missing"], "missing: output folder does not exist"),
    ("cast_out_a_file", CAST[:-1] + ["{d}/good.wav"], "good.wav: is a file, not a folder"),
    ("cast_out_not_writable", CAST[:-1] + ["/sys"], "A.npz: cannot write in the output folder"),
    ("cast_positions_missing", CAST + ["--positions", "{d}/gone.json"], "gone.json: positions file not found"),
    ("cast_positions_cut", CAST + ["--positions", "{d}/positions_cut.json"],
     "positions_cut.json: not a positions file"),
    ("cast_positions_no_member", CAST + ["--positions", "{d}/positions_no_b.json"],
     "positions_no_b.json: characters: no entry for cast member 'B'"),
]
CAST_AUDIO = [
    ("cast_voice_missing", CAST[:4] + ["B={d}/missing.wav"] + CAST[5:], "missing.wav: audio file not found"),
    ("cast_voice_all_nan", CAST[:4] + ["B={d}/all_nan.wav"] + CAST[5:], "all_nan.wav: every sample is NaN"),
    ("cast_voice_folder", CAST[:4] + ["B={d}/folder.wav"] + CAST[5:], "folder.wav: is a folder"),
    ("cast_model_missing", CAST[:-3] + ["{d}/missing.onnx"] + CAST[-2:], "missing.onnx: model file not found"),
]
CHEAP = OPTIONS + OUTPUTS + CAST_OPTIONS  # refused before any model is loaded
CASES = CHEAP + AUDIO + MOTION + MODELS + CAST_AUDIO


def argv_of(case, d, case_dir, model):
    cid, change, _ = case
    if isinstance(change, list):  # a whole command line of its own
        return [arg.format(d=d, case=case_dir, model=model) for arg in change]
    if isinstance(change, str):  # a whole different command
        return [change, "--self", f"{d}/good.wav", "--out", f"{case_dir}/o.npz"]
    opts = {"--self": "{d}/good.wav", "--model": str(model), "--out": "{case}/o.npz"}
    opts.update(change)
    argv = ["predict"]
    for key, value in opts.items():
        if value is None:
            continue
        argv += [key] if value == [] else [key, value.format(d=d, case=case_dir)]
    return argv


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, random_model):
    """Every case run once: {case id: (argv, its output folder, {"rc", "stderr"})}."""
    d = make_files(tmp_path_factory.mktemp("bad_inputs"))
    model_files(d, random_model)
    runs = tmp_path_factory.mktemp("runs")
    plan = {}
    for case in CASES:
        case_dir = runs / case[0]
        case_dir.mkdir()
        plan[case[0]] = (argv_of(case, d, case_dir, random_model), case_dir)
    (runs / "out_is_a_folder" / "result.npz").mkdir()
    workers = []
    for name, cases, setup in (("cheap", CHEAP, ""), ("model", AUDIO + MOTION + MODELS + CAST_AUDIO,
                                                       f"D = {str(d)!r}\n{TORCH_SETUP}")):
        job = runs.parent / f"{runs.name}-{name}.json"
        job.write_text(json.dumps([setup, [(c[0], plan[c[0]][0]) for c in cases], str(job) + ".out"]))
        workers.append((job, subprocess.Popen([sys.executable, "-c", WORKER, str(job)], cwd=REPO,
                                              env=runtime_env(), stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True)))
    results = {}
    for job, proc in workers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
        results.update(json.loads(open(str(job) + ".out").read()))
    return d, {cid: (*plan[cid], results[cid]) for cid in plan}


def test_the_matrix_is_broad():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 80


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(matrix, case):
    cid, change, needle = case
    if cid in ("out_not_writable", "cast_out_not_writable") and not os.path.isdir("/sys"):
        pytest.skip("needs Linux's /sys, a folder nobody can create files in")
    d, runs = matrix
    argv, case_dir, result = runs[cid]
    lines = result["stderr"].splitlines()
    assert result["rc"] == 2, result
    assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
    assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result["stderr"]
    assert list(case_dir.iterdir()) == ([case_dir / "result.npz"] if cid == "out_is_a_folder" else [])
    if cid == "out_is_a_folder":
        assert list((case_dir / "result.npz").iterdir()) == []
    assert not [p for p in d.rglob("*") if ".duet-tmp-" in p.name]


def test_the_workers_see_what_a_real_process_shows(matrix):
    """The in-process harness against real `python -m model_runtime` processes, one kind of case each."""
    _, runs = matrix
    picked = ["fps_text", "option_unknown", "out_is_a_folder", "self_all_nan", "motion_fps_array_npz",
              "model_random_pt"]
    procs = {cid: subprocess.Popen([sys.executable, "-m", "model_runtime", *runs[cid][0]], cwd=REPO,
                                   env=runtime_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cid in picked}
    for cid, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, err) == (runs[cid][2]["rc"], runs[cid][2]["stderr"]), cid
        assert out == ""


def test_a_mistake_in_the_command_is_one_line_not_the_usage(tmp_path):
    """argparse's own refusals follow the contract too, and say where the usage is."""
    r = run_runtime("predict", "--self", "a.wav", "--out", tmp_path / "o.npz", "--device", "tpu")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: --device: invalid choice: 'tpu'")
    assert r.stderr.rstrip().endswith("(see python -m model_runtime predict --help)")
    assert "usage:" not in r.stderr
