"""`make animate`'s script, headless in its own process, end to end on a saved .blend."""

import subprocess
import sys

import bpy
import soundfile as sf
from addon_helpers import REPO, ROOT_CONFTEST, make_face, runtime_python


def _run(*args):
    import os

    env = dict(os.environ, DUET_RUNTIME_PYTHON=runtime_python())
    return subprocess.run([sys.executable, str(REPO / "scripts" / "animate.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def test_animate_script_generates_saves_and_exports(duet, random_model, tmp_path):
    make_face()
    blend = tmp_path / "in.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, ROOT_CONFTEST.speechlike(3.0, seed=5), 16000)
    sf.write(b, ROOT_CONFTEST.speechlike(3.0, seed=6, f0=200.0), 16000)
    out, glb = tmp_path / "out.blend", tmp_path / "out.glb"
    r = _run("--blend", blend, "--object", "Face", "--self", a, "--partner", b, "--model", random_model,
             "--device", "cpu", "--out", out, "--export", glb)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Face: 52 channels" in r.stdout
    assert glb.stat().st_size > 1000
    bpy.ops.wm.open_mainfile(filepath=str(out))
    key = bpy.data.objects["Face"].data.shape_keys
    assert key.animation_data.nla_tracks[-1].strips[0].action.name == "Duet Face"


def test_animate_script_bad_input_is_one_line(duet, random_model, tmp_path):
    make_face()
    blend = tmp_path / "in.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"definitely not audio" * 50)
    r = _run("--blend", blend, "--object", "Face", "--self", bad, "--model", random_model, "--out",
             tmp_path / "o.blend")
    assert r.returncode == 2, r.stderr[-2000:]
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "noise.wav" in err[0]
    assert not (tmp_path / "o.blend").exists()
