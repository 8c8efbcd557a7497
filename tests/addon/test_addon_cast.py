"""The Cast list through the real operators and the real runtime: several characters in one job and
one undo step, heads turning toward whoever speaks (by where they stand, moving or not), muted rows,
every failure leaving the scene as it was, the poll's reasons, exports, and old conversation-mode
settings carried over."""

import json
import os
import signal
import time

import bpy
import numpy as np
import pytest
import soundfile as sf
from addon_helpers import make_face, snapshot
from test_addon_bad_input import scene_state

SR = 16000
FPS = 24
START = 1
TURN = 3.0  # seconds each voice of the triangle speaks: A, then B, then C


def voice(path, seconds, turns, seed, f0):
    """A voice that speaks only in its `turns` ((start, end) seconds): a harmonic tone shaped into
    syllables (4 a second), near silence (a faint noise floor) elsewhere."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 7))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    on = np.zeros_like(t)
    for a, b in turns:
        on[int(a * SR):int(b * SR)] = 1.0
    x = 0.25 * tone * syllables * on + 0.0005 * rng.standard_normal(len(t))
    sf.write(path, x.astype(np.float32), SR)
    return str(path)


def _job():
    from duet.addon import generate

    return generate.current_job()


def _row(obj, path, head="OBJECT"):
    s = bpy.context.scene.duet
    row = s.cast.add()
    row.character, row.voice, row.head_target = obj, path, head
    return row


def _centre(obj):
    from mathutils import Vector

    bpy.context.view_layer.update()
    co = np.array([v.co[:] for v in obj.data.vertices])  # rest bounds: 5.0's bound_box spans the shape keys
    return obj.matrix_world @ Vector((co.min(0) + co.max(0)) / 2)


def _place_triangle(faces, mirror=False):
    """A and B side by side, C in front of them (everyone faces -Y); `mirror`: the same seating
    reflected left to right (make_face's geometry spans x 0..2, so its middle is at location + 1)."""
    for obj, (x, y) in zip(faces, ((-3.0, 0.0), (3.0, 0.0), (0.0, -4.0))):
        obj.location = ((-x - 2.0) if mirror else x, y, 0.0)
    bpy.context.view_layer.update()


def _expected_turn(listener, speaker):
    """+1 when `speaker` is on `listener`'s own left (for a face looking down -Y: +X), else -1: the
    sign of the yaw that turns toward it."""
    d = _centre(speaker) - _centre(listener)
    return float(np.sign(d.x))


def _yaw(obj, t0, t1):
    """Mean rotation_euler z (radians) over seconds t0..t1 of the audio, as playback evaluates it."""
    scene = bpy.context.scene
    vals = []
    for f in range(START + int(t0 * FPS), START + int(t1 * FPS)):
        scene.frame_set(f)
        vals.append(obj.rotation_euler.z)
    scene.frame_set(START)
    return float(np.mean(vals))


def _duet_tracks(obj):
    key = obj.data.shape_keys
    ad = key.animation_data
    return [] if ad is None else [t for t in ad.nla_tracks if t.name.startswith("Duet")]


@pytest.fixture
def triangle(duet, prefs, tmp_path):
    """Three faces in a triangle, three voices speaking in turns (A, B, C, 3 s each), one row each."""
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = START, START + int(3 * TURN * FPS)
    faces = [make_face(n) for n in ("A", "B", "C")]
    _place_triangle(faces)
    s = scene.duet
    s.start_frame = START
    for k, (obj, f0) in enumerate(zip(faces, (130.0, 190.0, 250.0))):
        turns = [(k * TURN, (k + 1) * TURN)]
        _row(obj, voice(tmp_path / f"{obj.name}.wav", 3 * TURN, turns, k, f0))
    return faces


def _generate_cast():
    from duet.addon.job import JobState

    assert bpy.ops.duet.generate_cast(wait=True) == {"FINISHED"}, _job().message
    job = _job()
    assert job.state is JobState.DONE, job.message
    return job


def test_a_triangle_speaks_in_one_job_and_turns_toward_the_speaker(triangle):
    from duet.addon import animdata

    a, b, c = triangle
    seat_c = list(_centre(c))  # before the heads turn (make_face's origin is at its corner)
    expect = {o.name: _expected_turn(o, c) for o in (a, b)}
    assert expect == {"A": 1.0, "B": -1.0}  # C sits to A's left and to B's right
    bpy.ops.ed.undo_push(message="before Duet")
    before = snapshot()
    job = _generate_cast()
    assert job.client.info["protocol"] == 2  # the runtime that knows `cast`
    # One runtime request for the whole cast, members in list order, each with a result.
    assert len(job.plan.steps) == 1
    req = job.plan.steps[0].request
    assert [m.name for m in req.members] == ["A", "B", "C"] and all(m.out for m in req.members)
    assert sorted(job.plan.steps[0].result["outs"]) == ["A", "B", "C"]
    frames = int(np.ceil(3 * TURN * FPS))
    for obj in triangle:
        tracks = _duet_tracks(obj)
        assert len(tracks) == 1, obj.name
        strip = tracks[0].strips[0]
        fcs = animdata.action_fcurves(strip.action, getattr(strip, "action_slot", None))
        assert len(fcs) == 52 and all(len(fc.keyframe_points) == frames for fc in fcs)
        assert obj.animation_data is not None and len(obj.animation_data.nla_tracks) == 1  # its head
    # The report names every character, on one line.
    assert all(f"{o.name}: 52 channels x {frames} frames" in job.message for o in triangle), job.message
    assert "\n" not in job.message
    # Static seating: one position per member in the positions file.
    with open(req.positions, encoding="utf-8") as fh:
        seats = json.load(fh)["characters"]
    assert set(seats) == {"A", "B", "C"} and all("times" not in v for v in seats.values())
    np.testing.assert_allclose(seats["C"]["position"], seat_c, atol=1e-5)
    np.testing.assert_allclose(seats["A"]["forward"], [0, -1, 0], atol=1e-6)
    late = (2 * TURN + 1.0, 3 * TURN)  # C speaks; a second to turn
    yaw = {o.name: _yaw(o, *late) for o in (a, b)}
    after = snapshot()
    # One undo step takes every character's keys away, heads and strips included.
    bpy.ops.ed.undo()
    assert snapshot() == before
    bpy.ops.ed.redo()
    assert snapshot() == after
    bpy.ops.ed.undo()
    a, b, c = triangle = [bpy.data.objects[n] for n in ("A", "B", "C")]  # undo replaced the data

    # The same voices, the seating mirrored: the network's part is the same, so the difference in
    # yaw is the turn toward C alone, and it has the sign the seating gives.
    _place_triangle(triangle, mirror=True)
    assert {o.name: _expected_turn(o, c) for o in (a, b)} == {"A": -1.0, "B": 1.0}
    _generate_cast()
    for o in (a, b):
        mirrored = _yaw(o, *late)
        assert (yaw[o.name] - mirrored) * expect[o.name] > 0.2, (o.name, yaw[o.name], mirrored)


def test_a_muted_row_is_heard_and_looked_at_but_not_animated(triangle):
    a, b, c = triangle
    s = bpy.context.scene.duet
    s.cast[1].mute = True
    assert _expected_turn(a, b) == 1.0  # B sits to A's left
    bpy.ops.ed.undo_push(message="before Duet")
    job = _generate_cast()
    req = job.plan.steps[0].request
    assert [(m.name, m.out is None) for m in req.members] == [("A", False), ("B", True), ("C", False)]
    assert sorted(job.plan.steps[0].result["outs"]) == ["A", "C"]
    with open(req.positions, encoding="utf-8") as fh:
        assert "B" in json.load(fh)["characters"]  # the others still look at it
    assert _duet_tracks(b) == [] and b.animation_data is None
    assert len(_duet_tracks(a)) == 1 and len(_duet_tracks(c)) == 1
    assert "B: muted" in job.message
    # B speaks its turn: A turns toward where B sits (its left) compared with the same cast with B
    # seated on its right instead (B's muted voice is heard, and B is looked at).
    during_b = (TURN + 1.0, 2 * TURN)
    yaw_left = _yaw(a, *during_b)
    bpy.ops.ed.undo()
    a, b = bpy.data.objects["A"], bpy.data.objects["B"]  # undo replaced the data
    b.location = (-8.0, 0.0, 0.0)  # now to A's right
    assert _expected_turn(a, b) == -1.0
    _generate_cast()
    yaw_right = _yaw(a, *during_b)
    assert yaw_left - yaw_right > 0.3, (yaw_left, yaw_right)


def _plan_positions():
    """Build the cast's plan as Generate cast does (nothing runs) and read its positions file."""
    import shutil

    from duet.addon import cast

    plan = cast.build_plan(bpy.context)
    try:
        with open(plan.steps[0].request.positions, encoding="utf-8") as fh:
            return json.load(fh)
    finally:
        shutil.rmtree(plan.work_dir)


def _rig(name, location, bone="Head"):
    rig = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    eb = rig.data.edit_bones.new(bone)
    eb.head, eb.tail = (0, 0, 1.5), (0, 0, 1.8)
    bpy.ops.object.mode_set(mode="OBJECT")
    rig.location = location
    return rig


def test_positions_come_from_each_rows_head_and_facing(duet, tmp_path):
    """A head bone's head, a head object's origin, else the middle of the character; the facing
    axis turned by the character's rotation. Nothing animated: one static entry each."""
    from math import pi

    a, b, c = make_face("A"), make_face("B"), make_face("C")
    a.location, b.location, c.location = (0, 0, 0), (5, 0, 0), (0, -5, 0)
    rig = _rig("Rig", (5, 1, 0))
    head = bpy.data.objects.new("HeadPivot", None)
    bpy.context.scene.collection.objects.link(head)
    head.location = (0.5, -5, 1.7)
    c.rotation_euler.z = pi / 2  # C faces -Y turned a quarter to the left: +X
    wav = voice(tmp_path / "v.wav", 2.0, [(0, 2)], 0, 150.0)
    _row(a, wav, head="NONE")
    rb = _row(b, wav, head="BONE")
    rb.head_object, rb.head_bone = rig, "Head"
    rc = _row(c, wav)
    rc.head_object = head
    a_row = bpy.context.scene.duet.cast[0]
    a_row.forward_axis = "POS_X"
    seats = _plan_positions()
    assert seats["version"] == 1
    got = seats["characters"]
    np.testing.assert_allclose(got["A"]["position"], [1, 0, 1], atol=1e-6)  # make_face spans 0..2
    np.testing.assert_allclose(got["A"]["forward"], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(got["B"]["position"], [5, 1, 1.5], atol=1e-6)
    np.testing.assert_allclose(got["B"]["forward"], [0, -1, 0], atol=1e-6)
    np.testing.assert_allclose(got["C"]["position"], [0.5, -5, 1.7], atol=1e-6)
    np.testing.assert_allclose(got["C"]["forward"], [1, 0, 0], atol=1e-6)
    assert all("times" not in v for v in got.values())


def test_a_moving_character_is_followed(duet, prefs, tmp_path):
    """C walks from A's right to A's left while it speaks: A's yaw follows it, where the same cast
    without the turn toward the speaker does not; sampling the walk gives the frame back."""
    from duet.addon.job import JobState

    scene = bpy.context.scene
    seconds = 8.0
    scene.frame_start, scene.frame_end = START, START + int(seconds * FPS)
    a, c = make_face("A"), make_face("C")
    a.location = (-1.0, 0.0, 0.0)  # its middle at x = 0
    for f, x in ((START, -7.0), (START + 2 * FPS, -7.0), (START + 6 * FPS, 5.0)):
        c.location = (x, -4.0, 0.0)
        c.keyframe_insert("location", frame=f)
    scene.frame_set(START + 3 * FPS)  # mid-walk: the frame generation must give back
    s = scene.duet
    s.start_frame = START
    _row(a, voice(tmp_path / "a.wav", seconds, [], 0, 130.0))  # A only listens
    _row(c, voice(tmp_path / "c.wav", seconds, [(0.0, seconds)], 1, 220.0))
    before = scene_state()
    got = _plan_positions()["characters"]
    assert scene_state() == before and scene.frame_current == START + 3 * FPS
    n = scene.frame_end - START + 1
    assert got["C"]["times"][:2] == [0.0, pytest.approx(1 / FPS)] and len(got["C"]["times"]) == n
    np.testing.assert_allclose(got["C"]["position"][0], [-6, -4, 1], atol=1e-5)
    np.testing.assert_allclose(got["C"]["position"][-1], [6, -4, 1], atol=1e-5)
    assert len({tuple(p) for p in got["A"]["position"]}) == 1  # A stands still

    early, late = (0.5, 1.8), (6.5, seconds)
    yaws = {}
    bpy.ops.ed.undo_push(message="before Duet")
    for attention in (True, False):
        a = bpy.data.objects["A"]  # undo replaces the data
        scene.duet.cast_attention = attention
        job = _generate_cast()
        assert job.plan.steps[0].request.attention is attention
        yaws[attention] = _yaw(a, *late) - _yaw(a, *early)
        bpy.ops.ed.undo()
        scene = bpy.context.scene
    # C went from A's right (-yaw) to its left (+yaw): the turn toward it grows by the walk.
    assert yaws[True] - yaws[False] > 0.3, yaws
    assert _job().state is JobState.DONE


CORRUPT_WAV = b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10


@pytest.mark.parametrize("fault", ["cancel", "runtime_killed", "bad_audio"])
def test_a_cast_that_fails_changes_nothing(triangle, tmp_path, fault):
    from duet.addon.job import JobState

    scene = bpy.context.scene
    s = scene.duet
    s.set_frame_range = True
    a, b, c = triangle
    c.keyframe_insert("location", frame=START)  # a keyed character: positions are sampled per frame
    scene.frame_set(START + 5)
    if fault == "bad_audio":
        bad = tmp_path / "broken.wav"
        bad.write_bytes(CORRUPT_WAV)
        s.cast[2].voice = str(bad)
        before = scene_state()
        with pytest.raises(RuntimeError, match=r"Bad audio: .*broken\.wav.*Nothing was changed"):
            bpy.ops.duet.generate_cast(wait=True)
        message = _job().message
    else:
        long = 60.0
        for k, row in enumerate(s.cast):
            row.voice = voice(tmp_path / f"long{k}.wav", long, [(k * 20.0, (k + 1) * 20.0)], k, 150.0 + 50 * k)
        before = scene_state()
        assert bpy.ops.duet.generate_cast() == {"FINISHED"}  # runs in the background
        job, end = _job(), time.monotonic() + 120
        while not (job.state is JobState.PREDICTING and job.progress > 0):
            assert job.running and time.monotonic() < end, f"{job.state}: {job.message}"
            job.tick()
            time.sleep(0.01)
        assert job.progress < 1.0
        if fault == "cancel":
            assert bpy.ops.duet.cancel() == {"FINISHED"}
            assert job.run(timeout=60) is JobState.CANCELLED
        else:
            os.kill(job.client.proc.pid, signal.SIGKILL)
            assert job.run(timeout=60) is JobState.FAILED
        message = job.message
    expected = {"cancel": "Duet: cancelled; nothing was changed.",
                "runtime_killed": "Duet: the runtime was killed (signal 9). Nothing was changed."}
    assert message == expected.get(fault, message) and "\n" not in message
    assert _job().state is not JobState.DONE
    assert scene_state() == before


def test_progress_moves_forward_over_the_whole_cast(triangle):
    from duet.addon import generate
    from duet.addon.job import JobState

    assert bpy.ops.duet.generate_cast() == {"FINISHED"}
    job = _job()
    seen, stages, end = [], set(), time.monotonic() + 120
    while generate.on_timer() is not None:
        assert time.monotonic() < end
        seen.append(job.progress)
        stages.add(job.stage.split(": ")[-1])
        time.sleep(0.005)
    assert job.state is JobState.DONE, job.message
    assert seen == sorted(seen), "the bar never goes back"
    assert {"audio", "network"} <= stages, stages


def test_generate_cast_says_why_it_is_disabled(duet, tmp_path):
    from duet.addon import cast

    s = bpy.context.scene.duet

    def reason():
        assert not bpy.ops.duet.generate_cast.poll()
        with pytest.raises(RuntimeError) as exc:
            bpy.ops.duet.generate_cast(wait=True)
        return str(exc.value)

    assert "Cast: add a character to the list" in reason()
    a, b = make_face("A"), make_face("B")
    row = _row(a, str(tmp_path / "missing.wav"))
    assert f"A's voice: file not found: {tmp_path / 'missing.wav'}" in reason()
    assert cast.row_problem(bpy.context.scene, row, 0, s.output_mode).startswith("A's voice")  # its alert
    row.voice = voice(tmp_path / "a.wav", 1.0, [(0, 1)], 0, 150.0)
    assert bpy.ops.duet.generate_cast.poll()
    other = _row(a, row.voice)
    assert "Cast: 'A' is in rows 1 and 2: a character speaks one voice" in reason()
    other.character = b
    assert bpy.ops.duet.generate_cast.poll()
    other.head_object = a
    assert "Cast: rows 1 and 2 ('A', 'B') both turn 'A': give each its own head" in reason()
    other.mute = True  # a muted row writes no head
    assert bpy.ops.duet.generate_cast.poll()
    row.mute = True
    assert "Cast: every row is muted" in reason()
    row.mute = False
    other.character = bpy.data.objects.new("Plain", bpy.data.meshes.new("Plain"))  # a script skips the picker's filter
    assert "Cast row 2: pick a mesh with shape keys" in reason()
    other.character, other.head_target = b, "BONE"
    other.head_object = None
    assert "B's head: pick the armature that has the head bone" in reason()
    other.head_object, other.head_bone = _rig("Rig", (0, 0, 0)), "Neck"
    assert "B's head: no bone 'Neck' in 'Rig'" in reason()
    other.head_bone = "Head"
    assert bpy.ops.duet.generate_cast.poll()
    # The old Generate button is not the cast's: it still asks for the panel's character.
    assert not bpy.ops.duet.generate.poll()


def test_cast_panel_draws_every_row_setting(duet, tmp_path):
    """The Cast panel (against test_addon_ui's recording layout) shows the list, its buttons and the
    selected row's settings, each an existing property."""
    import duet.ui as ui
    from test_addon_ui import Layout

    def draw():
        log = []
        ui.DUET_PT_cast.draw(type("P", (), {"layout": Layout(log)})(), bpy.context)
        return log

    log = draw()
    assert ("list", "cast") in log and ("operator", "duet.generate_cast") in log
    assert ("operator", "duet.cast_from_conversation") in log and ("prop", "character") not in log
    bpy.context.scene.sequence_editor_create()
    a = make_face("A")
    row = _row(a, str(tmp_path / "nowhere.wav"), head="BONE")
    row.head_object, row.head_bone = _rig("Rig", (0, 0, 0)), "Head"
    log = draw()
    for p in ("character", "voice", "head_target", "head_object", "forward_axis", "mute", "cast_attention"):
        assert ("prop", p) in log, p
    assert ("prop_search", "voice_strip") in log and ("prop_search", "head_bone") in log
    assert any(kind == "label" and "A's voice: file not found" in text for kind, text in log)


def test_exports_of_the_cast_keep_every_characters_face(triangle, tmp_path):
    scene = bpy.context.scene
    _generate_cast()
    check = ("jawOpen", "eyeBlinkLeft", "mouthSmileRight", "browInnerUp")
    frames = (START + 10, START + 80, START + 190)
    expect = {}
    for f in frames:
        scene.frame_set(f)
        for obj in triangle:
            kbs = obj.data.shape_keys.key_blocks
            expect[(obj.name, f)] = [kbs[ch].value for ch in check]
    assert np.ptp([v for v in expect.values()], axis=0).max() > 0.01  # something moves to compare
    glb, fbx = tmp_path / "cast.glb", tmp_path / "cast.fbx"
    assert bpy.ops.duet.export_cast_gltf(filepath=str(glb)) == {"FINISHED"}
    assert bpy.ops.duet.export_cast_fbx(filepath=str(fbx)) == {"FINISHED"}
    importers = {glb: bpy.ops.import_scene.gltf,
                 # Blender writes frame f at FBX time f/fps; its importer adds a 1-frame offset by default.
                 fbx: lambda **kw: bpy.ops.import_scene.fbx(anim_offset=0.0, **kw)}
    for path, importer in importers.items():
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = FPS, 1.0
        importer(filepath=str(path))
        meshes = {o.name: o for o in scene.objects if o.type == "MESH" and o.data.shape_keys}
        if path == glb:  # one clip plays every character, as an engine plays it
            assert all(o.data.shape_keys.animation_data and o.data.shape_keys.animation_data.action
                       for o in meshes.values())
        for (name, f), vals in expect.items():
            scene.frame_set(f)
            kbs = meshes[name].data.shape_keys.key_blocks
            got = [kbs[ch].value for ch in check]
            np.testing.assert_allclose(got, vals, atol=1e-3, err_msg=f"{path.name} {name} frame {f}")


def test_cast_from_conversation_carries_an_old_scene_over(duet, prefs, tmp_path):
    s = bpy.context.scene.duet
    a, b = make_face("A"), make_face("B")
    b.location = (4.0, 0.0, 0.0)
    # A conversation-mode scene as older versions saved it.
    s.character, s.conversation, s.character_b = a, True, b
    s.self_audio = voice(tmp_path / "a.wav", 4.0, [(0, 2)], 0, 130.0)
    s.partner_audio = voice(tmp_path / "b.wav", 4.0, [(2, 4)], 1, 210.0)
    s.head_target = "OBJECT"
    s.cast.add()  # whatever the list held is replaced
    assert bpy.ops.duet.cast_from_conversation() == {"FINISHED"}
    rows = [(r.character.name, r.voice, r.voice_strip, r.head_target, r.head_object, r.forward_axis, r.mute)
            for r in s.cast]
    assert rows == [("A", s.self_audio, "", "OBJECT", None, "NEG_Y", False),
                    ("B", s.partner_audio, "", "OBJECT", None, "NEG_Y", False)]
    # Conversation mode itself is as it was, and still generates.
    assert s.conversation and s.character_b == b and bpy.ops.duet.generate.poll()
    job = _generate_cast()
    assert [m.name for m in job.plan.steps[0].request.members] == ["A", "B"]
    assert len(_duet_tracks(a)) == 1 and len(_duet_tracks(b)) == 1
    # A head bone stays the first character's; the second turns its own object (one rig, one head).
    rig = _rig("Rig", (0, 0, 0))
    s.head_target, s.head_object, s.head_bone = "BONE", rig, "Head"
    bpy.context.view_layer.objects.active = a
    bpy.ops.duet.cast_from_conversation()
    assert [(r.head_target, r.head_object, r.head_bone) for r in s.cast] == [("BONE", rig, "Head"),
                                                                              ("OBJECT", None, "")]
    s.conversation = False  # one character: one row
    bpy.ops.duet.cast_from_conversation()
    assert [r.character.name for r in s.cast] == ["A"]
