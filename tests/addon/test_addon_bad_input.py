"""The add-on's bad-input matrix: every bad setting, file or fault goes through the real operators
and the real runtime, ends in one line that names the file or setting, and leaves the scene exactly
as it was (objects, shape-key values, actions, NLA, animation data, drivers, sound strips, frame
range and rate, selection), compared with a snapshot taken just before."""

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
import pytest
import soundfile as sf
from addon_helpers import ROOT_CONFTEST, make_face, snapshot


def _wav(path, seconds, seed, f0=140.0):
    sf.write(path, ROOT_CONFTEST.speechlike(seconds, seed=seed, f0=f0), 16000)
    return str(path)


def scene_state():
    """addon_helpers.snapshot() and everything else a generation, an import or an export could touch."""
    from duet.addon import animdata

    def slot_name(holder):
        slot = getattr(holder, "action_slot", None)
        return getattr(slot, "identifier", None) if slot is not None else None

    def anim(idb):
        ad = idb.animation_data
        if ad is None:
            return None
        return (ad.action.name if ad.action else None, slot_name(ad), ad.use_tweak_mode, ad.use_nla,
                [(t.name, t.mute, t.is_solo, [(s.name, s.action.name if s.action else None, s.frame_start,
                                               s.frame_end, s.mute, slot_name(s)) for s in t.strips])
                 for t in ad.nla_tracks],
                sorted((d.data_path, d.array_index, d.mute) for d in ad.drivers))

    scene = bpy.context.scene
    scene.frame_set(scene.frame_current)  # animated values as playback shows them, whatever ran last
    out = {"base": snapshot(), "objects": {}, "keys": {}}
    for ob in bpy.data.objects:
        out["objects"][ob.name] = (ob.type, ob.data.name if ob.data else None, ob.rotation_mode,
                                   tuple(round(v, 6) for v in ob.rotation_euler),
                                   tuple(round(v, 6) for v in ob.location), anim(ob))
    for key in bpy.data.shape_keys:
        out["keys"][key.name] = (key.user.name, key.use_relative, anim(key),
                                 [(kb.name, round(kb.value, 6), kb.mute, kb.slider_min, kb.slider_max)
                                  for kb in key.key_blocks])
    out["actions"] = sorted((a.name, a.users, a.use_fake_user, len(animdata.action_fcurves(a)))
                            for a in bpy.data.actions)
    out["data"] = {n: len(getattr(bpy.data, n)) for n in ("objects", "meshes", "shape_keys", "actions", "sounds",
                                                          "armatures", "scenes", "collections")}
    layer = bpy.context.view_layer
    out["selection"] = (sorted(o.name for o in layer.objects if o.select_get()),
                        layer.objects.active.name if layer.objects.active else None)
    for sc in bpy.data.scenes:
        se = sc.sequence_editor
        strips = [] if se is None else (se.strips if hasattr(se, "strips") else se.sequences)
        out[sc.name] = (sc.frame_start, sc.frame_end, sc.frame_current, sc.render.fps, sc.render.fps_base,
                        sorted((s.name, s.channel, s.frame_start,
                                getattr(getattr(s, "sound", None), "filepath", None)) for s in strips))
    return out


@dataclass
class Env:
    face: object
    tmp: Path
    prefs: object
    before: dict = None

    @property
    def s(self):
        return bpy.context.scene.duet

    def rebase(self):
        """The artist changed the scene on purpose (mid-job): compare with the scene from now on."""
        self.before = scene_state()


@pytest.fixture
def env(duet, prefs, tmp_path):
    """A face on a scene worth protecting: an active action on its shape keys, an object action
    also in an NLA track, a frame range; the settings would add sound strips, set the frame range
    and turn the head, so a half-done job would show."""
    scene = bpy.context.scene
    face = make_face()
    kb = face.data.shape_keys.key_blocks["jawOpen"]
    for f, v in ((1, 0.3), (20, 0.6)):
        kb.value = v
        kb.keyframe_insert("value", frame=f)
    face.keyframe_insert("location", frame=1)
    track = face.animation_data.nla_tracks.new()
    track.name = "Walk"
    track.strips.new("walk", 1, face.animation_data.action)
    scene.frame_start, scene.frame_end = 1, 48
    s = scene.duet
    s.character = face
    s.self_audio = _wav(tmp_path / "self.wav", 2.0, 1)
    s.partner_audio = _wav(tmp_path / "partner.wav", 2.0, 2, 210.0)
    s.start_frame, s.head_target, s.set_frame_range, s.add_sound_strips = 5, "OBJECT", True, True
    return Env(face, tmp_path, prefs)


def _job():
    from duet.addon import generate

    return generate.current_job()


def generate_op():
    """Generate as a script runs it; the one line it ends with (an error is a RuntimeError here)."""
    try:
        result = bpy.ops.duet.generate(wait=True)
    except RuntimeError as exc:
        return str(exc).strip()
    raise AssertionError(f"Generate did not fail: {result}, {_job().message}")


def _tweak(idb):
    """Enter NLA tweak mode on `idb`'s action, as Tab in the NLA editor does."""
    ad = idb.animation_data
    if not len(ad.nla_tracks) or ad.action is not None:
        track = ad.nla_tracks.new()
        track.strips.new("tweaked", 1, ad.action)
        ad.action = None
    ad.use_tweak_mode = True
    assert ad.use_tweak_mode


def _start_and_wait_for_progress(env, seconds=60.0):
    from duet.addon import generate
    from duet.addon.job import JobState

    env.s.self_audio = _wav(env.tmp / "long.wav", seconds, 3)
    env.rebase()
    generate.start(bpy.context)
    job, end = _job(), time.monotonic() + 120
    while not (job.state is JobState.PREDICTING and job.progress > 0):
        assert job.running and time.monotonic() < end, f"{job.state}: {job.message}"
        job.tick()
        time.sleep(0.01)
    return job


def _file(env, name, data):
    p = env.tmp / name
    p.write_bytes(data)
    return str(p)


GARBAGE = bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8))
CORRUPT_WAV = b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


# --- the character ------------------------------------------------------------------------------

@case
def no_character(env):
    env.s.character = None
    bpy.context.view_layer.objects.active = None
    return generate_op, ["Character: pick a mesh with shape keys"]


@case
def mesh_without_shape_keys(env):
    plain = bpy.data.objects.new("Plain", bpy.data.meshes.new("Plain"))
    bpy.context.scene.collection.objects.link(plain)
    env.s.character = plain
    return generate_op, ["Character: pick a mesh with shape keys"]


@case
def absolute_shape_keys(env):
    env.face.data.shape_keys.use_relative = False
    return generate_op, ["Character: 'Face' has absolute shape keys", "turn on Relative"]


@case
def nla_tweak_mode_with_active_action_output(env):
    _tweak(env.face.data.shape_keys)
    env.s.output_mode = "ACTIVE"
    return generate_op, ["Face's shape keys are in NLA tweak mode: exit tweak mode (Tab in the NLA editor) "
                         "or choose another output"]


@case
def head_object_in_nla_tweak_mode(env):
    _tweak(env.face)
    env.s.output_mode = "ACTIVE"
    return generate_op, ["Head motion: 'Face' is in NLA tweak mode", "choose another output"]


@case
def head_bone_missing(env):
    """Fails after the shape keys are written: the transaction rolls them back."""
    rig = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    bpy.context.scene.collection.objects.link(rig)
    env.s.head_target, env.s.head_object, env.s.head_bone = "BONE", rig, "Head"
    return generate_op, ["head bone 'Head' not found on 'Rig'", "Nothing was changed"]


# --- voices ---------------------------------------------------------------------------------------

@case
def own_voice_unset(env):
    env.s.self_audio = ""
    return generate_op, ["own voice"]


@case
def own_voice_missing(env):
    env.s.self_audio = str(env.tmp / "missing.wav")
    return generate_op, ["Own voice: file not found", "missing.wav"]


@case
def own_voice_is_a_folder(env):
    (env.tmp / "voices.wav").mkdir()
    env.s.self_audio = str(env.tmp / "voices.wav")
    return generate_op, ["Own voice: a folder", "voices.wav"]


@case
def own_voice_empty(env):
    env.s.self_audio = _file(env, "empty.wav", b"")
    return generate_op, ["Bad audio", "empty.wav", "Nothing was changed"]


@case
def own_voice_corrupt(env):
    env.s.self_audio = _file(env, "corrupt.wav", CORRUPT_WAV)
    return generate_op, ["Bad audio", "corrupt.wav", "Nothing was changed"]


@case
def own_voice_strip_missing(env):
    env.s.self_audio, env.s.self_strip = "", "Nope"
    return generate_op, ["Own voice: no sound strip named 'Nope'"]


@case
def partner_voice_missing(env):
    env.s.partner_audio = str(env.tmp / "missing.wav")
    return generate_op, ["Partner voice: file not found", "missing.wav"]


@case
def partner_voice_is_a_folder(env):
    (env.tmp / "partner_dir").mkdir()
    env.s.partner_audio = str(env.tmp / "partner_dir")
    return generate_op, ["Partner voice: a folder", "partner_dir"]


@case
def partner_voice_empty(env):
    env.s.partner_audio = _file(env, "empty_partner.wav", b"")
    return generate_op, ["Bad audio", "empty_partner.wav", "Nothing was changed"]


@case
def partner_voice_corrupt(env):
    env.s.partner_audio = _file(env, "corrupt_partner.mp3", GARBAGE)
    return generate_op, ["Bad audio", "corrupt_partner.mp3", "Nothing was changed"]


@case
def partner_voice_strip_missing(env):
    env.s.partner_audio, env.s.partner_strip = "", "Gone"
    return generate_op, ["Partner voice: no sound strip named 'Gone'"]


# --- the partner reference ------------------------------------------------------------------------

def _csv(env, path):
    env.s.partner_mode, env.s.partner_csv = "CSV", path
    return path


@case
def partner_csv_unset(env):
    _csv(env, "")
    return generate_op, ["Partner reference: choose a Live Link Face CSV"]


@case
def partner_csv_missing(env):
    _csv(env, str(env.tmp / "gone.csv"))
    return generate_op, ["Partner reference: file not found", "gone.csv"]


@case
def partner_csv_is_a_folder(env):
    (env.tmp / "take.csv").mkdir()
    _csv(env, str(env.tmp / "take.csv"))
    return generate_op, ["Partner reference: a folder", "take.csv"]


@case
def partner_csv_binary_garbage(env):
    _csv(env, _file(env, "garbage.csv", GARBAGE))
    return generate_op, ["Bad partner motion", "garbage.csv", "Nothing was changed"]


@case
def partner_csv_empty(env):
    _csv(env, _file(env, "empty.csv", b""))
    return generate_op, ["Bad partner motion", "empty.csv", "Nothing was changed"]


@case
def partner_csv_without_arkit_columns(env):
    _csv(env, _file(env, "columns.csv", b"Timecode,Foo,Bar\n00:00:00:00.000,1,2\n00:00:00:01.000,1,2\n"))
    return generate_op, ["Bad partner motion", "columns.csv", "no ARKit channel names"]


@case
def partner_csv_not_numbers(env):
    _csv(env, _file(env, "words.csv", b"Timecode,BlendShapeCount,JawOpen\n00:00:00:00.000,52,open\n"))
    return generate_op, ["Bad partner motion", "words.csv"]


@case
def partner_npz_corrupt(env):
    _csv(env, _file(env, "motion.npz", GARBAGE))
    return generate_op, ["Bad partner motion", "motion.npz", "Nothing was changed"]


@case
def partner_reference_is_the_character(env):
    env.s.partner_mode, env.s.partner_object = "CHARACTER", env.face
    return generate_op, ["Partner reference: pick another character"]


@case
def partner_reference_unset(env):
    env.s.partner_mode, env.s.partner_object = "CHARACTER", None
    return generate_op, ["Partner reference: pick a mesh with shape keys"]


@case
def partner_reference_absolute_keys(env):
    partner = make_face("Partner")
    partner.data.shape_keys.use_relative = False
    env.s.partner_mode, env.s.partner_object = "CHARACTER", partner
    bpy.context.view_layer.objects.active = env.face
    return generate_op, ["Partner reference: 'Partner' has absolute shape keys"]


# --- conversation ---------------------------------------------------------------------------------

@case
def conversation_without_second_character(env):
    env.s.conversation, env.s.character_b = True, None
    return generate_op, ["Second character: pick a mesh with shape keys"]


@case
def conversation_with_the_same_character_twice(env):
    env.s.conversation, env.s.character_b = True, env.face
    return generate_op, ["Conversation: pick two different characters"]


@case
def conversation_without_partner_voice(env):
    env.s.conversation, env.s.character_b, env.s.partner_audio = True, make_face("Other"), ""
    bpy.context.view_layer.objects.active = env.face
    return generate_op, ["Conversation: the second character needs its voice"]


@case
def conversation_second_character_in_tweak_mode(env):
    other = make_face("Other")
    kb = other.data.shape_keys.key_blocks["jawOpen"]
    kb.keyframe_insert("value", frame=1)
    _tweak(other.data.shape_keys)
    env.s.conversation, env.s.character_b, env.s.output_mode, env.s.head_target = True, other, "ACTIVE", "NONE"
    bpy.context.view_layer.objects.active = env.face
    return generate_op, ["Second character: Other's shape keys are in NLA tweak mode"]


# --- scene and preferences ------------------------------------------------------------------------

@case
def frame_rate_too_high(env):
    bpy.context.scene.render.fps = 2000
    return generate_op, ["Frame rate: 2000 fps", "1 to 1000 fps"]


@case
def frame_rate_too_low(env):
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 1, 2.0
    return generate_op, ["Frame rate: 0.5 fps"]


@case
def runtime_python_missing(env):
    env.prefs.runtime_python = "/nonexistent/python3"
    return generate_op, ["Runtime Python not found: /nonexistent/python3"]


@case
def model_missing(env):
    env.prefs.model_path = str(env.tmp / "nowhere.onnx")
    return generate_op, ["no usable model", "nowhere.onnx", "Nothing was changed"]


# --- faults while the job runs --------------------------------------------------------------------

@case
def runtime_killed(env):
    def run():
        job = _start_and_wait_for_progress(env)
        os.kill(job.client.proc.pid, signal.SIGKILL)
        job.run(timeout=60)
        return job.message
    return run, ["the runtime was killed (signal 9)", "Nothing was changed"]


@case
def cancelled(env):
    def run():
        job = _start_and_wait_for_progress(env)
        bpy.ops.duet.cancel()
        job.run(timeout=60)
        return job.message
    return run, ["cancelled; nothing was changed"]


@case
def tweak_mode_entered_while_generating(env):
    env.s.output_mode = "ACTIVE"

    def run():
        job = _start_and_wait_for_progress(env, 8.0)
        _tweak(env.face.data.shape_keys)
        env.rebase()
        job.run(timeout=120)
        return job.message
    return run, ["Face's shape keys are in NLA tweak mode", "Nothing was changed"]


@case
def character_deleted_while_generating(env):
    def run():
        job = _start_and_wait_for_progress(env, 8.0)
        bpy.data.objects.remove(env.face)
        env.rebase()
        job.run(timeout=120)
        return job.message
    return run, ["character 'Face' no longer exists", "Nothing was changed"]


@case
def generate_while_generating(env):
    def run():
        job = _start_and_wait_for_progress(env)
        try:
            bpy.ops.duet.generate(wait=True)
            msg = "no error"
        except RuntimeError as exc:
            msg = str(exc).strip()
        job.cancel()
        job.run(timeout=60)
        return msg
    return run, ["Duet is already generating"]


# --- Live Link Face import and the exports --------------------------------------------------------

def _op(fn, **kw):
    def run():
        try:
            result = fn(**kw)
        except RuntimeError as exc:
            return str(exc).strip()
        raise AssertionError(f"did not fail: {result}")
    return run


@case
def import_csv_garbage(env):
    return _op(bpy.ops.duet.import_csv, filepath=_file(env, "capture.csv", GARBAGE)), ["Import failed",
                                                                                       "capture.csv"]


@case
def import_csv_missing(env):
    return _op(bpy.ops.duet.import_csv, filepath=str(env.tmp / "nowhere.csv")), ["Import failed", "nowhere.csv"]


@case
def import_csv_in_nla_tweak_mode(env):
    from duet.model_runtime.channels import CHANNELS
    from duet.model_runtime.motion_io import write_llf_csv

    path = str(env.tmp / "take.csv")
    write_llf_csv(path, np.full((10, len(CHANNELS)), 0.5, np.float32), 24.0, CHANNELS)
    _tweak(env.face.data.shape_keys)
    env.s.output_mode = "ACTIVE"
    return _op(bpy.ops.duet.import_csv, filepath=path), ["Import failed", "NLA tweak mode"]


@case
def export_csv_into_a_missing_folder(env):
    return (_op(bpy.ops.duet.export_csv, filepath=str(env.tmp / "no" / "such" / "out.csv")),
            ["Export failed: folder not found", str(env.tmp / "no" / "such")])


@case
def export_csv_onto_a_folder(env):
    (env.tmp / "out.csv").mkdir()
    return _op(bpy.ops.duet.export_csv, filepath=str(env.tmp / "out.csv")), ["Export failed", "is a folder"]


@case
def export_gltf_into_a_missing_folder(env):
    return (_op(bpy.ops.duet.export_gltf, filepath=str(env.tmp / "nope" / "face.glb")),
            ["Export failed: folder not found", "nope"])


@case
def export_fbx_into_a_missing_folder(env):
    return (_op(bpy.ops.duet.export_fbx, filepath=str(env.tmp / "nope" / "face.fbx")),
            ["Export failed: folder not found", "nope"])


@case
def export_fbx_onto_a_folder(env):
    (env.tmp / "face.fbx").mkdir()
    return _op(bpy.ops.duet.export_fbx, filepath=str(env.tmp / "face.fbx")), ["Export failed", "is a folder"]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_in_one_line_and_changes_nothing(env, name):
    run, expected = CASES[name](env)
    env.before = scene_state()
    message = run()
    assert "\n" not in message and "Traceback" not in message, message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    job = _job()
    if job is not None:
        from duet.addon.job import JobState

        assert job.state is not JobState.DONE, job.message
    assert scene_state() == env.before


# --- odd inputs that still succeed, saying so in the report ---------------------------------------

def test_a_voice_file_that_disappears_before_the_sound_strip(env):
    """The runtime has read the voice; the file is deleted before the keys land: the keys are written,
    the report says why there is no strip for it."""
    from duet.addon import generate
    from duet.addon.job import JobState

    env.s.head_target = "NONE"
    partner = env.s.partner_audio
    generate.start(bpy.context)
    job = _job()
    finish = job.plan.finish

    def finish_after_the_file_went(results):
        os.remove(partner)
        return finish(results)
    job.plan.finish = finish_after_the_file_went
    assert job.run(timeout=120) is JobState.DONE, job.message
    assert f"no sound strip for partner.wav: the file is gone ({partner})" in job.message
    assert "\n" not in job.message
    se = bpy.context.scene.sequence_editor
    strips = [] if se is None else (se.strips if hasattr(se, "strips") else se.sequences)
    assert all(os.path.basename(getattr(s, "sound", None).filepath) != "partner.wav" for s in strips)
    assert len(env.face.data.shape_keys.animation_data.nla_tracks) == 1


def test_drivers_on_written_shape_keys_are_named_in_the_report(env):
    key = env.face.data.shape_keys
    driven = ["mouthClose", "eyeBlinkLeft", "browInnerUp", "cheekPuff", "jawOpen"]
    for name in driven:
        fc = key.key_blocks[name].driver_add("value")
        fc.driver.expression = "0.0"
    key.animation_data.drivers[-1].mute = True  # a muted driver overrides nothing
    env.s.head_target = "NONE"
    assert bpy.ops.duet.generate(wait=True) == {"FINISHED"}
    msg = _job().message
    assert "Face: drivers override the written keys on 4 shape keys (" in msg, msg
    assert "and 1 more)" in msg and "jawOpen" not in msg.split("drivers override")[1]
    assert "\n" not in msg


def test_nla_output_still_works_in_tweak_mode(env):
    """Only 'Active action' output needs the action slot that tweak mode locks; an NLA strip is added."""
    key = env.face.data.shape_keys
    _tweak(key)
    env.s.output_mode, env.s.head_target = "NLA", "NONE"
    assert bpy.ops.duet.generate(wait=True) == {"FINISHED"}, _job().message
    assert key.animation_data.use_tweak_mode and key.animation_data.nla_tracks[-1].name == "Duet"
