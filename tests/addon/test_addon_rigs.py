"""Production rigs: a character linked from a library .blend (made here), purely linked, library-
overridden (what Object > Library Override > Make gives: system overrides, the mesh still linked) and
fully editable. Generated through the real runtime, saved, reopened: the face and the head must
still be there, the library file untouched; what cannot be saved is refused with the scene unchanged.
"""

import hashlib

import bpy
import numpy as np
import pytest
import soundfile as sf
from addon_helpers import ROOT_CONFTEST, make_face, snapshot

HEAD_BONE = "Head"


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_library(path):
    """Collection 'Character': 'Face' (the 52 ARKit keys, one of them animated in the library) and
    'Rig' (an armature with a head bone), written to `path`; the current file keeps none of it."""
    scene = bpy.context.scene
    coll = bpy.data.collections.new("Character")
    scene.collection.children.link(coll)
    face = make_face("Face")
    kb = face.data.shape_keys.key_blocks["tongueOut"]
    kb.value = 0.2
    kb.keyframe_insert("value", frame=1)
    lib_action = face.data.shape_keys.animation_data.action
    scene.collection.objects.unlink(face)
    coll.objects.link(face)
    rig = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    coll.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    bone = rig.data.edit_bones.new(HEAD_BONE)
    bone.head, bone.tail = (0, 0, 1.5), (0, 0, 1.8)
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.data.libraries.write(str(path), {coll})
    bpy.data.batch_remove([coll, face, rig, face.data, rig.data, lib_action])  # shape keys go with the mesh
    assert not bpy.data.shape_keys and not bpy.data.meshes and not bpy.data.objects and not bpy.data.actions


def link_character(lib, mode):
    """{'MESH': face, 'ARMATURE': rig} as the artist gets them: 'linked', the collection linked into the
    scene; 'override', an instance made a library override (system overrides, the mesh still linked);
    'editable', the same made fully editable."""
    with bpy.data.libraries.load(str(lib), link=True) as (_src, dst):
        dst.collections = ["Character"]
    coll = dst.collections[0]
    scene = bpy.context.scene
    if mode == "linked":
        scene.collection.children.link(coll)
        return {o.type: o for o in coll.objects}
    empty = bpy.data.objects.new("Character", None)
    empty.instance_type, empty.instance_collection = "COLLECTION", coll
    scene.collection.objects.link(empty)
    ov = coll.override_hierarchy_create(scene, bpy.context.view_layer, reference=empty,
                                        do_fully_editable=mode == "editable")
    objs = {o.type: o for o in ov.all_objects}
    face = objs["MESH"]
    assert face.override_library.is_system_override == (mode == "override")
    assert face.data.library is not None and face.data.shape_keys.library is not None, "the mesh is linked"
    return objs


def _anim(idb):
    ad = idb.animation_data
    if ad is None:
        return None
    return (ad.action.name_full if ad.action else None,
            [(t.name, t.mute, [(s.name, s.action.name_full if s.action else None, s.frame_start)
                               for s in t.strips]) for t in ad.nla_tracks])


def state():
    """The shared snapshot, plus what it cannot tell apart here (a linked and an overridden 'Face' share
    a name): every datablock with its library and override, what each object uses, every animation."""
    def ov(i):
        ol = i.override_library
        return None if ol is None else ol.is_system_override

    return (snapshot(),
            sorted(repr((type(i).__name__, i.name_full, ov(i))) for i in bpy.data.user_map()),
            sorted(repr((o.name_full, o.data.name_full if o.data else None, _anim(o))) for o in bpy.data.objects),
            sorted(repr((k.name_full, k.user.name_full, _anim(k))) for k in bpy.data.shape_keys))


def _wav(path, seconds, seed, f0=140.0):
    sf.write(path, ROOT_CONFTEST.speechlike(seconds, seed=seed, f0=f0), 16000)
    return str(path)


def _curves(act, slot):
    """{(data path, index): (frames, values)} of an action's curves for one slot."""
    from duet.addon import animdata

    out = {}
    for fc in animdata.action_fcurves(act, slot):
        co = np.empty(2 * len(fc.keyframe_points), dtype=np.float32)
        fc.keyframe_points.foreach_get("co", co)
        out[(fc.data_path, fc.array_index)] = (co[0::2].copy(), co[1::2].copy())
    return out


def _duet_curves(idb, track):
    """The curves Duet put on `idb`: its NLA track `track`, else its active action."""
    ad = idb.animation_data
    assert ad is not None, f"no animation on {idb.name_full}"
    for t in ad.nla_tracks:
        if t.name == track:
            s = t.strips[0]
            return _curves(s.action, getattr(s, "action_slot", None))
    assert ad.action is not None and ad.action.name.startswith("Duet"), f"no Duet action on {idb.name_full}"
    return _curves(ad.action, getattr(ad, "action_slot", None))


def _saved_face():
    (face,) = [o for o in bpy.data.objects if o.type == "MESH" and o.library is None]
    return face


@pytest.fixture
def lib(duet, tmp_path):
    path = tmp_path / "lib.blend"
    build_library(path)
    return path


@pytest.fixture
def voices(prefs, tmp_path):
    s = bpy.context.scene.duet
    s.self_audio = _wav(tmp_path / "self.wav", 2.0, 1)
    s.partner_audio = _wav(tmp_path / "partner.wav", 2.0, 2, 210.0)
    s.start_frame = 5
    return s


@pytest.mark.parametrize("mode,head,output", [("override", "OBJECT", "NLA"), ("editable", "BONE", "ACTIVE")])
def test_overridden_character_keeps_its_face_after_save_and_reopen(lib, voices, tmp_path, mode, head, output):
    from duet.addon.generate import current_job
    from duet.addon.job import JobState
    from duet.model_runtime.channels import ARKIT_NAMES

    lib_hash = _digest(lib)
    objs = link_character(lib, mode)
    face, rig = objs["MESH"], objs["ARMATURE"]
    linked_mesh = face.data
    linked_anim = _anim(linked_mesh.shape_keys)
    lib_action = linked_mesh.shape_keys.animation_data.action.name
    s = voices
    s.character, s.head_target, s.output_mode = face, head, output
    if head == "BONE":
        s.head_object, s.head_bone = rig, HEAD_BONE
    assert bpy.ops.duet.generate(wait=True) == {"FINISHED"}
    job = current_job()
    assert job.state is JobState.DONE, job.message
    assert "Face: its mesh is now a library override" in job.message and "\n" not in job.message
    # The face went onto an override of the mesh used by this object only; the library's mesh is as it was.
    assert face.data != linked_mesh and face.data.override_library is not None
    assert face.data.override_library.reference == linked_mesh and _anim(linked_mesh.shape_keys) == linked_anim
    with np.load(job.plan.steps[0].result["out"]) as z:
        names, w = [str(n) for n in z["names"]], z["weights"]
    key = face.data.shape_keys
    written = _duet_curves(key, "Duet")
    assert len(written) == 52
    for ch in ARKIT_NAMES:
        frames, vals = written[(f'key_blocks["{ch}"].value', 0)]
        assert frames[0] == 5 and len(frames) == len(w) == 48  # 2 s at 24 fps
        np.testing.assert_allclose(vals, np.clip(w[:, names.index(ch)], 0, 1), atol=1e-6)
    head_owner = face if head == "OBJECT" else rig
    head_curves = _duet_curves(head_owner, "Duet head")
    assert len(head_curves) == (3 if head == "OBJECT" else 4)
    shot = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(shot))

    bpy.ops.wm.open_mainfile(filepath=str(shot))
    face = _saved_face()
    key = face.data.shape_keys
    assert face.data.override_library is not None and key.library is None
    again = _duet_curves(key, "Duet")
    assert again.keys() == written.keys()
    for k, (frames, vals) in written.items():
        np.testing.assert_array_equal(again[k][0], frames)
        np.testing.assert_array_equal(again[k][1], vals)
    head_owner = face if head == "OBJECT" else next(o for o in bpy.data.objects
                                                    if o.type == "ARMATURE" and o.library is None)
    again = _duet_curves(head_owner, "Duet head")
    assert again.keys() == head_curves.keys()
    for k, (frames, vals) in head_curves.items():
        np.testing.assert_array_equal(again[k][0], frames)
        np.testing.assert_array_equal(again[k][1], vals)
    if output == "ACTIVE":  # the library's own shape-key action is kept, stashed in a muted track
        stash = [t for t in key.animation_data.nla_tracks if t.mute and t.strips[0].action.library is not None]
        assert len(stash) == 1 and stash[0].strips[0].action.name == lib_action
    # And it plays: the reopened shape keys follow the written curve.
    bpy.context.scene.frame_set(5 + 20)
    frames, vals = written[('key_blocks["jawOpen"].value', 0)]
    assert key.key_blocks["jawOpen"].value == pytest.approx(float(vals[20]), abs=1e-5)
    assert _digest(lib) == lib_hash, "the library file was written"


def test_two_instances_of_one_character_in_conversation(lib, voices, tmp_path):
    """Both speakers are overrides of the same library character: each gets a face of its own."""
    from duet.addon.generate import current_job
    from duet.addon.job import JobState

    lib_hash = _digest(lib)
    a = link_character(lib, "override")["MESH"]
    b = link_character(lib, "override")["MESH"]
    assert a != b and a.data == b.data  # one linked mesh for both
    s = voices
    s.character, s.conversation, s.character_b = a, True, b
    assert bpy.ops.duet.generate(wait=True) == {"FINISHED"}
    assert current_job().state is JobState.DONE, current_job().message
    written = {o.name: _duet_curves(o.data.shape_keys, "Duet") for o in (a, b)}
    assert a.data != b.data
    shot = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(shot))
    bpy.ops.wm.open_mainfile(filepath=str(shot))
    faces = {o.name: o for o in bpy.data.objects if o.type == "MESH" and o.library is None}
    assert faces.keys() == written.keys()
    for name, curves in written.items():
        again = _duet_curves(faces[name].data.shape_keys, "Duet")
        assert len(again) == 52
        for k, (_frames, vals) in curves.items():
            np.testing.assert_array_equal(again[k][1], vals)
    jaw = [written[n][('key_blocks["jawOpen"].value', 0)][1] for n in written]
    assert not np.array_equal(*jaw), "each speaker has its own face"
    assert _digest(lib) == lib_hash


def test_purely_linked_character_is_refused_in_one_line(lib, voices):
    from duet.addon import generate, validate

    lib_hash = _digest(lib)
    face = link_character(lib, "linked")["MESH"]
    s = voices
    s.character = face
    before = state()
    line = ("Character: 'Face' is linked from lib.blend, so keys on it would not be saved: make a library "
            "override (Object > Library Override > Make) and generate on it")
    assert validate.generate_reason(bpy.context) == line  # the Generate button says why it is greyed out
    assert not bpy.ops.duet.generate.poll()
    with pytest.raises(generate.UserError) as err:
        generate.start(bpy.context, wait=True)
    assert str(err.value) == line
    assert state() == before
    assert _digest(lib) == lib_hash


# --- the writer alone (no runtime): refusals and rollback on rigs ---------------------------------

def _curves55(t):
    from duet.model_runtime.channels import CHANNELS

    x = np.linspace(0, 4 * np.pi, t)[:, None]
    w = (0.5 + 0.4 * np.sin(x + np.arange(len(CHANNELS)))).astype(np.float32)
    w[:, 52:] *= 0.3
    return list(CHANNELS), w


def _write(obj, **kw):
    from duet.addon.writer import Transaction, WriteOptions, write_character

    names, w = _curves55(30)
    with Transaction() as tx:
        return write_character(bpy.context.scene, obj, names, w, WriteOptions(**kw), tx)


def test_writer_refuses_a_linked_character(lib):
    objs = link_character(lib, "linked")
    before = state()
    with pytest.raises(ValueError, match=r"^Character: 'Face' is linked from lib\.blend, so keys"):
        _write(objs["MESH"])
    assert state() == before


def test_writer_refuses_a_linked_head(lib):
    face = link_character(lib, "override")["MESH"]
    rig = next(o for o in bpy.data.objects if o.type == "ARMATURE" and o.library is not None)
    before = state()
    with pytest.raises(ValueError, match=r"^Head motion: 'Rig' is linked from lib\.blend"):
        _write(face, head_target="BONE", head_object=rig, head_bone=HEAD_BONE)
    assert state() == before


@pytest.mark.parametrize("mode", ["override", "editable"])
def test_failure_on_an_overridden_character_rolls_back_the_override(lib, mode):
    """The mesh override is made, keys written, then the head bone is missing: all of it undone."""
    face = link_character(lib, mode)["MESH"]
    linked_mesh = face.data
    meshes = set(bpy.data.meshes)
    before = state()
    with pytest.raises(ValueError, match="head bone 'Nope' not found"):
        _write(face, output_mode="ACTIVE", head_target="BONE", head_object=face, head_bone="Nope")
    assert state() == before
    assert face.data == linked_mesh and set(bpy.data.meshes) == meshes


def test_keys_that_would_not_be_saved_are_never_reported(lib, monkeypatch):
    """Should the mesh stay linked after all, the check after writing rolls back and says why."""
    from duet.addon import overrides

    face = link_character(lib, "editable")["MESH"]
    monkeypatch.setattr(overrides, "ensure_saved_shape_keys", lambda obj, tx, what="Character": None)
    before = state()
    with pytest.raises(ValueError, match=r"^keys on 'Face' would not be saved \(linked from lib\.blend\)"):
        _write(face, head_target="OBJECT")
    assert state() == before


def test_local_object_with_a_linked_mesh(lib, tmp_path):
    """Object > Make Local on the object alone leaves its mesh linked: the mesh is overridden too."""
    with bpy.data.libraries.load(str(lib), link=True) as (_src, dst):
        dst.objects = ["Face"]
    bpy.context.scene.collection.objects.link(dst.objects[0])
    face = dst.objects[0].make_local()
    assert face.library is None and face.data.library is not None
    rep = _write(face, head_target="OBJECT")
    assert any("its mesh is now a library override" in n for n in rep.notes)
    written = _duet_curves(face.data.shape_keys, "Duet")
    shot = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(shot))
    bpy.ops.wm.open_mainfile(filepath=str(shot))
    (face,) = [o for o in bpy.data.objects if o.type == "MESH" and o.library is None]
    again = _duet_curves(face.data.shape_keys, "Duet")
    assert again.keys() == written.keys() and len(again) == 52
    assert face.animation_data is not None  # the head


def test_generation_on_an_override_is_one_undo_step(lib):
    from duet.addon.generate import push_undo

    face = link_character(lib, "override")["MESH"]
    bpy.ops.ed.undo_push(message="before Duet")
    before = state()
    _write(face, head_target="OBJECT")
    push_undo("Duet: generate")
    after = state()
    assert after != before
    bpy.ops.ed.undo()
    assert state() == before
    bpy.ops.ed.redo()
    assert state() == after
