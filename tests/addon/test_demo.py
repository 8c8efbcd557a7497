"""`make demo` and `make demo CAST=3`, shortened: the real extension and runtime animate two demo heads
in conversation mode, then three around a table with Generate cast; every output is checked from
the outside (re-imported, read back by PyAV's FFmpeg, image sizes, where the heads look)."""

import os
import subprocess
import sys

import bpy
import pytest
from addon_helpers import REPO, ROOT_CONFTEST, runtime_python

# The demo runs in the Python that carries bpy; `make test-compat`'s venvs have no plotting, scipy or PyAV.
pytest.importorskip("matplotlib")
pytest.importorskip("scipy")
pytest.importorskip("av")

if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))

import demo_render  # noqa: E402  (reads demo.mp4 back, as the demo itself checks it)
from demo_voices import SAMPLE_DIRS  # noqa: E402

from model_runtime.paths import SAMPLE_DIR  # noqa: E402

SECONDS, PREVIEW_FPS, W, H = 4, 5, 160, 90
FRAMES = SECONDS * 25           # the scene runs at 25 fps
PREVIEW_FRAMES = SECONDS * PREVIEW_FPS
NAMES = ("Alex", "Sam")
CAST = ("Alex", "Sam", "Kim")   # seated left to right; the cast sample's a, b, c


def _run(*args, timeout=300):
    env = dict(os.environ, DUET_RUNTIME_PYTHON=runtime_python())
    return subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    if not (SAMPLE_DIR / "a.wav").is_file():
        pytest.fail("assets/sample is missing: the demo's default input")
    out = tmp_path_factory.mktemp("demo")
    r = _run("--seconds", SECONDS, "--preview-fps", PREVIEW_FPS, "--resolution", f"{W}x{H}", "--out-dir", out)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    return out, r.stdout


@pytest.fixture(scope="module")
def cast_out(tmp_path_factory):
    if not (SAMPLE_DIRS[3] / "c.wav").is_file():
        pytest.fail("assets/sample_cast is missing: the cast demo's input")
    out = tmp_path_factory.mktemp("demo_cast")
    r = _run("--cast", 3, "--seconds", SECONDS, "--preview-fps", PREVIEW_FPS, "--resolution", f"{W}x{H}",
             "--out-dir", out)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    return out, r.stdout


def _imported_jaw_curves(path, names):
    """Import the .glb or .fbx into an empty 25 fps scene; each named head must be there with shape
    keys and a jawOpen curve keyed over all FRAMES. Returns {name: that F-curve}."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 25, 1.0
    if path.suffix == ".glb":
        bpy.ops.import_scene.gltf(filepath=str(path))
    else:
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    curves = {}
    for name in names:
        obj = bpy.data.objects.get(name)
        assert obj is not None and obj.data.shape_keys is not None, (name, [o.name for o in bpy.data.objects])
        curves[name] = fc = _shape_key_curve(obj)
        xs = [k.co[0] for k in fc.keyframe_points]
        assert round(max(xs) - min(xs)) + 1 == FRAMES, (name, min(xs), max(xs))
    return curves


def _shape_key_curve(obj, key="jawOpen"):
    """The F-curve animating `key` on obj's shape keys: in the active action or an NLA strip."""
    from duet.addon.animdata import action_fcurves

    ad = obj.data.shape_keys.animation_data
    assert ad is not None, f"{obj.name}: no animation on its shape keys"
    sources = [(ad.action, getattr(ad, "action_slot", None))] if ad.action else []
    sources += [(s.action, getattr(s, "action_slot", None)) for t in ad.nla_tracks for s in t.strips]
    for act, slot in sources:
        for fc in action_fcurves(act, slot):
            if fc.data_path == f'key_blocks["{key}"].value':
                return fc
    raise AssertionError(f"{obj.name}: no {key} curve")


def test_demo_prints_steps_and_writes_everything(demo_out):
    out, stdout = demo_out
    for name in ("demo.blend", "demo.glb", "demo.fbx", "demo.mp4", "demo.png", "demo_curves.png",
                 "audio/alex.wav", "audio/sam.wav"):
        assert (out / name).stat().st_size > 1000, name
    assert f"render: frame {PREVIEW_FRAMES}/{PREVIEW_FRAMES}" in stdout
    assert "Timings:" in stdout and "total" in stdout
    assert "demo.glb re-imported" in stdout and "demo.fbx re-imported" in stdout


@pytest.mark.parametrize("ext", ["glb", "fbx"])
def test_demo_exports_carry_both_heads_animation(duet, demo_out, ext):
    out, _ = demo_out
    jaw = {name: [k.co[1] for k in fc.keyframe_points]
           for name, fc in _imported_jaw_curves(out / f"demo.{ext}", NAMES).items()}
    for name, ys in jaw.items():
        assert max(ys) - min(ys) > 0.01, f"{name}'s jaw does not move"
    # Alex speaks in the sample's first seconds: the mouth opens well
    assert max(jaw["Alex"]) > 0.15


def test_demo_blend_has_both_heads_and_voices(duet, demo_out):
    out, _ = demo_out
    bpy.ops.wm.open_mainfile(filepath=str(out / "demo.blend"))
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, FRAMES)
    for name in NAMES:
        obj = bpy.data.objects[name]
        _shape_key_curve(obj)
        assert obj.animation_data is not None, f"{name}: no head motion"
    if not bpy.app.build_options.audaspace:
        return  # no sound strips without audio support (the PyPI bpy 4.2 module)
    se = scene.sequence_editor
    strips = se.strips if hasattr(se, "strips") else se.sequences
    assert sorted(os.path.basename(s.sound.filepath) for s in strips if s.type == "SOUND") == ["alex.wav", "sam.wav"]


def test_demo_video_has_the_frames(demo_out):
    out, _ = demo_out
    mp4 = demo_render.read_mp4(out / "demo.mp4")
    assert [(v["codec"], v["frames"], v["size"]) for v in mp4.video] == [("h264", PREVIEW_FRAMES, (W, H))]


def test_demo_video_has_both_voices(demo_out):
    if not bpy.app.build_options.audaspace:
        pytest.skip("this bpy build has no audio (the PyPI bpy 4.2 module): the preview is silent")
    out, _ = demo_out
    mp4 = demo_render.read_mp4(out / "demo.mp4")
    assert [a["codec"] for a in mp4.audio] == ["aac"]
    assert abs(mp4.audio[0]["seconds"] - SECONDS) < 0.1
    # both voices are in the mix: it is explained by a + b, not by either alone
    coef = demo_render.mix_gains(mp4, [out / "audio" / "alex.wav", out / "audio" / "sam.wav"])
    assert coef.min() > 0.3, coef


def test_demo_pictures_are_images_of_the_right_size(duet, demo_out):
    out, _ = demo_out
    pad, title = 8, round(H * 0.16)
    sheet = bpy.data.images.load(str(out / "demo.png"))
    assert tuple(sheet.size) == (3 * W + 4 * pad, 2 * (H + title) + 3 * pad)
    curves = bpy.data.images.load(str(out / "demo_curves.png"))
    assert tuple(curves.size) == (1400, 1000)


def test_demo_bad_voice_is_one_line_and_exit_2(tmp_path):
    import soundfile as sf

    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"definitely not audio" * 50)
    good = tmp_path / "b.wav"
    sf.write(good, ROOT_CONFTEST.speechlike(2.0, seed=3), 16000)
    r = _run("--self", bad, "--partner", good, "--out-dir", tmp_path / "out", timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "noise.wav" in err[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "demo.blend").exists()


# ---------------------------------------------------------------- make demo CAST=3

def test_cast_demo_writes_everything(cast_out):
    out, stdout = cast_out
    for name in ("demo_cast.blend", "demo_cast.glb", "demo_cast.fbx", "demo_cast.mp4", "demo_cast.png",
                 "demo_cast_curves.png", "audio/alex.wav", "audio/sam.wav", "audio/kim.wav"):
        assert (out / name).stat().st_size > 1000, name
    assert "Generate cast" in stdout and f"render: frame {PREVIEW_FRAMES}/{PREVIEW_FRAMES}" in stdout
    assert "demo_cast.glb re-imported" in stdout and "demo_cast.fbx re-imported" in stdout


@pytest.mark.parametrize("ext", ["glb", "fbx"])
def test_cast_exports_carry_every_head(duet, cast_out, ext):
    out, _ = cast_out
    _imported_jaw_curves(out / f"demo_cast.{ext}", CAST)


def _facing_error(obj, target):
    """Degrees between where obj's local -Y points (world, on the floor) and the direction to target."""
    import math

    from mathutils import Vector

    f = obj.matrix_world.to_3x3() @ Vector((0.0, -1.0, 0.0))
    d = target.matrix_world.translation - obj.matrix_world.translation
    return math.degrees(abs(math.atan2(f.x * d.y - f.y * d.x, f.x * d.x + f.y * d.y)))


def test_cast_blend_has_the_cast_and_listeners_turn_to_the_speaker(duet, cast_out):
    """The saved scene holds the Cast list as the demo filled it; while Alex speaks (0.45-4.3 s of
    the sample), Sam and Kim face Alex more closely than their seats do (the shoulders keep each
    head's rest facing)."""
    out, _ = cast_out
    bpy.ops.wm.open_mainfile(filepath=str(out / "demo_cast.blend"))
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, FRAMES)
    rows = scene.duet.cast
    assert [r.character.name for r in rows] == list(CAST)
    assert [os.path.basename(r.voice) for r in rows] == ["alex.wav", "sam.wav", "kim.wav"]
    assert {(r.head_target, r.head_object == r.character, r.forward_axis) for r in rows} == {("OBJECT", True, "NEG_Y")}
    alex = bpy.data.objects["Alex"]
    for name in ("Sam", "Kim"):
        head, body = bpy.data.objects[name], bpy.data.objects[f"{name}_Body"]
        rest = _facing_error(body, alex)
        turned = []
        for f in range(int(2.5 * 25), FRAMES + 1, 5):
            scene.frame_set(f)
            turned.append(_facing_error(head, alex))
        assert max(turned) < rest - 8, f"{name} faces Alex {rest:.0f} deg off at rest, {turned} while Alex speaks"


def test_cast_video_has_every_voice(cast_out):
    out, _ = cast_out
    mp4 = demo_render.read_mp4(out / "demo_cast.mp4")
    assert [(v["codec"], v["frames"], v["size"]) for v in mp4.video] == [("h264", PREVIEW_FRAMES, (W, H))]
    if not bpy.app.build_options.audaspace:
        pytest.skip("this bpy build has no audio (the PyPI bpy 4.2 module): the preview is silent")
    assert [a["codec"] for a in mp4.audio] == ["aac"] and abs(mp4.audio[0]["seconds"] - SECONDS) < 0.1
    coef = demo_render.mix_gains(mp4, [out / "audio" / f"{n.lower()}.wav" for n in CAST])
    assert coef.min() > 0.3, coef


def test_cast_pictures_are_images_of_the_right_size(duet, cast_out):
    out, _ = cast_out
    pad, title = 8, round(H * 0.16)
    sheet = bpy.data.images.load(str(out / "demo_cast.png"))
    assert tuple(sheet.size) == (3 * W + 4 * pad, 2 * (H + title) + 3 * pad)
    curves = bpy.data.images.load(str(out / "demo_cast_curves.png"))
    assert tuple(curves.size) == (1400, 1500)
