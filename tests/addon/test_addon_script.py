"""`make animate`'s script, headless in its own process, end to end on a saved .blend: one character,
and a cast (--cast pairs, --cast-file JSON)."""

import json
import struct
import subprocess
import sys

import bpy
import pytest
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


CAST = ("Alex", "Sam", "Kim")


def _cast_scene(tmp_path):
    """Three faces seated apart, saved to in.blend, and a voice each (its own seed and pitch)."""
    for k, name in enumerate(CAST):
        make_face(name).location = ((-4.0, 4.0, 0.0)[k], (0.0, 0.0, -4.0)[k], 0.0)
    blend = tmp_path / "in.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    voices = []
    for k, name in enumerate(CAST):
        voices.append(tmp_path / f"{name.lower()}.wav")
        sf.write(voices[-1], ROOT_CONFTEST.speechlike(3.0, seed=10 + k, f0=120.0 + 40 * k), 16000)
    return blend, voices


def test_animate_script_cast_pairs_key_every_face(duet, random_model, tmp_path):
    blend, voices = _cast_scene(tmp_path)
    out, glb = tmp_path / "out.blend", tmp_path / "out.glb"
    r = _run("--blend", blend, "--cast", *(f"{n}={v}" for n, v in zip(CAST, voices)), "--model", random_model,
             "--device", "cpu", "--out", out, "--export", glb)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in CAST:
        assert f"{name}: 52 channels" in r.stdout
    data = glb.read_bytes()
    gltf = json.loads(data[20:20 + struct.unpack("<I", data[12:16])[0]])  # the .glb's JSON chunk
    assert len(gltf["animations"]) == 1  # a cast exports as one clip: every face plays together
    assert {n["name"] for n in gltf["nodes"]} >= set(CAST)
    bpy.ops.wm.open_mainfile(filepath=str(out))
    s = bpy.context.scene.duet
    assert [(row.character.name, row.head_target, row.forward_axis) for row in s.cast] == \
        [(n, "OBJECT", "NEG_Y") for n in CAST]
    for name in CAST:
        obj = bpy.data.objects[name]
        key = obj.data.shape_keys
        assert key.animation_data.nla_tracks[-1].strips[0].action.name == f"Duet {name}"
        assert obj.animation_data is not None, f"{name}'s head was not keyed"


@pytest.mark.parametrize("cast_json, problem", [
    ({"characters": [{"object": "Alex", "voice": "../alex.wav", "forwrd": "-Y"}]}, 'unknown key "forwrd"'),
    ({"characters": [{"object": "Alex", "voice": "alex.wav"}]}, "alex.wav not found"),  # relative to the JSON
    ({"characters": [{"object": "Alex", "voice": "../alex.wav", "head": "bone"}]}, '"head_bone"'),
    ({"characters": [{"object": "Alex", "voice": "../alex.wav"}], "seed": -1}, '"seed"'),
    ({"characters": [{"object": "Alex", "voice": "../alex.wav"}, {"object": "Nobody", "voice": "../sam.wav"}]},
     "cast row 2: no object 'Nobody'"),  # found only once the .blend is open
])
def test_animate_script_bad_cast_file_is_one_line(duet, random_model, tmp_path, cast_json, problem):
    blend, _ = _cast_scene(tmp_path)
    (tmp_path / "cast").mkdir()
    cast_file = tmp_path / "cast" / "cast.json"
    cast_file.write_text(json.dumps(cast_json))
    out = tmp_path / "o.blend"
    r = _run("--blend", blend, "--cast-file", cast_file, "--model", random_model, "--out", out, "--export",
             tmp_path / "o.glb")
    assert r.returncode == 2, r.stderr[-2000:]
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and problem in err[0], r.stderr[-2000:]
    assert ("in.blend" if "Nobody" in problem else "cast.json") in err[0]  # the file at fault
    assert not out.exists() and not (tmp_path / "o.glb").exists()
